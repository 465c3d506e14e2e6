"""Images and videos named by outside layouts: a path (relative to the media folder), image bytes from parquet
({bytes, path}) or a PIL image. Bytes go to a content-addressed cache beside the image gate's
(`<MMREASON_IMAGE_CACHE>/sources/<sha256>.<ext>`): the same image in two rows, or in two runs, is one file. The gate
itself (`mmreason.media.images`) checks every path when the record is validated."""

from __future__ import annotations

import hashlib
import io
import os
import threading
from pathlib import Path
from typing import Any

from mmreason.media.images import cache_dir
from mmreason.errors import RecordError
from mmreason.records import resolve_media


def resolve(path: str, base_dir: str | os.PathLike) -> Path:
    """A relative media path against `base_dir` (the media folder: LLaMA-Factory's and EasyR1's rule); when nothing
    is there but the path exists from the working directory, that one (ms-swift's rule: RL-with-Cold-Start's
    convert_data.py writes paths relative to where it ran)."""
    p = resolve_media(path, base_dir)
    if not p.exists() and not Path(path).is_absolute() and Path(path).exists():
        return Path(os.path.abspath(path))
    return p


def image_path(value: Any, where: str, base_dir: str | os.PathLike) -> str:
    """An absolute path for one image value of a row."""
    if isinstance(value, str) and value:
        return str(resolve(value, base_dir))
    if isinstance(value, dict):
        if value.get("bytes"):
            return str(store_bytes(value["bytes"]))
        if isinstance(value.get("path"), str) and value["path"]:
            return str(resolve(value["path"], base_dir))
    if isinstance(value, (bytes, bytearray)) and value:
        return str(store_bytes(bytes(value)))
    if hasattr(value, "save"):  # a PIL image
        buf = io.BytesIO()
        value.save(buf, format="PNG")
        return str(store_bytes(buf.getvalue()))
    raise RecordError(where, f"an image is neither a path, image bytes nor an image: {type(value).__name__}")


def image_list(value: Any, where: str, base_dir: str | os.PathLike) -> list[str]:
    if value is None:
        return []
    items = value if isinstance(value, (list, tuple)) else [value]
    return [image_path(v, where, base_dir) for v in items]


def video_path(value: Any, where: str, base_dir: str | os.PathLike) -> str | None:
    """The one video of a row (a path, or a one-item list); several videos per row are not supported."""
    if value is None or value == []:
        return None
    items = value if isinstance(value, (list, tuple)) else [value]
    if len(items) != 1:
        raise RecordError(where, f"{len(items)} videos in one row; mmreason records hold one video")
    v = items[0]
    if isinstance(v, dict):
        v = v.get("path")
    if not isinstance(v, str) or not v:
        raise RecordError(where, f"a video must be a path string, got {type(v).__name__}")
    return str(resolve(v, base_dir))


def _suffix(raw: bytes) -> str:
    if raw[:2] == b"\xff\xd8":
        return ".jpg"
    if raw[:8] == b"\x89PNG\r\n\x1a\n":
        return ".png"
    if raw[:4] == b"RIFF" and raw[8:12] == b"WEBP":
        return ".webp"
    if raw[:3] == b"GIF":
        return ".gif"
    return ".img"  # the gate reads the format from the bytes and rejects what it cannot open


def store_bytes(raw: bytes) -> Path:
    digest = hashlib.sha256(raw).hexdigest()
    out = cache_dir() / "sources" / f"{digest}{_suffix(raw)}"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(raw)
        os.replace(tmp, out)
    return out
