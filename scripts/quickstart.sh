#!/usr/bin/env bash
# Quick start on a fresh clone: `bash scripts/quickstart.sh demo` or `... test`.
# Creates ./.venv, installs torch FIRST (a bare torch requirement would pull a
# multi-GB CUDA build where none is needed), then this package, then runs the job.
# Override the torch requirement with TORCH_SPEC, e.g. TORCH_SPEC="torch" for your CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-}"
case "$what" in demo|test|lint) ;; *) echo "usage: $0 demo|test|lint [extra args]" >&2; exit 2 ;; esac
shift || true

PY="${PYTHON:-python3}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
pip_install() { .venv/bin/python -m pip install -q --disable-pip-version-check "$@"; }
if [ "$what" = lint ]; then  # what CI checks first: ruff's rules and formatting
  pip_install "ruff==0.17.6"
  .venv/bin/ruff check src tests benchmarks scripts
  exec .venv/bin/ruff format --check src tests benchmarks scripts
fi
.venv/bin/python -c "import torch" 2>/dev/null || pip_install "$TORCH_SPEC"

if [ "$what" = demo ]; then
  pip_install -e .
  exec .venv/bin/napari-tarrow demo "$@"
fi

# tests: Qt needs a virtual X server for canvas rendering (installed when we are root)
if ! command -v Xvfb >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    xvfb libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-randr0 libxcb-render-util0 \
    libxcb-shape0 libxcb-xinerama0 libxcb-cursor0 libxkbcommon-x11-0 libegl1 libgl1 \
    libfontconfig1 libdbus-1-3 >/dev/null
fi
pip_install -e ".[testing]"
unset QT_QPA_PLATFORM  # offscreen Qt has no OpenGL here; pytest-xvfb provides a display
exec .venv/bin/python -m pytest -q "$@"
