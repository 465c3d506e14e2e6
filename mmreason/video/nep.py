"""`mmreason nep build`: NEP training records, from the released V1-33K layout (no teacher needed) or from raw
videos + captions through a teacher (`--recipe`).

    mmreason nep build --input V1-33K/next_event_prediction.json --video-root V1-33K/first_part_video \
        --strategy sft|cft|distill|mix|mcq --out DIR [--seed 0] [--max-samples N] [--lenient]
    mmreason nep build --recipe data_recipes/nep_raw.yaml --strategy sft|cft|distill|mix --out DIR [--limit N]
        [--set teacher.backend=none] [--set source.path=videos.jsonl] [--overwrite]

Each entry of `next_event_prediction.json` becomes one record per strategy (prompts in `prompts.py`):
  sft      past clip + a "what happens next" question      -> video_split.split_caption.caption_part2
  distill  think/answer system prompt, same questions       -> <think>rewritten_reasoning</think><answer>rewritten_prediction</answer>
  cft      critique system prompt; question + that solution -> "Critique:\\n{o3 Critique}\\n\\nConclusion:\\n{Conclusion}."
           then the official wrong:right resampling (ratio 2.1, `--cft-wrong-ratio`)
  mix      sft + cft + distill of the same entries, all kept (equal shares of --max-samples if given)
  mcq      qa.{Question, Options A-D, Answer} as a choice record (for GRPO / eval on V1-33K itself)
The past clip of an entry is `<video-root>/<video_path without its first folder>`, as the official
script joins it (the past clips are pre-cut in the dataset, so records carry no start/end).

Raw videos (`--recipe`, kind `nep_split`, see mmreason/data/kinds/nep_split.py): the data builder runs the
official split prompts through the recipe's teacher (or the timestamp / fixed-ratio fallback with
`teacher.backend: none`, SFT only) and writes DIR/annotations.jsonl (one past clip per video, cut at the split by
`video.end`, with its entry in the V1-33K layout) with the builder's ledger, resume and stats.json; the
strategies are then made from those entries exactly as above (no mcq: raw captions have no questions).

Writes DIR/<strategy>.jsonl and DIR/stats.json (entries read, records written per strategy, CFT
resampling counts, every skipped entry with its reason). A finished build with the same arguments
is not redone (stats.json records them); --overwrite rebuilds.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
from pathlib import Path
from typing import Any

from mmreason.data.build import STATS, build as data_build
from mmreason.data.kinds.registry import load_recipe
from mmreason.data.recipe import RecipeError, parse_overrides
from mmreason.data.teachers import TeacherError
from mmreason.errors import RecordError
from mmreason.formats.tables import open_table
from mmreason.media.video import VideoConfig, check_video
from mmreason.offline import offline_defaults
from mmreason.records import LETTERS, Record, Video, load_records, write_records
from mmreason.video.prompts import CFT_WRONG_RATIO, cft_record, distill_record, mix, resample_cft, sft_record

BUILD_STRATEGIES = ("sft", "cft", "distill", "mix", "mcq")


def load_entries(path: str | os.PathLike) -> list[Any]:
    """V1-33K entries: a JSON list (the released file), JSONL, or parquet / a save_to_disk folder (opened by
    `mmreason.formats.tables.open_table`, the reader every stage uses); a bad JSONL line names file:line."""
    table = open_table(path)
    entries = []
    for _, row in table.rows():
        if isinstance(row, RecordError):
            raise row
        entries.append(row)
    return entries


def _get(entry: Any, dotted: str, where: str) -> Any:
    cur = entry
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            raise RecordError(where, f"missing field '{dotted}'")
        cur = cur[part]
    return cur


def _text(entry: Any, dotted: str, where: str) -> str:
    v = _get(entry, dotted, where)
    if not isinstance(v, str) or not v.strip():
        raise RecordError(where, f"field '{dotted}' must be a non-empty string")
    return v


def past_clip_path(entry: Any, video_root: Path, where: str) -> Path:
    rel = _text(entry, "video_path", where)
    return video_root / "/".join(rel.split("/")[1:])


def past_clip_video(entry: Any, video_root: Path, out_dir: Path, where: str, probe: bool) -> Video:
    path = past_clip_path(entry, video_root, where)
    if not path.is_file():
        raise RecordError(where, f"past clip not found: {path}")
    if probe:
        check_video(path, VideoConfig(), where=where)  # zero frames, undecodable stream, a corrupt frame
    try:
        rel = os.path.relpath(path.resolve(), out_dir.resolve())
    except ValueError:  # another drive
        rel = str(path.resolve())
    return Video(path=rel)


def entry_records(entry: Any, index: int, strategy: str, video: Video, rng: random.Random, where: str,
                  rid: str | None = None) -> Record:
    rid = rid or f"v1-{index:06d}-{strategy}"
    meta = {"v1_index": index, "video_path": entry.get("video_path"), "full_video_path": entry.get("full_video_path")}
    if strategy == "sft":
        return sft_record(rid, video, _text(entry, "video_split.split_caption.caption_part2", where), rng, metadata=meta)
    if strategy == "mcq":  # video_path + qa alone (NEP's EasyR1 GRPO JSON): no reasoning fields needed
        return mcq_record(entry, rid, video, where, meta)
    reasoning = _text(entry, "ds_reasoning.rewritten_reasoning_content", where)
    prediction = _text(entry, "ds_reasoning.rewritten_prediction_content", where)
    if strategy == "distill":
        return distill_record(rid, video, reasoning, prediction, rng, metadata=meta)
    if strategy == "cft":
        critique = _text(entry, "o3_critique.Critique", where)
        conclusion = _text(entry, "o3_critique.Conclusion", where)
        return cft_record(rid, video, reasoning, prediction, critique, conclusion, rng, metadata=meta)
    raise ValueError(f"unknown strategy {strategy!r}")


def mcq_record(entry: Any, rid: str, video: Video, where: str, meta: dict) -> Record:
    question = _text(entry, "qa.Question", where)
    options = _get(entry, "qa.Options", where)
    if not isinstance(options, dict) or not all(isinstance(options.get(k), str) for k in "ABCD"):
        raise RecordError(where, "field 'qa.Options' must map A, B, C, D to strings")
    answer = _text(entry, "qa.Answer", where).strip().upper()
    if answer not in "ABCD" or len(answer) != 1:
        raise RecordError(where, f"field 'qa.Answer' is {answer!r}, not one of A-D")
    return Record(id=rid, question=question, answer=answer, answer_type="choice",
                  choices=[options[k] for k in LETTERS[:4]], video=video, source="nep/mcq",
                  metadata={"strategy": "mcq", **meta})


def build(input_path: str, video_root: str, strategy: str, out: str, seed: int = 0, max_samples: int | None = None,
          lenient: bool = False, probe_video: bool = True, cft_wrong_ratio: float = CFT_WRONG_RATIO,
          overwrite: bool = False) -> dict:
    if strategy not in BUILD_STRATEGIES:
        raise ValueError(f"strategy {strategy!r}; choose from {list(BUILD_STRATEGIES)}")
    out_dir = Path(out)
    args = {"input": str(Path(input_path).resolve()), "video_root": str(Path(video_root).resolve()),
            "strategy": strategy, "seed": seed, "max_samples": max_samples, "lenient": lenient,
            "probe_video": probe_video, "cft_wrong_ratio": cft_wrong_ratio}
    stats_path = out_dir / "stats.json"
    target = out_dir / f"{strategy}.jsonl"
    if not overwrite and stats_path.is_file() and target.is_file():
        old = json.loads(stats_path.read_text())
        if old.get("args") == args and old.get("done"):
            old["resumed"] = True
            return old
    entries = load_entries(input_path)
    parts = ("sft", "cft", "distill") if strategy == "mix" else (strategy,)
    built: dict[str, list[Record]] = {p: [] for p in parts}
    skipped: list[dict] = []
    root = Path(video_root)
    for i, entry in enumerate(entries):
        where = f"{input_path}[{i}]"
        try:
            video = past_clip_video(entry, root, out_dir, where, probe_video)
            recs = {p: entry_records(entry, i, p, video, random.Random(f"{seed}:{p}:{i}"), where) for p in parts}
        except RecordError as e:
            if not lenient:
                raise
            skipped.append({"where": e.where, "reason": e.reason})
            continue
        for p, r in recs.items():
            built[p].append(r)
    stats: dict[str, Any] = {"args": args, "entries": len(entries), "skipped": skipped}
    stats.update(write_strategy(built, strategy, target, seed, max_samples, cft_wrong_ratio, str(input_path),
                                len(skipped)))
    stats["done"] = True
    write_stats(stats_path, stats)
    return stats


def write_stats(path: Path, stats: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(stats, indent=1, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def write_strategy(built: dict[str, list[Record]], strategy: str, target: Path, seed: int, max_samples: int | None,
                   cft_wrong_ratio: float, where: str, n_skipped: int) -> dict[str, Any]:
    """CFT resampling, the Mix shares or the --max-samples cap, then `target`; returns the stats entries."""
    rng = random.Random(f"{seed}:{strategy}")
    stats: dict[str, Any] = {}
    if "cft" in built:
        built["cft"], stats["cft_resampling"] = resample_cft(built["cft"], rng, cft_wrong_ratio)
    if strategy == "mix":
        records, stats["mix_shares"] = mix(built, rng, max_samples)
    else:
        records = built[strategy]
        if max_samples is not None and len(records) > max_samples:
            records = rng.sample(records, max_samples)
    if not records:
        raise RecordError(where, f"no usable entries for strategy {strategy!r} ({n_skipped} skipped)")
    stats["written"] = {strategy: write_records(target, records)}
    stats["by_strategy"] = {s: sum(r.metadata["strategy"] == s for r in records) for s in built}
    return stats


RAW_STRATEGIES = ("sft", "cft", "distill", "mix")


def build_raw(recipe_path: str, strategy: str, out: str, overrides: list[str] = (), limit: int | None = None,
              seed: int = 0, max_samples: int | None = None, cft_wrong_ratio: float = CFT_WRONG_RATIO,
              overwrite: bool = False, progress: bool = True, teacher: Any = None) -> dict:
    """Raw videos + captions -> annotations (the data builder, kind nep_split: resumable, ledger, stats) ->
    `<strategy>.jsonl` from their V1-33K-layout entries. Returns the builder's stats with a `nep` section."""
    if strategy not in RAW_STRATEGIES:
        raise ValueError(f"strategy {strategy!r}; raw videos build {list(RAW_STRATEGIES)} (mcq needs V1-33K's qa)")
    recipe = load_recipe(recipe_path, parse_overrides(list(overrides)))
    if recipe.kind != "nep_split":
        raise RecordError(recipe_path, f"field 'kind' is {recipe.kind!r}; nep build --recipe needs kind nep_split")
    if recipe.teacher.backend == "none" and teacher is None and strategy != "sft":
        raise RecordError(recipe_path, f"strategy {strategy!r} needs the teacher's reasoning and critiques; "
                                       "with teacher.backend none (timestamp / ratio split) only sft can be built")
    out_dir = Path(out)
    stats = data_build(recipe, out_dir, limit, teacher, overwrite, progress)
    annotations, _ = load_records(out_dir / recipe.output.file, require_answer=False, check_media=False)
    parts = ("sft", "cft", "distill") if strategy == "mix" else (strategy,)
    built: dict[str, list[Record]] = {p: [] for p in parts}
    for i, ann in enumerate(annotations):
        where = f"{out_dir / recipe.output.file}:{i + 1}"
        for p in parts:
            rng = random.Random(f"{seed}:{p}:{ann.id}")
            built[p].append(entry_records(ann.metadata["nep"], i, p, ann.video, rng, where, rid=f"{ann.id}--{p}"))
    nep = {"strategy": strategy, "seed": seed, "max_samples": max_samples, "annotations": len(annotations)}
    nep.update(write_strategy(built, strategy, out_dir / f"{strategy}.jsonl", seed, max_samples, cft_wrong_ratio,
                              str(out_dir / recipe.output.file), stats["questions"]["dropped"]))
    stats["nep"] = nep
    write_stats(out_dir / STATS, stats)
    return stats


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="mmreason nep build", description=__doc__.split("\n\n")[0])
    src = ap.add_argument_group("input (one of)")
    src.add_argument("--input", help="V1-33K next_event_prediction.json (JSON list or JSONL)")
    src.add_argument("--recipe", help="raw videos + captions: a data recipe of kind nep_split "
                                      "(data_recipes/nep_raw.yaml)")
    ap.add_argument("--video-root", help="with --input: folder of the past clips (V1-33K/first_part_video)")
    ap.add_argument("--strategy", required=True, choices=BUILD_STRATEGIES)
    ap.add_argument("--out", required=True, help="output folder: <strategy>.jsonl + stats.json")
    ap.add_argument("--seed", type=int, default=0, help="seeds question choice, CFT resampling, sampling, shuffling")
    ap.add_argument("--max-samples", type=int, default=None, help="cap on records (official SFT: 5000)")
    ap.add_argument("--lenient", action="store_true", help="with --input: skip bad entries (listed in stats.json) "
                    "instead of failing (--recipe builds always count them)")
    ap.add_argument("--no-probe-video", action="store_true",
                    help="with --input: only check clip files exist (no decoder open)")
    ap.add_argument("--cft-wrong-ratio", type=float, default=CFT_WRONG_RATIO, help="wrong/right after resampling")
    ap.add_argument("--overwrite", action="store_true", help="rebuild even if stats.json shows the same finished build")
    ap.add_argument("--limit", type=int, default=None, help="with --recipe: only the first N source videos")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="with --recipe: override a recipe field (e.g. teacher.backend=none, source.path=videos.jsonl)")
    ap.add_argument("--no-progress", action="store_true", help="with --recipe: no progress bar")
    a = ap.parse_args(argv)
    if bool(a.input) == bool(a.recipe):
        ap.error("give exactly one of --input (V1-33K layout) or --recipe (raw videos + captions)")
    if a.input and not a.video_root:
        ap.error("--input needs --video-root")
    if a.recipe:
        return main_raw(a)
    try:
        stats = build(a.input, a.video_root, a.strategy, a.out, a.seed, a.max_samples, a.lenient,
                      not a.no_probe_video, a.cft_wrong_ratio, a.overwrite)
    except (RecordError, FileNotFoundError) as e:
        print(f"mmreason nep build: error: {e}", file=sys.stderr)
        return 2
    state = "already built" if stats.get("resumed") else "built"
    print(f"{state} {a.out}/{a.strategy}.jsonl: {stats['written'][a.strategy]} records from {stats['entries']} "
          f"entries, {len(stats['skipped'])} skipped; by strategy {stats['by_strategy']}")
    return 0


def main_raw(a: argparse.Namespace) -> int:
    offline_defaults()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        stats = build_raw(a.recipe, a.strategy, a.out, a.set, a.limit, a.seed, a.max_samples, a.cft_wrong_ratio,
                          a.overwrite, not a.no_progress)
    except (RecordError, RecipeError, TeacherError, FileNotFoundError, ValueError) as e:
        print(f"mmreason nep build: error: {e}", file=sys.stderr)
        return 2
    q, nep = stats["questions"], stats["nep"]
    print(f"built {a.out}/{a.strategy}.jsonl: {nep['written'][a.strategy]} records from {nep['annotations']} "
          f"annotated videos ({q['kept']}/{q['total']} kept, dropped {q['dropped_by_reason']}); "
          f"by strategy {nep['by_strategy']}; stats: {Path(a.out) / 'stats.json'}")
    if q.get("retryable"):  # the data builder's: no answer from the teacher, asked again by the next run
        print(f"mmreason nep build: incomplete: {q['retryable']} video(s) got no answer from the teacher (HTTP "
              "429/5xx, timeouts, connection errors); run the same command again to retry them", file=sys.stderr)
        return 3
    return 0
