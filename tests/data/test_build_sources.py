"""HF-dataset sources (save_to_disk folder and parquet, images as the datasets Image feature) mapped to
records by presets and column mappings, built end to end through the loopback teacher."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from test_build_common import Script, dots_image, read_jsonl, recipe_for

from mmreason.data.build import build
from mmreason.data.loopback import LoopbackServer
from mmreason.data.recipe import SourceConfig
from mmreason.data.sources import clean_answer, iter_sources
from mmreason.records import load_records


def png_bytes(n: int, i: int, tmp) -> bytes:
    p = tmp / f"_{i}.png"
    dots_image(p, n, i)
    return p.read_bytes()


def coldstart_dataset(tmp_path):
    """The released cold-start RL layout: images (list of Image), problem, answer."""
    import datasets

    rows = {"images": [], "problem": [], "answer": []}
    for i in range(4):
        rows["images"].append([{"bytes": png_bytes(i % 5 + 1, i, tmp_path), "path": None}])
        rows["problem"].append(f"<image>Item {i}: how many red dots are in the image?")
        rows["answer"].append(f"\\boxed{{{i % 5 + 1}}}" if i != 3 else None)  # row 3: no gold answer
    rows["images"].append([{"bytes": b"\x89PNG\r\n\x1a\n garbage", "path": None}])  # corrupt image
    rows["problem"].append("Item 0: how many red dots are in the image?")
    rows["answer"].append("1")
    feats = datasets.Features({"images": datasets.List(datasets.Image()), "problem": datasets.Value("string"),
                               "answer": datasets.Value("string")})
    return datasets.Dataset.from_dict(rows, features=feats)


@pytest.mark.parametrize("layout", ["save_to_disk", "parquet"])
def test_hf_dataset_source_builds(tmp_path, layout):
    ds = coldstart_dataset(tmp_path)
    if layout == "save_to_disk":
        path = tmp_path / "coldstart"
        ds.save_to_disk(str(path))
    else:
        path = tmp_path / "coldstart.parquet"
        ds.to_parquet(str(path))
    with LoopbackServer(Script()) as srv:
        recipe = recipe_for("caption.yaml", path, srv.base_url, tmp_path.parent / "decontam_cache",
                            **{"source.format": "hf", "source.answer_type": "integer"})
        out = tmp_path / "out"
        stats = build(recipe, out, progress=False)
    ledger = {row["source_id"]: row for row in read_jsonl(out / "ledger.jsonl")}
    assert stats["questions"]["total"] == 5 and stats["complete"]
    prefix = path.name
    assert ledger[f"{prefix}-000003"]["reason"] == "no_gold_answer"
    assert ledger[f"{prefix}-000004"]["reason"] == "bad_image"
    assert ledger[f"{prefix}-000000"]["status"] == "kept"  # item 0 is answered correctly by the script
    recs, _ = load_records(out / "train.jsonl")
    assert recs and all(r.images[0].startswith("images/") and not r.question.startswith("<image>") for r in recs)
    assert {r.answer for r in recs} <= {"1", "2", "3"}


def test_mapping_errors_are_clear(tmp_path):
    import datasets

    datasets.Dataset.from_dict({"q": ["a"], "a": ["1"]}).save_to_disk(str(tmp_path / "d"))
    cfg = SourceConfig(path=str(tmp_path / "d"), format="hf", mapping={"question": "question"})
    with pytest.raises(ValueError, match=r"column\(s\) \['question'\] not in"):
        list(iter_sources(cfg, tmp_path / "m", tmp_path))
    cfg = SourceConfig(path=str(tmp_path / "d"), format="hf", mapping={"question": "q", "answr": "a"})
    with pytest.raises(ValueError, match="unknown record field"):
        list(iter_sources(cfg, tmp_path / "m", tmp_path))
    cfg = SourceConfig(path=str(tmp_path / "d"), format="hf", mapping={"question": "q", "answer": "a", "id": "q"})
    items = list(iter_sources(cfg, tmp_path / "m", tmp_path))
    assert items[0].id == "a" and items[0].record.answer == "1"


def test_geometry3k_and_geoqa_presets(tmp_path):
    import datasets

    buf = io.BytesIO()
    Image.new("RGB", (20, 20), "white").save(buf, format="PNG")
    img = {"bytes": buf.getvalue(), "path": None}
    g3k = datasets.Dataset.from_dict(
        {"images": [[img]], "problem": ["<image>Find x. Angle ABC is 40."], "answer": ["140"]},
        features=datasets.Features({"images": datasets.List(datasets.Image()), "problem": datasets.Value("string"),
                                    "answer": datasets.Value("string")}))
    g3k.save_to_disk(str(tmp_path / "g3k"))
    geoqa = datasets.Dataset.from_dict({"image": [img], "problem": ["Find the angle."], "answer": ["<answer>35°</answer>"]},
                                       features=datasets.Features({"image": datasets.Image(), "problem": datasets.Value("string"),
                                                                   "answer": datasets.Value("string")}))
    geoqa.to_parquet(str(tmp_path / "geoqa.parquet"))
    (a,) = iter_sources(SourceConfig(path=str(tmp_path / "g3k"), preset="geometry3k"), tmp_path / "m", tmp_path)
    assert a.record.question == "Find x. Angle ABC is 40." and a.record.answer == "140" and len(a.record.images) == 1
    assert a.record.image_paths()[0].is_file()
    (b,) = iter_sources(SourceConfig(path=str(tmp_path / "geoqa.parquet"), preset="geoqa"), tmp_path / "m", tmp_path)
    assert b.record.answer == "35°" and b.record.image_paths()[0].is_file()
    assert clean_answer("\\boxed{\\frac{1}{2}}") == "\\frac{1}{2}" and clean_answer(None) is None


def test_bad_row_values_are_counted_skips(tmp_path):
    """A list where the precision number goes (TypeError): that row is an invalid_record item naming the
    row, and the rows after it still come through."""
    import datasets

    datasets.Dataset.from_dict({"q": ["a", "b", "c"], "a": ["1", "2", "3"], "p": [[1], None, [2, 3]]}).save_to_disk(
        str(tmp_path / "d"))
    cfg = SourceConfig(path=str(tmp_path / "d"), format="hf", mapping={"question": "q", "answer": "a", "precision": "p"})
    items = list(iter_sources(cfg, tmp_path / "m", tmp_path))
    assert [it.error for it in items] == ["invalid_record", None, "invalid_record"]
    assert "row 0" in items[0].detail and "row 2" in items[2].detail and items[1].record.answer == "2"


def test_released_layout_source_keeps_released_targets_and_counts_bad_rows(tmp_path):
    """A source in a layout mmreason.formats knows (no preset, no mapping) is read by that reader: the released
    chain of thought stays the solution, `<image>` stays where it stands, a bad row is a counted item."""
    import io

    import datasets
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (20, 20), "white").save(buf, format="PNG")
    img = {"bytes": buf.getvalue(), "path": None}
    rows = {"images": [[img], [img], [img]],
            "problem": ["<image>Find x.", "<image><image>Two placeholders, one image.", "Area? <image>"],
            "answer": ["x is 3 so \\boxed{3}", "1", "12"]}
    datasets.Dataset.from_dict(rows).cast_column("images", datasets.List(datasets.Image())).to_parquet(
        str(tmp_path / "cold.parquet"))
    items = list(iter_sources(SourceConfig(path=str(tmp_path / "cold.parquet")), tmp_path / "m", tmp_path))
    assert [it.error for it in items] == [None, "invalid_record", None]
    assert "2 <image> placeholder(s)" in items[1].detail and "cold.parquet[1]" in items[1].detail
    a, c = items[0].record, items[2].record
    assert (a.question, a.answer, a.solution) == ("<image>Find x.", "3", "x is 3 so \\boxed{3}")
    assert (c.question, c.answer, c.solution) == ("Area? <image>", "12", None) and c.image_paths()[0].is_file()
    forced = list(iter_sources(SourceConfig(path=str(tmp_path / "cold.parquet"), format="easyr1"), tmp_path / "m",
                               tmp_path))
    assert [it.id for it in forced] == [it.id for it in items] == ["cold-000000", "row1", "cold-000002"]
