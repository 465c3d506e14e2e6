"""Our own layout: mmreason records (mmreason/records.py), from a records JSONL or an Arrow dataset whose columns
are record fields."""

from __future__ import annotations

from mmreason.formats.row import RowContext

NAME = "records"
COLUMNS = "id, question, answer_type (mmreason records)"


def detect(columns: set[str], opts) -> bool:
    return {"id", "question", "answer_type"} <= columns


def to_record(row: dict, ctx: RowContext) -> dict:
    # Arrow fills a missing field with None: drop those so the record's own defaults apply.
    return {k: v for k, v in row.items() if v is not None or k == "answer"}
