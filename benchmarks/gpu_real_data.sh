#!/usr/bin/env bash
# One GPU run for the real-data evaluation (benchmarks/real_data.md), sized for one 10-minute call:
#   1. a short throughput check of the CUDA tuning (cudnn.benchmark + fused Adam), batch 256 and 512;
#   2. TAP training on HeLa (CTC Fluo-N2DL-HeLa 02, Δt = 1) frames >= 21 only (frames 0-19, where
#      evaluation happens, held out), stopped by --time-limit;
#   3. `napari-tarrow evaluate` of its best and last weights on frames 0-19, on the GPU.
# What comes back under $OUT (at most 8 files): the log, the model's config, metrics and both
# weights, and the two tables.
# Test on the CPU first:  DEVICE=cpu QUICK=1 bash benchmarks/gpu_real_data.sh
# Data: .gpudata/hela (the raw frames of ../shared/data/hela-ctc02/02), .gpudata/hela_tra
# (its 02_GT/TRA) and, if present, .gpudata/hela_heldout (the model evaluated in
# real_data.md, the baseline of the evaluation), not committed; carry them with the run.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-benchmarks/out}"
DEVICE="${DEVICE:-cuda}"
QUICK="${QUICK:-0}"
source benchmarks/_gpu_env.sh

MINUTES="${HELD_MINUTES:-6}"
TRAIN="--size 96 --batch-size 256 --samples-per-epoch 51200 --val-samples 2048 --amp --compile"
TP="--batch 256 512 --amp on --compile on --cuda-tuning both --steps 10 --rounds 2"
EVAL="--frames 0-19"
if [ "$QUICK" = 1 ]; then
  TRAIN="--size 32 --batch-size 8 --samples-per-epoch 16 --val-samples 8"; MINUTES=0.2
  TP="--batch 4 --steps 1 --rounds 1 --size 32"; EVAL="--frames 0-3"
fi
mkdir -p /tmp/hela21
for f in .gpudata/hela/t*.tif; do n=$(basename "$f" .tif); [ "${n#t}" -ge 21 ] 2>/dev/null && ln -sf "$PWD/$f" /tmp/hela21/; done
[ "${SKIP_THROUGHPUT:-0}" = 1 ] || { log "training throughput, paper configuration, bf16 + compile, CUDA tuning off/on"
  timeout 170 $PY benchmarks/train_throughput.py --device "$DEVICE" $TP 2>&1 | tee -a "$LOG"; }

M="$OUT/hela_heldout"
log "train hela_heldout for $MINUTES min on HeLa frames >= 21"
rm -rf "$M"
$PY -m napari_tarrow.cli -q train /tmp/hela21 --out "$M" --device "$DEVICE" --epochs 1000 \
  --time-limit "$MINUTES" --seed 1 $TRAIN 2>&1 | tee -a "$LOG"
tail -n 3 "$M/metrics.jsonl" 2>/dev/null | tee -a "$LOG"
rm -f "$M/resume.pt"
# the model of benchmarks/real_data.md (stop 2) as the baseline: paired difference to it
BASE=(); [ -f .gpudata/hela_heldout/config.json ] && BASE=(--baseline .gpudata/hela_heldout)
for w in best last; do
  log "evaluate hela_heldout ($w weights) on HeLa frames 0-19"
  $PY -m napari_tarrow.cli evaluate "$M" .gpudata/hela --tracks .gpudata/hela_tra/man_track.txt \
    $EVAL --top-k 6 --radius 25 --seed 0 --device "$DEVICE" --weights "$w" "${BASE[@]}" \
    --out "$OUT/real_data_hela_heldout_$w.csv" 2>&1 | tee -a "$LOG"
done
log "done $(date -u)"
