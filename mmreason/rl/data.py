"""Records JSONL -> the GRPO `datasets.Dataset`, and the prompt filters (characters, then tokens).

Columns: prompt (conversational, image / video placeholders), images (decoded lazily to PIL by `datasets`), and the
columns TRL passes to reward functions: answer, answer_type, choices, precision, record_id, source. When some record
has a video, also `video`: {path (absolute), start, end, origin (file:line)} or null. Its frames are decoded per
generation batch by the trainer (mmreason/rl/video.py), never stored in the dataset or the prompt messages (an HF
dataset turns PIL images inside messages into {path, bytes} dicts)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

from datasets import Dataset, List
from datasets import Image as ImageFeature
from PIL import Image
from tqdm.auto import tqdm
from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize
from trl.data_utils import prepare_multimodal_messages

from mmreason.errors import RecordError
from mmreason.media.video import VideoConfig, check_record_video, set_video_pixels
from mmreason.prompts import MAX_TEXT_CHARS, PromptSpec, drop_long_chats
from mmreason.chat import to_grpo_example
from mmreason.formats import DataFormatArguments, read_source
from mmreason.records import LoadReport, seeded_subset
from mmreason.rl.video import encode, load_row_media, template_messages
from mmreason.usage import NothingUsable, check_count

logger = logging.getLogger(__name__)


@dataclass
class BuildReport:
    path: str
    loaded: int = 0
    skipped_bad: int = 0  # bad lines skipped by a lenient load
    videos: int = 0  # video records kept
    skipped_bad_video: int = 0  # lenient: videos that do not open or have no frame in their cut
    dropped_chars: list[dict] = field(default_factory=list)  # {"id", "chars"} over max_prompt_chars
    max_prompt_chars: int | None = None
    subsampled_from: int | None = None  # pool size before the max_samples subset
    dropped_long: int = 0  # over the prompt budget
    kept: int = 0
    longest_kept: int = 0
    reasons: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.path}: {self.loaded} records loaded, {self.skipped_bad} bad lines skipped, "
            f"{len(self.dropped_chars)} prompts dropped over max_prompt_chars={self.max_prompt_chars} before "
            f"tokenisation{self._dropped_ids()}, {self.videos} video records, {self.skipped_bad_video} bad videos "
            "skipped, "
            + (f"a random {self.kept + self.dropped_long} of {self.subsampled_from} used (max_samples), "
               if self.subsampled_from is not None else "")
            + f"{self.dropped_long} prompts "
            f"dropped over the prompt budget, {self.kept} kept (longest prompt {self.longest_kept} tokens)"
        )

    def _dropped_ids(self, most: int = 5) -> str:
        if not self.dropped_chars:
            return ""
        more = len(self.dropped_chars) - most
        return (" (" + ", ".join(f"{d['id']}: {d['chars']} chars" for d in self.dropped_chars[:most])
                + (f" and {more} more" if more > 0 else "") + ")")


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

    factor = getattr(ip, "patch_size", 14) * getattr(ip, "merge_size", 2)
    out = []
    for im in images:
        if hasattr(im, "size") and hasattr(im, "resize"):
            w, h = im.size
            th, tw = smart_resize(h, w, factor=factor, min_pixels=lo, max_pixels=hi)
            if (tw, th) != (w, h):
                im = im.convert("RGB").resize((tw, th), Image.Resampling.BICUBIC)
        out.append(im)
    return out


def prompt_length(processor, prompt: list[dict], images: list | None, video: dict | None = None,
                  video_cfg=None) -> int:
    """Prompt tokens (image tokens included) exactly as TRL tokenizes the prompt for generation; with `video`
    (the `video` column), as the trainer encodes it (the clip decoded with `video_cfg`)."""
    if video is not None:
        cfg = video_cfg or VideoConfig()
        media = load_row_media([{"images": images or [], "video": video}], cfg,
                               lambda ims: fit_images(ims, processor))
        text = processor.apply_chat_template(template_messages(prompt), tokenize=False, add_generation_prompt=True)
        return len(encode(processor, [text], media).prompt_ids[0])

    messages = prepare_multimodal_messages(prompt, images=images or [])
    tokenized = processor.apply_chat_template(
        conversation=[messages], add_generation_prompt=True, tokenize=True, return_dict=True
    )
    return len(tokenized["input_ids"][0])


def build_grpo_dataset(
    paths: str | os.PathLike | list[str],
    processor=None,
    max_prompt_length: int | None = None,
    max_prompt_chars: int | None = MAX_TEXT_CHARS,
    lenient: bool = False,
    require_answer: bool = True,
    check_media: bool = True,
    spec: PromptSpec | None = None,
    max_samples: int | None = None,
    seed: int = 0,
    video_cfg=None,
    data_format: DataFormatArguments | None = None,
):
    """Load records from `paths` (any layout `mmreason.formats.read_source` reads, `data_format` its options; like
    SFT's train_files), convert
    with `to_grpo_example` (prompts built by `spec`, default PromptSpec()), drop the prompts over
    `max_prompt_chars` characters before anything tokenises them or decodes their video, keep a seeded random
    subset of `max_samples` (if set; `mmreason.records.seeded_subset`), then drop prompts over `max_prompt_length`
    tokens (all counted, the dropped record ids in the report). Video records get the `video` column; with
    `check_media` each video is opened and its cut counted first (a bad one is an error naming file:line, or a
    counted skip when lenient). `video_cfg` (mmreason.media.video.VideoConfig)
    decodes clips for the prompt budget. Returns (datasets.Dataset, BuildReport)."""
    paths = [str(paths)] if isinstance(paths, (str, os.PathLike)) else [str(p) for p in paths]
    if not paths:
        raise ValueError("no train_files given")
    spec = spec or PromptSpec()
    path = ", ".join(paths)
    report = BuildReport(path)
    check_count(max_prompt_chars, "max_prompt_chars", 1)
    report.max_prompt_chars = max_prompt_chars
    rows: list[dict[str, Any]] = []
    for p in paths:
        load_report = LoadReport(p)
        loaded = list(read_source(p, data_format, strict=not lenient, require_answer=require_answer,
                                  check_media=check_media, report=load_report))
        report.loaded += len(loaded)
        report.skipped_bad += len(load_report.skipped)
        if load_report.skipped:
            logger.warning(load_report.summary())
        examples = [to_grpo_example(rec, spec=spec) for rec in loaded]
        kept, dropped = drop_long_chats(list(zip(loaded, examples)), [rec.id for rec in loaded],
                                        [row["prompt"] for row in examples], max_prompt_chars, "max_prompt_chars")
        report.dropped_chars += dropped
        for rec, row in kept:
            if rec.video is not None:
                if check_media and not _video_ok(rec, video_cfg, lenient):
                    report.skipped_bad_video += 1
                    continue
                row["video"] = video_column(rec)
                report.videos += 1
            rows.append(row)
    if not rows:
        raise NothingUsable(f"{path}: no usable GRPO prompts ({report.summary()})")
    n_rows = len(rows)
    rows = seeded_subset(rows, max_samples, seed)
    if len(rows) < n_rows:
        report.subsampled_from = n_rows
    has_images = any(r["images"] for r in rows)
    if any("video" in r for r in rows):
        rows = [{**r, "video": r.get("video")} for r in rows]
    ds = Dataset.from_list(rows)
    if has_images:
        ds = ds.cast_column("images", List(ImageFeature()))
    if max_prompt_length is not None:
        if processor is None:
            raise ValueError("max_prompt_length needs the processor to count tokens")
        lengths = _lengths(ds, processor, video_cfg)
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


def _lengths(ds, processor, video_cfg=None) -> list[int]:
    if "video" in ds.column_names:
        video_cfg = video_cfg or VideoConfig()
        set_video_pixels(processor, video_cfg.video_min_pixels, video_cfg.video_max_pixels)  # as the trainer does
    return [
        prompt_length(processor, row["prompt"], row.get("images"), row.get("video"), video_cfg)
        for row in tqdm(ds, desc="counting prompt tokens", total=len(ds), disable=len(ds) < 200)
    ]


def video_column(rec) -> dict[str, Any]:
    """The `video` column of a record: what the trainer needs to decode its clip and to name it in errors."""
    return {"path": str(rec.video_path().resolve()), "start": rec.video.start, "end": rec.video.end,
            "origin": getattr(rec, "origin", "") or rec.id}


def _video_ok(rec, video_cfg, lenient: bool) -> bool:
    try:
        check_record_video(rec, video_cfg or VideoConfig())
    except RecordError as e:
        if not lenient:
            raise
        logger.warning("skipping %s", e)
        return False
    return True
