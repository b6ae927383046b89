#!/usr/bin/env bash
# One GPU run for the real-data evaluation (benchmarks/real_data.md): a quick throughput check,
# then two time-limited TAP trainings on HeLa (CTC Fluo-N2DL-HeLa 02, Δt = 1):
#   hela_heldout: frames >= 21 only (frames 0-19, where evaluation happens, held out);
#   hela_all:     all 57 available frames (self-supervised on the evaluated video, as the paper does).
# Test on the CPU first:  DEVICE=cpu QUICK=1 bash benchmarks/gpu_real_data.sh
# Data: .gpudata/hela (the raw frames of ../shared/data/hela-ctc02/02, not committed).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-benchmarks/out}"
DEVICE="${DEVICE:-cuda}"
QUICK="${QUICK:-0}"
source benchmarks/_gpu_env.sh

HELD="${HELD_MINUTES:-2.3}"; ALL="${ALL_MINUTES:-4.0}"
TRAIN="--size 96 --batch-size 256 --samples-per-epoch 25600 --val-samples 2048 --amp --compile"
TP="--batch 256 --amp on --compile on --steps 10 --rounds 2"
if [ "$QUICK" = 1 ]; then
  TRAIN="--size 32 --batch-size 8 --samples-per-epoch 16 --val-samples 8"; HELD=0.2; ALL=0.2
  TP="--batch 4 --steps 1 --rounds 1 --size 32"
fi
mkdir -p /tmp/hela21
for f in .gpudata/hela/t*.tif; do n=$(basename "$f" .tif); [ "${n#t}" -ge 21 ] 2>/dev/null && ln -sf "$PWD/$f" /tmp/hela21/; done
[ "$QUICK" = 1 ] || [ "${SKIP_THROUGHPUT:-0}" = 1 ] || { log "training throughput, paper configuration, bf16 + compile"
  timeout 150 $PY benchmarks/train_throughput.py --device "$DEVICE" $TP 2>&1 | tee -a "$LOG"; }
train() {  # name minutes videos...
  local name=$1 minutes=$2; shift 2
  log "train $name for $minutes min on $*"
  rm -rf "$OUT/$name"
  $PY -m napari_tarrow.cli -q train "$@" --out "$OUT/$name" --device "$DEVICE" --epochs 1000 \
    --time-limit "$minutes" --seed 1 $TRAIN 2>&1 | tee -a "$LOG"
  tail -n 2 "$OUT/$name/metrics.jsonl" 2>/dev/null | tee -a "$LOG"
  rm -f "$OUT/$name/resume.pt"
}
train hela_heldout "$HELD" /tmp/hela21
train hela_all "$ALL" .gpudata/hela
rm -f "$OUT/hela_heldout/weights_last.safetensors"  # at most 8 files of 16 MiB come back from the device
log "done $(date -u)"
