"""Records -> the conversational SFT dataset TRL's vision collator reads (or, when any record has a video,
the video collator's rows: `mmreason.sft.video_collator`).

Each example is {"messages": [...], "images": [absolute paths]}; the collator puts each path in its
image block and the processor opens it at batch time, so no pixels are held in memory or in Arrow.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from datasets import Dataset

from mmreason.errors import RecordError
from mmreason.media.video import check_record_videos
from mmreason.prompts import PromptSpec, drop_long_chats
from mmreason.chat import to_sft_example
from mmreason.formats import DataFormatArguments, read_source
from mmreason.records import LoadReport, Record, seeded_subset
from mmreason.sft.video_collator import video_sft_example
from mmreason.usage import NothingUsable, UsageError, check_count

logger = logging.getLogger(__name__)


@dataclass
class DataReport:
    """What was loaded and what was skipped (lenient mode), per source."""

    loaded: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)
    sources: list[dict] = field(default_factory=list)
    dropped_long: list[dict] = field(default_factory=list)  # {"id", "chars"} over max_text_chars
    max_text_chars: int | None = None
    dropped_tokens: list[dict] = field(default_factory=list)  # {"id", "where", "tokens"} over max_length
    max_length: int | None = None
    # (id, file:line) of each dataset row, in order: to name a record found over max_length after tokenising
    rows: list[tuple[str, str]] = field(default_factory=list, repr=False)

    def add(self, rep: LoadReport) -> None:
        self.sources.append({"path": rep.path, "loaded": rep.loaded, "skipped": len(rep.skipped)})
        self.skipped += [{"where": e.where, "reason": e.reason} for e in rep.skipped]

    def summary(self) -> str:
        lines = [f"SFT data: {self.loaded} examples, {len(self.skipped)} skipped, "
                 f"{len(self.dropped_long)} dropped over max_text_chars={self.max_text_chars}"]
        lines += [f"  skipped {s['where']}: {s['reason']}" for s in self.skipped[:20]]
        if len(self.skipped) > 20:
            lines.append(f"  ... and {len(self.skipped) - 20} more")
        lines += [f"  dropped {d['id']}: {d['chars']} characters > max_text_chars {self.max_text_chars}"
                  for d in self.dropped_long[:20]]
        if self.max_length is not None:
            lines.append(f"  {len(self.dropped_tokens)} dropped over max_length={self.max_length} tokens (text + "
                         "vision; never truncated)")
            lines += [f"  dropped {d['id']} ({d['where']}): {d['tokens']} tokens > max_length {self.max_length}"
                      for d in self.dropped_tokens[:20]]
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"loaded": self.loaded, "skipped": self.skipped, "sources": self.sources,
                "dropped_long": self.dropped_long, "max_text_chars": self.max_text_chars,
                "dropped_over_max_length": self.dropped_tokens, "max_length": self.max_length}


def _sft_problem(rec: Record) -> str | None:
    if not rec.solution:
        return "field 'solution' (the SFT target) is missing or empty"
    return None


def load_sft_records(
    paths: list[str], lenient: bool = False, max_samples: int | None = None, seed: int = 0,
    data_format: DataFormatArguments | None = None,
) -> tuple[list[Record], DataReport]:
    """Load and validate training records (each needs a `solution`). Strict: the first bad record raises
    `RecordError` naming `file:line`. Lenient: bad records are skipped and listed in the report. `max_samples`:
    a random subset of the usable records drawn with `seed`, in file order (`mmreason.records.seeded_subset`)."""
    if not paths:
        raise UsageError("no train_files given: --train_files FILE.jsonl [...], or train_files: [...] in the "
                         "--config YAML")
    report = DataReport()
    out: list[Record] = []
    for spec in paths:
        rep = LoadReport(str(spec))
        # SFT trains on the solution; a released chain of thought without a final box has no answer, and needs none.
        recs = read_source(spec, data_format, strict=not lenient, require_answer=False, report=rep)
        for rec in recs:
            problem = _sft_problem(rec)
            if problem:
                err = RecordError(rec.origin or f"{spec} (id {rec.id})", problem)
                if not lenient:
                    raise err
                rep.loaded -= 1
                rep.skipped.append(err)
                continue
            out.append(rec)
        report.add(rep)
    out = seeded_subset(out, max_samples, seed)
    report.loaded = len(out)
    if report.skipped:
        logger.warning(report.summary())
    if not out:
        raise NothingUsable(f"no usable training records in {paths}: {report.summary()}")
    return out, report


def drop_long(items: list, ids: list[str], max_chars: int | None, report: DataReport, chats: list) -> list:
    """Drop items whose chat is over `max_chars` characters (before tokenisation), counted in `report` with their
    ids."""
    report.max_text_chars = max_chars
    if max_chars is None:
        return items
    check_count(max_chars, "max_text_chars", 1)
    keep, report.dropped_long = drop_long_chats(items, ids, chats, max_chars, "max_text_chars")
    if report.dropped_long:
        report.loaded = len(keep)
    if not keep:
        raise NothingUsable(f"every training example is longer than max_text_chars={max_chars}: {report.summary()}")
    return keep


def has_video(*record_lists: list[Record]) -> bool:
    return any(r.video is not None for recs in record_lists for r in recs)


def build_sft_dataset(records: list[Record], spec: PromptSpec | None = None, max_text_chars: int | None = None,
                      report: DataReport | None = None, video: bool | None = None):
    """A `datasets.Dataset` with 'messages' (prompts built by `spec`, default: PromptSpec()) and 'images'
    (absolute paths) columns; examples over `max_text_chars` are dropped and counted in `report`. `video`
    (default: when any record has a video): the rows of the video collator (`mmreason.sft.video_collator`: also
    'video' and 'origin'; image and text records in the same rows)."""
    spec = spec or PromptSpec()
    report = report if report is not None else DataReport()
    if has_video(records) if video is None else video:
        examples = [video_sft_example(rec, spec) for rec in records]
    else:
        examples = [to_sft_example(rec, spec=spec) for rec in records]
    rows = [(r.id, r.origin or r.id) for r in records]
    if max_text_chars is not None:
        pairs = drop_long(list(zip(examples, rows)), [r.id for r in records], max_text_chars, report,
                          [ex["messages"] for ex in examples])
        examples, rows = [e for e, _ in pairs], [r for _, r in pairs]
    report.rows = rows
    return Dataset.from_list(examples)


def drop_over_max_length(ds, count_tokens: Callable[[dict], int], max_length: int | None, lenient: bool,
                         report: DataReport):
    """Tokenise every row as its collator will (`count_tokens`: text and vision tokens, no truncation) and keep
    those within `max_length`: the collator then never cuts one (a cut through image tokens crashes mid-run, a cut
    target trains on a truncated answer). Strict: the first row over raises `RecordError` naming its file:line;
    lenient: the rows over are dropped and counted in `report` with their ids. `report.rows` names the rows."""
    report.max_length = max_length
    if max_length is None:
        return ds
    check_count(max_length, "max_length", 1)
    keep = []
    for i in range(len(ds)):
        n = count_tokens(ds[i])
        if n <= max_length:
            keep.append(i)
            continue
        rid, where = report.rows[i] if i < len(report.rows) else (f"row {i}", f"row {i}")
        if not lenient:
            raise RecordError(where, f"record {rid!r} is {n} tokens (text + vision) > max_length {max_length}: "
                                     "raise max_length, or set lenient to drop such records (they are never cut)")
        report.dropped_tokens.append({"id": rid, "where": where, "tokens": n})
    if report.dropped_tokens:
        logger.warning("dropped %d of %d examples over max_length=%d tokens: %s", len(report.dropped_tokens), len(ds),
                       max_length, ", ".join(f"{d['id']} ({d['tokens']})" for d in report.dropped_tokens[:5]))
        report.loaded = len(keep)
        report.rows = [report.rows[i] for i in keep]
    if not keep:
        raise NothingUsable(f"every training example is longer than max_length={max_length}: {report.summary()}")
    return ds.select(keep) if len(keep) < len(ds) else ds


def check_videos(records: list[Record], cfg, lenient: bool, report: DataReport) -> list[Record]:
    """Open every record's video before training (`mmreason.media.video.check_record_videos`): strict, the first
    bad one raises naming its file:line; lenient, bad ones are dropped and counted in `report`."""
    kept, vrep = check_record_videos(records, cfg, lenient=lenient)
    if vrep.skipped:
        report.skipped += [{"where": e.where, "reason": e.reason} for e in vrep.skipped]
        report.loaded = len(kept)
        logger.warning(report.summary())
    if not kept:
        raise NothingUsable(f"no usable training records: every video is bad: {report.summary()}")
    return kept


def split_eval(records: list[Record], ratio: float, seed: int) -> tuple[list[Record], list[Record]]:
    """(train, held-out): max(int(len * ratio), 1) records drawn at random (seeded), as ms-swift's
    split_dataset_ratio counts them; the training records keep their order. ratio 0: no split."""
    if not ratio:
        return records, []
    n_eval = max(int(len(records) * ratio), 1)
    if n_eval >= len(records):
        raise ValueError(f"eval_split_ratio {ratio} leaves no training records out of {len(records)}")
    held = set(random.Random(seed).sample(range(len(records)), n_eval))
    return [r for i, r in enumerate(records) if i not in held], [r for i, r in enumerate(records) if i in held]
