#!/usr/bin/env bash
# Every tagging result in docs/tagging.md: prepare -> train -> evaluate, one process, one
# thread per job (the numbers were measured on a shared 2-core CPU). Resumable: a finished run
# is skipped, an interrupted one continues from its last.pt.
#   bash recipes/tagging/run_all.sh [job ...]     (default: all jobs)
# A job is <config>:<dataset folder>, e.g. synth_fcn:synth
# (docs/tagging.md: instruments_fcn was afterwards resumed with --epochs 30, then --epochs 22.)
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
R=${R:-runs/tagging}  # output root (R=/abs/path to write elsewhere)
export OMP_NUM_THREADS=1

# Datasets (each prepared once; PREPARE=0 skips this when they are being made elsewhere)
if [ "${PREPARE:-1}" = 1 ]; then
  [ -f $R/synth/manifest.jsonl ] || $PY recipes/tagging/prepare.py synth --out $R/synth --n 400
  [ -f $R/instruments/manifest.jsonl ] || $PY recipes/tagging/prepare.py instruments --out $R/instruments
  [ -f $R/fsdd_speaker/manifest.jsonl ] || $PY recipes/tagging/prepare.py fsdd --task speaker --out $R/fsdd_speaker
  [ -f $R/fsdd_digit/manifest.jsonl ] || $PY recipes/tagging/prepare.py fsdd --task digit --out $R/fsdd_digit
fi

JOBS=("$@")
if [ ${#JOBS[@]} -eq 0 ]; then
  JOBS=(synth_fcn:synth instruments_fcn:instruments
        fsdd_m3:fsdd_speaker fsdd_m5:fsdd_speaker fsdd_m11:fsdd_speaker fsdd_m18:fsdd_speaker
        fsdd_speaker_m3:fsdd_speaker fsdd_speaker_m5:fsdd_speaker fsdd_speaker_m11:fsdd_speaker
        fsdd_speaker_m18:fsdd_speaker
        synth_samplecnn:synth synth_samplecnn_se:synth synth_attention:synth
        instruments_samplecnn:instruments instruments_samplecnn_se:instruments
        instruments_attention:instruments
        fsdd_digit_m3:fsdd_digit fsdd_digit_m5:fsdd_digit fsdd_digit_m11:fsdd_digit
        fsdd_digit_m18:fsdd_digit fsdd_digit_m34res:fsdd_digit
        fsdd_digit_noaug_m3:fsdd_digit fsdd_digit_noaug_m18:fsdd_digit
        fsdd_digit_small_m3:fsdd_digit fsdd_digit_small_m18:fsdd_digit)
fi
for job in "${JOBS[@]}"; do
  cfg=${job%%:*}; data=${job#*:}; out=$R/runs/$cfg
  if [ ! -f $out/report_test.json ]; then
    $PY recipes/tagging/train.py --config "$cfg" --manifest $R/$data/manifest.jsonl --out $out --no-progress
    $PY recipes/tagging/evaluate.py --checkpoint $out/best.safetensors \
      --manifest $R/$data/manifest.jsonl --split test --out $out
  fi
done
