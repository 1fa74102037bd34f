#!/usr/bin/env bash
# Create (or update) the Python venv used by the mho scripts: PyTorch + Captum
# for fixtures, benchmarks and the PyTorch training baseline.
#
#   scripts/setup_venv.sh            # venv at /opt/mho-venv
#   MHO_VENV=~/venvs/mho scripts/setup_venv.sh
#
# The venv must live OUTSIDE the repository. Idempotent: re-running only
# installs what is missing or at the wrong version. Needs PyPI access.
set -euo pipefail

VENV="${MHO_VENV:-/opt/mho-venv}"
PYTHON="${PYTHON:-python3}"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

case "$(realpath -m "$VENV")/" in
  "$REPO"/*) echo "error: MHO_VENV=$VENV is inside the repository $REPO; put it outside" >&2; exit 1 ;;
esac

# Versions in use when the fixtures and docs/bench-torch.txt were made.
PACKAGES=(
  "torch==2.15.0"
  "captum==0.9.0"
  "numpy==2.4.6"
  "safetensors==0.8.0"
  "scikit-learn==1.9.1"
  "matplotlib==3.11.2"
)

if [ ! -x "$VENV/bin/python" ]; then
  echo "creating venv at $VENV"
  "$PYTHON" -m venv "$VENV"
fi

if "$VENV/bin/python" - "${PACKAGES[@]}" <<'PY'
import sys
from importlib.metadata import version, PackageNotFoundError
for spec in sys.argv[1:]:
    name, want = spec.split("==")
    try:
        have = version(name)
    except PackageNotFoundError:
        sys.exit(1)
    if have.split("+")[0] != want:
        sys.exit(1)
PY
then
  echo "venv $VENV already has: ${PACKAGES[*]}"
else
  "$VENV/bin/pip" install --upgrade pip
  # CPU-only wheels of torch are enough (mho compares on the CPU).
  "$VENV/bin/pip" install "${PACKAGES[@]}"
fi

"$VENV/bin/python" -c 'import torch, captum, numpy, safetensors, sklearn, matplotlib; print("torch", torch.__version__, "captum", captum.__version__, "numpy", numpy.__version__)'
