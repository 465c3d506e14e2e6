#!/usr/bin/env bash
# The one-GPU smoke check (docs/gpu.md): the tiny Qwen2.5-VL in bf16 on CUDA through SFT (images, video), GRPO
# (Clip-Cov, KL-Cov, video; HF generation), `eval run`, and one colocate vLLM GRPO step when `import vllm` works;
# prints one table (scripts/gpu_smoke.py). Made for a bare GPU machine without network: what its Python lacks comes
# from .whl/ (scripts/gpu_wheels.sh, run beforehand where pip works), installed into a scratch folder with
# `pip install --no-index`; the project runs from this checkout (PYTHONPATH).
#
#   scripts/gpu_smoke.sh                  # on the GPU machine, < 8 minutes
#   scripts/gpu_smoke.sh --dry-run        # the same rows on CPU, fp32, 1-2 steps each (tests/test_gpu_smoke.py)
#
# Environment: PYTHON (.venv/bin/python if present, else python3), WHEEL_DIR (.whl), SMOKE_SITE
# (/tmp/mmreason_smoke_site), SMOKE_WHEELS=0 never to install the wheels. Other arguments go to scripts/gpu_smoke.py.
set -euo pipefail
cd "$(dirname "$0")/.."
# this clone's venv where `make setup` made one (CPU machines), else the machine's python3 (the GPU machine)
if [ -z "${PYTHON:-}" ]; then if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi; fi
WHEEL_DIR=${WHEEL_DIR:-.whl}
SITE=${SMOKE_SITE:-/tmp/mmreason_smoke_site}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

# every package the rows import, with its version (transformers: the project needs >= 5.18)
check_imports() {
  "$PYTHON" - "$1" <<'PY'
import importlib, sys
missing = []
for name in ("torch", "torchvision", "transformers", "accelerate", "peft", "trl", "datasets", "pyarrow",
             "qwen_vl_utils", "math_verify", "mathruler", "PIL", "yaml", "mmreason"):
    try:
        mod = importlib.import_module(name)
        if sys.argv[1] == "report":
            print(f"gpu_smoke: {name} {getattr(mod, '__version__', '')}", file=sys.stderr)
        if name == "transformers" and tuple(int(x) for x in mod.__version__.split(".")[:2]) < (5, 18):
            missing.append(f"transformers >= 5.18 (found {mod.__version__})")
    except Exception as e:
        missing.append(f"{name} ({type(e).__name__}: {e})")
if missing:
    if sys.argv[1] == "report":
        print("gpu_smoke: missing " + "; ".join(missing) + " - run scripts/gpu_wheels.sh where pip works first",
              file=sys.stderr)
    sys.exit(1)
PY
}

if ! check_imports quiet 2>/dev/null && [ "${SMOKE_WHEELS:-1}" != 0 ] && compgen -G "$WHEEL_DIR/*.whl" >/dev/null; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$WHEEL_DIR"/*.whl
  export PYTHONPATH="$PWD:$SITE${PYTHONPATH#"$PWD"}"
fi
check_imports report
exec "$PYTHON" scripts/gpu_smoke.py "$@"
