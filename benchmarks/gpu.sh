#!/usr/bin/env bash
# All GPU checks in one run (see benchmarks/README.md): training throughput, attribution and
# export speed at 1024x1024, then a time-limited TAP training on the real HeLa/GOWT1 videos.
# Test on the CPU first:  DEVICE=cpu QUICK=1 bash benchmarks/gpu.sh
# Data: .gpudata/hela21 (HeLa frames >= 21) and .gpudata/gowt1 (GOWT1 frames 0-59), copied
# from ../shared/data (not committed). Wheels missing on the GPU machine travel in .whl/.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-benchmarks/out}"
DEVICE="${DEVICE:-cuda}"
QUICK="${QUICK:-0}"
TRAIN_MINUTES="${TRAIN_MINUTES:-4.5}"
mkdir -p "$OUT"
LOG="$OUT/gpu_log.txt"
if [ -d .whl ] && ! python3 -c "import kornia" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PY:-python3}
log() { echo "== $*" | tee -a "$LOG"; }
log "$(date -u) device=$DEVICE"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || true; } | tee -a "$LOG"

if [ "$QUICK" = 1 ]; then
  TP1="--batch 4 --steps 1 --rounds 1 --size 32"; TP2="$TP1"; INF="--size 128 --frames 3 --tile 64"
  TRAIN="--size 32 --batch-size 8 --samples-per-epoch 16 --val-samples 8"; TRAIN_MINUTES=0.3
else
  TP1="--batch 128 256 512 --amp on --steps 10 --rounds 2"
  TP2="--batch 256 --amp both --compile on --steps 10 --rounds 2"
  INF="--size 1024 --frames 8"
  TRAIN="--size 96 --batch-size 256 --samples-per-epoch 25600 --val-samples 2048 --amp"
fi
log "training throughput (paper configuration: crop 96, 32 features, full augmentation)"
timeout 200 $PY benchmarks/train_throughput.py --device "$DEVICE" $TP1 2>&1 | tee -a "$LOG"
timeout 200 $PY benchmarks/train_throughput.py --device "$DEVICE" $TP2 2>&1 | tee -a "$LOG"
log "attribution / export"
timeout 120 $PY benchmarks/inference.py --device "$DEVICE" $INF 2>&1 | tee -a "$LOG"

log "real data: TAP training on HeLa frames >= 21 and GOWT1 0-59 for $TRAIN_MINUTES min"
rm -rf "$OUT/hela_model"
$PY -m napari_tarrow.cli -q train .gpudata/hela21 .gpudata/gowt1 --out "$OUT/hela_model" \
  --device "$DEVICE" --epochs 1000 --time-limit "$TRAIN_MINUTES" $TRAIN 2>&1 | tee -a "$LOG"
tail -n 3 "$OUT/hela_model/metrics.jsonl" 2>/dev/null | tee -a "$LOG"
rm -f "$OUT/hela_model/resume.pt" "$OUT/hela_model/weights_last.safetensors"
log "done $(date -u)"
