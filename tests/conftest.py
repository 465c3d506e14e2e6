"""Shared fixtures: everything offline, one tiny Qwen2.5-VL checkpoint per test session."""

import os

os.environ["MMREASON_OFFLINE"] = "1"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_DISABLED", "true")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A real Qwen2.5-VL checkpoint folder (~0.25M params), built once per session."""
    from mmreason.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny_model"), size="tiny", seed=0)


@pytest.fixture(scope="session")
def benchmarks_dir() -> Path:
    path = SHARED / "benchmarks"
    if not path.is_dir():
        pytest.fail(f"../shared/benchmarks not found at {path}: it sits beside the checkout, in CI too")
    return path
