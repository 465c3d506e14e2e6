"""Synthetic clips for the video tests: frame i carries i as a 5-bit code of black/white 8x8 cells
in its top row, which survives lossy mpeg4 encoding, so a decoded frame names its source index."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

CELL = 8
BITS = 5


def coded_frame(i: int, size: int = 56, tint: int = 0) -> Image.Image:
    im = Image.new("RGB", (size, size), (tint, 90, 160))
    d = ImageDraw.Draw(im)
    for b in range(BITS):
        colour = (255, 255, 255) if (i >> b) & 1 else (0, 0, 0)
        d.rectangle([b * CELL, 0, (b + 1) * CELL - 1, CELL - 1], fill=colour)
    return im


def read_code(im: Image.Image) -> int:
    g = im.convert("L")
    w = g.size[0] / 56  # frames may have been resized
    code = 0
    for b in range(BITS):
        box = (int((b * CELL + 2) * w), int(2 * w), int(((b + 1) * CELL - 2) * w), int((CELL - 2) * w))
        cell = list(g.crop(box).getdata())
        if sum(cell) / len(cell) > 128:
            code |= 1 << b
    return code


def coded_frames(n: int, size: int = 56, tint: int = 0) -> list[Image.Image]:
    return [coded_frame(i, size, tint) for i in range(n)]


def write_coded_mp4(path: Path, n: int = 24, fps: int = 8, size: int = 56, tint: int = 0) -> Path:
    from mmreason.media.writer import write_mp4

    return write_mp4(coded_frames(n, size, tint), path, fps)


BALL_CHOICES = ["It bounces back.", "It stops.", "It passes through.", "It jumps."]


def ball_record(rid: str, **fields) -> dict:
    """A next-event multiple-choice record (answer A) for the GRPO video tests; `fields` add media or override."""
    return {"id": rid, "question": "The ball rolls toward the wall. What happens next?", "choices": BALL_CHOICES,
            "answer": "A", "answer_type": "choice", **fields}
