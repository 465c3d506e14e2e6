"""The fingerprint of a training run, written into every checkpoint (`run_fingerprint.json`) and checked on resume.

It holds what makes two runs the same run: the train files' identity (absolute path, size, SHA-256 of the
content), the starting model's (path, SHA-256 of config.json, weight file sizes) and every setting of the stage's
argument dataclasses except those that do not change the trained weights (logging, saving cadence, output_dir,
evaluation, hub, timeouts, engine/launcher knobs, and the run's length, max_steps / num_train_epochs, so that a
rerun with more steps continues the run: `IGNORED`). An automatic resume (`resume_from_checkpoint: true`)
of a checkpoint whose fingerprint differs stops with `FingerprintMismatch` naming every difference; an explicit
`resume_from_checkpoint: PATH` resumes and prints the differences loudly.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import logging
import os
import sys
from pathlib import Path

logger = logging.getLogger("mmreason.fingerprint")

FILE = "run_fingerprint.json"
IGNORED_PREFIXES = ("logging_", "log_", "save_", "hub_", "eval_", "trackio_", "push_to_hub", "dataloader_", "ddp_",
                    "vllm_server_", "num_completions_to_print", "_")
IGNORED = {
    "output_dir", "report_to", "run_name", "project", "disable_tqdm", "skip_memory_metrics", "debug", "do_train",
    "do_eval", "do_predict", "resume_from_checkpoint", "local_rank", "per_device_eval_batch_size",
    "prediction_loss_only", "include_for_metrics", "batch_eval_metrics", "enable_jit_checkpoint",
    "load_best_model_at_end", "metric_for_best_model", "greater_is_better", "eval_file", "eval_max_samples",
    "deepspeed", "fsdp", "fsdp_config", "accelerator_config", "parallelism_config", "use_cpu", "dataset_num_proc",
    "log_completions", "log_multimodal", "log_unique_prompts", "num_generations_eval", "eval_packing",
    "hub_token", "bf16_full_eval", "fp16_full_eval", "torch_empty_cache_steps", "ignore_data_skip",
    "restore_callback_states_from_checkpoint", "vllm_gpu_memory_utilization", "vllm_enable_sleep_mode",
    "train_files", "train_file", "model_name_or_path",  # identified by content under "data" and "model" instead
    "max_steps", "num_train_epochs",  # a rerun with more steps continues the same run (a longer schedule from there)
}  # fmt: skip


class FingerprintMismatch(RuntimeError):
    """An automatic resume would continue another run's checkpoint."""


KEPT = {"eval_split_ratio"}  # holds records out of training


def _ignored(name: str) -> bool:
    return name not in KEPT and (name in IGNORED or name.startswith(IGNORED_PREFIXES))


def _plain(value):
    """A JSON value that is the same for the same setting in every process (no object addresses)."""
    if isinstance(value, enum.Enum):
        return _plain(value.value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple, set)):
        return [_plain(v) for v in (sorted(value, key=str) if isinstance(value, set) else value)]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return type(value).__name__


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def data_identity(name: str) -> dict:
    """A train file: absolute path, size, content hash; a dataset folder: its files' names and sizes; else (a Hub
    id) the name."""
    p = Path(name)
    if p.is_file():
        return {"path": str(p.resolve()), "size": p.stat().st_size, "sha256": _sha256(p)}
    if p.is_dir():
        files = sorted((str(f.relative_to(p)), f.stat().st_size) for f in p.rglob("*") if f.is_file())
        return {"path": str(p.resolve()), "files": hashlib.sha256(json.dumps(files).encode()).hexdigest()}
    return {"id": name}


def model_identity(name: str | None) -> dict:
    p = Path(str(name))
    if not p.is_dir():
        return {"id": name}
    config = p / "config.json"
    weights = {f.name: f.stat().st_size for f in sorted(p.glob("*.safetensors"))}
    return {"path": str(p.resolve()), "config_sha256": _sha256(config) if config.is_file() else None,
            "weights": weights}


def run_fingerprint(*arg_objects, data_files: list[str], model: str | None) -> dict:
    settings = {}
    for obj in arg_objects:
        if obj is None:
            continue
        for f in dataclasses.fields(obj):
            if not _ignored(f.name):
                settings[f.name] = _plain(getattr(obj, f.name))
    return json.loads(json.dumps({"data": [data_identity(str(d)) for d in data_files], "model": model_identity(model),
                                  "settings": settings}, sort_keys=True))


def write_fingerprint(folder: str | os.PathLike, fingerprint: dict) -> None:
    tmp = Path(folder) / f".{FILE}.tmp"
    tmp.write_text(json.dumps(fingerprint, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(tmp, Path(folder) / FILE)


def read_fingerprint(folder: str | os.PathLike) -> dict | None:
    try:
        saved = json.loads((Path(folder) / FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return saved if isinstance(saved, dict) else None


def _flat(value, prefix: str = "") -> dict:
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(value, list) and prefix.startswith("data"):
        out = {}
        for i, v in enumerate(value):
            out.update(_flat(v, f"{prefix}[{i}]"))
        out[f"{prefix} count"] = len(value)
        return out
    return {prefix: value}


def differences(saved: dict, current: dict) -> list[str]:
    """'key: saved -> current' for every entry that differs (settings by name, data files by position)."""
    a, b = _flat(saved), _flat(current)
    missing = object()
    out = []
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key, missing), b.get(key, missing)
        if x != y:
            show = lambda v: "(absent)" if v is missing else json.dumps(v)  # noqa: E731
            out.append(f"{key}: {show(x)} -> {show(y)}")
    return out


def check_resume(checkpoint: str | None, current: dict, automatic: bool) -> None:
    """Compare the checkpoint a run resumes from with this run's fingerprint: a difference stops an `automatic`
    resume (found in output_dir) and is printed for a checkpoint named on purpose."""
    if checkpoint is None:
        return
    saved = read_fingerprint(checkpoint)
    if saved is None:
        logger.warning("resume: %s has no %s (written before fingerprints existed): its run is not checked",
                       checkpoint, FILE)
        return
    diffs = differences(saved, current)
    if not diffs:
        return
    listed = "\n  ".join(diffs)
    if automatic:
        raise FingerprintMismatch(
            f"{checkpoint} belongs to another run; this run differs in:\n  {listed}\nUse another output_dir, or "
            f"continue that checkpoint on purpose with resume_from_checkpoint: {checkpoint}")
    print(f"WARNING: resuming {checkpoint}, which was written by a run that differs in:\n  {listed}",
          file=sys.stderr, flush=True)
