"""The one eval pipeline over the benchmark protocol (`mmreason.eval.benchmark`).

`eval run`: resolve the benchmark -> load and limit its items -> render prompts (jinja2; the checkpoint's
prompt.json unless overridden) -> check media -> generate what the prediction cache lacks -> score -> write.
`eval score`: the same benchmark, items and writer, with predictions read from a file."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, Callable

from mmreason.eval.benchmark import Benchmark, Item, ScoreOptions, VideoInput, resolve
from mmreason.eval.cache import PredictionCache, generation_identity, weights_stamp
from mmreason.eval.prompting import EvalPrompt, eval_prompt
from mmreason.eval.report import write_json, write_outputs
from mmreason.eval.spec import BenchmarkSpec
from mmreason.generation import GenerationSettings, load_backend
from mmreason.prompts import MAX_TEXT_CHARS, drop_long_chats
from mmreason.errors import RecordError
from mmreason.media.video import check_video, clip_config
from mmreason.records import check_image
from mmreason.usage import NothingUsable, UsageError, check_count, check_model_path, check_output_dir, check_output_file

logger = logging.getLogger(__name__)

PREDICTIONS = "predictions.jsonl"


def _cuda() -> bool:
    try:
        import torch  # lazy: torch, only to pick a device; imported by model-free commands

        return torch.cuda.is_available()
    except Exception:
        return False


def settings_for(spec: BenchmarkSpec, prompt: EvalPrompt, max_new_tokens: int | None = None,
                 temperature: float | None = None, batch_size: int | None = None) -> GenerationSettings:
    return GenerationSettings(
        max_new_tokens=max_new_tokens or (spec.max_new_tokens if _cuda() else spec.max_new_tokens_cpu),
        temperature=spec.temperature if temperature is None else temperature,
        top_p=spec.top_p,
        batch_size=batch_size or spec.batch_size,
        min_pixels=prompt.min_pixels,
        max_pixels=prompt.max_pixels,
    )


def generate_cached(items: list[Item], cache: PredictionCache, make_backend: Callable[[], Any] | Any,
                    progress: bool = True, on_batch: Callable[[int], None] | None = None) -> int:
    """Generate the items whose id is not in `cache`, appending each finished batch (fsync'd).
    The backend is built only when something is left to generate. Returns how many were generated."""
    todo = [it for it in items if it.id not in cache]
    if not todo:
        return 0
    backend = make_backend() if callable(make_backend) else make_backend
    batches = [0]

    def on_texts(start: int, texts: list[str]) -> None:
        cache.append([{"id": it.id, "response": text} for it, text in zip(todo[start : start + len(texts)], texts)])
        batches[0] += 1
        if on_batch is not None:
            on_batch(batches[0])

    backend.generate([it.backend_input() for it in todo], progress=progress, desc="eval", on_batch=on_texts)
    return len(todo)


def video_check_config(video: VideoInput):
    """The VideoConfig a video input is read with (the clip reader's; qwen-vl-utils reads container files only)."""
    return clip_config(video.fps, video.max_frames, video.min_pixels, video.max_pixels, video.total_pixels)


def check_media(bench: Benchmark, items: list[Item]) -> None:
    """Every image and video file exists and every image decodes, before any model is loaded (a truncated
    image would otherwise stop every rerun at the same batch)."""
    name = bench.spec.name
    missing: dict[str, list[str]] = {"image": [], "video": []}
    corrupt = []
    for it in items:
        for i, m in enumerate(it.media):
            kind, path = ("video", m.path) if isinstance(m, VideoInput) else ("image", m)
            if not isinstance(path, (str, Path)):
                continue  # a decoded (Hub) image
            if not (Path(path).exists() if kind == "video" else Path(path).is_file()):  # a frames folder is a video
                missing[kind].append(str(path))
            elif kind == "image":
                try:  # the image gate: the path to feed (the file itself, or its 8-bit RGB copy)
                    it.media[i] = str(check_image(Path(path), f"{name} item {it.id}"))
                except RecordError as e:
                    corrupt.append(str(e))
            else:
                try:  # decodes every frame of a frame list / folder in the cut, a container at the cut's ends
                    check_video(path, video_check_config(m), m.start, m.end, f"{name} item {it.id}")
                except RecordError as e:
                    corrupt.append(str(e))
    for kind, paths in missing.items():
        if paths:
            raise FileNotFoundError(f"{name}: {len(paths)} {kind} file(s) not found, e.g. {paths[0]} "
                                    f"({bench.media_hint})")
    if corrupt:
        raise ValueError(f"{name}: {len(corrupt)} unreadable image(s) or video(s), e.g. {corrupt[0]}")


def drop_long(items: list[Item], max_chars: int | None) -> tuple[list[Item], list[dict[str, Any]]]:
    """(items to generate, [{"id", "chars"} dropped]): prompts longer than `max_chars` characters never reach the
    tokenizer (a 1 MB question exhausts memory there, at the same batch on every rerun). A dropped item keeps its
    place in the score, without a prediction."""
    return drop_long_chats(items, [it.id for it in items], [it.messages for it in items], max_chars,
                           "max_prompt_chars")


def build_items(bench: Benchmark, raw: list[Any], prompt: EvalPrompt) -> list[Item]:
    items = []
    for r in raw:
        media = bench.media(r)
        text = prompt.user_text(bench.prompt_fields(r))
        items.append(Item(bench.item_id(r), bench.messages(text, media, prompt.system_prompt), media))
    return items


def run_benchmark(model: str | os.PathLike | None, benchmark: str | os.PathLike, output_dir: str | os.PathLike,
                  backend: str = "hf", limit: int | None = None, data_dir: str | None = None, mode: str | None = None,
                  batch_size: int | None = None, max_new_tokens: int | None = None,
                  temperature: float | None = None, judge: Any = None, progress: bool = True,
                  on_batch: Callable[[int], None] | None = None, backend_obj: Any = None,
                  system_prompt: str | None = None, instruction: str | None = None,
                  min_pixels: int | None = None, max_pixels: int | None = None,
                  max_prompt_chars: int | None = MAX_TEXT_CHARS, video_root: str | None = None,
                  data_format: dict | None = None) -> dict[str, Any]:
    """Generate and score any benchmark (a name, a spec YAML, a records .jsonl) end to end; resumable through
    OUT/predictions.jsonl. `system_prompt`, `instruction`, `min_pixels`, `max_pixels` override the spec and the
    checkpoint's prompt.json (None = not given; "" = explicitly none). `backend_obj`: an already-built backend.
    Prompts over `max_prompt_chars` characters are not generated (counted in scores.json `dropped_long`).
    `video_root`: the folder the items' video paths resolve against (the spec's video_root; FutureBench: your
    V1-33K/first_part_video). `data_format`: layout options (mmreason.formats.DataFormatArguments fields) forcing
    how a data file or folder is read; None: detected."""
    for flag, v in (("--limit", limit), ("--batch-size", batch_size), ("--max-new-tokens", max_new_tokens),
                    ("--max-prompt-chars", max_prompt_chars)):
        check_count(v, flag, 1)
    spec, bench = resolve(str(benchmark), data_format)
    if data_dir is not None:
        spec.data_dir = str(Path(data_dir).resolve())
    if video_root is not None:
        if not Path(video_root).is_dir():
            raise UsageError(f"--video-root {video_root}: no such folder")
        spec.video_root = str(Path(video_root).resolve())
    model = None if model is None else str(model)
    mode = mode or spec.mode
    out = check_output_dir(output_dir, "--output-dir")
    prompt = eval_prompt(model, spec, {"system_prompt": system_prompt, "instruction": instruction,
                                       "min_pixels": min_pixels, "max_pixels": max_pixels},
                         uses_model_template=bench.uses_model_template, default_template=bench.default_template)
    settings = settings_for(spec, prompt, max_new_tokens, temperature, batch_size)
    loaded = bench.load(spec.resolved_data_dir(), spec.split)
    if not loaded:
        skipped = getattr(bench, "skipped", [])
        raise NothingUsable(f"{spec.where()}: no usable items ({len(skipped)} bad line(s) skipped"
                            + (f", e.g. {skipped[0]}" if skipped else "") + ")")
    raw = bench.limit(loaded, limit)
    items = build_items(bench, raw, prompt)
    items, dropped_long = drop_long(items, max_prompt_chars)
    if not items:
        raise NothingUsable(f"{spec.where()}: all {len(raw)} prompts are longer than max_prompt_chars="
                            f"{max_prompt_chars}, e.g. {dropped_long[0]['id']} ({dropped_long[0]['chars']} chars)")
    check_media(bench, items)
    write_json(out / "run_config.json", {
        "model": model, "benchmark": spec.name, "spec": spec.source, "mode": mode, "backend": backend, "limit": limit,
        "settings": settings.__dict__, "system_prompt": prompt.system_prompt, "prompt_template": prompt.prompt_template,
        "instruction": prompt.instruction, "prompt_source": prompt.source, **bench.identity()})
    identity = None if backend_obj is not None and model is None else {
        "model": str(model), "weights": weights_stamp(model), "benchmark": spec.name, "split": spec.split,
        "system_prompt": prompt.system_prompt, "prompt_template": prompt.prompt_template,
        "instruction": prompt.instruction, **bench.identity(), **generation_identity(settings)}
    cache = PredictionCache(out / PREDICTIONS, identity=identity)
    t0 = time.time()

    def make_backend():
        check_model_path(model, "--model")  # not the Hub's "Repo id must be in the form ..." for a missing folder
        return load_backend(model, backend, settings)

    n_gen = generate_cached(items, cache, backend_obj or make_backend, progress, on_batch)
    gen_s = time.time() - t0
    preds = {it.id: cache.get(it.id) for it in items if it.id in cache}
    scores = bench.score(preds, raw, ScoreOptions(mode=mode, judge=judge))
    scores["generation"] = {"generated": n_gen, "cached": len(items) - n_gen, "seconds": round(gen_s, 2),
                            "items_per_s": round(n_gen / gen_s, 3) if n_gen and gen_s else None}
    scores["model"] = model
    scores["dropped_long"] = {"max_prompt_chars": max_prompt_chars, "items": dropped_long}
    files = write_outputs(bench, scores, raw, preds, out)
    logger.info("wrote %s", files)
    return scores


def score_file(benchmark: str | os.PathLike, predictions: str | os.PathLike, output: str | os.PathLike,
               annotations: str | None = None, mode: str | None = None, judge: Any = None,
               only_predicted: bool = False, breakdown_from_predictions: bool = False,
               lenient: bool = False, data_format: dict | None = None) -> dict[str, Any]:
    """`mmreason eval score`: score predictions produced anywhere. `annotations` is the benchmark's data
    folder (official layout) or its <split>.json file; without it, the spec's data (else the Hub copy).
    `mode` defaults to the benchmark's first (official) mode. An id predicted twice with different content is an
    error; `lenient`: the first is kept and both places are reported in scores.json `prediction_repeats`.
    No prediction matching any item (an empty file, the wrong benchmark) is an error. `data_format`: as in
    `run_benchmark`."""
    out = check_output_file(output, "--output")
    if not Path(predictions).is_file():
        raise UsageError(f"--predictions {predictions}: no such file")
    spec, bench = resolve(str(benchmark), data_format)
    raw = bench.load(*bench.data_location(annotations))
    preds = bench.read_predictions(predictions)
    conflicts = getattr(preds, "conflicts", [])
    if conflicts and not lenient:
        c = conflicts[0]
        raise UsageError(f"{c['dropped']}: id {c['id']!r} was already predicted differently at {c['kept']} "
                         f"({len(conflicts)} conflicting repeat(s)); remove the repeats or pass --lenient "
                         "(keeps the first)")
    ids = {bench.item_id(r) for r in raw}
    matched = ids & set(preds)
    if not matched:
        skipped = getattr(preds, "skipped", [])
        first = bench.item_id(raw[0]) if raw else None
        if preds:
            why = (f"none of its {len(preds)} prediction ids (e.g. {next(iter(preds))!r}) matches the {len(ids)} items "
                   f"of {spec.name} (e.g. {first!r}): the wrong --benchmark or --annotations for this file?")
        else:
            why = f"no predictions ({len(skipped)} line(s) skipped" + (f", e.g. {skipped[0]}" if skipped else "") + ")"
        raise NothingUsable(f"{predictions}: {why}")
    if only_predicted:
        raw = bench.select(raw, set(preds))
    scores = bench.score(preds, raw, ScoreOptions(mode=mode or bench.modes[0], judge=judge,
                                                  breakdown_from_predictions=breakdown_from_predictions))
    if hasattr(preds, "report"):
        scores["prediction_repeats"] = preds.report()
    scores["predictions_matched"] = len(matched)
    write_outputs(bench, scores, raw, preds, out.parent, scores_name=out.name)
    return scores
