"""Evaluate a model on a mmreason records file (e.g. the synthetic test split): the `records` benchmark
plugin (last-\\boxed{} extraction, answer-type-aware comparison through the timed verify pool, accuracy
per source / task / answer type) and `evaluate_records`, the API over the one eval pipeline."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Callable

from mmreason.chat import choices_text
from mmreason.eval.benchmark import Benchmark, ScoreOptions, VideoInput, register
from mmreason.eval.report import hbar_chart, table
from mmreason.eval.run import run_benchmark
from mmreason.eval.spec import BenchmarkSpec
from mmreason.disk_full import write_text_atomic
from mmreason.jsonl import is_jsonl_name
from mmreason.prompts import DEFAULT_TEMPLATE
from mmreason.formats import UnknownLayout, open_source, read_source
from mmreason.formats.options import format_options_from
from mmreason.errors import RecordError
from mmreason.records import BOXED_SUFFIX, LoadReport, Record
from mmreason.verify import extract_boxed, verify_many

logger = logging.getLogger(__name__)


def check_answers(items: list[tuple]) -> tuple[list[bool], str]:
    """Correctness of (pred, gold, answer_type, choices, precision) items, through the timed process pool
    (`mmreason.verify.verify_many`); the second value names the checker for the report."""
    return [r.correct for r in verify_many(items)], "verify_pool"


def _group(recs: list[Record], correct: list[bool], key: Callable[[Record], str]) -> dict[str, dict[str, Any]]:
    g: dict[str, list[int]] = {}
    for r, ok in zip(recs, correct):
        t = g.setdefault(key(r) or "", [0, 0])
        t[0] += 1
        t[1] += ok
    return {k: {"total": t, "correct": c, "accuracy": c / t} for k, (t, c) in sorted(g.items())}


def score_records(recs: list[Record], responses: dict[str, Any], name: str = "records") -> dict[str, Any]:
    """Accuracy (a FRACTION in [0, 1]) overall, per source, per task, per answer type."""
    preds = {r.id: extract_boxed(responses.get(r.id)) if isinstance(responses.get(r.id), str) else None for r in recs}
    todo = [(i, (preds[r.id], r.answer, r.answer_type, r.choices, r.precision)) for i, r in enumerate(recs)
            if preds[r.id] is not None]
    correct = [False] * len(recs)
    checker = "none"
    if todo:
        oks, checker = check_answers([it for _, it in todo])
        for (i, _), ok in zip(todo, oks):
            correct[i] = ok
    n, c = len(recs), sum(correct)
    return {
        "benchmark": name,
        "mode": "boxed",
        "total": n,
        "correct": c,
        "accuracy": c / n if n else 0.0,
        "accuracy_pct": round(100.0 * c / n, 2) if n else 0.0,
        "boxed": sum(p is not None for p in preds.values()),
        "missing": [r.id for r in recs if r.id not in responses],
        "checker": checker,
        "per_source": _group(recs, correct, lambda r: r.source),
        "per_task": _group(recs, correct, lambda r: str(r.metadata.get("task", r.source))),
        "per_answer_type": _group(recs, correct, lambda r: r.answer_type),
        "per_item": {r.id: {"prediction": preds[r.id], "correct": ok} for r, ok in zip(recs, correct)},
    }


@register("records")
class RecordsBenchmark(Benchmark):
    """A mmreason records JSONL (`--benchmark FILE.jsonl`): items are `Record`s, in the training format, so a
    checkpoint's prompt.json template applies; fields question, choices (lettered lines), instruction."""

    fields = ("question", "choices", "instruction")
    uses_model_template = True
    media_hint = "image paths resolve against the records file's folder"

    @classmethod
    def detect(cls, path: Path) -> BenchmarkSpec | None:
        """A records JSONL (.jsonl or .jsonl.gz), or a data file / folder in a layout `mmreason.formats` reads
        (EasyR1, ms-swift, ...)."""
        if not is_jsonl_name(path):
            if path.suffix not in (".json", ".parquet") and not path.is_dir():
                return None
            try:
                layout, _ = open_source(path)
            except (UnknownLayout, FileNotFoundError, RecordError, ValueError):
                return None  # not data this reader knows: another plugin's, or a spec
            if layout == "nep_video":  # FutureBench's own files share it: the futurebench plugin scores those
                return None
        return cls.spec_for(path)

    @classmethod
    def spec_for(cls, path: Path) -> BenchmarkSpec:
        """The spec of a data file or folder read as records (`--data-format` skips `detect` and comes here)."""
        return BenchmarkSpec(name=path.name, scorer="records", data_dir=str(path.resolve()),
                             split=path.name.removesuffix(".gz").removesuffix(".jsonl") if is_jsonl_name(path) else path.stem,
                             system_prompt=None, prompt_template=DEFAULT_TEMPLATE, instruction=BOXED_SUFFIX,
                             mode="boxed", max_new_tokens=512, max_new_tokens_cpu=512, temperature=0.0,
                             source=str(path))

    def data_location(self, annotations):
        return (Path(annotations) if annotations else self.spec.resolved_data_dir()), self.spec.split

    def load(self, data_dir, split):
        if data_dir is None:
            raise ValueError(f"{self.spec.where()}: records benchmark without a records file")
        report = LoadReport(str(data_dir))
        options = format_options_from(self.spec.data_format, self.spec.where())
        recs = list(read_source(data_dir, options, strict=False, report=report))
        if report.skipped:
            logger.warning("%s: %d bad record(s) skipped", data_dir, len(report.skipped))
        self.skipped = [f"{e.where}: {e.reason}" for e in report.skipped]
        self.has_video = any(r.video is not None for r in recs)
        return recs

    def identity(self):
        ident = {"records": str(self.spec.resolved_data_dir())}
        if self.spec.data_format:  # another layout or column reads other items: not the same cache
            ident["data_format"] = dict(sorted(self.spec.data_format.items()))
        if getattr(self, "has_video", False):
            # Clips have been cut by the training loader (start <= t < end) since the cut-leak fix: a cache
            # made before it holds answers that saw the frame at `end`, and is refused rather than reused.
            ident["video_cut"] = "start<=t<end"
        return ident

    def item_id(self, item):
        return item.id

    def prompt_fields(self, item):
        return {"question": item.question, "choices": choices_text(item)}

    def media(self, item):
        media: list[Any] = [str(p) for p in item.image_paths()]
        if item.video is not None:
            # the training loader (half-open cut, frame lists / folders): evaluated as trained
            media.append(VideoInput(str(item.video_path()), start=item.video.start, end=item.video.end, reader="clip",
                               **self.spec.video_part()))
        return media

    def score(self, predictions, items, opts: ScoreOptions):
        if opts.mode not in self.modes:
            raise ValueError(f"{self.spec.where()}: unknown records mode {opts.mode!r}; choose from {self.modes}")
        s = score_records(items, {k: v.get("response") for k, v in predictions.items()}, name=self.spec.name)
        s["skipped_records"] = getattr(self, "skipped", [])
        return s

    def report_md(self, s):
        lines = [f"# Records eval — {s.get('benchmark')}", "",
                 f"Accuracy: **{100 * s['accuracy']:.2f}%** ({s['correct']}/{s['total']}), "
                 f"answers boxed: {s.get('boxed', 'n/a')}", ""]
        for fld in ("per_source", "per_task", "per_answer_type"):
            if s.get(fld):
                lines += [f"## {fld}", "", table(["value", "accuracy %", "correct", "total"],
                          [[k, 100 * g["accuracy"], g["correct"], g["total"]] for k, g in s[fld].items()]), ""]
        return "\n".join(lines)

    def charts(self, s, out_dir):
        groups = s.get("per_task") or s.get("per_source") or {}
        return [hbar_chart({k: 100 * g["accuracy"] for k, g in groups.items()}, out_dir / "records_accuracy.png",
                           f"accuracy per task (overall {100 * s['accuracy']:.1f}%)", color="#55a868")]

    def write_report(self, s, items, predictions, out_dir):
        """Also predictions_scored.jsonl: per record the response, the extracted answer, gold and verdict."""
        rows = [{"id": r.id, "source": r.source, "answer": r.answer, "answer_type": r.answer_type,
                 "response": (predictions.get(r.id) or {}).get("response"), **s["per_item"][r.id]} for r in items]
        path = out_dir / "predictions_scored.jsonl"
        write_text_atomic(path, "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in rows))
        return [*super().write_report(s, items, predictions, out_dir), path]


def evaluate_records(model_path: str | os.PathLike | None, records_path: str | os.PathLike,
                     output_dir: str | os.PathLike, batch_size: int = 16, max_new_tokens: int = 512,
                     limit: int | None = None, temperature: float = 0.0, system_prompt: str | None = None,
                     suffix: str | None = None, backend: str = "hf", progress: bool = True, model: Any = None,
                     min_pixels: int | None = None, max_pixels: int | None = None,
                     on_batch: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Generate answers for the records in `records_path` and score them (`mmreason.eval.run.run_benchmark`).

    Returns the summary written to OUT/scores.json: at least {"accuracy" (a fraction in [0, 1]),
    "accuracy_pct", "total", "correct"}, plus per_source / per_task / per_answer_type breakdowns.
    OUT/predictions.jsonl is the resumable response cache; OUT/predictions_scored.jsonl adds the
    extracted answer, gold and verdict per record. `system_prompt` / `suffix` (the instruction) / pixel bounds:
    None = the checkpoint's prompt.json, else no system message and the boxed instruction; "" = explicitly none.
    `model` may be an already-built backend (mmreason.generation HFBackend/VLLMBackend) to skip reloading."""
    return run_benchmark(model_path, records_path, output_dir, backend=backend, limit=limit, batch_size=batch_size,
                         max_new_tokens=max_new_tokens, temperature=temperature, progress=progress,
                         on_batch=on_batch, backend_obj=model, system_prompt=system_prompt, instruction=suffix,
                         min_pixels=min_pixels, max_pixels=max_pixels)
