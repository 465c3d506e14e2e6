"""The image gate: every image a stage feeds the model passes here once.

Downstream, images are opened two ways — the processor decodes file paths with torchvision's
`decode_image` (JPEG, PNG, WebP, GIF only; a 16-bit PNG comes out as uint16, so pixel values end up ~257x
too large), and GRPO/eval open them with PIL, whose `convert("RGB")` clips 16-bit and float images to white.
So the gate opens each file with PIL under an explicit pixel limit, and either passes it through unchanged
(8-bit RGB or greyscale JPEG/PNG/WebP without an EXIF rotation) or writes a converted 8-bit RGB PNG to a
content-addressed cache and returns that path instead. Everything that would fail later (unreadable bytes,
too many pixels, an aspect ratio the Qwen2.5-VL resizer rejects) fails here with the record named.
Decisions are cached per (path, size, mtime).
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

from mmreason.errors import RecordError

PASS_FORMATS = {"JPEG", "PNG", "WEBP"}
PASS_MODES = {"RGB", "L"}
MAX_ASPECT = 200  # Qwen2.5-VL's smart_resize (transformers and qwen-vl-utils) raises above this
DEFAULT_MAX_PIXELS = 89_478_485  # PIL's own warning threshold; a decompression bomb is far above it
ORIENTATION_TAG = 0x0112

_decided: dict[tuple[str, int, int], Path] = {}
_lock = threading.Lock()


def max_image_pixels() -> int:
    return int(os.environ.get("MMREASON_MAX_IMAGE_PIXELS", DEFAULT_MAX_PIXELS))


def cache_dir() -> Path:
    root = os.environ.get("MMREASON_IMAGE_CACHE") or Path.home() / ".cache" / "mmreason" / "images"
    return Path(root)


def gate_image(path: str | os.PathLike, where: str) -> Path:
    """The path to feed downstream for the image at `path`: itself, or its converted copy. Raises
    `RecordError(where, reason)` for an image no stage could use."""
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise RecordError(where, f"image file not found: {path}") from None
    except OSError as e:
        raise RecordError(where, f"image file not readable: {path}: {e}") from None
    if not path.is_file():
        raise RecordError(where, f"image path is not a file: {path}")
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    with _lock:
        if key in _decided:
            return _decided[key]
    out = _decide(path, where)
    with _lock:
        _decided[key] = out
    return out


def _decide(path: Path, where: str) -> Path:
    from PIL import Image, UnidentifiedImageError  # lazy: imported by verify workers: no third-party imports

    limit = max_image_pixels()
    Image.MAX_IMAGE_PIXELS = None  # the limit is checked here, with the record named, instead of PIL's warning/error
    try:
        with Image.open(path) as im:  # reads the header only
            w, h = im.size
            if w * h > limit:
                raise RecordError(
                    where, f"image {path} has {w}x{h} = {w * h:,} pixels, over the limit of {limit:,} "
                    "(a decompression bomb, or set MMREASON_MAX_IMAGE_PIXELS)")
            if min(w, h) < 1 or max(w, h) / min(w, h) > MAX_ASPECT:
                raise RecordError(where, f"image {path} is {w}x{h}: aspect ratio over {MAX_ASPECT}, which the "
                                         "Qwen2.5-VL image resizer rejects")
            if _passes(im, path):
                im.load()  # decodes the data: truncated or corrupt files fail here
                return path
            rgb = to_rgb(im)
    except RecordError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise RecordError(where, f"corrupt or unreadable image {path}: {e}") from None
    return _store(rgb, path)


def _passes(im, path: Path) -> bool:
    if im.format not in PASS_FORMATS or im.mode not in PASS_MODES:
        return False
    if getattr(im, "n_frames", 1) > 1:
        return False
    if im.format == "PNG" and _png_bit_depth(path) not in (8, None):
        return False
    try:
        orientation = im.getexif().get(ORIENTATION_TAG, 1)
    except Exception:  # noqa: BLE001 - unreadable EXIF: re-encode without it
        return False
    return orientation in (1, None)


def _png_bit_depth(path: Path) -> int | None:
    """The IHDR bit depth (byte 24 of a PNG file). Pillow reads 16-bit RGB as 8-bit RGB, torchvision does not."""
    with open(path, "rb") as f:
        head = f.read(25)
    return head[24] if len(head) == 25 and head[12:16] == b"IHDR" else None


def to_rgb(im):
    """An 8-bit RGB copy of any image PIL opens, with values scaled (not clipped) and EXIF rotation applied;
    transparency is composited on white; animated images give their first frame."""
    import numpy as np  # lazy: imported by verify workers: no third-party imports
    from PIL import Image, ImageOps  # lazy: imported by verify workers: no third-party imports

    im.seek(0)
    im = ImageOps.exif_transpose(im)
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        a = np.asarray(im).astype(np.float64)
        if mode == "F":
            hi = 1.0 if a.size and np.nanmax(a) <= 1.0 else 255.0
        elif mode == "I" and a.size and a.max() > 65535:
            hi = float(a.max())
        elif mode == "I" and a.size and a.max() <= 255 and a.min() >= 0:
            hi = 255.0
        else:
            hi = 65535.0
        a = np.clip(np.nan_to_num(a) / hi * 255.0, 0, 255).round().astype(np.uint8)
        return Image.fromarray(a, mode="L").convert("RGB")
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info) or \
            (mode in ("RGB", "L") and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return im.convert("RGB")


def _store(rgb, source: Path) -> Path:
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:32]
    out = cache_dir() / f"{digest}.png"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        rgb.save(tmp, format="PNG")
        os.replace(tmp, out)
    return out
