"""Synthetic verifiable tasks: answers re-derived independently (from scene parameters and
from the rendered pixels), determinism, train/test disjointness, difficulty, CLI."""

import filecmp
import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmreason.verify.answers import extract_boxed
from mmreason.data.synth import main as synth_main
from mmreason.data.synth import scene_split, synthesize
from mmreason.records import load_records

# The palette and area formulas are restated here on purpose: the tests must not trust the generator.
PALETTE = {
    "red": (220, 30, 30),
    "green": (20, 160, 40),
    "blue": (30, 60, 220),
    "yellow": (235, 200, 0),
    "purple": (140, 40, 180),
    "orange": (245, 120, 0),
}
AREA = {"circle": math.pi / 4, "square": 1.0, "triangle": 0.5, "diamond": 0.5}
ALL_TASKS = ["count", "color", "bars", "digit_sum", "compare", "rect"]


@pytest.fixture(scope="module")
def hard_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth_hard")
    synthesize(out, n_train=120, n_test=60, seed=1, difficulty="hard", progress=False)
    return out


@pytest.fixture(scope="module")
def easy_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth_easy")
    synthesize(out, n_train=120, n_test=60, seed=1, difficulty="easy", progress=False)
    return out


def _all(out: Path):
    train, _ = load_records(out / "train.jsonl", strict=True)
    test, _ = load_records(out / "test.jsonl", strict=True)
    return train, test


def expected_from_scene(rec) -> str:
    s = rec.metadata["scene"]
    task = rec.metadata["task"]
    if task == "count":
        col = rec.question.split("How many ")[1].split(" shapes")[0]
        return str(sum(o["color"] == col for o in s["objects"]))
    if task == "color":
        kind = rec.question.removeprefix("What color is the ").removesuffix("?")
        (obj,) = [o for o in s["objects"] if o["kind"] == kind]
        return obj["color"]
    if task == "bars":
        hs = s["heights"]
        target = max(hs) if "tallest" in rec.question else min(hs)
        assert hs.count(target) == 1, "ambiguous bar question"
        assert rec.choices == s["colors"]
        return "ABCDEFGH"[hs.index(target)]
    if task == "digit_sum":
        return str(sum(o["digit"] for o in s["digits"]))
    if task == "compare":
        areas = {sh["kind"]: AREA[sh["kind"]] * sh["size"] ** 2 for sh in s["shapes"]}
        assert all(f"the {k}" in rec.question for k in areas)
        return max(areas, key=areas.get)
    if task == "rect":
        w, h = s["width"], s["height"]
        return str(w * h if "area" in rec.question else 2 * (w + h))
    raise AssertionError(f"unknown task {task}")


def color_mask(arr: np.ndarray, name: str) -> np.ndarray:
    return np.all(arr == np.array(PALETTE[name], dtype=arr.dtype), axis=-1)


def n_blobs(mask: np.ndarray) -> int:
    """4-connected components, by flood fill."""
    seen = np.zeros_like(mask, dtype=bool)
    n = 0
    h, w = mask.shape
    for y, x in zip(*np.nonzero(mask)):
        if seen[y, x]:
            continue
        n += 1
        stack = [(y, x)]
        seen[y, x] = True
        while stack:
            cy, cx = stack.pop()
            for ny, nx in ((cy + 1, cx), (cy - 1, cx), (cy, cx + 1), (cy, cx - 1)):
                if 0 <= ny < h and 0 <= nx < w and mask[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    stack.append((ny, nx))
    return n


def expected_from_pixels(rec) -> str | None:
    """Answer read off the PNG alone (plus the question / option list); None where that needs OCR."""
    arr = np.asarray(Image.open(rec.image_paths()[0]).convert("RGB"))
    task = rec.metadata["task"]
    if task == "count":
        col = rec.question.split("How many ")[1].split(" shapes")[0]
        return str(n_blobs(color_mask(arr, col)))
    if task == "bars":
        heights = [int(color_mask(arr, c).any(axis=1).sum()) for c in rec.choices]
        pick = max(heights) if "tallest" in rec.question else min(heights)
        return "ABCDEFGH"[heights.index(pick)]
    if task == "compare":
        areas = {sh["kind"]: int(color_mask(arr, sh["color"]).sum()) for sh in rec.metadata["scene"]["shapes"]}
        return max(areas, key=areas.get)
    if task == "color":
        # the named shape's cell (from the scene), its colour from the pixels
        kind = rec.question.removeprefix("What color is the ").removesuffix("?")
        (obj,) = [o for o in rec.metadata["scene"]["objects"] if o["kind"] == kind]
        cs = arr.shape[0] // 4
        r, c = divmod(obj["cell"], 4)
        cell = arr[r * cs : (r + 1) * cs, c * cs : (c + 1) * cs]
        counts = {name: int(color_mask(cell, name).sum()) for name in PALETTE}
        return max(counts, key=counts.get)
    return None


@pytest.mark.parametrize("which", ["easy_set", "hard_set"])
def test_answers_rederived_from_scene_and_pixels(which, request):
    train, test = _all(request.getfixturevalue(which))
    checked_pixels = Counter()
    for rec in train + test:
        assert rec.source == f"synth/{rec.metadata['task']}"
        gold = expected_from_scene(rec)
        assert rec.answer == gold, (rec.id, rec.answer, gold)
        px = expected_from_pixels(rec)
        if px is not None:
            assert px == gold, (rec.id, "pixels say", px, "gold", gold)
            checked_pixels[rec.metadata["task"]] += 1
        # the reference CoT ends in exactly one \boxed{gold} and stays short
        assert rec.solution.rstrip().endswith("}") and rec.solution.count("\\boxed{") == 1
        assert extract_boxed(rec.solution) == gold
        assert len(rec.solution.split()) <= 40
    assert set(checked_pixels) == {"count", "bars", "compare", "color"}
    assert {r.answer_type for r in train} == {"integer", "choice", "text"}
    assert {r.metadata["task"] for r in train} == set(ALL_TASKS)


def test_every_scene_json_roundtrips_and_images_are_small(hard_set):
    train, _ = _all(hard_set)
    for rec in train[:12]:
        assert json.loads(json.dumps(rec.metadata)) == rec.metadata
        with Image.open(rec.image_paths()[0]) as im:
            assert im.size == (112, 112) and im.mode == "RGB"


def _key(rec):
    return json.dumps({"task": rec.metadata["task"], "scene": rec.metadata["scene"]}, sort_keys=True, separators=(",", ":"))


def test_train_test_disjoint_by_construction(hard_set, easy_set, tmp_path):
    other_seed = tmp_path / "s7"
    synthesize(other_seed, n_train=60, n_test=60, seed=7, difficulty="easy", progress=False)
    splits = {"train": set(), "test": set()}
    for out in (hard_set, easy_set, other_seed):
        train, test = _all(out)
        tr, te = [_key(r) for r in train], [_key(r) for r in test]
        assert len(set(tr)) == len(tr) and len(set(te)) == len(te), "duplicate scene within a split"
        # the split is a function of the scene alone, not of the seed or the position in the file
        assert {scene_split(k) for k in tr} == {"train"} and {scene_split(k) for k in te} == {"test"}
        splits["train"] |= set(tr)
        splits["test"] |= set(te)
    # across difficulties and seeds no scene is both a train and a test scene
    assert len(splits["train"]) > 200 and len(splits["test"]) > 100
    assert not splits["train"] & splits["test"]


def test_small_scene_space_exhausts_with_clear_error(tmp_path):
    # scenes are unique per split: asking for more than exist fails loudly instead of repeating
    with pytest.raises(ValueError, match="ran out of distinct"):
        synthesize(tmp_path / "x", n_train=5000, n_test=1, tasks=["rect"], difficulty="easy", progress=False)


def test_same_seed_byte_identical_other_seed_differs(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for out, seed in ((a, 3), (b, 3), (c, 4)):
        synthesize(out, n_train=18, n_test=6, seed=seed, progress=False)
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert files_a == files_b and len(files_a) == 2 + 18 + 6
    for rel in files_a:
        assert filecmp.cmp(a / rel, b / rel, shallow=False), rel
    assert (a / "train.jsonl").read_bytes() != (c / "train.jsonl").read_bytes()
    # rerunning smaller into the same folder leaves no stale images behind
    synthesize(c, n_train=6, n_test=2, seed=3, progress=False)
    assert len(list((c / "images").glob("*.png"))) == 8


def test_difficulty_changes_parameter_distribution(easy_set, hard_set):
    def stats(out):
        train, test = _all(out)
        by = {}
        for r in train + test:
            by.setdefault(r.metadata["task"], []).append(r.metadata["scene"])
        count_objs = np.mean([len(s["objects"]) for s in by["count"]])
        color_objs = np.mean([len(s["objects"]) for s in by["color"]])
        n_bars = np.mean([len(s["heights"]) for s in by["bars"]])

        def bar_gap(s):
            hs = sorted(s["heights"])
            return hs[-1] - hs[-2] if s["ask"] == "tallest" else hs[1] - hs[0]

        min_gap = min(bar_gap(s) for s in by["bars"])
        n_digits = np.mean([len(s["digits"]) for s in by["digit_sum"]])
        ratios = [
            max(a := [AREA[x["kind"]] * x["size"] ** 2 for x in s["shapes"]]) / min(a) for s in by["compare"]
        ]
        rect_max = max(max(s["width"], s["height"]) for s in by["rect"])
        perim = any(s["ask"] == "perimeter" for s in by["rect"])
        return count_objs, color_objs, n_bars, min_gap, n_digits, min(ratios), rect_max, perim

    e, h = stats(easy_set), stats(hard_set)
    assert h[0] > e[0] + 3  # more shapes to scan when counting
    assert h[1] > e[1]  # more distractors for the colour question
    assert h[2] > e[2] and h[3] < e[3]  # more bars, finer height differences
    assert e[3] >= 3 and h[3] >= 1
    assert h[4] > e[4]  # more digits to add
    assert e[5] >= 2.0 > h[5] >= 1.2  # finer size differences
    assert h[6] > e[6] and h[7] and not e[7]  # larger sides, multi-step perimeter


def test_task_subset_image_size_and_errors(tmp_path):
    s = synthesize(tmp_path / "o", n_train=4, n_test=2, tasks=["count", "rect"], image_size=56, progress=False)
    train, test = _all(tmp_path / "o")
    assert {r.metadata["task"] for r in train} == {"count", "rect"} and len(test) == 2
    assert Image.open(train[0].image_paths()[0]).size == (56, 56)
    assert s["answer_counts"]["train"]["count"]
    with pytest.raises(ValueError, match="unknown task"):
        synthesize(tmp_path / "x", n_train=2, tasks=["nope"], progress=False)
    with pytest.raises(ValueError, match="difficulty"):
        synthesize(tmp_path / "x", n_train=2, difficulty="extreme", progress=False)


def test_cli_writes_records(tmp_path, capsys):
    from mmreason.cli import main

    out = tmp_path / "cli"
    assert main(["data", "synth", "--out", str(out), "--n", "10", "--seed", "2", "--difficulty", "easy"]) == 0
    train, test = _all(out)
    assert len(train) == 10 and len(test) == 2  # default n_test = max(1, N // 5)
    assert all(r.metadata["difficulty"] == "easy" for r in train)
    assert synth_main(["--out", str(out), "--n", "3", "--tasks", "count,bogus"]) == 2
    assert "unknown task" in capsys.readouterr().out
