"""`mmreason data synth`: render synthetic verifiable visual tasks to records.

    mmreason data synth --out DIR --n N --seed S [--n-test M] [--tasks count,bars]
                        [--difficulty easy|medium|hard] [--image-size 112]

writes DIR/train.jsonl (N records), DIR/test.jsonl (M, default max(1, N//5)) and the PNGs
under DIR/images/. Task families live in `synth_tasks.py`.

Train and test are disjoint by construction: a scene's canonical key (its task and its
discrete parameters, which fully determine the image) is hashed into a bucket, and a split
only accepts scenes of its buckets. The bucket does not depend on the seed, so no two runs
can put one scene in train and in test. Within a split scenes are unique too.
The same arguments give byte-identical files.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
from pathlib import Path
from typing import Any

from tqdm import tqdm

from mmreason.data.synth_tasks import DIFFICULTIES, TASKS
from mmreason.offline import offline_defaults
from mmreason.records import Record, write_records

DEFAULT_IMAGE_SIZE = 112  # the demo processor's max_pixels is 112*112: 16 LLM tokens per image
TEST_BUCKETS = 5  # one scene key in TEST_BUCKETS goes to the test split
MAX_TRIES_PER_RECORD = 200


def scene_key(task: str, scene: dict[str, Any]) -> str:
    return json.dumps({"task": task, "scene": scene}, sort_keys=True, separators=(",", ":"))


def scene_split(key: str) -> str:
    """'test' or 'train', a pure function of the scene key."""
    h = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
    return "test" if h % TEST_BUCKETS == 0 else "train"


def _seeded(seed: int, *salt: str) -> random.Random:
    return random.Random(hashlib.sha256(":".join([str(seed), *salt]).encode()).hexdigest())


def make_record(task: str, scene: dict, rid: str, image_rel: str, difficulty: str, split: str) -> Record:
    qa = TASKS[task].qa(scene)
    key = scene_key(task, scene)
    return Record(
        id=rid,
        question=qa.question,
        answer=qa.answer,
        answer_type=qa.answer_type,
        choices=qa.choices,
        images=[image_rel],
        solution=qa.solution,
        source=f"synth/{task}",
        metadata={
            "task": task,
            "difficulty": difficulty,
            "split": split,
            "scene": scene,
            "scene_hash": hashlib.sha256(key.encode()).hexdigest()[:16],
        },
    )


def _sample_split(split: str, n: int, seed: int, tasks: list[str], difficulty: str) -> list[tuple[str, dict]]:
    """n (task, scene) pairs in `split`'s buckets, unique, tasks round-robin."""
    rngs = {t: _seeded(seed, split, t, difficulty) for t in tasks}
    seen: set[str] = set()
    out = []
    for i in range(n):
        task = tasks[i % len(tasks)]
        for _ in range(MAX_TRIES_PER_RECORD):
            scene = TASKS[task].sample(rngs[task], difficulty)
            key = scene_key(task, scene)
            if key not in seen and scene_split(key) == split:
                seen.add(key)
                out.append((task, scene))
                break
        else:
            raise ValueError(
                f"task {task!r} ({difficulty}) ran out of distinct {split} scenes after {len(seen)}: "
                f"ask for fewer records or a harder difficulty"
            )
    return out


def _write_png(im, path: Path) -> None:
    # Fixed encoder settings and no metadata chunks: same scene -> same bytes.
    im.save(path, format="PNG", optimize=False, compress_level=6)


def synthesize(
    out_dir: str | Path,
    n_train: int,
    n_test: int | None = None,
    seed: int = 0,
    tasks: list[str] | None = None,
    difficulty: str = "medium",
    image_size: int = DEFAULT_IMAGE_SIZE,
    progress: bool = True,
) -> dict[str, Any]:
    """Render `n_train` + `n_test` records to `out_dir` (train.jsonl, test.jsonl, images/).

    Returns {"train": path, "test": path, "n_train", "n_test", "tasks", "difficulty", "image_size",
    "seed", "answer_counts": {split: {task: {answer: count}}}}."""
    tasks = list(tasks or TASKS)
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ValueError(f"unknown task(s) {unknown}; choose from {sorted(TASKS)}")
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"difficulty must be one of {DIFFICULTIES}, got {difficulty!r}")
    if n_test is None:
        n_test = max(1, n_train // 5)
    if n_train < 0 or n_test < 0 or image_size < 28:
        raise ValueError("n_train/n_test must be >= 0 and image_size >= 28")
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {
        "n_train": n_train,
        "n_test": n_test,
        "tasks": tasks,
        "difficulty": difficulty,
        "image_size": image_size,
        "seed": seed,
        "answer_counts": {},
    }
    for split, n in (("train", n_train), ("test", n_test)):
        scenes = _sample_split(split, n, seed, tasks, difficulty)
        for stale in (out / "images").glob(f"{split}-[0-9][0-9][0-9][0-9][0-9][0-9]-*.png"):
            stale.unlink()  # from an earlier, larger run into the same folder
        records = []
        counts: dict[str, dict[str, int]] = {}
        for i, (task, scene) in enumerate(tqdm(scenes, desc=f"synth {split}", disable=not progress or n < 500)):
            rid = f"{split}-{i:06d}-{task}"
            rel = f"images/{rid}.png"
            _write_png(TASKS[task].render(scene, image_size), out / rel)
            rec = make_record(task, scene, rid, rel, difficulty, split)
            records.append(rec)
            c = counts.setdefault(task, {})
            c[rec.answer] = c.get(rec.answer, 0) + 1
        path = out / f"{split}.jsonl"
        write_records(path, records)
        summary[split] = str(path)
        summary["answer_counts"][split] = {t: dict(sorted(c.items())) for t, c in sorted(counts.items())}
    return summary


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mmreason data synth", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="output folder (train.jsonl, test.jsonl, images/)")
    p.add_argument("--n", type=int, required=True, help="number of train records")
    p.add_argument("--n-test", type=int, default=None, help="number of test records (default max(1, N//5))")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tasks", default=None, help=f"comma-separated subset of {','.join(TASKS)} (default all)")
    p.add_argument("--difficulty", choices=DIFFICULTIES, default="medium")
    p.add_argument("--image-size", type=int, default=DEFAULT_IMAGE_SIZE, help="square image side in pixels")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    offline_defaults()
    args = build_parser().parse_args(argv)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else None
    try:
        s = synthesize(args.out, args.n, args.n_test, args.seed, tasks, args.difficulty, args.image_size,
                       progress=not args.no_progress)
    except ValueError as e:
        print(f"mmreason data synth: error: {e}")
        return 2
    print(f"wrote {s['n_train']} train -> {s['train']}, {s['n_test']} test -> {s['test']} "
          f"(tasks {','.join(s['tasks'])}, {s['difficulty']}, {s['image_size']} px)")
    return 0
