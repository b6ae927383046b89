#!/usr/bin/env bash
# GPU speed checks in one run (see benchmarks/README.md): training throughput, attribution and
# export speed at 1024x1024. Real-data training is benchmarks/gpu_real_data.sh.
# Test on the CPU first:  DEVICE=cpu QUICK=1 bash benchmarks/gpu.sh
# Wheels missing on the GPU machine travel in .whl/ (not committed).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-benchmarks/out}"
DEVICE="${DEVICE:-cuda}"
QUICK="${QUICK:-0}"
source benchmarks/_gpu_env.sh

if [ "$QUICK" = 1 ]; then
  TP1="--batch 4 --steps 1 --rounds 1 --size 32"; TP2="$TP1"; INF="--size 128 --frames 3 --tile 64"
else
  TP1="--batch 128 256 512 --amp on --steps 10 --rounds 2"
  TP2="--batch 256 512 --amp on --compile on --cuda-tuning both --steps 10 --rounds 2"
  INF="--size 1024 --frames 8"
fi
log "training throughput (paper configuration: crop 96, 32 features, full augmentation)"
timeout 200 $PY benchmarks/train_throughput.py --device "$DEVICE" $TP1 2>&1 | tee -a "$LOG"
timeout 200 $PY benchmarks/train_throughput.py --device "$DEVICE" $TP2 2>&1 | tee -a "$LOG"
log "attribution / export"
timeout 120 $PY benchmarks/inference.py --device "$DEVICE" $INF 2>&1 | tee -a "$LOG"

log "done $(date -u)"
