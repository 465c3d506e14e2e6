"""`resume_from_checkpoint` for the training stages (SFT and GRPO read it the same way)."""

from __future__ import annotations

import logging
import os

logger = logging.getLogger(__name__)

LAST = ("true", "yes", "1", "auto", "last")
NONE = ("", "false", "none", "no", "0")


def resolve_resume(value, output_dir: str) -> str | None:
    """true / auto / last -> the newest checkpoint in output_dir (None, a fresh start, if there is none yet, so one
    command both starts and resumes a job); false / none / null -> no resume; anything else -> that checkpoint folder."""
    if value is None or value is False or str(value).strip().lower() in NONE:
        return None
    if value is True or str(value).strip().lower() in LAST:
        from transformers.trainer_utils import get_last_checkpoint

        last = get_last_checkpoint(output_dir) if os.path.isdir(output_dir) else None
        logger.info("resume: %s", last or f"no checkpoint in {output_dir}, starting fresh")
        return last
    if not os.path.isdir(str(value)):
        raise FileNotFoundError(f"resume_from_checkpoint: {value} is not a checkpoint folder")
    return str(value)
