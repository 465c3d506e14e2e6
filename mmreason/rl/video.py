"""Video inputs for GRPO: what stock TRL 1.16 leaves out. Its GRPOTrainer tokenises `{"type": "video"}` prompt
parts for generation but builds the loss forward (and the old / reference log-probs) from images only, so the
video never reaches the loss. Here a batch whose rows carry a `video` column is encoded by one processor call
(images and videos together, explicit fps metadata and pixel bounds), and the rollout keeps:

- images as TRL does (flat `pixel_values` / `image_grid_thw` + `num_images`), so TRL's split / shuffle / unsplit
  and the refill merge treat them as before (empty tensors when the batch has no image);
- videos per sample (`pixel_values_videos`, `video_grid_thw`, `second_per_grid_ts`: a list with one tensor per
  row, zero rows for a row without video), so `shuffle_sequence_dict` / `split_tensor_dict` permute and slice
  them with the rows (a flat tensor would silently keep only the first B rows);
- `mm_token_type_ids` [B, P + C] (prompt ids left-padded, zeros on the completion): without it the model falls
  back to 1-D positions.

`forward_inputs` turns rows [start, end) of such a batch back into the model's keyword arguments."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image

from mmreason.errors import RecordError
from mmreason.media.video import load_clip, processor_video_kwargs

VIDEO_KEYS = ("pixel_values_videos", "video_grid_thw", "second_per_grid_ts")  # per-sample lists in a rollout
VIDEO_COLUMN = "video"  # the dataset column: {"path", "start", "end", "origin"} or None


def template_messages(prompt: list[dict]) -> list[dict]:
    """Prompt messages back from Arrow (which adds null keys to every part) to the chat template's shape:
    image / video parts as bare placeholders (the pixels travel beside the prompt, never inside it)."""
    out = []
    for m in prompt:
        content = m["content"]
        if isinstance(content, list):
            parts = []
            for p in content:
                kind = p.get("type")
                parts.append({"type": "text", "text": p.get("text") or ""} if kind == "text" else {"type": kind})
            content = parts
        out.append({"role": m["role"], "content": content})
    return out


def patch_dim(processor) -> int:
    """Width of a `pixel_values` row (3 x temporal_patch x patch x patch; 1176 for Qwen2.5-VL)."""
    ip = processor.image_processor
    return 3 * getattr(ip, "temporal_patch_size", 2) * getattr(ip, "patch_size", 14) ** 2


@dataclass
class RowMedia:
    images: list = field(default_factory=list)  # PIL images, already fitted to the processor
    clips: list = field(default_factory=list)  # mmreason.media.video.VideoClip


def load_row_media(inputs: list[dict], video_cfg, fit) -> list[RowMedia]:
    """Decode each row's video (through mmreason.media.video: cut, sampled, resized inside the pixel bounds) and
    open its images; a clip shared by several rows (the num_generations copies of a prompt) is decoded once."""
    cache: dict[tuple, Any] = {}
    out = []
    for x in inputs:
        images = []
        for im in x.get("images") or []:
            if isinstance(im, str):
                with Image.open(im) as f:
                    im = f.convert("RGB")
            images.append(im)
        clips = []
        v = x.get(VIDEO_COLUMN)
        if v:
            key = (v["path"], v.get("start"), v.get("end"))
            if key not in cache:
                cache[key] = load_clip(v["path"], video_cfg, v.get("start"), v.get("end"),
                                       where=v.get("origin") or x.get("record_id") or v["path"])
            clips.append(cache[key])
        out.append(RowMedia(images=fit(images) if images else [], clips=clips))
    return out


@dataclass
class Encoded:
    """One processor call over a batch of prompts: the unpadded prompt ids and the media fields."""

    prompt_ids: list[list[int]]
    mm_token_type_ids: list[list[int]]
    pixel_values: torch.Tensor  # [sum of image rows, D]
    image_grid_thw: torch.Tensor  # [n_images, 3]
    num_images: list[int]
    videos: dict[str, list[torch.Tensor]]  # VIDEO_KEYS -> one tensor per row

    def generate_fields(self) -> dict[str, Any]:
        """The multimodal fields for TRL's HF generation call (flat tensors; mm_token_type_ids per row, TRL pads)."""
        fields: dict[str, Any] = {"mm_token_type_ids": self.mm_token_type_ids}
        if self.pixel_values.size(0):
            fields.update(pixel_values=self.pixel_values, image_grid_thw=self.image_grid_thw)
        if any(g.size(0) for g in self.videos["video_grid_thw"]):
            fields.update({k: torch.cat(v) for k, v in self.videos.items()})
        return fields

    def rollout_fields(self, prompt_width: int, completion_width: int) -> dict[str, Any]:
        """The fields a rollout output keeps (see the module docstring)."""
        return {
            "pixel_values": self.pixel_values,
            "image_grid_thw": self.image_grid_thw,
            "num_images": list(self.num_images),
            **{k: list(v) for k, v in self.videos.items()},
            "mm_token_type_ids": pad_type_ids(self.mm_token_type_ids, prompt_width, completion_width),
        }


def pad_type_ids(rows: list[list[int]], prompt_width: int, completion_width: int) -> torch.Tensor:
    """[B, prompt_width + completion_width]: each row's prompt type ids left-padded with 0, then 0 on the completion."""
    out = torch.zeros(len(rows), prompt_width + completion_width, dtype=torch.long)
    for i, r in enumerate(rows):
        if len(r) > prompt_width:
            raise ValueError(f"prompt row {i} has {len(r)} type ids for a prompt width of {prompt_width}")
        if r:
            out[i, prompt_width - len(r) : prompt_width] = torch.tensor(r, dtype=torch.long)
    return out


def encode(processor, texts: list[str], media: list[RowMedia]) -> Encoded:
    """`processor(text=texts, images=..., videos=..., video_metadata=...)` over the batch, split back per row."""
    images = [im for m in media for im in m.images]
    clips = [c for m in media for c in m.clips]
    kwargs: dict[str, Any] = dict(processor_video_kwargs(clips))
    if images:
        kwargs["images"] = images
    out = processor(text=texts, **kwargs)
    prompt_ids = [list(ids) for ids in out["input_ids"]]
    if "mm_token_type_ids" not in out:
        raise ValueError(f"{type(processor).__name__} returns no mm_token_type_ids: video GRPO needs a Qwen2.5-VL "
                         "processor (transformers >= 5), or the model silently uses 1-D positions")
    type_ids = [list(t) for t in out["mm_token_type_ids"]]
    d = patch_dim(processor)
    if images:
        pixel_values = torch.as_tensor(out["pixel_values"])
        image_grid_thw = torch.as_tensor(out["image_grid_thw"]).long()
    else:
        pixel_values, image_grid_thw = torch.zeros(0, d), torch.zeros(0, 3, dtype=torch.long)
    num_videos = [len(m.clips) for m in media]
    if clips:
        grids = torch.as_tensor(out["video_grid_thw"]).long()
        rows = torch.as_tensor(out["pixel_values_videos"])
        spg = torch.as_tensor(out["second_per_grid_ts"], dtype=torch.float32)
        per_video = list(torch.split(rows, grids.prod(-1).tolist()))
        starts = [0]
        for n in num_videos:
            starts.append(starts[-1] + n)
        videos = {
            "pixel_values_videos": [torch.cat(per_video[a:b]) if b > a else rows.new_zeros(0, rows.size(1))
                                    for a, b in zip(starts, starts[1:])],
            "video_grid_thw": [grids[a:b] for a, b in zip(starts, starts[1:])],
            "second_per_grid_ts": [spg[a:b] for a, b in zip(starts, starts[1:])],
        }
    else:
        videos = {"pixel_values_videos": [torch.zeros(0, d) for _ in media],
                  "video_grid_thw": [torch.zeros(0, 3, dtype=torch.long) for _ in media],
                  "second_per_grid_ts": [torch.zeros(0) for _ in media]}
    return Encoded(prompt_ids, type_ids, pixel_values, image_grid_thw, [len(m.images) for m in media], videos)


def is_video_batch(inputs: dict) -> bool:
    """A rollout built here (per-sample video lists), as opposed to TRL's image-only layout."""
    return isinstance(inputs.get("video_grid_thw"), list)


def forward_inputs(batch: dict, start: int, end: int, device=None) -> dict[str, Any]:
    """The model's media keyword arguments for rows [start, end) of a rollout built here: images sliced by
    `num_images` and grid rows (as TRL does), videos concatenated from the per-sample lists, the type ids sliced.
    Media keys are left out when the rows hold none (the forward then sees text-only rows)."""
    kw: dict[str, Any] = {}
    num_images = batch.get("num_images")
    pv, grid = batch.get("pixel_values"), batch.get("image_grid_thw")
    if pv is not None and num_images is not None and sum(num_images[start:end]):
        img0, img1 = sum(num_images[:start]), sum(num_images[:end])
        rows = grid.prod(-1)
        r0, r1 = int(rows[:img0].sum()), int(rows[:img1].sum())
        kw["pixel_values"], kw["image_grid_thw"] = pv[r0:r1], grid[img0:img1]
    grids = batch["video_grid_thw"][start:end]
    if any(g.size(0) for g in grids):
        kw["pixel_values_videos"] = torch.cat(batch["pixel_values_videos"][start:end])
        kw["video_grid_thw"] = torch.cat(grids)
        kw["second_per_grid_ts"] = torch.cat(batch["second_per_grid_ts"][start:end])
    if batch.get("mm_token_type_ids") is not None:
        kw["mm_token_type_ids"] = batch["mm_token_type_ids"][start:end]
    if device is not None:
        kw = {k: v.to(device) for k, v in kw.items()}
    return kw

