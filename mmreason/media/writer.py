"""Write frames as an mp4 (PyAV) or as a frame list (PNG files + a JSON index).

A frame list is the JSON file `{"fps": F, "frames": ["f/000.png", ...]}` (paths relative to the
JSON file); a record's `video.path` may point at it, at an mp4, or at a folder of frame images.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

FRAME_LIST_SUFFIX = ".frames.json"


def write_mp4(frames, path: str | os.PathLike, fps: int, codec: str = "mpeg4") -> Path:
    """Encode PIL frames (all one size, even width/height) at a constant `fps`; frame i has pts i/fps."""
    import av  # lazy: PyAV (~0.1 s) only to write a clip; media.video imports this module for its suffix

    if not frames:
        raise ValueError(f"{path}: no frames to write")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = frames[0].size
    tmp = path.with_name(path.name + ".tmp.mp4")
    with av.open(str(tmp), "w") as out:
        stream = out.add_stream(codec, rate=int(fps))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        # near-lossless: the default bit rate smears small moving objects at low fps beyond recognition
        stream.bit_rate = max(2_000_000, w * h * int(fps) * 8)
        stream.options = {"qmin": "1", "qmax": "3"}
        stream.gop_size = 1
        for im in frames:
            frame = av.VideoFrame.from_ndarray(np.asarray(im.convert("RGB")), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    os.replace(tmp, path)
    return path


def write_frame_list(frames, path: str | os.PathLike, fps: float) -> Path:
    """Write PNGs beside `path` (in `<stem>/`) and the JSON index at `path` (ending in .frames.json)."""
    path = Path(path)
    if not path.name.endswith(FRAME_LIST_SUFFIX):
        raise ValueError(f"{path}: a frame list file name must end with {FRAME_LIST_SUFFIX}")
    folder = path.with_name(path.name[: -len(FRAME_LIST_SUFFIX)])
    folder.mkdir(parents=True, exist_ok=True)
    rel = []
    for i, im in enumerate(frames):
        name = f"{i:05d}.png"
        im.save(folder / name)
        rel.append(f"{folder.name}/{name}")
    path.write_text(json.dumps({"fps": fps, "frames": rel}, indent=1) + "\n")
    return path
