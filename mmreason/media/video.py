"""A record's video -> sampled PIL frames + the explicit metadata Qwen2.5-VL needs.

Sources (the record's `video.path`, relative to its JSONL file):
  * a video file (mp4, ...), decoded with decord (frame timestamps from the container's pts);
  * a frame list `<name>.frames.json` = {"fps": F, "frames": [relative image paths]} (see `writer`);
  * a folder of frame images, sorted by file name, at `VideoConfig.frames_fps`.

Cutting: `video.start` / `video.end` select the frames whose timestamp t satisfies start <= t < end
(half-open, so a past clip ending at the split point never contains the first future frame; note
qwen-vl-utils' own `video_start/video_end` include the frame at `end`). Nothing is re-encoded.

Sampling follows qwen-vl-utils (`smart_nframes`: `fps` frames per second of the clip, an even count
in [min_frames, max_frames]; indices spread by `linspace`), and frames are resized with its
`smart_resize` inside explicit [min_pixels, max_pixels] (an optional `total_pixels` budget shared by
all frames, as FutureBench's eval sets it). The metadata passed to the processor is
{fps: source fps, total_num_frames: source frames inside the cut, frames_indices: sampled source
indices}: the processor derives the sampled fps as len(indices) / total_num_frames * fps, which is
the true sampling rate of the clip. Without it the processor assumes 24 fps and the temporal RoPE
ids collapse (docs/STACK.md).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image, UnidentifiedImageError

from mmreason.errors import RecordError

from mmreason.media.writer import FRAME_LIST_SUFFIX

if TYPE_CHECKING:  # records sit above media (a record's images pass media's gate when loaded): a type only here
    from mmreason.records import Record

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
PIXEL_FACTOR = 28  # patch 14 x spatial merge 2: one LLM token per 28x28 pixels
TIME_EPS = 1e-6


@dataclass
class VideoConfig:
    """Video sampling and pixel bounds. Field names carry a `video_` prefix so the dataclass can join a
    stage's TrlParser beside the image `min_pixels`/`max_pixels` without clashing."""

    video_fps: float = field(
        default=2.0, metadata={"help": "Frames sampled per second of the (cut) clip (NEP paper: 2)."}
    )
    video_max_frames: int = field(default=128, metadata={"help": "Most frames sampled from one clip (NEP SFT: 128)."})
    video_min_frames: int = field(
        default=4, metadata={"help": "Fewest frames sampled when the clip has them (qwen-vl-utils default: 4)."}
    )
    video_min_pixels: int = field(
        default=28 * 28 * 4,
        metadata={"help": "Per-frame lower pixel bound; set explicitly (defaults upscale small frames)."},
    )
    video_max_pixels: int = field(
        default=16384, metadata={"help": "Per-frame upper pixel bound (NEP SFT: video_max_pixels 16384)."}
    )
    video_total_pixels: int | None = field(
        default=None,
        metadata={"help": "Optional pixel budget for the whole clip (FutureBench eval: 1605632), as qwen-vl-utils."},
    )
    video_frames_fps: float = field(
        default=2.0, metadata={"help": "Frame rate of a frames folder (a .frames.json list carries its own)."}
    )

    def __post_init__(self):
        if self.video_fps <= 0 or self.video_frames_fps <= 0:
            raise ValueError("video fps and frames_fps must be positive")
        if self.video_max_frames < 1 or self.video_min_frames < 1:
            raise ValueError("video min_frames and max_frames must be >= 1")
        if self.video_min_pixels > self.video_max_pixels:
            raise ValueError(f"video min_pixels {self.video_min_pixels} > max_pixels {self.video_max_pixels}")


@dataclass
class VideoClip:
    frames: list  # PIL images, resized
    fps: float  # source frame rate
    total_num_frames: int  # source frames inside the cut range
    frames_indices: list[int]  # sampled source frame indices
    timestamps: list[float]  # seconds, in the source, of each sampled frame
    source: str

    def metadata(self) -> dict[str, Any]:
        return {"fps": self.fps, "total_num_frames": self.total_num_frames, "frames_indices": list(self.frames_indices)}

    @property
    def sampled_fps(self) -> float:
        return len(self.frames_indices) / self.total_num_frames * self.fps


class _Source:
    """A decodable frame sequence: n frames, their timestamps, a batch getter, and `check(indices)`, which decodes
    what a cut over those frames will need and raises RecordError if it cannot."""

    def __init__(self, fps: float, timestamps: list[float], get, check=None):
        self.fps, self.timestamps, self.get = fps, timestamps, get
        self.check = check or (lambda indices: get([indices[0], indices[-1]]) if indices else None)


def _open_file(path: Path, where: str) -> _Source:
    try:
        import decord  # lazy: decord is optional (the video extra)

        vr = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
        n = len(vr)
        if n == 0:
            raise RecordError(where, f"video has zero frames: {path}")
        fps = float(vr.get_avg_fps())
        ts = [float(t) for t in vr.get_frame_timestamp(list(range(n)))[:, 0]]
    except RecordError:
        raise
    except Exception as e:  # decord raises its own DECORDError / RuntimeError types
        raise RecordError(where, f"undecodable video {path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    if not fps > 0:
        raise RecordError(where, f"video {path} reports fps {fps}")

    def get(indices):
        try:
            arr = vr.get_batch(list(indices)).asnumpy()
        except Exception as e:
            raise RecordError(where, f"undecodable frames in video {path}: {e}") from None
        return [Image.fromarray(a) for a in arr]

    return _Source(fps, ts, get)  # check: the stream decodes at the cut's first and last frame


def _image_checker(paths: list[Path], where: str):
    """Decode every frame image of a cut (not just open it: a truncated PNG opens, and fails mid-run)."""
    def check(indices):
        for i in indices:
            try:
                with Image.open(paths[i]) as im:
                    im.load()
            except Exception as e:  # PIL raises OSError, SyntaxError, ValueError, DecompressionBombError, ...
                raise RecordError(where, f"unreadable frame {i + 1} of {len(paths)} ({paths[i]}): "
                                         f"{type(e).__name__}: {e}") from None

    return check


def _image_getter(paths: list[Path], where: str):
    def get(indices):
        out = []
        for i in indices:
            try:
                with Image.open(paths[i]) as im:
                    out.append(im.convert("RGB"))
            except (FileNotFoundError, UnidentifiedImageError, OSError) as e:
                raise RecordError(where, f"unreadable frame {paths[i]}: {e}") from None
        return out

    return get


def _open_frame_list(path: Path, where: str) -> _Source:
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise RecordError(where, f"unreadable frame list {path}: {e}") from None
    fps, frames = (d.get("fps"), d.get("frames")) if isinstance(d, dict) else (None, None)
    if not isinstance(fps, (int, float)) or isinstance(fps, bool) or fps <= 0:
        raise RecordError(where, f"frame list {path}: 'fps' must be a positive number")
    if not isinstance(frames, list) or not all(isinstance(p, str) and p for p in frames):
        raise RecordError(where, f"frame list {path}: 'frames' must be a list of image paths")
    if not frames:
        raise RecordError(where, f"video has zero frames: {path}")
    paths = [path.parent / p for p in frames]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise RecordError(where, f"frame list {path}: {len(missing)} frame file(s) not found, first {missing[0]}")
    return _Source(float(fps), [i / fps for i in range(len(paths))], _image_getter(paths, where),
                   _image_checker(paths, where))


def _open_folder(path: Path, where: str, fps: float) -> _Source:
    paths = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise RecordError(where, f"video has zero frames: folder {path} holds no {'/'.join(IMAGE_SUFFIXES)} images")
    return _Source(fps, [i / fps for i in range(len(paths))], _image_getter(paths, where), _image_checker(paths, where))


def open_source(path: str | Path, where: str, cfg: VideoConfig) -> _Source:
    path = Path(path)
    if path.is_dir():
        return _open_folder(path, where, cfg.video_frames_fps)
    if not path.is_file():
        raise RecordError(where, f"video not found: {path}")
    if path.name.endswith(FRAME_LIST_SUFFIX):
        return _open_frame_list(path, where)
    return _open_file(path, where)


def check_time_range(start: float | None, end: float | None, where: str) -> None:
    if start is not None and start < 0:
        raise RecordError(where, f"video start {start} is negative")
    if start is not None and end is not None and start >= end:
        raise RecordError(where, f"video start {start} >= end {end}")


def frames_in_range(timestamps: list[float], start: float | None, end: float | None) -> list[int]:
    """Indices of the frames with start <= t < end (either bound optional)."""
    lo = -math.inf if start is None else start - TIME_EPS
    hi = math.inf if end is None else end - TIME_EPS
    return [i for i, t in enumerate(timestamps) if lo <= t < hi]


def sample_count(n_available: int, source_fps: float, cfg: VideoConfig) -> int:
    """How many frames to sample from a clip of `n_available` source frames (qwen-vl-utils' rule)."""
    if n_available < 2:
        return n_available
    from qwen_vl_utils.vision_process import smart_nframes  # lazy: loads torch; imported by model-free commands

    ele = {
        "fps": cfg.video_fps,
        "min_frames": min(cfg.video_min_frames, n_available),
        "max_frames": cfg.video_max_frames,
    }
    return smart_nframes(ele, total_frames=n_available, video_fps=source_fps)


def frame_size(height: int, width: int, n_frames: int, cfg: VideoConfig) -> tuple[int, int]:
    from qwen_vl_utils.vision_process import smart_resize  # lazy: loads torch; imported by model-free commands

    max_pixels = cfg.video_max_pixels
    if cfg.video_total_pixels is not None:
        share = cfg.video_total_pixels / max(n_frames, 1) * 2
        max_pixels = max(min(max_pixels, share), int(cfg.video_min_pixels * 1.05))
    return smart_resize(height, width, factor=PIXEL_FACTOR, min_pixels=cfg.video_min_pixels, max_pixels=max_pixels)


def open_cut(path: str | Path, cfg: VideoConfig, start: float | None, end: float | None, where: str):
    """The opened source and the indices of its frames in the cut [start, end); `RecordError` when it has none."""
    check_time_range(start, end, where)
    src = open_source(path, where, cfg)
    candidates = frames_in_range(src.timestamps, start, end)
    if not candidates:
        duration = len(src.timestamps) / src.fps
        raise RecordError(where, f"no frames in [{start}, {end}) s of {path} (duration {duration:.3f} s)")
    return src, candidates


def load_clip(
    path: str | Path, cfg: VideoConfig, start: float | None = None, end: float | None = None, where: str = ""
) -> VideoClip:
    """Decode, cut [start, end) and sample one clip; raise `RecordError(where, ...)` on bad video."""
    where = where or str(path)
    src, candidates = open_cut(path, cfg, start, end, where)
    n = sample_count(len(candidates), src.fps, cfg)
    if n == len(candidates):
        picks = list(range(n))
    else:
        step = (len(candidates) - 1) / (n - 1)
        picks = [round(i * step) for i in range(n)]
    indices = [candidates[p] for p in picks]
    frames = src.get(indices)
    w, h = frames[0].size
    rh, rw = frame_size(h, w, len(frames), cfg)
    if (rw, rh) != (w, h):
        frames = [im.convert("RGB").resize((rw, rh), Image.BICUBIC) for im in frames]
    else:
        frames = [im.convert("RGB") for im in frames]
    return VideoClip(
        frames=frames,
        fps=src.fps,
        total_num_frames=len(candidates),
        frames_indices=indices,
        timestamps=[src.timestamps[i] for i in indices],
        source=str(path),
    )


def clip_config(fps: float | None = None, max_frames: int | None = None, min_pixels: int | None = None,
                max_pixels: int | None = None, total_pixels: int | None = None) -> VideoConfig:
    """A `VideoConfig` from optional settings (an eval spec's video_* fields); unset ones keep the defaults,
    which are the training defaults (NEP SFT: 2 fps, <= 128 frames, <= 16384 pixels per frame)."""
    d = VideoConfig()
    max_px = d.video_max_pixels if max_pixels is None else int(max_pixels)
    min_px = min(d.video_min_pixels, max_px) if min_pixels is None else int(min_pixels)  # only max given: fits it
    cfg = VideoConfig(
        video_fps=d.video_fps if fps is None else float(fps),
        video_max_frames=d.video_max_frames if max_frames is None else int(max_frames),
        video_min_frames=d.video_min_frames,
        video_min_pixels=min_px,
        video_max_pixels=max_px,
        video_total_pixels=total_pixels,
    )
    return cfg


@dataclass(frozen=True)
class ClipRef:
    """A clip to be loaded later by `load_clip` (the one cut rule, start <= t < end): eval items hold these
    so frames are decoded per generation batch, not all at once."""

    path: str
    cfg: VideoConfig
    start: float | None = None
    end: float | None = None
    where: str = ""

    def load(self) -> VideoClip:
        return load_clip(self.path, self.cfg, self.start, self.end, where=self.where)


def record_where(rec: Record) -> str:
    return getattr(rec, "origin", "") or f"record {rec.id}"


def load_record_video(rec: Record, cfg: VideoConfig) -> VideoClip:
    """The record's (cut) clip; errors name the record's `file:line`."""
    if rec.video is None:
        raise RecordError(record_where(rec), "record has no 'video'")
    return load_clip(rec.video_path(), cfg, rec.video.start, rec.video.end, where=record_where(rec))


def check_video(path: str | Path, cfg: VideoConfig, start: float | None = None, end: float | None = None,
                where: str = "") -> int:
    """The pre-flight check before any model loads: open the video and decode what its cut [start, end) will use
    — every frame of a frame list or folder in the cut, and for a container file the cut's first and last frame
    (the stream decodes there). Returns the number of source frames in the cut; raises `RecordError(where, ...)`."""
    where = where or str(path)
    src, candidates = open_cut(path, cfg, start, end, where)
    src.check(candidates)
    return len(candidates)


def check_record_video(rec: Record, cfg: VideoConfig) -> int:
    """`check_video` of the record's video and cut. Returns the count of source frames in the cut; raises
    `RecordError` naming the record's file:line."""
    where = record_where(rec)
    if rec.video is None:
        raise RecordError(where, "record has no 'video'")
    return check_video(rec.video_path(), cfg, rec.video.start, rec.video.end, where)


@dataclass
class VideoLoadReport:
    loaded: int = 0
    skipped: list[RecordError] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"loaded": self.loaded, "skipped": [{"where": e.where, "reason": e.reason} for e in self.skipped]}


def check_record_videos(records: list[Record], cfg: VideoConfig, lenient: bool = False) -> tuple[list[Record], VideoLoadReport]:
    """`check_record_video` over the video records (others pass through). Strict: the first bad video raises.
    Lenient: bad ones are dropped and counted."""
    report = VideoLoadReport()
    out = []
    for rec in records:
        if rec.video is not None:
            try:
                check_record_video(rec, cfg)
            except RecordError as e:
                if not lenient:
                    raise
                logger.warning("skipping %s", e)
                report.skipped.append(e)
                continue
            report.loaded += 1
        out.append(rec)
    return out, report


def set_video_pixels(processor, min_pixels: int, max_pixels: int) -> None:
    """Bound the processor's own video resize to [min_pixels, max_pixels] so it keeps our frame size
    (its defaults would upscale small frames, docs/STACK.md)."""
    if min_pixels > max_pixels:
        raise ValueError(f"video min_pixels {min_pixels} > max_pixels {max_pixels}")
    vp = processor.video_processor
    size = dict(vp.size)
    size["shortest_edge"], size["longest_edge"] = int(min_pixels), int(max_pixels)
    vp.size = type(vp.size)(**size)
    for name, value in (("min_pixels", min_pixels), ("max_pixels", max_pixels)):
        if hasattr(vp, name):
            setattr(vp, name, int(value))


def processor_video_kwargs(clips: list[VideoClip]) -> dict[str, Any]:
    """Keyword arguments for `processor(text=..., **kwargs)` carrying the clips and their metadata."""
    if not clips:
        return {}
    return {
        "videos": [c.frames for c in clips],
        "video_metadata": [c.metadata() for c in clips],
        "do_sample_frames": False,
    }
