"""`mmreason nep predict`: FutureBench predictions from a checkpoint, as the official lmms-eval run makes them.

    mmreason nep predict --model DIR --annotations futurebench.json --video-root V1-33K/first_part_video \
        --output predictions.jsonl [--mode official|official-reasoning] [--batch-size 4] [--limit N]

Per item: system "You are a helpful assistant.", the official prompt (`eval/futurebench.py`), the past
clip read by qwen-vl-utils with the official element (2 fps, <= 32 frames, min_pixels 3136,
total_pixels 1605632) and passed with its metadata; greedy, 16 new tokens (2048 in the reasoning
mode). Output: one {"id", "response"} line per item, appended per batch; a rerun generates only the
missing ids (a killed run resumes). Score with `mmreason nep score`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mmreason.eval.futurebench import (
    GENERATION,
    REASONING_GENERATION,
    FutureBenchError,
    load_annotations,
    official_messages,
    official_video_inputs,
)

# lmms-eval's qwen2_5_vl model builds its processor with these bounds
PROCESSOR_MIN_PIXELS = 4 * 28 * 28
PROCESSOR_MAX_PIXELS = 1280 * 28 * 28
META_KEYS = ("fps", "total_num_frames", "frames_indices")


def done_ids(path: Path) -> set[str]:
    if not path.is_file():
        return set()
    ids = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                ids.add(str(json.loads(line)["id"]))
            except (json.JSONDecodeError, KeyError, TypeError):
                continue  # a line cut by a kill: regenerated
    return ids


def predict(model, processor, docs: list[dict], video_root: str, output: str, mode: str = "official",
            batch_size: int = 4) -> int:
    """Generate responses for the docs not yet in `output`; returns how many were generated."""
    from mmreason.video.generate import generate_video

    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    have = done_ids(out)
    todo = [d for d in docs if str(d["id"]) not in have]
    max_new = REASONING_GENERATION["max_new_tokens"] if mode == "official-reasoning" else GENERATION["max_new_tokens"]
    for start in range(0, len(todo), max(1, batch_size)):
        chunk = todo[start : start + batch_size]
        items = []
        for d in chunk:
            frames, meta = official_video_inputs(d, video_root)
            items.append((official_messages(d, video_root, mode), frames, {k: meta[k] for k in META_KEYS}))
        texts = generate_video(model, processor, items, max_new_tokens=max_new, batch_size=len(items))
        with open(out, "a", encoding="utf-8") as f:
            for d, t in zip(chunk, texts):
                f.write(json.dumps({"id": d["id"], "response": t}, ensure_ascii=False) + "\n")
    return len(todo)


def load_model(path: str):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from mmreason.video.media import set_video_pixels

    processor = AutoProcessor.from_pretrained(path)
    set_video_pixels(processor, PROCESSOR_MIN_PIXELS, PROCESSOR_MAX_PIXELS)
    model = AutoModelForImageTextToText.from_pretrained(path, use_safetensors=True).eval()
    return model, processor


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="mmreason nep predict", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="checkpoint folder (model + processor)")
    ap.add_argument("--annotations", required=True, help="official FutureBench records (JSON list or JSONL)")
    ap.add_argument("--video-root", required=True, help="folder that video_path's part after 'video_dataset/' is under")
    ap.add_argument("--output", required=True, help="predictions JSONL (appended; a rerun resumes)")
    ap.add_argument("--mode", default="official", choices=("official", "official-reasoning"))
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--limit", type=int, default=None, help="only the first N items")
    a = ap.parse_args(argv)
    try:
        docs = load_annotations(a.annotations)[: a.limit]
        model, processor = load_model(a.model)
        n = predict(model, processor, docs, a.video_root, a.output, a.mode, a.batch_size)
    except (FutureBenchError, FileNotFoundError, OSError) as e:
        print(f"mmreason nep predict: error: {e}", file=sys.stderr)
        return 2
    print(f"generated {n} responses ({len(docs) - n} already in {a.output})")
    return 0
