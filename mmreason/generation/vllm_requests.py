"""vLLM prompt dicts with images and videos, built one way for every caller: the eval's vLLM backend (a chat-templated
prompt text) and GRPO's vLLM rollouts (the prompt token ids the HF processor expanded, mmreason/rl/vllm_video.py).

Videos go as `multi_modal_data["video"] = [(frames, metadata)]`, the shape qwen-vl-utils'
`process_vision_info(..., return_video_metadata=True)` gives and vLLM's parsers read (models whose parser needs
metadata keep it). vLLM's Qwen2.5-VL parser drops the tuple's metadata, and transformers 5.x ignores a scalar `fps`
when `do_sample_frames=False` (the temporal RoPE ids would collapse: docs/STACK.md), so the metadata also goes to the
HF processor call as `mm_processor_kwargs["video_metadata"]`, with `do_sample_frames=False` (the frames are already
sampled) and the resize bounded to the media's own pixel counts: the engine loads the checkpoint's processor, whose
default bounds would upscale small frames. Every medium here is already sized to a multiple of the patch x merge
factor (qwen-vl-utils, mmreason.media.video, mmreason.rl.data.fit_images), so bounds spanning their own areas leave
each one as it is, images included, and the engine counts the same placeholder tokens as the HF path."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from mmreason.generation.vision import frame_hw


def frames_array(video: Any) -> Any:
    """PIL frames -> one uint8 array [T, H, W, 3] (vLLM reads a list inside a tuple as it is); tensors
    [T, 3, H, W] (qwen-vl-utils) stay as they are."""
    if hasattr(video, "shape"):
        return video

    return np.stack([np.asarray(im.convert("RGB")) for im in video])


def _image_hw(image: Any) -> tuple[int, int]:
    if hasattr(image, "shape"):  # tensor [3, H, W] or array [H, W, 3]
        return (int(image.shape[-2]), int(image.shape[-1])) if image.shape[0] == 3 else tuple(image.shape[:2])
    w, h = image.size
    return h, w


def media_request(images: Sequence[Any] | None, videos: Sequence[Any] | None,
                  video_metadata: Sequence[dict] | None) -> dict[str, Any]:
    """`multi_modal_data` and `mm_processor_kwargs` of one prompt (empty when it has no media)."""
    images, videos = list(images or []), list(videos or [])
    if len(videos) != len(video_metadata or []):
        raise ValueError(f"{len(videos)} videos for {len(video_metadata or [])} video_metadata entries: each video "
                         "needs its metadata (fps, total_num_frames, frames_indices)")
    mm: dict[str, Any] = {}
    if images:
        mm["image"] = images
    out: dict[str, Any] = {}
    if videos:
        metas = [dict(m) for m in video_metadata]
        mm["video"] = [(frames_array(v), m) for v, m in zip(videos, metas)]
        areas = [h * w for h, w in [*map(frame_hw, videos), *map(_image_hw, images)]]
        out["mm_processor_kwargs"] = {"do_sample_frames": False, "video_metadata": metas,
                                      "size": {"shortest_edge": min(areas), "longest_edge": max(areas)}}
    if mm:
        out["multi_modal_data"] = mm
    return out


def vllm_request(prompt: str | Sequence[int], vision: dict[str, Any]) -> dict[str, Any]:
    """One vLLM prompt dict: `prompt` (text, vLLM expands the placeholders) or `prompt_token_ids` (already expanded by
    the HF processor; vLLM checks the runs of placeholder tokens against the media it processes), plus the media of
    `vision` (`mmreason.generation.vision.vision_inputs` output: images, videos, video_metadata)."""
    req: dict[str, Any] = {"prompt": prompt} if isinstance(prompt, str) else {"prompt_token_ids": list(prompt)}
    req.update(media_request(vision.get("images"), vision.get("videos"), vision.get("video_metadata")))
    return req
