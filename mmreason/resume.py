"""`resume_from_checkpoint` for the training stages (SFT and GRPO read it the same way).

A checkpoint is complete once transformers has written its `trainer_state.json` — the last file
`Trainer._save_checkpoint` writes, after the weights, optimizer, scheduler and RNG states. With several
processes, transformers writes it on rank 0 without waiting for the other ranks' RNG files (and DeepSpeed
shards); `CheckpointWeightsMixin` adds that barrier, so the state file still means "every rank is done". A job killed in
the middle of a save leaves a `checkpoint-N` without a readable state file (or without weights): resuming
moves it aside to `incomplete-checkpoint-N` with a warning and continues from the newest complete one, so
the next identical command resumes by itself. `CheckpointWeightsMixin` also writes the trainer's `run_fingerprint`
(mmreason/fingerprint.py) into each checkpoint before `trainer_state.json`, so a complete checkpoint names its run.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from pathlib import Path

from safetensors.torch import load_file
from transformers.core_model_loading import revert_weight_conversion

from mmreason.disk_full import DiskFullSaveMixin
from mmreason.fingerprint import write_fingerprint

logger = logging.getLogger(__name__)

LAST = ("true", "yes", "1", "auto", "last")
NONE = ("", "false", "none", "no", "0")
STATE = "trainer_state.json"
WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "adapter_model.safetensors")
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def incomplete_reason(folder: str | os.PathLike) -> str | None:
    """Why a checkpoint folder cannot be resumed from, or None when it is complete."""
    folder = Path(folder)
    state = folder / STATE
    if not state.is_file():
        return f"no {STATE} (the save was interrupted)"
    try:
        json.loads(state.read_text(encoding="utf-8"))["global_step"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
        return f"{STATE} is unreadable ({type(e).__name__})"
    if not any((folder / w).is_file() for w in WEIGHTS) and not any(folder.glob("global_step*")):
        return f"no weights ({' / '.join(WEIGHTS)} or a DeepSpeed global_step folder)"
    return None


def last_complete_checkpoint(output_dir: str | os.PathLike) -> str | None:
    """The newest complete checkpoint-N in output_dir; incomplete newer ones are moved aside (by the local main
    process only; other processes skip them)."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return None
    found = sorted(
        ((int(m.group(1)), p) for p in output_dir.iterdir() if p.is_dir() and (m := _CHECKPOINT.match(p.name))),
        reverse=True,
    )
    for _, folder in found:
        reason = incomplete_reason(folder)
        if reason is None:
            return str(folder)
        logger.warning("resume: skipping incomplete %s: %s", folder, reason)
        if os.environ.get("LOCAL_RANK", "0") == "0":
            aside = folder.with_name(f"incomplete-{folder.name}-{int(time.time())}")
            try:
                folder.rename(aside)
                logger.warning("resume: moved it to %s", aside)
            except OSError as e:  # another process got there first, or a read-only folder: skipping is enough
                logger.debug("could not move %s aside: %s", folder, e)
    return None


def is_automatic(value) -> bool:
    """Whether `resume_from_checkpoint` asks for whatever checkpoint output_dir holds (not a named folder)."""
    return value is True or str(value).strip().lower() in LAST


def resolve_resume(value, output_dir: str) -> str | None:
    """true / auto / last -> the newest complete checkpoint in output_dir (None, a fresh start, if there is none
    yet, so one command both starts and resumes a job); false / none / null -> no resume; anything else -> that
    checkpoint folder, which must be complete."""
    if value is None or value is False or str(value).strip().lower() in NONE:
        return None
    if value is True or str(value).strip().lower() in LAST:
        last = last_complete_checkpoint(output_dir)
        logger.info("resume: %s", last or f"no complete checkpoint in {output_dir}, starting fresh")
        return last
    if not os.path.isdir(str(value)):
        raise FileNotFoundError(f"resume_from_checkpoint: {value} is not a checkpoint folder")
    reason = incomplete_reason(value)
    if reason is not None:
        raise ValueError(f"resume_from_checkpoint: {value} is incomplete: {reason}")
    return str(value)


def saved_key_mapping(model) -> dict[str, str] | None:
    """file key -> model key for the weights `save_pretrained` writes (transformers 5 saves some models, Qwen2.5-VL
    among them, under their original key names: `model.embed_tokens` for `model.language_model.embed_tokens`,
    `visual.` for `model.visual.`). None when saving converts a tensor instead of renaming it."""
    state = model.state_dict()
    by_storage: dict[tuple, str] = {}
    for key, t in state.items():
        by_storage.setdefault((t.data_ptr(), tuple(t.shape)), key)
    mapping = {}
    for file_key, t in revert_weight_conversion(model, dict(state)).items():
        key = by_storage.get((t.data_ptr(), tuple(t.shape)))
        if key is None:
            return None
        mapping[file_key] = key
    return mapping


class CheckpointWeightsMixin(DiskFullSaveMixin):
    """Trainer mixin (a full disk during a save is one line: `DiskFullSaveMixin`): resume (and `load_best_model_at_end`) load a checkpoint's weights under the model's own key names.

    transformers 5.23's `Trainer._load_from_checkpoint` and `_load_best_model` read model.safetensors and call
    `model.load_state_dict(state_dict, strict=False)` with the keys as saved; for Qwen2.5-VL those match only
    `lm_head.weight`, so a resumed run silently continued from the *base* language model and merger weights (with
    the trained lm_head and optimizer state). Here the saved keys are mapped back first; DeepSpeed, FSDP, PEFT and
    sharded checkpoints keep the library's own loading."""

    def _load_mapped(self, folder, model) -> bool:
        weights = Path(folder) / "model.safetensors"
        plain = not (getattr(self, "is_deepspeed_enabled", False) or getattr(self, "is_fsdp_enabled", False)
                     or hasattr(model, "peft_config"))
        mapping = saved_key_mapping(model) if plain and weights.is_file() and hasattr(model, "config") else None
        if mapping is None:
            return False

        state = load_file(weights, device="cpu")
        unknown = sorted(set(state) - set(mapping))
        if unknown:
            raise ValueError(f"{weights}: weights the model does not have: {unknown[:5]}")
        logger.info("loading %d weight tensors from %s", len(state), weights)
        result = model.load_state_dict({mapping[k]: v for k, v in state.items()}, strict=False)
        del state
        self._issue_warnings_after_load(result)
        return True

    def save_extra_state(self, output_dir: str) -> None:
        """Hook: a trainer's own state for its checkpoint (the GRPO trainer's generation state), written after the
        RNG state and before trainer_state.json. Nothing by default."""

    def load_extra_state(self, checkpoint: str) -> None:
        """Hook: restore what `save_extra_state` wrote, when transformers restores the RNG state on resume."""

    def _save_rng_state(self, output_dir):
        """The one place a checkpoint's non-weight state is written, in the order that keeps trainer_state.json
        (written next by transformers) the completeness mark: the RNG state, the trainer's extra state, the run
        fingerprint, then a barrier across ranks."""
        super()._save_rng_state(output_dir)
        self.save_extra_state(output_dir)
        fingerprint = getattr(self, "run_fingerprint", None)
        if fingerprint is not None and self.args.should_save:  # before trainer_state.json, the completeness mark
            write_fingerprint(output_dir, fingerprint)
        # transformers writes trainer_state.json (our completeness mark) next, on rank 0 only: a rank dying before
        # its rng_state_<rank>.pth landed would otherwise leave a checkpoint that looks complete, of a smaller world.
        if self.args.world_size > 1:
            self.accelerator.wait_for_everyone()

    def _load_rng_state(self, checkpoint):
        super()._load_rng_state(checkpoint)
        if checkpoint is not None:
            self.load_extra_state(checkpoint)

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        if not self._load_mapped(resume_from_checkpoint, self.model if model is None else model):
            super()._load_from_checkpoint(resume_from_checkpoint, model)

    def _load_best_model(self):
        best = self.state.best_model_checkpoint
        if best is None or not self._load_mapped(best, self.model):
            super()._load_best_model()
