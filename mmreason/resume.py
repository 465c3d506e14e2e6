"""`resume_from_checkpoint` for the training stages (SFT and GRPO read it the same way).

A checkpoint is complete once transformers has written its `trainer_state.json` — the last file
`Trainer._save_checkpoint` writes, after the weights, optimizer, scheduler and RNG states. A job killed in
the middle of a save leaves a `checkpoint-N` without a readable state file (or without weights): resuming
moves it aside to `incomplete-checkpoint-N` with a warning and continues from the newest complete one, so
the next identical command resumes by itself.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from pathlib import Path

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
