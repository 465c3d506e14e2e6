"""`mmreason nep build` on a tiny V1-33K-shaped fixture: each strategy's exact output format, the
official CFT resampling, Mix shares, bad entries (strict error / lenient count), and the rerun skip."""

import json

import pytest
from video_fixtures import write_coded_mp4

from mmreason.cli import main as cli_main
from mmreason.errors import RecordError
from mmreason.records import load_records
from mmreason.video.nep import build
from mmreason.video.prompts import (
    CFT_QUESTION_POOL,
    CFT_SYSTEM_PROMPT,
    DISTILL_SYSTEM_PROMPT,
    SFT_QUESTION_POOL,
    resample_cft,
)


def _entry(i, conclusion):
    return {
        "video_path": f"video_dataset/cat{i % 2}/clip{i}.mp4",
        "full_video_path": f"/data/V1-33K/video_dataset/cat{i % 2}/clip{i}.mp4",
        "caption": f"full caption {i}",
        "events": [{"scene": "Scene 1", "description": f"start {i}"}, {"scene": "Scene 2", "description": f"end {i}"}],
        "video_split": {"split_caption": {"caption_part1": f"past {i}", "caption_part2": f"future {i}"}},
        "ds_reasoning": {"rewritten_reasoning_content": f"reasoning {i}", "rewritten_prediction_content": f"prediction {i}"},
        "o3_critique": {"Critique": f"critique {i}", "Conclusion": conclusion},
        "qa": {"Question": f"What happens {i}?", "Options": {k: f"{k} option {i}" for k in "ABCD"}, "Answer": "ABCD"[i % 4]},
    }


CONCLUSIONS = ["right", "wrong", " Wrong", "wrong", "right", "wrong", "wrong"]  # 2 right, 5 wrong


@pytest.fixture()
def v1(tmp_path):
    root = tmp_path / "V1-33K" / "first_part_video"
    entries = [_entry(i, c) for i, c in enumerate(CONCLUSIONS)]
    for e in entries:
        write_coded_mp4(root / e["video_path"].split("/", 1)[1], n=8, fps=8)
    path = tmp_path / "V1-33K" / "next_event_prediction.json"
    path.write_text(json.dumps(entries))
    return path, root, entries


def test_sft_distill_formats(v1, tmp_path):
    path, root, entries = v1
    build(str(path), str(root), "sft", str(tmp_path / "o"), seed=1)
    sft, _ = load_records(tmp_path / "o" / "sft.jsonl")
    assert len(sft) == 7
    for r in sft:
        i = r.metadata["v1_index"]
        assert r.question in SFT_QUESTION_POOL and r.solution == r.answer == f"future {i}"
        assert r.video_path().resolve() == (root / f"cat{i % 2}" / f"clip{i}.mp4").resolve()
        assert r.video.start is None and r.video.end is None  # past clips are pre-cut
        assert r.metadata["system_prompt"] is None and r.metadata["prompt_suffix"] == ""
    assert "what will happen next?What comes next?" in SFT_QUESTION_POOL and len(SFT_QUESTION_POOL) == 25

    build(str(path), str(root), "distill", str(tmp_path / "o"), seed=1)
    distill, _ = load_records(tmp_path / "o" / "distill.jsonl")
    for r in distill:
        i = r.metadata["v1_index"]
        assert r.solution == f"<think>\nreasoning {i}\n</think>\n<answer>\nprediction {i}\n</answer>"
        assert r.metadata["system_prompt"] == DISTILL_SYSTEM_PROMPT and r.question in SFT_QUESTION_POOL


def test_cft_format_and_official_resampling(v1, tmp_path):
    path, root, _ = v1
    stats = build(str(path), str(root), "cft", str(tmp_path / "o"), seed=0)
    cft, _ = load_records(tmp_path / "o" / "cft.jsonl")
    # 2 right, 5 wrong: keep both right ones and round(2.1 * 2) = 4 wrong ones
    assert stats["cft_resampling"]["available"] == {"wrong": 5, "right": 2}
    assert stats["cft_resampling"]["kept"] == {"wrong": 4, "right": 2}
    assert sorted(r.answer for r in cft) == ["right"] * 2 + ["wrong"] * 4
    for r in cft:
        i = r.metadata["v1_index"]
        q, sol = r.question.split("\n\nSolution:\n\n")
        assert q in CFT_QUESTION_POOL and q.startswith("Question:\n")
        assert sol == f"<think>\nreasoning {i}\n</think>\n<answer>\nprediction {i}\n</answer>"
        assert r.solution == f"Critique:\ncritique {i}\n\nConclusion:\n{CONCLUSIONS[i]}."  # raw conclusion kept
        assert r.metadata["system_prompt"] == CFT_SYSTEM_PROMPT
    assert len(CFT_QUESTION_POOL) == 26


def test_cft_resampling_when_wrong_ones_are_short():
    import random

    from mmreason.records import Record

    recs = [Record(id=str(i), question="q", answer="a", metadata={"conclusion": c})
            for i, c in enumerate(["right"] * 5 + ["wrong"] * 4)]
    kept, stats = resample_cft(recs, random.Random(0))
    # round(2.1 * 5) = 10 > 4 wrong: keep all 4 wrong and int(4 / 2.1) = 1 right
    assert stats["kept"] == {"wrong": 4, "right": 1} and len(kept) == 5
    kept, stats = resample_cft(recs, random.Random(0), wrong_ratio=2.0)
    assert stats["kept"] == {"wrong": 4, "right": 2}


def test_mix_and_mcq(v1, tmp_path):
    path, root, _ = v1
    stats = build(str(path), str(root), "mix", str(tmp_path / "m"))
    mix, _ = load_records(tmp_path / "m" / "mix.jsonl")
    assert stats["by_strategy"] == {"sft": 7, "cft": 6, "distill": 7} and len(mix) == 20
    capped = build(str(path), str(root), "mix", str(tmp_path / "m6"), max_samples=6)
    assert capped["mix_shares"] == {"sft": 2, "cft": 2, "distill": 2}
    build(str(path), str(root), "mcq", str(tmp_path / "q"))
    mcq, _ = load_records(tmp_path / "q" / "mcq.jsonl")
    assert [r.answer for r in mcq] == ["A", "B", "C", "D", "A", "B", "C"]
    assert mcq[1].choices == [f"{k} option 1" for k in "ABCD"] and mcq[1].answer_type == "choice"


def test_bad_entries_strict_and_lenient(v1, tmp_path):
    path, root, entries = v1
    del entries[2]["video_split"]["split_caption"]["caption_part2"]
    entries[4]["video_path"] = "video_dataset/cat0/missing.mp4"
    (root / "cat1" / "clip5.mp4").write_bytes(b"\0garbage" * 40)
    path.write_text(json.dumps(entries))
    with pytest.raises(RecordError, match=r"next_event_prediction\.json\[2\]: missing field 'video_split\.split_caption\.caption_part2'"):
        build(str(path), str(root), "sft", str(tmp_path / "s"))
    stats = build(str(path), str(root), "sft", str(tmp_path / "l"), lenient=True)
    assert stats["written"] == {"sft": 4}
    reasons = {s["where"].rsplit("[", 1)[1]: s["reason"] for s in stats["skipped"]}
    assert set(reasons) == {"2]", "4]", "5]"}
    assert "past clip not found" in reasons["4]"] and "undecodable video" in reasons["5]"]
    on_disk = json.loads((tmp_path / "l" / "stats.json").read_text())
    assert len(on_disk["skipped"]) == 3 and on_disk["done"]


def test_rerun_is_skipped_and_cli(v1, tmp_path):
    path, root, _ = v1
    out = tmp_path / "c"
    argv = ["nep", "build", "--input", str(path), "--video-root", str(root), "--strategy", "sft", "--out", str(out)]
    assert cli_main(argv) == 0
    first = (out / "sft.jsonl").read_text()
    assert build(str(path), str(root), "sft", str(out)).get("resumed") is True
    assert (out / "sft.jsonl").read_text() == first
    again = build(str(path), str(root), "sft", str(out), seed=5)  # other arguments: rebuilt
    assert not again.get("resumed")
    assert cli_main(argv[:-4] + ["--video-root", str(tmp_path / "nowhere"), "--strategy", "sft", "--out", str(out)]) == 2


def test_mcq_from_video_path_and_qa_alone(tmp_path):
    """NEP's EasyR1 GRPO JSON holds `video_path` + `qa` only: `--strategy mcq` needs nothing else (it used to
    demand ds_reasoning)."""
    root = tmp_path / "first_part_video"
    entries = [{"video_path": f"video_dataset/clip{i}.mp4",
                "qa": {"Question": f"Next {i}?", "Options": {k: f"{k}{i}" for k in "ABCD"}, "Answer": "ABCD"[i]}}
               for i in range(3)]
    for i in range(3):
        write_coded_mp4(root / f"clip{i}.mp4", n=4)
    path = tmp_path / "grpo_v1.json"
    path.write_text(json.dumps(entries))
    stats = build(str(path), str(root), "mcq", str(tmp_path / "out"), probe_video=False)
    assert stats["written"] == {"mcq": 3} and stats["skipped"] == []
    recs, _ = load_records(tmp_path / "out" / "mcq.jsonl")
    assert [(r.question, r.answer, r.choices[1]) for r in recs] == [(f"Next {i}?", "ABCD"[i], f"B{i}") for i in range(3)]
    assert all(r.video_path() == root / f"clip{i}.mp4" for i, r in enumerate(recs))
