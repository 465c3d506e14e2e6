"""What a layout's row reader gets besides the row: where it is, its index, the options and the media folder."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmreason.formats.media import image_list, video_path
from mmreason.formats.options import DataFormatArguments
from mmreason.errors import RecordError


@dataclass
class RowContext:
    where: str
    index: int
    id_prefix: str
    options: DataFormatArguments
    media_dir: Path
    source: str

    def derived_id(self, row: dict | None = None) -> str:
        """The row's own `id` if it has one, else `<source name>-<row index>` (stable for the same file)."""
        rid = (row or {}).get("id")
        if isinstance(rid, (str, int)) and not isinstance(rid, bool) and str(rid):
            return str(rid)
        return f"{self.id_prefix}-{self.index:06d}"

    def images(self, value: Any) -> list[str]:
        return image_list(value, self.where, self.media_dir)

    def video(self, value: Any) -> dict | None:
        path = video_path(value, self.where, self.media_dir)
        return {"path": path} if path else None

    def need(self, row: dict, key: str) -> Any:
        if key not in row:
            raise RecordError(self.where, f"missing column {key!r} (columns: {sorted(row)})")
        return row[key]

    def text(self, row: dict, key: str) -> str:
        value = self.need(row, key)
        if not isinstance(value, str):
            raise RecordError(self.where, f"column {key!r} must be text, got {type(value).__name__}")
        return value


def id_prefix(name: str) -> str:
    """The file or dataset name (`Multimodal-RL-Data`, `cold_start`), with its split unless it is `train`."""
    path, _, split = str(name).partition("@")
    base = Path(path.rstrip("/")).name
    stem = base.rsplit(".", 1)[0] if "." in base else base
    stem += f"_{split}" if split and split != "train" else ""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", stem) or "data"


def record(ctx: RowContext, row: dict, layout: str, question: str, answer: str | None, solution: str | None,
           images: list[str], video: dict | None, **extra: Any) -> dict:
    """A record dict (mmreason.records schema) from what a layout read."""
    d = {"id": ctx.derived_id(row), "question": question, "answer": answer, "answer_type": "text",
         "images": images, "video": video, "solution": solution, "source": f"{layout}:{ctx.source}"}
    d.update(extra)
    return d
