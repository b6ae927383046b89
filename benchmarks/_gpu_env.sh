# Sourced by the GPU scripts: wheels missing on the device machine (.whl/), src on the path, a log helper.
if [ -d .whl ] && ! python3 -c "import kornia" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PY:-python3}
mkdir -p "$OUT"
LOG="$OUT/gpu_log.txt"
log() { echo "== $*" | tee -a "$LOG"; }
log "$(date -u) device=$DEVICE"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || true; } | tee -a "$LOG"
