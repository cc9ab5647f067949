#!/usr/bin/env bash
# The "real instruments, one GPU" rows of docs/tagging.md (measured on one H200; about 6 minutes
# with the three trainings sharing the GPU). Same note files and split as run_all.sh's
# `instruments` set, but 6,000 training clips instead of 1,000 (prepare.py mixes them from the
# train-split notes only), batch 32 and a 300 s time budget per model (configs/*_gpu.json).
# Evaluation uses run_all.sh's `instruments` test split (300 clips from the test-split notes).
#   bash recipes/tagging/run_gpu.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
R=runs/tagging
[ -f $R/instruments/manifest.jsonl ] || $PY recipes/tagging/prepare.py instruments --out $R/instruments
[ -f $R/instruments_gpu/manifest.jsonl ] || $PY recipes/tagging/prepare.py instruments \
  --out $R/instruments_gpu --n-train 6000 --n-valid 150 --n-test 0
for cfg in instruments_fcn_gpu instruments_fcn5_wide_gpu instruments_attention_gpu; do
  $PY recipes/tagging/train.py --config $cfg --manifest $R/instruments_gpu/manifest.jsonl \
    --out $R/runs/$cfg --no-progress &
done
wait
for cfg in instruments_fcn_gpu instruments_fcn5_wide_gpu instruments_attention_gpu; do
  $PY recipes/tagging/evaluate.py --checkpoint $R/runs/$cfg/best.safetensors \
    --manifest $R/instruments/manifest.jsonl --split test --out $R/runs/$cfg
done
