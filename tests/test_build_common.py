"""Shared helpers of the data-builder tests (no tests here): source records with real images, and a
scripted OpenAI-compatible teacher whose behaviour per question is known in advance."""

from __future__ import annotations

import json
import re
from pathlib import Path

from PIL import Image, ImageDraw

from mmreason.data.kinds.registry import load_recipe
from mmreason.data.loopback import Scripted, last_user_text
from mmreason.verify.answers import extract_boxed

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "data_recipes"
# decontamination checks against the committed benchmark fixtures (not ../shared, which a clone lacks)
BENCHMARKS = REPO / "tests" / "fixtures" / "benchmarks"

# behaviour of the teacher on question i (by i % len(BEHAVIOURS))
BEHAVIOURS = ["correct", "wrong", "mixed", "malformed", "flaky500", "empty", "truncated", "correct", "mixed", "fail500"]
# The same, where every question gets an answer: a question that only ever gets HTTP 500 stays retryable and is
# asked again by every rerun (tests/data/test_build_transient.py), so a build is complete only without it.
ANSWERED = [b if b != "fail500" else "wrong" for b in BEHAVIOURS]


def dots_image(path: Path, n: int, seed: int = 0) -> None:
    im = Image.new("RGB", (56, 56), (255, 255, 255))
    d = ImageDraw.Draw(im)
    for j in range(n):
        x, y = 6 + (j * 11 + seed * 3) % 44, 8 + (j * 17 + seed * 7) % 40
        d.ellipse([x, y, x + 6, y + 6], fill=(200, 30, 30))
    im.save(path)


def make_source(root: Path, n: int = 10, bad_inputs: bool = True) -> Path:
    """`n` good records 'q0'..'q{n-1}' (question 'Item i: ...', gold i%5+1), plus bad inputs."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "images").mkdir(exist_ok=True)
    lines = []
    for i in range(n):
        dots_image(root / "images" / f"q{i}.png", i % 5 + 1, i)
        lines.append({"id": f"q{i}", "question": f"Item {i}: how many red dots are in the image?", "answer": str(i % 5 + 1),
                      "answer_type": "integer", "images": [f"images/q{i}.png"], "source": "test/dots"})
    if bad_inputs:
        (root / "images" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
        lines += [
            {"id": "missing_img", "question": "Item 100: how many red dots?", "answer": "1", "answer_type": "integer",
             "images": ["images/nope.png"]},
            {"id": "corrupt_img", "question": "Item 101: how many red dots?", "answer": "1", "answer_type": "integer",
             "images": ["images/corrupt.png"]},
            {"id": "no_gold", "question": "Item 102: how many red dots?", "answer": None, "answer_type": "integer",
             "images": ["images/q0.png"]},
        ]
    path = root / "train.jsonl"
    with open(path, "w") as f:
        for i, d in enumerate(lines):
            f.write(json.dumps(d) + "\n")
            if bad_inputs and i == 2:
                f.write('{"id": "broken", "question": \n')  # an invalid JSON line
    return path


def gold_of(i: int) -> int:
    return i % 5 + 1


def cot(i: int, correct: bool) -> str:
    ans = gold_of(i) if correct else gold_of(i) + 1
    return f"I look at the image and count the red dots one by one. There are {ans} red dots. \\boxed{{{ans}}}"


class Script:
    """Replies keyed on the question's item number, the prompt stage, and the request seed."""

    def __init__(self, behaviours: list[str] = BEHAVIOURS):
        self.flaky_seen: set = set()
        self.behaviours = behaviours

    def __call__(self, body: dict) -> Scripted:
        text = last_user_text(body)
        m = re.search(r"Item (\d+):", text)
        i = int(m.group(1)) if m else 0
        beh = self.behaviours[i % len(self.behaviours)]
        seed = body.get("seed") or 0
        if beh == "malformed":
            return Scripted(raw=b'{"choices": [ {"message": ', status=200)
        if beh == "fail500":
            return Scripted(status=500)
        if beh == "flaky500":  # the first attempt of every request fails, the retry succeeds
            key = (i, seed, text[-40:])
            if key not in self.flaky_seen:
                self.flaky_seen.add(key)
                return Scripted(status=503)
            beh = "correct"
        if beh == "empty":
            return Scripted(text="")
        if beh == "truncated":
            return Scripted(text="I start counting the dots: one, two, thr", finish_reason="length")
        correct = beh == "correct" or (beh == "mixed" and seed % 2 == 0)
        if "Describe the image in detail" in text:
            return Scripted(text="A white square canvas with small red dots scattered on it; no labels or axes.")
        if "Critique this draft" in text:
            return Scripted(text="Step 2 miscounts: one dot was counted twice, the draft said \\boxed{9}." if not correct
                            else "The draft is correct.")
        if "Taking the critique into account" in text:
            return Scripted(text=cot(i, beh != "wrong"))
        if "Continue it as its author" in text:
            return Scripted(text=f"Wait, let me re-check: I counted one dot twice. {cot(i, True)}")
        if "question" in text.lower() and ("Write one new question" in text or "write one question about it" in text):
            k = seed % 3
            qs = [f"Item {i}: are there more red dots than blue dots?", f"Item {i}: how many red dots are in the image?",
                  f"Item {i}: what colour is the background of the image?"]
            return Scripted(text=f"Question: {qs[k]}")
        return Scripted(text=cot(i, correct))


def recipe_for(kind_file: str, source: Path, base_url: str, cache_dir: Path, **extra):
    overrides = [("source.path", str(source)), ("teacher.base_url", base_url), ("teacher.model", "scripted"),
                 ("teacher.max_retries", 2), ("teacher.backoff_base", 0.01), ("teacher.timeout", 5.0),
                 ("teacher.concurrency", 4), ("decontam.cache_dir", str(cache_dir)),
                 ("decontam.benchmarks_dir", str(BENCHMARKS))]
    overrides += list(extra.items())
    return load_recipe(RECIPES / kind_file, overrides)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in open(path)]


def final_answer(text: str) -> str | None:
    return extract_boxed(text)
