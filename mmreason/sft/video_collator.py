"""Video (and image) SFT examples and their collator: TRL's vision collator handles images only.

Examples are `{"messages", "images": [abs paths], "video": {"path", "start", "end"} | None, "origin"}`
(`video_sft_example`); frames are decoded at batch time through `mmreason.media.video` (explicit
fps metadata and pixel bounds), so no pixels are held in the dataset. The collator returns what the
Qwen2.5-VL forward needs: input_ids, attention_mask, labels, pixel_values / image_grid_thw for
images, pixel_values_videos / video_grid_thw / second_per_grid_ts for videos, and mm_token_type_ids
(without it the model silently falls back to 1-D positions). Image and video examples mix freely in
one batch. Labels: assistant-only, the way TRL's assistant_only_loss masks Qwen2.5-VL (the
assistant content plus its closing "<|im_end|>\\n"), or every non-pad token with `assistant_only=False`.

Prompts: the stage's prompt spec (`mmreason.prompts.PromptSpec`: system message, instruction, template), with
per-record overrides: NEP records carry `metadata.system_prompt` (None = the chat template's default system
message) and `metadata.prompt_suffix` ("" = no instruction); they win over the spec's system and instruction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from mmreason.prompts import PromptSpec
from mmreason.chat import prompt_messages, record_prompt_spec
from mmreason.errors import RecordError
from mmreason.media.video import VideoConfig, load_clip, processor_video_kwargs, set_video_pixels
from mmreason.records import Record


def video_sft_example(rec: Record, spec: PromptSpec | None = None) -> dict[str, Any]:
    """One conversational SFT example of an image, video or text record; prompts built by `spec` (default
    PromptSpec()) under the record's own overrides (`record_prompt_spec`)."""
    if not rec.solution:
        raise RecordError(rec.origin or rec.id, "record has no 'solution' (the SFT target)")
    msgs = prompt_messages(rec, spec=record_prompt_spec(rec, spec))
    msgs.append({"role": "assistant", "content": [{"type": "text", "text": rec.solution}]})
    video = None
    if rec.video is not None:
        video = {"path": str(Path(rec.video_path()).resolve()), "start": rec.video.start, "end": rec.video.end}
    return {
        "messages": msgs,
        "images": [str(p.resolve()) for p in rec.image_paths()],
        "video": video,
        "origin": rec.origin or rec.id,
    }


def _plain(content: Any) -> list[dict]:
    """Message content back from Arrow (which adds null keys to every part) to the template's shape."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    out = []
    for part in content:
        kind = part.get("type")
        out.append({"type": "text", "text": part.get("text") or ""} if kind == "text" else {"type": kind})
    return out


@dataclass
class VideoSFTCollator:
    """`collator(examples) -> batch` for `SFTTrainer(data_collator=...)` (with `remove_unused_columns=False`
    and `dataset_kwargs={"skip_prepare_dataset": True}`, as for TRL's own vision path)."""

    processor: Any
    video: VideoConfig = field(default_factory=VideoConfig)
    assistant_only: bool = True
    max_length: int | None = None

    def __post_init__(self):
        # the processor must keep our frame size: its default bounds would re-resize (upscale) frames
        set_video_pixels(self.processor, self.video.video_min_pixels, self.video.video_max_pixels)
        tok = self.processor.tokenizer
        self._header = tok.encode("<|im_start|>assistant\n", add_special_tokens=False)
        self._im_end = tok.convert_tokens_to_ids("<|im_end|>")
        self._newline = tok.encode("\n", add_special_tokens=False)

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        texts, images, clips = [], [], []
        for ex in examples:
            msgs = [{"role": m["role"], "content": _plain(m["content"])} for m in ex["messages"]]
            texts.append(self.processor.apply_chat_template(msgs, tokenize=False))
            for p in ex.get("images") or []:
                with Image.open(p) as im:
                    images.append(im.convert("RGB"))
            v = ex.get("video")
            if v:
                clips.append(load_clip(v["path"], self.video, v.get("start"), v.get("end"), where=ex.get("origin", "")))
        kwargs: dict[str, Any] = dict(processor_video_kwargs(clips))
        if images:
            kwargs["images"] = images
        if self.max_length is not None:
            kwargs.update(truncation=True, max_length=self.max_length)
        batch = self.processor(text=texts, padding=True, padding_side="right", return_tensors="pt", **kwargs)
        labels = batch["input_ids"].clone()
        labels[batch["attention_mask"] == 0] = -100
        if self.assistant_only:
            labels[self.assistant_mask(batch["input_ids"]) == 0] = -100
        batch["labels"] = labels
        return dict(batch)

    def assistant_mask(self, input_ids):
        """1 on assistant content and its '<|im_end|>\\n', 0 elsewhere (TRL's training-template mask)."""
        mask = torch.zeros_like(input_ids)
        h, nl = self._header, self._newline
        for b, row in enumerate(input_ids.tolist()):
            i = 0
            while i <= len(row) - len(h):
                if row[i : i + len(h)] != h:
                    i += 1
                    continue
                j = i + len(h)
                while j < len(row) and row[j] != self._im_end:
                    j += 1
                end = min(j + 1, len(row))  # include <|im_end|>
                if row[end : end + len(nl)] == nl:
                    end += len(nl)
                mask[b, i + len(h) : end] = 1
                i = end
        return mask
