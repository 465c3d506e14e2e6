"""`mmreason eval run`: generate (with a resumable prediction cache) and score a benchmark."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, Callable

from mmreason.eval import mathvista, wemath
from mmreason.eval.cache import PredictionCache, generation_identity, weights_stamp
from mmreason.generation import GenerationSettings, load_backend
from mmreason.eval.report import write_json, write_outputs
from mmreason.eval.spec import BenchmarkSpec, load_spec
from mmreason.records import RecordError, chat_messages, check_image

logger = logging.getLogger(__name__)

PREDICTIONS = "predictions.jsonl"

# id, messages, images
Prompt = tuple[str, list[dict[str, Any]], list[Any]]


def _cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:
        return False


def settings_for(spec: BenchmarkSpec, max_new_tokens: int | None = None, temperature: float | None = None,
                 batch_size: int | None = None) -> GenerationSettings:
    return GenerationSettings(
        max_new_tokens=max_new_tokens or (spec.max_new_tokens if _cuda() else spec.max_new_tokens_cpu),
        temperature=spec.temperature if temperature is None else temperature,
        top_p=spec.top_p,
        batch_size=batch_size or spec.batch_size,
        min_pixels=spec.min_pixels,
        max_pixels=spec.max_pixels,
    )


def generate_cached(prompts: list[Prompt], cache: PredictionCache, make_backend: Callable[[], Any],
                    progress: bool = True, on_batch: Callable[[int], None] | None = None,
                    extra: Callable[[str], dict[str, Any]] | None = None) -> int:
    """Generate the prompts whose id is not in `cache`, appending each finished batch (fsync'd).
    The backend is built only when something is left to generate. Returns how many were generated."""
    todo = [p for p in prompts if p[0] not in cache]
    if not todo:
        return 0
    backend = make_backend() if callable(make_backend) else make_backend
    batches = [0]

    def on_texts(start: int, texts: list[str]) -> None:
        rows = []
        for (pid, _, _), text in zip(todo[start : start + len(texts)], texts):
            rows.append({"id": pid, "response": text, **(extra(pid) if extra else {})})
        cache.append(rows)
        batches[0] += 1
        if on_batch is not None:
            on_batch(batches[0])

    backend.generate([(m, imgs) for _, m, imgs in todo], progress=progress, desc="eval", on_batch=on_texts)
    return len(todo)


def limit_wemath(rows: list[dict], limit: int | None) -> list[dict]:
    """The first composite problems (whole groups: their one-step rows and the composite row), in
    order of first appearance, up to `limit` rows (at least one group)."""
    if limit is None:
        return rows
    order: list[tuple[str, str]] = []
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        g = (r["key"].split("_")[0], r["ID"])
        if g not in groups:
            order.append(g)
            groups[g] = []
        groups[g].append(r)
    out: list[dict] = []
    for g in order:
        if out and len(out) + len(groups[g]) > limit:
            break
        out += groups[g]
    return out


def run_benchmark(model: str | None, benchmark: str, output_dir: str | os.PathLike, backend: str = "hf",
                  limit: int | None = None, data_dir: str | None = None, mode: str | None = None,
                  batch_size: int | None = None, max_new_tokens: int | None = None,
                  temperature: float | None = None, judge: Any = None, progress: bool = True,
                  on_batch: Callable[[int], None] | None = None, backend_obj: Any = None) -> dict[str, Any]:
    """Run MathVista / We-Math / a spec file end to end; resumable through OUT/predictions.jsonl."""
    spec = load_spec(benchmark)
    if data_dir is not None:
        spec.data_dir = str(Path(data_dir).resolve())
    mode = mode or spec.mode
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    settings = settings_for(spec, max_new_tokens, temperature, batch_size)
    ddir = spec.resolved_data_dir()
    prompts: list[Prompt] = []
    if spec.scorer == "mathvista":
        problems = mathvista.load_problems(ddir, spec.split, spec.hub_id or mathvista.HUB_ID)
        pids = list(problems)[:limit] if limit is not None else list(problems)
        for pid in pids:
            p = problems[pid]
            choices = "\n".join(f"({chr(65 + i)}) {c}" for i, c in enumerate(p.get("choices") or []))
            text = spec.prompt_template.format(query=mathvista.build_query(p), question=p["question"],
                                               choices=choices, instruction=spec.instruction)
            imgs = mathvista.problem_images(p)
            prompts.append((pid, chat_messages(text, len(imgs), spec.system_prompt), imgs))
    elif spec.scorer == "wemath":
        rows = limit_wemath(wemath.load_rows(ddir, spec.split, spec.hub_id or wemath.HUB_ID), limit)
        for r in rows:
            text = spec.prompt_template.format(query=wemath.build_prompt(r), question=r["question"],
                                               option=r["option"], instruction=spec.instruction)
            imgs = wemath.row_images(r)
            prompts.append((wemath.item_id(r), chat_messages(text, len(imgs), spec.system_prompt), imgs))
    else:
        raise ValueError(f"spec {spec.name}: scorer {spec.scorer!r} is not a benchmark scorer (mathvista|wemath)")

    missing, corrupt = [], []
    for pid, _, imgs in prompts:
        for i in imgs:
            if not isinstance(i, (str, Path)):
                continue
            if not Path(i).is_file():
                missing.append(str(i))
                continue
            try:  # a truncated image would otherwise stop every rerun at the same batch
                check_image(Path(i), f"{spec.name} item {pid}")
            except RecordError as e:
                corrupt.append(str(e))
    if missing:
        raise FileNotFoundError(
            f"{spec.name}: {len(missing)} image file(s) not found, e.g. {missing[0]} (MathVista images ship only "
            f"with the Hub dataset {spec.hub_id}: unpack its images/ into the data folder, or run online without "
            f"--data-dir)")
    if corrupt:
        raise ValueError(f"{spec.name}: {len(corrupt)} unreadable image(s), e.g. {corrupt[0]}")
    write_json(out / "run_config.json", {"model": model, "benchmark": spec.name, "spec": spec.source, "mode": mode,
                                         "backend": backend, "limit": limit, "settings": settings.__dict__,
                                         "system_prompt": spec.system_prompt, "prompt_template": spec.prompt_template})
    identity = None if backend_obj is not None and model is None else {
        "model": str(model), "weights": weights_stamp(model), "benchmark": spec.name, "split": spec.split,
        "system_prompt": spec.system_prompt, "prompt_template": spec.prompt_template, "instruction": spec.instruction,
        **generation_identity(settings)}
    cache = PredictionCache(out / PREDICTIONS, identity=identity)
    t0 = time.time()
    n_gen = generate_cached(prompts, cache, backend_obj or (lambda: load_backend(model, backend, settings)),
                            progress, on_batch)
    gen_s = time.time() - t0
    preds = {pid: cache.get(pid) for pid, _, _ in prompts if pid in cache}
    if spec.scorer == "mathvista":
        scores = mathvista.score(preds, problems, mode=mode, judge=judge, ids=[p[0] for p in prompts])
    else:
        nodes = None
        if spec.knowledge_nodes:
            kp = Path(spec.knowledge_nodes)
            kp = kp if kp.is_absolute() or ddir is None else ddir / kp
            nodes = wemath.load_knowledge_nodes(kp) if kp.is_file() else None
        scores = wemath.score(preds, rows, mode=mode, nodes=nodes)
    scores["generation"] = {"generated": n_gen, "cached": len(prompts) - n_gen, "seconds": round(gen_s, 2),
                            "items_per_s": round(n_gen / gen_s, 3) if n_gen and gen_s else None}
    scores["model"] = model
    files = write_outputs(scores, out)
    logger.info("wrote %s", files)
    return scores


def score_file(benchmark: str, predictions: str | os.PathLike, output: str | os.PathLike,
               annotations: str | None = None, mode: str = "official", judge: Any = None,
               only_predicted: bool = False, breakdown_from_predictions: bool = False) -> dict[str, Any]:
    """`mmreason eval score`: score predictions produced anywhere. `annotations` is the benchmark's
    data folder (official layout) or its testmini JSON file; without it the Hub copy is loaded."""
    ann = Path(annotations) if annotations else None
    ddir, split = (ann.parent, ann.stem) if ann is not None and ann.is_file() else (ann, "testmini")
    if benchmark == "mathvista":
        problems = mathvista.load_problems(ddir, split)
        preds = mathvista.read_predictions(predictions)
        ids = [p for p in problems if p in preds] if only_predicted else None
        scores = mathvista.score(preds, problems, mode=mode, judge=judge, ids=ids,
                                 breakdown_from_predictions=breakdown_from_predictions)
    elif benchmark == "wemath":
        rows = wemath.load_rows(ddir, split)
        preds = wemath.read_predictions(predictions)
        if only_predicted:
            ids = set(preds)
            keep = {(r["key"].split("_")[0], r["ID"]) for r in rows if wemath.item_id(r) in ids}
            rows = [r for r in rows if (r["key"].split("_")[0], r["ID"]) in keep]
        nodes_path = (ddir / "knowledge_structure_nodes.json") if ddir is not None else None
        nodes = wemath.load_knowledge_nodes(nodes_path) if nodes_path and nodes_path.is_file() else None
        scores = wemath.score(preds, rows, mode=mode, nodes=nodes)
    else:
        raise ValueError(f"eval score: unknown benchmark {benchmark!r} (mathvista | wemath)")
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_outputs(scores, out.parent, scores_name=out.name)
    return scores
