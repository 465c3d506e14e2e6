"""`mmreason data build`: a cold-start chain-of-thought set from a recipe and a teacher.

    mmreason data build --recipe data_recipes/distilled.yaml --out runs/data/distilled [--limit N]
        [--set teacher.model=Qwen/Qwen2.5-VL-72B-Instruct] [--teacher.base_url http://127.0.0.1:8000/v1]
        [--overwrite] [--no-progress] [--help-recipe]

Output folder:
  train.jsonl      SFT-ready records (`solution` = the target; images under images/, paths relative to the file)
  ledger.jsonl     one line per source question, in source order: kept or dropped, why, per-sample outcomes
  stats.json       acceptance rates and counts per filter, aggregated from the ledger
  build_state.json the recipe fingerprint (a rerun must use the same recipe to resume)

Resumable and lossless: the questions are processed concurrently but committed in source order; a question's
records are appended (one write per line, flush + fsync) before its ledger line. A rerun with the same
arguments drops any records whose question has no ledger line (a kill between the two), repairs a partial
last line, and continues after the last committed question, so a killed + resumed build equals an
uninterrupted one (ids = source id + recipe name + sample index).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import os
import re
import shutil
import sys
import traceback
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from tqdm import tqdm

from mmreason.data.decontam import BenchmarkIndex, normalise
from mmreason.data.kinds.registry import kind_of, load_recipe, recipe_help
from mmreason.data.kinds.runner import Outcome, Runner, Target
from mmreason.data.recipe import Recipe, RecipeError, parse_overrides, to_dict
from mmreason.data.sources import SourceItem, is_records_source, iter_sources
from mmreason.data.teachers import Teacher, TeacherError, make_teacher, redact
from mmreason.disk_full import guard_disk_full, human, write_text_atomic
from mmreason.errors import RecordError
from mmreason.jsonl import AppendLog, read_jsonl_repair, rewrite_jsonl
from mmreason.media.video import VideoConfig, check_record_video
from mmreason.offline import offline_defaults
from mmreason.records import Record, check_image, record_from_dict
from mmreason.usage import check_output_dir, positive_int
from mmreason.verify import verify_many

logger = logging.getLogger(__name__)

LEDGER, STATE, STATS = "ledger.jsonl", "build_state.json", "stats.json"


# ---------------------------------------------------------------- verification


def make_verifier(timeout: float) -> Callable[[str | None, Record], str]:
    """Answer check -> correct | incorrect | timeout | error, through `mmreason.verify.verify_many`
    (in-process quick checks, math-verify in worker processes with a hard per-call timeout)."""

    def verify(pred: str | None, rec: Record) -> str:
        if pred is None or rec.answer is None:
            return "incorrect"
        return verify_many([(pred, rec.answer, rec.answer_type, rec.choices, rec.precision)], timeout=timeout)[0].status

    return verify


# ---------------------------------------------------------------- the builder


TRANSPORT_FAILURES = {"http_error", "timeout", "connection_error", "engine_error"}
# A question without a kept sample where some sample never got an answer (a transport failure): committed
# with this status, it is not done - the next run asks again. Only answers the teacher gave drop a question.
RETRYABLE = "retryable"


def transport_failed(entry: dict) -> bool:
    """Every sample of this question failed to reach the teacher (not a bad reply: no reply at all)."""
    return entry["status"] == RETRYABLE and bool(entry["samples"]) and set(entry["samples"]) <= TRANSPORT_FAILURES


def safe_filename(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", s)


class Builder:
    def __init__(self, recipe: Recipe, out_dir: str | Path, limit: int | None = None, teacher: Teacher | None = None,
                 progress: bool = True):
        self.r = recipe
        self.kind = kind_of(recipe)
        self.out = Path(out_dir)
        self.limit = limit if limit is not None else recipe.source.limit
        self._teacher = teacher
        self.progress = progress
        self.records_path = self.out / recipe.output.file
        self.images_dir = self.out / "images"
        key_env = recipe.teacher.api_key_env
        self.secrets = [k for k in (os.environ.get(key_env) if key_env else None, getattr(teacher, "secret", None)) if k]

    def redact(self, obj: Any) -> Any:
        """`obj` with the teacher's API key replaced, whatever part of a reply it came from."""
        for k in self.secrets:
            obj = redact(obj, k)
        return obj

    # -------------------------------------------------------------- resume
    def prepare(self, overwrite: bool) -> dict[str, dict]:
        """Check the state file, repair partial lines, drop uncommitted records. Returns committed ledger rows."""
        self.out.mkdir(parents=True, exist_ok=True)
        state_path = self.out / STATE
        fp = self.r.fingerprint()
        if overwrite:
            for name in (self.r.output.file, LEDGER, STATS, STATE):
                (self.out / name).unlink(missing_ok=True)
        if state_path.exists():
            old = json.loads(state_path.read_text())
            if old.get("fingerprint") != fp:
                raise RecipeError(self.r.path, "<recipe>", f"{self.out} holds a build of a different recipe or settings "
                                  f"(fingerprint {old.get('fingerprint')} != {fp}); use another --out or --overwrite")
        else:
            write_text_atomic(state_path, json.dumps({"fingerprint": fp, "recipe": self.r.name, "kind": self.kind.name,
                                                      "recipe_file": self.r.path}, indent=1))
        ledger, bad_ledger = read_jsonl_repair(self.out / LEDGER)
        records, bad_records = read_jsonl_repair(self.records_path)
        per_source = Counter(row.get("metadata", {}).get("source_id") for row in records)
        # The committed prefix: ledger rows up to the first one whose records are not all there.
        n_ok = next((i for i, row in enumerate(ledger) if per_source[row.get("source_id")] < row.get("kept", 0)), len(ledger))
        if n_ok < len(ledger):
            ledger = ledger[:n_ok]
            rewrite_jsonl(self.out / LEDGER, ledger)
        retry = [row for row in ledger if row.get("status") == RETRYABLE]
        if retry:  # asked again below; their fresh rows are appended
            ledger = [row for row in ledger if row.get("status") != RETRYABLE]
            rewrite_jsonl(self.out / LEDGER, ledger)
            logger.info("resume: retrying %d question(s) whose samples got no answer from the teacher", len(retry))
        done = {row["source_id"]: row for row in ledger}
        keep, seen = [], set()
        for row in records:
            sid = row.get("metadata", {}).get("source_id")
            if sid in done and row.get("id") not in seen:
                keep.append(row)
                seen.add(row["id"])
        if len(keep) != len(records):
            rewrite_jsonl(self.records_path, keep)
        self.repaired = {"partial_ledger_lines": bad_ledger, "partial_record_lines": bad_records,
                         "uncommitted_records_dropped": len(records) - len(keep)}
        if any(self.repaired.values()):
            logger.warning("resume repair in %s: %s", self.out, self.repaired)
        return done

    # -------------------------------------------------------------- one question
    def process(self, item: SourceItem, runner: Runner, index: BenchmarkIndex | None) -> tuple[dict, list[dict]]:
        """One source question -> its ledger entry and output rows: check, decontaminate, ask, output."""
        entry: dict[str, Any] = {"index": item.index, "source_id": item.id, "status": "dropped", "reason": None,
                                 "kept": 0, "samples": {}, "requests": 0}
        drop = self.unusable(item) or self.contaminated(item.record, index)
        if drop:
            entry.update(drop)
            return entry, []
        outcome, drop = self.generate(item.record, runner)
        if drop:
            entry.update(drop)
            return entry, []
        entry["samples"] = {k: v for k, v in sorted(outcome.samples.items()) if v}
        entry["requests"] = outcome.requests
        if not outcome.targets:
            if TRANSPORT_FAILURES & set(entry["samples"]):
                entry.update(status=RETRYABLE, reason="transport_failure")
            else:
                entry["reason"] = outcome.drop_reason()
            return entry, []
        try:
            rows = self.output(item.record, outcome.targets)
        except RecordError as e:  # a kind's bug: counted, not written as a line no consumer could load
            entry.update(reason="invalid_output", detail=e.reason)
            return entry, []
        entry.update(status="kept", kept=len(rows))
        return entry, rows

    def unusable(self, item: SourceItem) -> dict | None:
        """Why a source question cannot be used by this kind (ledger fields), or None."""
        if item.error:
            return {"reason": item.error, "detail": item.detail}
        rec = item.record
        assert rec is not None
        why = self.kind.skip_reason(rec)
        if why:
            return {"reason": why}
        if rec.video is not None and not self.kind.video:
            return {"reason": "video_not_supported"}
        if rec.video is not None:
            try:
                check_record_video(rec, VideoConfig())  # opens it and counts the frames of its cut
            except RecordError as e:
                return {"reason": "bad_video", "detail": e.reason}
        try:
            for p in rec.image_paths():
                check_image(p, rec.id)
        except RecordError as e:
            return {"reason": "bad_image", "detail": e.reason}
        return None

    def contaminated(self, rec: Record | None, index: BenchmarkIndex | None) -> dict | None:
        """The benchmark item this question overlaps (ledger fields), or None."""
        if index is None or rec is None:
            return None
        hit = index.check(rec.question, rec.image_paths())
        return {"reason": "decontaminated", "decontam": hit.to_json()} if hit is not None else None

    def generate(self, rec: Record, runner: Runner) -> tuple[Outcome | None, dict | None]:
        """The kind's teacher calls; a bug in one question is recorded, not fatal (a dead teacher is)."""
        try:
            return runner.run(rec), None
        except TeacherError:
            raise
        except Exception as e:  # noqa: BLE001 - one bad question must not end the build
            logger.error("question %s failed: %s", rec.id, traceback.format_exc())
            return None, {"reason": "internal_error", "detail": f"{type(e).__name__}: {e}"[:300]}

    def output(self, rec: Record, targets: list[Target]) -> list[dict]:
        images = self.output_images(rec)
        return [self.output_record(rec, t, images).to_json() for t in targets]

    def output_images(self, rec: Record) -> list[str]:
        out = []
        for j, src in enumerate(rec.image_paths()):
            src_abs = src.resolve()
            try:
                rel_existing = src_abs.relative_to(self.out.resolve())
            except ValueError:
                rel_existing = None
            if rel_existing is not None:  # already inside the output folder (HF sources)
                out.append(str(rel_existing))
            elif self.r.output.copy_images:
                self.images_dir.mkdir(parents=True, exist_ok=True)
                tag = hashlib.sha256(rec.id.encode()).hexdigest()[:6]  # distinct ids never share a file name
                dst = self.images_dir / f"{safe_filename(rec.id)}-{tag}-{j}{src.suffix.lower() or '.png'}"
                if not dst.exists():
                    tmp = dst.with_name(dst.name + ".tmp")
                    with guard_disk_full(tmp, f"a copy of {src} ({human(src_abs.stat().st_size)})"):
                        shutil.copyfile(src_abs, tmp)
                    os.replace(tmp, dst)
                out.append(str(dst.relative_to(self.out)))
            else:
                out.append(os.path.relpath(src_abs, self.out.resolve()))
        return out

    def output_record(self, rec: Record, t: Target, images: list[str]) -> Record:
        """The output record of one target: the source record with the target as its solution (or, for an
        unlabeled kind, as a new question without answer), validated like any records file line."""
        meta = {
            "source_id": rec.id,
            "recipe": self.r.name,
            "kind": self.kind.name,
            "teacher": f"{self.r.teacher.backend}:{self.r.teacher.model}",
            "prompt_version": self.r.prompt_version(),
            "sample_index": t.sample_index,
            **t.extra,
        }
        out = dataclasses.replace(rec, id=f"{rec.id}--{self.r.name}--{t.sample_index}", images=images, video=None,
                                  solution=t.text, metadata=meta, base_dir=str(self.out))
        if self.kind.output is not None:  # the kind's own record (it keeps the provenance metadata)
            own = self.kind.output(rec, t, self.out)
            out = dataclasses.replace(own, id=out.id, metadata={**meta, **own.metadata}, base_dir=str(self.out))
        elif self.kind.unlabeled:  # a new question about the same image, no label yet
            meta["source_question"] = rec.question
            out = dataclasses.replace(out, question=t.text, solution=None, answer=None, answer_type="text",
                                      choices=None, precision=None, unit=None)
        return record_from_dict(out.to_json(), f"{self.records_path} (record {out.id})", self.out,
                                require_answer=not self.kind.unlabeled and self.kind.needs_gold, check_media=False)

    # -------------------------------------------------------------- run
    def run(self, overwrite: bool = False) -> dict:
        done = self.prepare(overwrite)
        items = []
        for item in iter_sources(self.r.source, self.images_dir, self.out):
            if self.limit is not None and len(items) >= self.limit:
                break
            items.append(item)
        source_questions = {" ".join(normalise(it.record.question)) for it in items if it.record is not None}
        pending = [it for it in items if it.id not in done]
        index = BenchmarkIndex.load(self.r.decontam) if self.r.decontam.enabled and pending else None
        teacher = self._teacher or (make_teacher(self.r.teacher) if pending else None)
        records_log, ledger_log = AppendLog(self.records_path), AppendLog(self.out / LEDGER)
        try:
            if pending:
                runner = Runner(self.r, teacher, make_verifier(self.r.filters.verify_timeout), source_questions)
                self._run_pending(pending, runner, index, records_log, ledger_log, len(items) - len(pending))
        finally:
            records_log.close()
            ledger_log.close()
            if teacher is not None and self._teacher is None:
                teacher.close()
        stats = self.write_stats(items)
        return stats

    def _run_pending(self, pending, runner, index, records_log, ledger_log, initial) -> None:
        workers = max(1, getattr(runner.teacher, "parallel_questions", 1))
        window = 2 * workers
        bar = tqdm(total=initial + len(pending), initial=initial, desc=f"build {self.r.name}", unit="q",
                   disable=not self.progress, dynamic_ncols=True)
        streak: list[tuple[dict, list[dict]]] = []
        with ThreadPoolExecutor(workers, thread_name_prefix="question") as pool:
            futures: list[Future] = []
            nxt = 0
            for pos in range(len(pending)):
                while nxt < len(pending) and nxt < pos + window:
                    futures.append(pool.submit(self.process, pending[nxt], runner, index))
                    nxt += 1
                entry, rows = futures[pos].result()  # commit in source order
                futures[pos] = None  # type: ignore[call-overload]
                if transport_failed(entry):  # held back: a run of these means the teacher is down
                    streak.append((entry, rows))
                    if len(streak) >= self.r.teacher.max_failed_questions:
                        for f in futures[pos + 1 :]:
                            f.cancel()
                        raise TeacherError(
                            f"teacher unavailable: {len(streak)} consecutive questions got only transport failures "
                            f"({streak[-1][0]['samples']}); they were not committed - fix the server and rerun to resume")
                    continue
                for e, r in streak + [(entry, rows)]:
                    if r:
                        records_log.append(self.redact(r))
                    ledger_log.append([self.redact(e)])
                bar.update(len(streak) + 1)
                streak.clear()
            for e, r in streak:  # a failing tail that stayed below the limit is committed as retryable
                ledger_log.append([self.redact(e)])
        bar.close()

    def write_stats(self, items: list[SourceItem]) -> dict:
        ledger, _ = read_jsonl_repair(self.out / LEDGER)
        by_id = {row["source_id"]: row for row in ledger}
        rows = [by_id[it.id] for it in items if it.id in by_id]
        dropped = Counter(row["reason"] for row in rows if row["status"] == "dropped")
        retryable = [row["source_id"] for row in rows if row["status"] == RETRYABLE]
        samples: Counter = Counter()
        for row in rows:
            samples.update(row["samples"])
        n_samples = sum(samples.values())
        kept_q = sum(row["status"] == "kept" for row in rows)
        stats = {
            "recipe": self.r.name,
            "kind": self.kind.name,
            "recipe_file": self.r.path,
            "prompt_version": self.r.prompt_version(),
            "teacher": {"backend": self.r.teacher.backend, "model": self.r.teacher.model},
            "source": self.r.source.path,
            "complete": len(rows) == len(items) and not retryable,
            "questions": {
                "total": len(items),
                "processed": len(rows),
                "kept": kept_q,
                "dropped": len(rows) - kept_q - len(retryable),
                "retryable": len(retryable),
                "dropped_by_reason": dict(sorted(dropped.items())),
                "yield": round(kept_q / (len(rows) - len(retryable)), 4) if len(rows) > len(retryable) else 0.0,
            },
            "records": sum(row["kept"] for row in rows),
            "samples": {
                "total": n_samples,
                "by_outcome": dict(sorted(samples.items())),
                "acceptance_rate": round((samples["accepted"] + samples["over_cap"]) / n_samples, 4) if n_samples else 0.0,
            },
            "teacher_requests": sum(row["requests"] for row in rows),
            "decontaminated": [{"source_id": row["source_id"], **row["decontam"]} for row in rows if row.get("decontam")],
            "skipped": [{"source_id": row["source_id"], "reason": row["reason"], "detail": row.get("detail", "")}
                        for row in rows if row.get("detail")],
            "resume_repair": getattr(self, "repaired", {}),
            "retryable": retryable,
        }
        stats = self.redact(stats)
        write_text_atomic(self.out / STATS, json.dumps(stats, indent=1, ensure_ascii=False))
        return stats


def build(recipe: Recipe, out_dir: str | Path, limit: int | None = None, teacher: Teacher | None = None,
          overwrite: bool = False, progress: bool = True) -> dict:
    """Build (or resume) a dataset; returns the stats dict also written to OUT/stats.json."""
    return Builder(recipe, out_dir, limit, teacher, progress).run(overwrite)


# ---------------------------------------------------------------- CLI


class RedactFilter(logging.Filter):
    """Replaces the teacher's API key (added to `secrets` once the recipe names its variable) in every log line."""

    def __init__(self):
        super().__init__()
        self.secrets: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            msg = record.getMessage()
            for k in self.secrets:
                msg = redact(msg, k)
            record.msg, record.args = msg, None
        return True


def split_dotted_flags(extra: list[str]) -> list[str]:
    """`--teacher.model X` / `--teacher.model=X` -> ['teacher.model=X']."""
    out, i = [], 0
    while i < len(extra):
        a = extra[i]
        if not a.startswith("--") or "." not in a.split("=", 1)[0]:
            raise SystemExit(f"mmreason data build: unrecognised argument {a!r} (recipe fields: --section.field VALUE)")
        if "=" in a:
            out.append(a[2:])
            i += 1
        else:
            if i + 1 >= len(extra):
                raise SystemExit(f"mmreason data build: {a} needs a value")
            out.append(f"{a[2:]}={extra[i + 1]}")
            i += 2
    return out


def main(argv: list[str] | None = None) -> int:
    offline_defaults()
    ap = argparse.ArgumentParser(
        prog="mmreason data build",
        description="Build a cold-start CoT set (distilled | reflection | caption | self_critic, or a kind plugin) "
        "or new unlabeled questions from a recipe and a teacher. Any recipe field can be overridden: --set section.field=VALUE "
        "or --section.field VALUE (values parsed as YAML).",
    )
    ap.add_argument("--recipe", help="data_recipes/<kind>.yaml")
    ap.add_argument("--out", help="output folder (rerun with the same arguments to resume)")
    ap.add_argument("--limit", type=positive_int, default=None, help="use only the first N source questions")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe field")
    ap.add_argument("--overwrite", action="store_true", help="discard a previous build in --out")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    ap.add_argument("--help-recipe", action="store_true", help="print every recipe field with its documentation")
    args, extra = ap.parse_known_args(argv)
    if args.help_recipe:
        print(recipe_help())
        return 0
    if not args.recipe or not args.out:
        ap.error("--recipe and --out are required")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    redactor = RedactFilter()
    for handler in logging.getLogger().handlers:
        handler.addFilter(redactor)
    try:
        overrides = parse_overrides(args.set + split_dotted_flags(extra))
        recipe = load_recipe(args.recipe, overrides)
        if recipe.teacher.api_key_env and os.environ.get(recipe.teacher.api_key_env):
            redactor.secrets.append(os.environ[recipe.teacher.api_key_env])
        check_output_dir(args.out, "--out")
        stats = build(recipe, args.out, args.limit, overwrite=args.overwrite, progress=not args.no_progress)
    except (RecipeError, TeacherError, FileNotFoundError, ValueError) as e:
        print(f"mmreason data build: error: {e}", file=sys.stderr)
        return 2
    q = stats["questions"]
    if q["retryable"]:
        failed = {k: v for k, v in stats["samples"]["by_outcome"].items() if k in TRANSPORT_FAILURES}
        print(f"mmreason data build: incomplete: {q['retryable']} question(s) got no answer from the teacher "
              f"(samples without one: {failed}); they are not dropped - run the same command again to retry them; "
              f"stats: {Path(args.out) / STATS}", file=sys.stderr)
        return 3
    if not stats["records"]:
        print(f"mmreason data build: error: no records built from {q['total']} source questions (kept {q['kept']}, "
              f"dropped {q['dropped']}: {q['dropped_by_reason']}); stats: {Path(args.out) / STATS}", file=sys.stderr)
        return 2
    print(f"{stats['recipe']}: {stats['records']} records from {q['kept']}/{q['total']} questions "
          f"(dropped {q['dropped']}: {q['dropped_by_reason']}); sample acceptance {stats['samples']['acceptance_rate']}; "
          f"stats: {Path(args.out) / STATS}")
    return 0


__all__ = ["build", "Builder", "main", "make_verifier", "to_dict", "is_records_source"]
