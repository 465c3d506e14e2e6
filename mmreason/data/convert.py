"""`mmreason data convert --input X [--data_format ...] --out DIR`: any layout `mmreason.formats` reads, written
as records JSONL + media files + stats.json, so you can look at exactly what a stage will train on.

Nothing is dropped but the rows the reader's gates reject (bad JSON, a placeholder count that does not match the
media, a vision token in the text, an image the image gate refuses...): each is counted in stats.json with its
`file:line` and reason. No teacher: released questions, answers and chains of thought are kept as released.
Images are copied to DIR/media/<sha256>.<ext> (after the image gate); videos are referenced by absolute path."""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from mmreason.formats import DataFormatArguments, UnknownLayout, iter_rows, open_source
from mmreason.errors import RecordError
from mmreason.records import write_records

STATS = "stats.json"
RECORDS = "records.jsonl"


def convert(inputs: list[str], out: str | os.PathLike, options: DataFormatArguments | None = None,
            check_media: bool = True) -> dict[str, Any]:
    """Convert `inputs` into `out`; returns (and writes) the stats."""
    options = options or DataFormatArguments()
    out = Path(out)
    media = out / "media"
    media.mkdir(parents=True, exist_ok=True)
    records, rejected, sources = [], [], []
    seen: dict[str, str] = {}
    for spec in inputs:
        layout, _ = open_source(spec, options)
        n = 0
        for where, rec in iter_rows(spec, options, require_answer=False, check_media=check_media):
            n += 1
            if isinstance(rec, RecordError):
                rejected.append({"where": rec.where, "reason": rec.reason})
                continue
            if rec.id in seen:
                rejected.append({"where": where, "reason": f"duplicate id {rec.id!r} (first at {seen[rec.id]})"})
                continue
            seen[rec.id] = where
            records.append(_portable(rec, media, out))
        sources.append({"input": str(spec), "layout": layout, "rows": n})
    written = write_records(out / RECORDS, records)
    stats = {
        "sources": sources,
        "options": dataclasses.asdict(options),
        "rows": sum(s["rows"] for s in sources),
        "written": written,
        "rejected": len(rejected),
        "rejected_by_reason": dict(Counter(_kind(r["reason"]) for r in rejected)),
        "rejected_rows": rejected,
        "with_images": sum(bool(r.images) for r in records),
        "with_video": sum(r.video is not None for r in records),
        "with_solution": sum(bool(r.solution) for r in records),
        "with_answer": sum(r.answer is not None for r in records),
    }
    assert stats["rows"] == stats["written"] + stats["rejected"], stats  # every row accounted for
    tmp = out / (STATS + ".tmp")
    tmp.write_text(json.dumps(stats, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, out / STATS)
    return stats


def _kind(reason: str) -> str:
    """A reason without its specifics (paths, counts), to count rejections by kind."""
    return reason.split(":")[0].split(" (")[0][:80]


def _portable(rec, media: Path, out: Path):
    """The record with its images copied under `media` (relative paths) and its video path absolute."""
    images = []
    for p in rec.image_paths():
        digest = hashlib.sha256(p.read_bytes()).hexdigest()[:32]
        target = media / f"{digest}{p.suffix.lower() or '.img'}"
        if not target.exists():
            shutil.copyfile(p, target)
        images.append(str(target.relative_to(out)))
    video = rec.video
    if video is not None:
        video = dataclasses.replace(video, path=str(rec.video_path()))
    return dataclasses.replace(rec, images=images, video=video, base_dir=str(out))


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="mmreason data convert", description=__doc__.split("\n\n")[0])
    ap.add_argument("--input", action="append", required=True,
                    help="a data file, parquet folder, save_to_disk folder or Hub id org/name[@split]; repeatable")
    ap.add_argument("--out", required=True, help="output folder: records.jsonl, media/, stats.json")
    for f in dataclasses.fields(DataFormatArguments):
        ap.add_argument(f"--{f.name}", default=f.default, help=f.metadata["help"])
    ap.add_argument("--no-check-media", action="store_true", help="do not open images through the image gate")
    a = ap.parse_args(argv)
    try:
        options = DataFormatArguments(**{f.name: getattr(a, f.name) for f in dataclasses.fields(DataFormatArguments)})
        stats = convert(a.input, a.out, options, check_media=not a.no_check_media)
    except (UnknownLayout, RecordError, FileNotFoundError, ValueError) as e:
        print(f"mmreason data convert: error: {e}", file=sys.stderr)
        return 2
    print(f"converted {stats['rows']} rows ({', '.join(s['layout'] for s in stats['sources'])}) into "
          f"{Path(a.out) / RECORDS}: {stats['written']} written, {stats['rejected']} rejected "
          f"{stats['rejected_by_reason'] or ''}; stats: {Path(a.out) / STATS}")
    return 0
