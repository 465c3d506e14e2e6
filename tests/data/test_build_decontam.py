"""Decontamination against MathVista testmini and We-Math: a planted benchmark question (text), a copied
We-Math image (exact hash) and a re-encoded, resized one (perceptual hash) are removed and listed."""

from __future__ import annotations

import json

from PIL import Image
from test_build_common import Script, make_source, read_jsonl, recipe_for

from mmreason.data.build import build
from mmreason.data.decontam import BenchmarkIndex, dhash
from mmreason.data.loopback import LoopbackServer
from mmreason.data.recipe import DecontamConfig


def test_planted_benchmark_items_are_removed(tmp_path, benchmarks_dir):
    src = make_source(tmp_path / "src", n=3, bad_inputs=False)
    mv = json.loads((benchmarks_dir / "mathvista" / "testmini.json").read_text())
    pid, row = next((k, v) for k, v in mv.items() if len(v["question"].split()) > 15)
    wm = json.loads((benchmarks_dir / "wemath" / "testmini.json").read_text())[10]
    wm_img = benchmarks_dir / "wemath" / wm["image_path"]
    (tmp_path / "src" / "images" / "copy.png").write_bytes(wm_img.read_bytes())
    with Image.open(wm_img) as im:  # re-encoded and resized: bytes differ, picture does not
        im.convert("RGB").resize((im.width // 2 + 3, im.height // 2 + 1)).save(tmp_path / "src" / "images" / "resized.jpg", quality=85)
    planted = [
        {"id": "leak_text", "question": "Hint: answer the question.\n" + row["question"].upper() + " ",
         "answer": "1", "answer_type": "integer", "images": ["images/q0.png"]},
        {"id": "leak_img", "question": "Item 0: how many red dots are in the image?", "answer": "1",
         "answer_type": "integer", "images": ["images/copy.png"]},
        {"id": "leak_img2", "question": "Item 0: how many red dots are in the image?", "answer": "1",
         "answer_type": "integer", "images": ["images/resized.jpg"]},
    ]
    with open(tmp_path / "src" / "train.jsonl", "a") as f:
        for d in planted:
            f.write(json.dumps(d) + "\n")
    cache = tmp_path.parent / "decontam_cache"
    with LoopbackServer(Script()) as srv:
        recipe = recipe_for("distilled.yaml", tmp_path / "src" / "train.jsonl", srv.base_url, cache,
                            **{"decontam.benchmarks_dir": str(benchmarks_dir)})
        stats = build(recipe, tmp_path / "out", progress=False)
        calls = srv.calls
    removed = {d["source_id"]: d for d in stats["decontaminated"]}
    assert set(removed) == {"leak_text", "leak_img", "leak_img2"}
    assert removed["leak_text"]["benchmark"] == "mathvista_testmini" and removed["leak_text"]["match"] == "text"
    assert removed["leak_img"]["match"] == "image_exact" and removed["leak_img"]["benchmark"] == "wemath_testmini"
    assert removed["leak_img2"]["match"] == "image_dhash"
    assert stats["questions"]["dropped_by_reason"]["decontaminated"] == 3
    assert {r["metadata"]["source_id"] for r in read_jsonl(tmp_path / "out" / "train.jsonl")} <= {"q0", "q1", "q2"}
    assert calls == 3 * recipe.sampling.k  # contaminated questions never reach the teacher
    assert list(cache.glob("index-*.json"))  # the benchmark index is cached


def test_index_does_not_flag_clean_or_generic_questions(tmp_path, benchmarks_dir):
    idx = BenchmarkIndex.load(DecontamConfig(benchmarks_dir=str(benchmarks_dir), cache_dir=str(tmp_path.parent / "decontam_cache")))
    assert idx.check("Item 3: how many red dots are in the image? Count them carefully please.", []) is None
    assert idx.check("What is x?", []) is None  # too short to be evidence
    blank = tmp_path / "blank.png"
    Image.new("RGB", (64, 64), "white").save(blank)
    assert idx.check("Item 3: how many red dots?", [blank]) is None  # near-blank images never match perceptually
    assert bin(dhash(blank)).count("1") == 0
