"""Images and videos of chat conversations -> processor keyword arguments, with the explicit video metadata
Qwen2.5-VL needs (docs/STACK.md: without `video_metadata` the processor assumes 24 fps and every temporal
RoPE id collapses to one value; `fps` as a list raises).

A video part is either
  * a qwen-vl-utils part `{"type": "video", "video": path, fps | nframes, min_pixels, max_pixels, total_pixels,
    max_frames, video_start, video_end}`: read and sampled by qwen-vl-utils (`fetch_video`), which returns the
    metadata of what it sampled (as the official lmms-eval Qwen2.5-VL model reads its videos); or
  * pre-decoded frames `{"type": "video", "video": [PIL images] | tensor [T, 3, H, W], "video_metadata":
    {"fps", "total_num_frames", "frames_indices"}}` (e.g. `mmreason.media.video.load_clip`), used as they are; or
  * `{"type": "video", "video": mmreason.media.video.ClipRef}`: a clip decoded here by the training loader
    (`load_clip`, cut start <= t < end), so eval and training see the same frames (records benchmark).
Frames reach the processor with `do_sample_frames=False` and its video resize bounded to the frames' own sizes,
so what qwen-vl-utils (or the clip loader) sampled and sized is exactly what the model sees (the processor's
default bounds would upscale small frames).
"""

from __future__ import annotations

import contextlib
from typing import Any

from mmreason.media.video import ClipRef, set_video_pixels

META_KEYS = ("fps", "total_num_frames", "frames_indices")


def placeholders(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages with every image/video part reduced to its placeholder: the chat template needs only the type,
    and pre-decoded frames must not go through it."""
    out = []
    for m in messages:
        content = m["content"]
        if isinstance(content, list):
            content = [{"type": p["type"]} if p.get("type") in ("image", "video") else dict(p) for p in content]
        out.append({"role": m["role"], "content": content})
    return out


def frame_hw(video: Any) -> tuple[int, int]:
    """(height, width) of a video's frames: PIL frames or a tensor [T, 3, H, W]."""
    if hasattr(video, "shape"):  # tensor [T, 3, H, W]
        return int(video.shape[-2]), int(video.shape[-1])
    w, h = video[0].size
    return h, w


def vision_inputs(conversations: list[list[dict[str, Any]]]) -> dict[str, Any]:
    """`images`, `videos`, `video_metadata` (and `do_sample_frames=False`) for `processor(text=..., **kwargs)`,
    in the order of the parts (the order of the placeholders in the rendered texts)."""
    # lazy: loads torch; imported by model-free commands
    from qwen_vl_utils.vision_process import extract_vision_info, fetch_image, fetch_video

    images, videos, metas = [], [], []
    for ele in extract_vision_info(conversations):
        if "image" in ele or "image_url" in ele:
            images.append(fetch_image(ele))
        elif "video" in ele:
            if isinstance(ele["video"], ClipRef):  # decoded now, by the training loader (half-open cut)
                clip = ele["video"].load()
                video, meta = clip.frames, clip.metadata()
            elif "video_metadata" in ele:
                video, meta = ele["video"], ele["video_metadata"]
                if isinstance(video, (list, tuple)):
                    video = [im.convert("RGB") for im in video]
            elif isinstance(ele["video"], str):
                video, meta = fetch_video(ele, return_video_metadata=True)
            else:
                raise ValueError("a video part with frames needs its 'video_metadata' (fps, total_num_frames, "
                                 "frames_indices): without it the temporal positions collapse")
            missing = [k for k in META_KEYS if k not in meta]
            if missing:
                raise ValueError(f"video_metadata lacks {missing}")
            videos.append(video)
            metas.append({k: meta[k] for k in META_KEYS})
        else:
            raise ValueError("a vision part needs 'image', 'image_url' or 'video'")
    out: dict[str, Any] = {}
    if images:
        out["images"] = images
    if videos:
        out.update(videos=videos, video_metadata=metas, do_sample_frames=False)
    return out


@contextlib.contextmanager
def video_bounds_of(processor: Any, videos: list[Any] | None):
    """Bound the processor's video resize to the frames' own pixel counts for one call (restored after: a training
    processor may be shared), so already-sized frames are not resized again."""
    vp = getattr(processor, "video_processor", None)
    if not videos or vp is None:
        yield
        return

    areas = [h * w for h, w in map(frame_hw, videos)]
    saved = {k: getattr(vp, k) for k in ("size", "min_pixels", "max_pixels") if hasattr(vp, k)}
    set_video_pixels(processor, min(areas), max(areas))
    try:
        yield
    finally:
        for k, v in saved.items():
            setattr(vp, k, v)
