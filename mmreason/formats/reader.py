"""The one reader of training and eval data: `read_source(spec, options)` yields validated `Record`s from any
layout this package knows, from any container `tables.open_table` opens.

The layout is detected from the columns (first match in `LAYOUTS` order) unless `options.data_format` forces one.
Every row becomes a record dict, then `mmreason.records.record_from_dict` validates it (placeholders, vision
tokens, the image gate) under the row's `file:line`: strict, the first bad row raises; lenient, it is counted in
the `LoadReport`."""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path
from typing import Iterator

from mmreason.formats import easyr1, messages, nep_video, records_jsonl, sharegpt, swift, verl
from mmreason.formats.options import DataFormatArguments
from mmreason.formats.row import RowContext, id_prefix
from mmreason.formats.tables import Table, open_table
from mmreason.errors import RecordError
from mmreason.records import LoadReport, Record, counted, iter_records, record_from_dict

# Detection order: the most specific column sets first; easyr1 (two columns) last.
LAYOUTS = {m.NAME: m for m in (records_jsonl, verl, nep_video, swift, sharegpt, messages, easyr1)}


class UnknownLayout(ValueError):
    pass


def detect_layout(columns, options: DataFormatArguments, name: str) -> str:
    if options.data_format != "auto":
        return options.data_format
    cols = set(columns)
    for layout, mod in LAYOUTS.items():
        if mod.detect(cols, options):
            return layout
    known = "; ".join(f"{k} ({m.COLUMNS})" for k, m in LAYOUTS.items())
    raise UnknownLayout(f"{name}: layout not recognised from its columns {sorted(cols)}; known layouts: {known}. "
                        "Force one with data_format (and prompt_key/answer_key/image_key/video_key).")


def open_source(spec: str | os.PathLike, options: DataFormatArguments | None = None) -> tuple[str, Table]:
    """(layout, table) of one source; raises UnknownLayout with the columns it has."""
    options = options or DataFormatArguments()
    table = open_table(spec)
    try:
        return detect_layout(table.columns, options, table.name), table
    except UnknownLayout:
        if table.kind == "jsonl":  # JSONL is our records format first: its reader names each bad line
            return "records", table
        raise


def read_source(spec: str | os.PathLike, options: DataFormatArguments | None = None, strict: bool = True,
                require_answer: bool = True, check_media: bool = True,
                report: LoadReport | None = None) -> Iterator[Record]:
    """Validated records of one source (a records JSONL, a JSON list, JSONL, parquet file or folder, save_to_disk
    folder or Hub id `org/name[@split]`), in any known layout."""
    options = options or DataFormatArguments()
    layout, table = open_source(spec, options)
    if layout == "records" and table.kind == "jsonl":  # ours: line-exact errors, duplicate ids, as always
        return iter_records(table.path, strict, require_answer, check_media, report)
    return counted((make for _, make in _makers(layout, table, options, require_answer, check_media)), strict, report)


def iter_rows(spec: str | os.PathLike, options: DataFormatArguments | None = None, require_answer: bool = True,
              check_media: bool = True) -> Iterator[tuple[str, Record | RecordError]]:
    """(where, record or its RecordError) for every row of a source in an outside layout, in order: for callers that
    account for each row themselves (the data builder, `data convert`)."""
    options = options or DataFormatArguments()
    layout, table = open_source(spec, options)
    for where, make in _makers(layout, table, options, require_answer, check_media):
        try:
            yield where, make()
        except RecordError as e:
            yield where, e


def _makers(layout: str, table: Table, options: DataFormatArguments, require_answer: bool, check_media: bool):
    mod = LAYOUTS[layout]
    media = Path(options.media_dir).expanduser().resolve() if options.media_dir else table.base_dir
    prefix = id_prefix(table.name)
    seen: dict[str, str] = {}

    def make(index: int, where: str, row) -> Record:
        if isinstance(row, RecordError):
            raise row
        if not isinstance(row, dict):
            raise RecordError(where, f"expected an object, got {type(row).__name__}")
        ctx = RowContext(where, index, prefix, options, media, table.name)
        d = mod.to_record(row, ctx)
        rec = record_from_dict(d, where, media, require_answer=require_answer, check_media=check_media)
        if rec.id in seen:
            raise RecordError(where, f"duplicate id {rec.id!r} (first at {seen[rec.id]})")
        seen[rec.id] = where
        return rec

    for index, (where, row) in enumerate(table.rows()):
        yield where, partial(make, index, where, row)
