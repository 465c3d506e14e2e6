"""`mmreason nep build --recipe`: raw videos + captions -> the official NEP split prompts through a scripted
OpenAI-compatible teacher (loopback server) -> past clips cut at the chosen split -> SFT / CFT / Distill / Mix
records; bad teacher output as counted skips; resume without duplicates; the teacherless fallback."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from video_fixtures import read_code, write_coded_mp4

from mmreason.data.loopback import LoopbackServer, Scripted, last_user_text
from mmreason.errors import RecordError
from mmreason.records import load_records
from mmreason.media.video import VideoConfig, load_record_video
from mmreason.video.nep import build_raw, main
from mmreason.video.prompts import (CFT_SYSTEM_PROMPT, DISTILL_SYSTEM_PROMPT, SFT_QUESTION_POOL, think_answer)

RECIPE = Path(__file__).resolve().parents[2] / "data_recipes" / "nep_raw.yaml"
FPS, N = 8, 32  # 4 s clips; frame i shows code i
ALL_FRAMES = VideoConfig(video_fps=8.0, video_max_frames=64, video_min_frames=1, video_min_pixels=3136,
                         video_max_pixels=3136)

# clip -> (caption, events the teacher lists, the teacher's split point, how the reasoning reply looks)
CLIPS = {
    0: ("CLIP0 a ball rolls. CLIP0 it nears a wall. CLIP0 it hits the wall. CLIP0 it bounces back.", 4,
        "between Scene 2 and Scene 3", "ok"),                     # no timestamps: 4 s * 2/4 -> split at 2.0 s
    1: ("[0:00-0:01] CLIP1 a cup stands. [0:01-0:03] CLIP1 a hand tips it. [0:03-0:04] CLIP1 water spills.", 3,
        "between Scene 1 and Scene 2", "ok"),                     # timestamped: the start of segment 2, 1.0 s
    2: ("CLIP2 one. CLIP2 two.", 2, "between Scene 3 and Scene 4", "ok"),   # split outside the listed scenes
    3: ("CLIP3 one. CLIP3 two.", 2, "somewhere in the middle", "ok"),        # no parsable split
    4: ("CLIP4 one. CLIP4 two.", 2, None, "ok"),                             # suitable: no
    5: ("CLIP5 a door opens. CLIP5 a cat walks in.", 2, "between Scene 1 and Scene 2", "no_think"),
}
SPLIT = {0: 2.0, 1: 1.0}
REASONS = {"video_missing": "bad_video", "uncaptioned": "no_caption", "clip2": "split_outside_video",
           "clip3": "no_split", "clip4": "unsuitable", "clip5": "no_reasoning"}


def script(body: dict) -> Scripted:
    text = last_user_text(body)
    m = re.search(r"CLIP(\d)", text)
    assert m, text[:300]
    k = int(m.group(1))
    caption, n, point, reasoning = CLIPS[k]
    scenes = [s for s in re.split(r"(?<=\.)\s+", re.sub(r"\[[^\]]*\]\s*", "", caption)) if s]
    if text.startswith("Event Identification"):
        return Scripted(text="```json\n" + json.dumps({"events": [{"scene": f"Scene {i + 1}", "description": d}
                                                                   for i, d in enumerate(scenes[:n])]}) + "\n```")
    if text.startswith("Causal Analysis"):
        return Scripted(text=json.dumps({"suitable": "yes" if point else "no", "optimal_split_point": point or "",
                                         "reasoning": "cause and effect"}))
    if text.startswith("Caption Splitting"):
        x = int(re.search(r"Scene (\d) and", point).group(1))
        return Scripted(text=json.dumps({"caption_part1": " ".join(scenes[:x]), "caption_part2": " ".join(scenes[x:])}))
    if text.startswith("Chain-of-Thought Reasoning"):
        if reasoning == "no_think":
            return Scripted(text=f"CLIP{k} it will go on.")
        return Scripted(text=f"<think>CLIP{k} the caption says it moves on.</think>\nCLIP{k} it moves on.")
    if text.startswith("You will receive a snippet"):
        which = "reasoning" if "Preserve all line breaks" in text else "prediction"
        return Scripted(text=f"CLIP{k} the video shows it moves on ({which}).")
    if text.startswith("Future Prediction Verification"):
        return Scripted(text=json.dumps({"Critique": f"CLIP{k} close enough.", "Conclusion": "right" if k else "wrong"}))
    raise AssertionError(f"unexpected prompt: {text[:80]}")


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("raw")
    rows = []
    for k, (caption, *_rest) in CLIPS.items():
        write_coded_mp4(d / "videos" / f"clip{k}.mp4", n=N, fps=FPS)
        rows.append({"id": f"clip{k}", "question": "Describe the video.", "answer_type": "text", "video": {"path": f"videos/clip{k}.mp4"},
                     "metadata": {"caption": caption}})
    rows.append({"id": "video_missing", "question": "q", "answer_type": "text", "video": {"path": "videos/none.mp4"},
                 "metadata": {"caption": "CLIP0 a. CLIP0 b."}})
    rows.append({"id": "uncaptioned", "question": "q", "answer_type": "text", "video": {"path": "videos/clip0.mp4"}})
    path = d / "videos.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def server():
    with LoopbackServer(script) as srv:
        yield srv


def overrides(source, server=None):
    o = [f"source.path={source}"]
    if server is None:
        return o + ["teacher.backend=none"]
    return o + [f"teacher.base_url={server.base_url}", "teacher.model=scripted", "teacher.max_retries=0",
                "teacher.concurrency=2", "teacher.timeout=10"]


def codes(rec):
    return [read_code(im) for im in load_record_video(rec, ALL_FRAMES).frames]


def test_teacher_path_writes_every_strategy_cut_at_the_split(tmp_path, source, server):
    out = tmp_path / "out"
    stats = build_raw(str(RECIPE), "mix", str(out), overrides(source, server), progress=False)
    q = stats["questions"]
    assert q["total"] == len(CLIPS) + 2 and q["kept"] == 2 and stats["complete"]
    assert q["dropped_by_reason"] == {r: 1 for r in REASONS.values()}
    ledger = {json.loads(l)["source_id"]: json.loads(l) for l in open(out / "ledger.jsonl")}
    assert {sid: row["reason"] for sid, row in ledger.items() if row["status"] == "dropped"} == REASONS

    # the teacher got the official prompt text (the template files are verbatim)
    texts = [last_user_text(b) for b in server.bodies]
    assert f"Event Identification\n\nBelow is the video caption:\n'{CLIPS[0][0]}'\n\nTask:\n1. Identify" in texts[0] \
        or any(t.startswith(f"Event Identification\n\nBelow is the video caption:\n'{CLIPS[0][0]}'\n\nTask:") for t in texts)

    anns, _ = load_records(out / "annotations.jsonl", require_answer=False)
    assert {a.metadata["source_id"]: a.video.end for a in anns} == {"clip0": SPLIT[0], "clip1": SPLIT[1]}
    recs, report = load_records(out / "mix.jsonl")  # strict: every line valid, every clip exists
    # the official CFT resampling (wrong:right 2.1) keeps the one wrong critique and int(1 / 2.1) = 0 right ones
    assert not report.skipped and stats["nep"]["by_strategy"] == {"sft": 2, "cft": 1, "distill": 2}
    assert stats["nep"]["cft_resampling"]["kept"] == {"wrong": 1, "right": 0}
    for r in recs:
        k = int(r.id[len("clip")])
        split = SPLIT[k]
        assert r.video.end == split and codes(r) == list(range(int(split * FPS)))  # past frames only, all of them
        nep = json.loads(open(out / "annotations.jsonl").readlines()[k])["metadata"]["nep"]
        part2 = nep["video_split"]["split_caption"]["caption_part2"]
        ds = nep["ds_reasoning"]
        s = r.metadata["strategy"]
        if s == "sft":
            assert r.question in SFT_QUESTION_POOL and r.solution == part2 and r.metadata["system_prompt"] is None
        elif s == "distill":
            assert r.metadata["system_prompt"] == DISTILL_SYSTEM_PROMPT
            assert r.solution == think_answer(ds["rewritten_reasoning_content"], ds["rewritten_prediction_content"])
            assert "the video shows" in r.solution and "caption" not in r.solution
        else:
            assert r.metadata["system_prompt"] == CFT_SYSTEM_PROMPT and "\n\nSolution:\n\n<think>" in r.question
            verdict = "right" if k else "wrong"
            assert r.solution == f"Critique:\nCLIP{k} close enough.\n\nConclusion:\n{verdict}."
            assert r.metadata["conclusion"] == verdict
    split1 = anns[1].metadata["nep"]["video_split"]
    assert split1["split_caption"]["caption_part2"] == "CLIP1 a hand tips it. CLIP1 water spills."
    assert split1["optimal_split_point"] == "between Scene 1 and Scene 2" and split1["split_by"] == "teacher"


def test_resume_after_a_partial_run_and_a_kill_has_no_duplicates(tmp_path, source, server):
    ref = tmp_path / "ref"
    build_raw(str(RECIPE), "sft", str(ref), overrides(source, server), progress=False)
    want = [json.loads(l) for l in open(ref / "sft.jsonl")]

    out = tmp_path / "out"
    build_raw(str(RECIPE), "sft", str(out), overrides(source, server), limit=1, progress=False)  # partial
    assert len(open(out / "ledger.jsonl").readlines()) == 1
    build_raw(str(RECIPE), "sft", str(out), overrides(source, server), progress=False)
    # a kill between a record and its ledger line, mid-line: the last committed video's ledger line is gone
    ledger = open(out / "ledger.jsonl").readlines()
    (out / "ledger.jsonl").write_text("".join(ledger[:1]))
    with open(out / "annotations.jsonl", "a") as f:
        f.write('{"id": "clip1--nep-raw-v1--0", "quest')
    calls = server.calls
    stats = build_raw(str(RECIPE), "sft", str(out), overrides(source, server), progress=False)
    assert server.calls > calls and stats["resume_repair"]["partial_record_lines"] == 1
    got = [json.loads(l) for l in open(out / "sft.jsonl")]
    assert got == want and len({r["id"] for r in got}) == len(got) == 2
    ids = [json.loads(l)["id"] for l in open(out / "annotations.jsonl")]
    assert len(ids) == len(set(ids)) == 2
    calls = server.calls  # a finished build asks nothing
    build_raw(str(RECIPE), "sft", str(out), overrides(source, server), progress=False)
    assert server.calls == calls


def test_fallback_without_teacher_uses_timestamps_else_the_ratio(tmp_path, source, capsys):
    out = tmp_path / "out"
    argv = ["--recipe", str(RECIPE), "--strategy", "sft", "--out", str(out), "--no-progress"]
    for o in overrides(source):
        argv += ["--set", o]
    assert main(argv) == 0
    assert "sft.jsonl: " in capsys.readouterr().out
    stats = json.loads((out / "stats.json").read_text())
    anns = {a.metadata["source_id"]: a for a in load_records(out / "annotations.jsonl", require_answer=False)[0]}
    # clip1's segments start at 0, 1, 3 s: the boundary nearest 0.5 * 4 s is 1 s (tie with 3 s: the first)
    assert anns["clip1"].video.end == 1.0 and anns["clip1"].metadata["split_by"] == "timestamps"
    part = anns["clip1"].metadata["nep"]["video_split"]["split_caption"]
    assert part == {"caption_part1": "CLIP1 a cup stands.", "caption_part2": "CLIP1 a hand tips it. CLIP1 water spills."}
    assert anns["clip0"].video.end == 2.0 and anns["clip0"].metadata["split_by"] == "ratio"
    assert anns["clip0"].answer == "CLIP0 it hits the wall. CLIP0 it bounces back."
    assert codes(anns["clip0"]) == list(range(16))
    assert stats["questions"]["dropped_by_reason"] == {"bad_video": 1, "no_caption": 1}
    assert stats["nep"]["written"] == {"sft": len(anns)}

    with pytest.raises(RecordError, match="only sft"):
        build_raw(str(RECIPE), "distill", str(tmp_path / "d"), overrides(source), progress=False)


def test_teacher_without_answers_leaves_the_videos_retryable(tmp_path, source, capsys):
    """HTTP 500 on every request about clip 1: it is not dropped; `nep build` writes the others, says so and exits
    3 (rerun to retry)."""
    with LoopbackServer(lambda body: Scripted(status=500) if "CLIP1" in json.dumps(body) else script(body)) as srv:
        argv = ["--recipe", str(RECIPE), "--strategy", "sft", "--out", str(tmp_path / "out"), "--no-progress"]
        for o in overrides(source, srv):
            argv += ["--set", o]
        code = main(argv)
    err = capsys.readouterr().err
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert code == 3 and "run the same command again" in err, err
    assert stats["retryable"] == ["clip1"] and not stats["complete"] and stats["questions"]["kept"] >= 1
    assert "no_accepted_sample" not in stats["questions"]["dropped_by_reason"]
