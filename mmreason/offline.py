"""Process-wide defaults for running without a model hub."""

from __future__ import annotations

import os


def offline_defaults() -> None:
    """With MMREASON_OFFLINE=1 (tests, CI, the demo), keep libraries off the network.

    Real runs leave it unset and keep the Hub path (e.g. Qwen/Qwen2.5-VL-7B-Instruct).
    Also silences the tokenizers fork warning."""
    if os.environ.get("MMREASON_OFFLINE", "0") == "1":
        for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
            os.environ.setdefault(var, "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
