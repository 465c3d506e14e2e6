"""Records JSONL -> the GRPO `datasets.Dataset`, and the prompt-budget filter.

Columns: prompt (conversational, image placeholders), images (decoded lazily to PIL by `datasets`), and the
columns TRL passes to reward functions: answer, answer_type, choices, precision, record_id, source."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from typing import Any

from mmreason.records import BOXED_SUFFIX, load_records, to_grpo_example

logger = logging.getLogger(__name__)


@dataclass
class BuildReport:
    path: str
    loaded: int = 0
    skipped_bad: int = 0  # bad lines skipped by a lenient load
    skipped_video: int = 0  # TRL 1.16 GRPO has no video inputs
    subsampled_from: int | None = None  # pool size before the max_samples subset
    dropped_long: int = 0  # over the prompt budget
    kept: int = 0
    longest_kept: int = 0
    reasons: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.path}: {self.loaded} records loaded, {self.skipped_bad} bad lines skipped, "
            f"{self.skipped_video} video records skipped (GRPO takes images only), "
            + (f"a random {self.kept + self.dropped_long} of {self.subsampled_from} used (max_samples), "
               if self.subsampled_from is not None else "")
            + f"{self.dropped_long} prompts "
            f"dropped over the prompt budget, {self.kept} kept (longest prompt {self.longest_kept} tokens)"
        )


def configure_processor(processor, min_pixels: int | None = None, max_pixels: int | None = None):
    """Set the image resolution bounds (pixels; one LLM token per 28x28) on a Qwen2-VL style processor."""
    ip = getattr(processor, "image_processor", None)
    if ip is None or (min_pixels is None and max_pixels is None):
        return processor
    size = dict(getattr(ip, "size", None) or {})
    if min_pixels is not None:
        size["shortest_edge"] = min_pixels
        if hasattr(ip, "min_pixels"):
            ip.min_pixels = min_pixels
    if max_pixels is not None:
        size["longest_edge"] = max_pixels
        if hasattr(ip, "max_pixels"):
            ip.max_pixels = max_pixels
    ip.size = size
    return processor


def fit_images(images: list | None, processor) -> list | None:
    """Resize PIL images to the processor's own target size (Qwen2-VL smart_resize: multiples of
    patch*merge, within its min/max pixels). The processor then leaves them as they are, and so does a vLLM
    engine that loaded the checkpoint's processor with wider bounds: both count the same image tokens even
    when max_pixels was set only here (TRL's vLLM path passes raw images, not our processor settings)."""
    ip = getattr(processor, "image_processor", None)
    if not images or ip is None:
        return images
    size = getattr(ip, "size", None) or {}
    lo, hi = size.get("shortest_edge"), size.get("longest_edge")
    if lo is None or hi is None:
        return images
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    factor = getattr(ip, "patch_size", 14) * getattr(ip, "merge_size", 2)
    out = []
    for im in images:
        if hasattr(im, "size") and hasattr(im, "resize"):
            w, h = im.size
            th, tw = smart_resize(h, w, factor=factor, min_pixels=lo, max_pixels=hi)
            if (tw, th) != (w, h):
                from PIL import Image

                im = im.convert("RGB").resize((tw, th), Image.Resampling.BICUBIC)
        out.append(im)
    return out


def prompt_length(processor, prompt: list[dict], images: list | None) -> int:
    """Prompt tokens (image tokens included) exactly as TRL tokenizes the prompt for generation."""
    from trl.data_utils import prepare_multimodal_messages

    messages = prepare_multimodal_messages(prompt, images=images or [])
    tokenized = processor.apply_chat_template(
        conversation=[messages], add_generation_prompt=True, tokenize=True, return_dict=True
    )
    return len(tokenized["input_ids"][0])


def build_grpo_dataset(
    path: str,
    processor=None,
    max_prompt_length: int | None = None,
    lenient: bool = False,
    require_answer: bool = True,
    check_media: bool = True,
    system_prompt: str | None = None,
    prompt_suffix: str | None = BOXED_SUFFIX,
    max_samples: int | None = None,
    seed: int = 0,
):
    """Load records, convert with `to_grpo_example`, drop video records, keep a seeded random subset of
    `max_samples` (if set), then drop over-budget prompts (all counted). Returns (datasets.Dataset, BuildReport)."""
    from datasets import Dataset, Image, List

    records, load_report = load_records(path, strict=not lenient, require_answer=require_answer, check_media=check_media)
    report = BuildReport(str(path), loaded=len(records), skipped_bad=len(load_report.skipped))
    rows: list[dict[str, Any]] = []
    for rec in records:
        if rec.video is not None:
            report.skipped_video += 1
            continue
        rows.append(to_grpo_example(rec, system=system_prompt, suffix=prompt_suffix))
    if not rows:
        raise ValueError(f"{path}: no usable GRPO prompts ({report.summary()})")
    if max_samples is not None:
        if max_samples < 1:
            raise ValueError(f"max_samples must be >= 1, got {max_samples}")
        if max_samples < len(rows):
            report.subsampled_from = len(rows)
            rows = [rows[i] for i in sorted(random.Random(seed).sample(range(len(rows)), max_samples))]
    has_images = any(r["images"] for r in rows)
    ds = Dataset.from_list(rows)
    if has_images:
        ds = ds.cast_column("images", List(Image()))
    if max_prompt_length is not None:
        if processor is None:
            raise ValueError("max_prompt_length needs the processor to count tokens")
        lengths = _lengths(ds, processor)
        keep = [i for i, n in enumerate(lengths) if n <= max_prompt_length]
        report.dropped_long = len(ds) - len(keep)
        for i, n in enumerate(lengths):
            if n > max_prompt_length:
                report.reasons.append(f"{ds[i]['record_id']}: {n} prompt tokens > max_prompt_length {max_prompt_length}")
        if report.dropped_long:
            logger.warning(
                "dropped %d of %d prompts over max_prompt_length=%d (image tokens included), e.g. %s",
                report.dropped_long, len(ds), max_prompt_length, report.reasons[:3],
            )
        report.longest_kept = max((lengths[i] for i in keep), default=0)
        ds = ds.select(keep)
        if len(ds) == 0:
            raise ValueError(f"{path}: every prompt exceeds max_prompt_length={max_prompt_length}")
    report.kept = len(ds)
    logger.info(report.summary())
    return ds, report


def _lengths(ds, processor) -> list[int]:
    from tqdm.auto import tqdm

    return [
        prompt_length(processor, row["prompt"], row.get("images"))
        for row in tqdm(ds, desc="counting prompt tokens", total=len(ds), disable=len(ds) < 200)
    ]
