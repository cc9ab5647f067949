#!/usr/bin/env bash
# Similarity fine-tunes on one GPU (docs/similarity.md, "More music"): render built-in songs,
# then three fine-tunes of the shipped model in parallel, each with its own DataLoader workers
# (the augmentation chain is CPU-bound):
#   gpu_ccby              + CC BY/public-domain real music + rendered single notes (may ship)
#   gpu_research          gpu_ccby + MIR-1K train singers + Philharmonia train files (research only)
#   gpu_research_nopitch  as gpu_research without pitch-shift positives
# Evaluation (on CPU, catalogs exclude everything trained on) is in docs/similarity.md.
#   bash recipes/similarity/run_gpu.sh OUTDIR [BUDGET_S=420] [DATA_ROOT=../shared/data]
#        [N_SONGS=480] [WORKERS=4] [CONFIGS="gpu_ccby gpu_research gpu_research_nopitch"]
set -u
cd "$(dirname "$0")/../.."
O=${1:?output folder}; B=${2:-420}; ROOT=${3:-../shared/data}; N=${4:-480}; W=${5:-4}
CONFIGS=${6:-gpu_ccby gpu_research gpu_research_nopitch}
PY=${PY:-python3}
export PYTHONPATH=$PWD/src:${PYTHONPATH:-} PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
R=runs/similarity_gpu; mkdir -p "$R" "$O"
T0=$(date +%s)
$PY -c "import soundfile as sf; print('libsndfile', sf.__libsndfile_version__, 'opus', 'OPUS' in sf.available_subtypes('OGG'))" | tee "$R/env.log"
[ -f "$R/data/manifest.jsonl" ] || $PY recipes/similarity/prepare.py --out "$R/data" --n "$N" \
  --duration 10 --workers 8 > "$R/prepare.log" 2>&1
echo "rendered at $(( $(date +%s) - T0 )) s" | tee -a "$R/prepare.log"
for c in $CONFIGS; do
  timeout $((B + 150)) $PY recipes/similarity/train.py --config recipes/similarity/configs/$c.json \
    --init src/audiofcn/pretrained/embedding_small.safetensors --data "$R/data" --real-root "$ROOT" \
    --out "$R/$c" --time-budget "$B" --workers "$W" > "$R/$c.log" 2>&1 &
done
wait
echo "trained at $(( $(date +%s) - T0 )) s"
for c in $CONFIGS; do echo "--- $c"; tail -n 2 "$R/$c.log" | cut -c1-300; done
tar cf "$O/similarity.tar" "$R"/*.log "$R"/*/best.safetensors "$R"/*/last.safetensors \
  "$R"/*/train_info.json 2>/dev/null
ls -la "$O"
