"""A corrupt frame (issue 25, item 4): one truncated PNG in the frames folder of one video record among good ones.
Every entry point finds it before any model loads — the SFT and GRPO loaders (a file:line error, or a counted skip
when lenient), eval's media check (an error naming the item), `nep build`'s clip probe (the clip's line)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from video_fixtures import coded_frames

from mmreason.errors import RecordError
from mmreason.media.video import VideoConfig
from mmreason.records import load_records

CFG = VideoConfig(video_frames_fps=8.0, video_min_pixels=3136, video_max_pixels=3136)


@pytest.fixture()
def records(tmp_path) -> Path:
    for name in ("good", "bad"):
        folder = tmp_path / name
        folder.mkdir()
        for i, im in enumerate(coded_frames(8)):
            im.save(folder / f"{i:04d}.png")
    frame = tmp_path / "bad" / "0003.png"
    frame.write_bytes(frame.read_bytes()[:60])  # the header opens; the pixels are gone
    rows = [{"id": f"v{i}", "question": "What happens next?", "answer": "A", "answer_type": "text",
             "solution": "\\boxed{A}", "video": {"path": "bad" if i == 1 else "good", "end": 1.0}} for i in range(3)]
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_sft_loader(records, fault_log):
    from mmreason.sft.dataset import DataReport, check_videos

    recs, _ = load_records(records)
    with pytest.raises(RecordError, match=r"train\.jsonl:2: unreadable frame 4 of 8"):
        check_videos(recs, CFG, lenient=False, report=DataReport())
    report = DataReport()
    kept = check_videos(recs, CFG, lenient=True, report=report)
    assert [r.id for r in kept] == ["v0", "v2"] and report.skipped[0]["where"] == f"{records}:2"
    fault_log.record("sft", "corrupt frame in a frames folder", "error (strict) / skipped (lenient)")


def test_grpo_loader(records, fault_log):
    from mmreason.rl.data import build_grpo_dataset

    with pytest.raises(RecordError, match=r"train\.jsonl:2: unreadable frame 4 of 8"):
        build_grpo_dataset(str(records), video_cfg=CFG)
    ds, report = build_grpo_dataset(str(records), video_cfg=CFG, lenient=True)
    assert len(ds) == 2 and report.skipped_bad_video == 1
    fault_log.record("grpo", "corrupt frame in a frames folder", "error (strict) / skipped (lenient)")


def test_eval_media_check(records, fault_log):
    from mmreason.eval.benchmark import Item, VideoInput
    from mmreason.eval.run import check_media

    class Bench:
        class spec:
            name = "frames"

        media_hint = ""

    # eval reads a frames folder at the default video_frames_fps (2): frames 0..3 are [0, 2) s
    items = [Item(f"v{i}", [], [VideoInput(str(records.parent / name), end=2.0, reader="clip")])
             for i, name in enumerate(["good", "bad"])]
    with pytest.raises(ValueError, match="frames: 1 unreadable image.s. or video.s., e.g. frames item v1: "
                                         "unreadable frame 4 of 8"):
        check_media(Bench(), items)
    fault_log.record("eval run", "corrupt frame in a frames folder", "error before the model loads")


def test_nep_build_clip_probe(tmp_path, fault_log):
    from mmreason.video.nep import past_clip_video
    from mmreason.media.writer import write_frame_list

    write_frame_list(coded_frames(8), tmp_path / "root" / "clip.frames.json", fps=8)
    png = tmp_path / "root" / "clip" / "0005.png"
    if not png.exists():
        png = sorted((tmp_path / "root" / "clip").glob("*.png"))[5]
    png.write_bytes(png.read_bytes()[:60])
    entry = {"video_path": "clips/clip.frames.json"}
    with pytest.raises(RecordError, match=r"v1\.json:7: unreadable frame 6 of 8"):
        past_clip_video(entry, tmp_path / "root", tmp_path / "out", "v1.json:7", probe=True)
    fault_log.record("nep build", "corrupt frame in a past clip", "error naming the entry")
