"""Append-only prediction cache: one JSON object per line, keyed by item id.

A killed run leaves at most one partial last line; `PredictionCache` truncates it on open,
so a rerun regenerates exactly the items that have no complete line. Every append is
flushed and fsync'd before the run moves on.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Iterable

from mmreason.jsonl import append_jsonl, read_jsonl_repair

logger = logging.getLogger(__name__)


class PredictionCache:
    def __init__(self, path: str | os.PathLike, key: str = "id"):
        self.path = Path(path)
        self.key = key
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.rows: dict[str, dict[str, Any]] = {}
        self.repaired = 0  # partial last lines cut off
        self.duplicates = 0
        self._load()

    def _load(self) -> None:
        rows, self.repaired = read_jsonl_repair(self.path, corrupt="raise")
        if self.repaired:
            logger.warning("%s: dropped a partial last line left by an interrupted run", self.path)
        for i, row in enumerate(rows, 1):
            if not isinstance(row, dict) or self.key not in row:
                raise ValueError(f"{self.path}: corrupt line (row {i} has no {self.key!r} field): {str(row)[:80]!r}")
            k = str(row[self.key])
            if k in self.rows:
                self.duplicates += 1
            else:
                self.rows[k] = row

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
            append_jsonl(self.path, new)
        return len(new)
