"""Evaluate a model on a mmreason records file (e.g. the synthetic test split): batched generation,
last-\\boxed{} extraction, answer-type-aware comparison, predictions JSONL + accuracy summary."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, Callable

from mmreason.verify import extract_boxed, verify_many
from mmreason.eval.cache import PredictionCache, generation_identity, weights_stamp
from mmreason.generation import GenerationSettings, load_backend
from mmreason.eval.report import write_json, write_outputs
from mmreason.eval.run import PREDICTIONS, generate_cached
from mmreason.records import BOXED_SUFFIX, Record, load_records, prompt_messages

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


def evaluate_records(model_path: str | None, records_path: str | os.PathLike, output_dir: str | os.PathLike,
                     batch_size: int = 16, max_new_tokens: int = 512, limit: int | None = None,
                     temperature: float = 0.0, system_prompt: str | None = None, suffix: str | None = BOXED_SUFFIX,
                     backend: str = "hf", progress: bool = True, model: Any = None,
                     min_pixels: int | None = None, max_pixels: int | None = None,
                     on_batch: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Generate answers for the records in `records_path` and score them.

    Returns the summary written to OUT/scores.json: at least {"accuracy" (a fraction in [0, 1]),
    "accuracy_pct", "total", "correct"}, plus per_source / per_task / per_answer_type breakdowns.
    OUT/predictions.jsonl is the resumable response cache; OUT/predictions_scored.jsonl adds the
    extracted answer, gold and verdict per record. `model` may be an already-built backend
    (mmreason.generation.backends.HFBackend/VLLMBackend) to skip reloading."""
    recs, report = load_records(records_path, strict=False)
    if report.skipped:
        logger.warning("%s: %d bad record(s) skipped", records_path, len(report.skipped))
    recs = recs[:limit] if limit is not None else recs
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    settings = GenerationSettings(max_new_tokens=max_new_tokens, temperature=temperature, batch_size=batch_size,
                                  min_pixels=min_pixels, max_pixels=max_pixels)
    prompts = [(r.id, prompt_messages(r, system_prompt, suffix), [str(p) for p in r.image_paths()]) for r in recs]
    identity = None if model is not None and model_path is None else {
        "model": str(model_path), "weights": weights_stamp(model_path), "records": str(Path(records_path).resolve()),
        "system_prompt": system_prompt, "suffix": suffix, **generation_identity(settings)}
    cache = PredictionCache(out / PREDICTIONS, identity=identity)
    t0 = time.time()
    n_gen = generate_cached(prompts, cache, model or (lambda: load_backend(str(model_path), backend, settings)),
                            progress, on_batch)
    gen_s = time.time() - t0
    responses = {r.id: cache.get(r.id)["response"] for r in recs if r.id in cache}
    s = score_records(recs, responses, name=Path(records_path).name)
    s["skipped_records"] = [f"{e.where}: {e.reason}" for e in report.skipped]
    s["generation"] = {"generated": n_gen, "cached": len(recs) - n_gen, "seconds": round(gen_s, 2),
                       "items_per_s": round(n_gen / gen_s, 3) if n_gen and gen_s else None}
    s["model"] = str(model_path) if model_path else None
    rows = []
    for r in recs:
        rows.append({"id": r.id, "source": r.source, "answer": r.answer, "answer_type": r.answer_type,
                     "response": responses.get(r.id), **s["per_item"][r.id]})
    tmp = out / "predictions_scored.jsonl.tmp"
    import json

    tmp.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in rows), encoding="utf-8")
    os.replace(tmp, out / "predictions_scored.jsonl")
    write_json(out / "run_config.json", {"model": s["model"], "records": str(records_path), "limit": limit,
                                         "settings": settings.__dict__, "system_prompt": system_prompt,
                                         "suffix": suffix, "backend": backend})
    write_outputs(s, out)
    return s
