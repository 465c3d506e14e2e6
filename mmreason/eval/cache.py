"""Append-only prediction cache: one JSON object per line, keyed by item id.

A killed run leaves at most one partial last line; `PredictionCache` truncates it on open,
so a rerun regenerates exactly the items that have no complete line. Every append is
flushed and fsync'd before the run moves on.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Iterable

logger = logging.getLogger(__name__)


class PredictionCache:
    def __init__(self, path: str | os.PathLike, key: str = "id"):
        self.path = Path(path)
        self.key = key
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.rows: dict[str, dict[str, Any]] = {}
        self.repaired = 0  # bytes cut from a partial last line
        self.duplicates = 0
        self._load()

    def _load(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        good_end = 0
        pos = 0
        while pos < len(data):
            nl = data.find(b"\n", pos)
            if nl < 0:  # no newline: the write of this line never finished
                break
            line = data[pos:nl]
            if line.strip():
                try:
                    row = json.loads(line)
                    k = str(row[self.key])
                except (ValueError, KeyError, TypeError):
                    if nl + 1 >= len(data):  # a garbled final line is a torn write: drop it
                        break
                    raise ValueError(f"{self.path}: corrupt line at byte {pos}: {line[:80]!r}") from None
                if k in self.rows:
                    self.duplicates += 1
                else:
                    self.rows[k] = row
            good_end = nl + 1
            pos = nl + 1
        if good_end < len(data):
            self.repaired = len(data) - good_end
            logger.warning("%s: dropping a partial last line (%d bytes) left by an interrupted run",
                           self.path, self.repaired)
            with open(self.path, "r+b") as f:
                f.truncate(good_end)
                f.flush()
                os.fsync(f.fileno())

    def __contains__(self, key: str) -> bool:
        return str(key) in self.rows

    def __len__(self) -> int:
        return len(self.rows)

    def get(self, key: str) -> dict[str, Any] | None:
        return self.rows.get(str(key))

    def append(self, rows: Iterable[dict[str, Any]]) -> int:
        """Append rows whose key is not cached yet; fsync; return how many were written."""
        new = []
        for r in rows:
            k = str(r[self.key])
            if k not in self.rows:
                self.rows[k] = r
                new.append(r)
        if new:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in new))
                f.flush()
                os.fsync(f.fileno())
        return len(new)
