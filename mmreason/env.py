"""`mmreason env`: versions and hardware facts to paste into a bug report."""

from __future__ import annotations

import importlib.metadata as md
import os
import platform

PACKAGES = ["torch", "torchvision", "transformers", "trl", "peft", "accelerate", "datasets", "pillow",
            "qwen-vl-utils", "math-verify", "deepspeed", "decord", "vllm"]


def facts() -> dict[str, str]:
    out = {"python": platform.python_version(), "platform": platform.platform(), "cpus": str(os.cpu_count())}
    for name in PACKAGES:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = "not installed"
    try:
        import torch  # lazy: `mmreason env` reports versions even where torch fails to import

        out["cuda"] = f"{torch.cuda.device_count()} GPU(s)" if torch.cuda.is_available() else "no GPU (CPU only)"
    except ImportError:
        pass
    out["offline"] = ",".join(v for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE") if os.environ.get(v) == "1") or "no"
    return out


def main(argv: list[str]) -> int:
    for k, v in facts().items():
        print(f"{k:>14}: {v}")
    return 0
