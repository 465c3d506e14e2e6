#!/usr/bin/env bash
# Download, where pip works, the wheels scripts/gpu_smoke.sh needs on a bare GPU machine (Python 3.12, x86-64, no
# network; it has torch, torchvision, transformers 5.17, accelerate, peft, pandas, pyarrow, pillow, numpy: see
# /work/.library/device/KINDS.md): only what it lacks or holds too old, for cp312 manylinux x86_64, into .whl/
# (ignored by git; at most 64 MiB, the device machine's working-tree limit).
#
#   scripts/gpu_wheels.sh            # then: scripts/gpu_smoke.sh on the GPU machine (it installs from .whl/)
#   scripts/gpu_wheels.sh --list     # the NAME==VERSION it would download, one a line (nothing downloaded)
#
# What the image already has is scripts/gpu_image_packages.txt; tests/test_gpu_smoke.py runs the smoke's dry run in
# a venv holding only those packages and these, so a package missing from both fails here, not on the GPU machine.
#
# Versions: the CPU pins (requirements/cpu.txt) and the versions that set resolved for their small dependencies.
# The project itself travels as source (gpu_smoke.sh puts the repository on PYTHONPATH).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
DEST=${WHEEL_DIR:-.whl}
LIMIT_MIB=64

pin() { grep -iE "^$1==" requirements/cpu.txt | sed 's/ *#.*//' | grep . || { echo "gpu_wheels: no pin for $1 in requirements/cpu.txt" >&2; exit 2; }; }
PINS=(
  "$(pin transformers)"            # the machine's 5.17 is below the project's >=5.18
  "$(pin trl)" "$(pin datasets)" "$(pin qwen-vl-utils)" "$(pin math-verify)"
  dill==0.4.1 multiprocess==0.70.19 fsspec==2026.9.0   # datasets 5.2 (fsspec <= 2026.9.0)
  latex2sympy2_extended==1.11.0 antlr4-python3-runtime==4.13.2   # math-verify 0.9.0
  "$(pin mathruler)" "$(pin pylatexenc)"   # the official reward (mmreason/rewards/official_math.py)
)
if [ "${1:-}" = "--list" ]; then printf '%s\n' "${PINS[@]}"; exit 0; fi
mkdir -p "$DEST"
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$DEST" "${PINS[@]}"
# one version of each package: pip install --no-deps of two versions of one name fails
dups=$(ls "$DEST"/*.whl | xargs -n1 basename | cut -d- -f1 | tr 'A-Z-' 'a-z_' | sort | uniq -d)
[ -z "$dups" ] || { echo "gpu_wheels: several versions of: $dups (clean $DEST and rerun)" >&2; exit 1; }
size=$(du -cm "$DEST"/*.whl | tail -1 | cut -f1)
ls -1 "$DEST"/*.whl
echo "gpu_wheels: $(ls "$DEST"/*.whl | wc -l) wheels, ${size} MiB in $DEST"
if [ "$size" -gt "$LIMIT_MIB" ]; then echo "gpu_wheels: over ${LIMIT_MIB} MiB" >&2; exit 1; fi
