#!/usr/bin/env bash
# The one-GPU smoke check (docs/gpu.md): the tiny Qwen2.5-VL in bf16 on CUDA through SFT (images, video), GRPO
# (Clip-Cov, KL-Cov, video; HF generation), `eval run`, and one colocate vLLM GRPO step when `import vllm` works;
# prints one table (scripts/gpu_smoke.py). Made for a bare GPU machine without network: the wheels it lacks come from
# .whl/ (scripts/gpu_wheels.sh, run beforehand where pip works) and are installed into a scratch folder with
# `pip install --no-index`; the project runs from this checkout (PYTHONPATH).
#
#   scripts/gpu_smoke.sh                  # on the GPU machine, < 8 minutes
#   scripts/gpu_smoke.sh --dry-run        # the same rows on CPU, fp32, 1-2 steps each (tests/test_gpu_smoke.py)
#
# Environment: PYTHON (python3), WHEEL_DIR (.whl), SMOKE_SITE (/tmp/mmreason_smoke_site), SMOKE_WHEELS=0 to use the
# interpreter's own packages even when WHEEL_DIR holds wheels. Other arguments go to scripts/gpu_smoke.py.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
WHEEL_DIR=${WHEEL_DIR:-.whl}
SITE=${SMOKE_SITE:-/tmp/mmreason_smoke_site}

if [ "${SMOKE_WHEELS:-1}" != 0 ] && compgen -G "$WHEEL_DIR/*.whl" >/dev/null; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$WHEEL_DIR"/*.whl
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

# every package the rows import, with its version: a missing one is named here, not deep inside a row
"$PYTHON" - <<'PY'
import importlib, sys
missing = []
for name in ("torch", "torchvision", "transformers", "accelerate", "peft", "trl", "datasets", "pyarrow",
             "qwen_vl_utils", "math_verify", "PIL", "yaml", "mmreason"):
    try:
        mod = importlib.import_module(name)
        print(f"gpu_smoke: {name} {getattr(mod, '__version__', '')}", file=sys.stderr)
    except Exception as e:
        missing.append(f"{name} ({type(e).__name__}: {e})")
if missing:
    sys.exit("gpu_smoke: cannot import " + "; ".join(missing) + " - run scripts/gpu_wheels.sh where pip works first")
PY
exec "$PYTHON" scripts/gpu_smoke.py "$@"
