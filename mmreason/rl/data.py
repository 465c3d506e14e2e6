"""Records JSONL -> the GRPO `datasets.Dataset`, and the prompt-budget filter.

Columns: prompt (conversational, image placeholders), images (decoded lazily to PIL by `datasets`), and the
columns TRL passes to reward functions: answer, answer_type, choices, precision, record_id, source."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

from mmreason.prompts import PromptSpec
from mmreason.records import LoadReport, iter_source, seeded_subset, to_grpo_example

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
    paths: str | os.PathLike | list[str],
    processor=None,
    max_prompt_length: int | None = None,
    lenient: bool = False,
    require_answer: bool = True,
    check_media: bool = True,
    spec: PromptSpec | None = None,
    max_samples: int | None = None,
    seed: int = 0,
):
    """Load records from `paths` (records JSONL files or Hugging Face datasets, like SFT's train_files), convert
    with `to_grpo_example` (prompts built by `spec`, default PromptSpec()), drop video records, keep a seeded
    random subset of `max_samples` (if set; `mmreason.records.seeded_subset`), then drop over-budget prompts (all
    counted). Returns (datasets.Dataset, BuildReport)."""
    from datasets import Dataset, Image, List

    paths = [str(paths)] if isinstance(paths, (str, os.PathLike)) else [str(p) for p in paths]
    if not paths:
        raise ValueError("no train_files given")
    spec = spec or PromptSpec()
    path = ", ".join(paths)
    report = BuildReport(path)
    rows: list[dict[str, Any]] = []
    for p in paths:
        load_report = LoadReport(p)
        for rec in iter_source(p, strict=not lenient, require_answer=require_answer, check_media=check_media,
                               report=load_report):
            report.loaded += 1
            if rec.video is not None:
                report.skipped_video += 1
                continue
            rows.append(to_grpo_example(rec, spec=spec))
        report.skipped_bad += len(load_report.skipped)
        if load_report.skipped:
            logger.warning(load_report.summary())
    if not rows:
        raise ValueError(f"{path}: no usable GRPO prompts ({report.summary()})")
    n_rows = len(rows)
    rows = seeded_subset(rows, max_samples, seed)
    if len(rows) < n_rows:
        report.subsampled_from = n_rows
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
