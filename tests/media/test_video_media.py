"""Video media: cutting by timestamp, sampling, pixel bounds, bad-video errors, and the processor /
rope-index facts (the fps trap) on the tiny model."""

import json

import pytest
from video_fixtures import coded_frames, read_code, write_coded_mp4

from mmreason.errors import RecordError
from mmreason.records import load_records
from mmreason.media.video import (
    load_record_video,
    VideoConfig,
    check_record_videos,
    frames_in_range,
    load_clip,
    processor_video_kwargs,
    set_video_pixels,
)
from mmreason.media.writer import write_frame_list

ALL = VideoConfig(video_fps=8.0, video_min_frames=1, video_max_frames=128, video_min_pixels=56 * 56, video_max_pixels=56 * 56)


def test_cut_selects_frames_by_timestamp(tmp_path):
    mp4 = write_coded_mp4(tmp_path / "v.mp4", n=24, fps=8)
    clip = load_clip(mp4, ALL, start=1.0, end=2.0)
    # half-open [1, 2): source frames 8..15, the frame at t = 2.0 belongs to the future
    assert clip.frames_indices == list(range(8, 16))
    assert clip.timestamps == [i / 8 for i in range(8, 16)]
    assert [read_code(f) for f in clip.frames] == list(range(8, 16))
    assert clip.total_num_frames == 8 and clip.fps == 8.0

    past = load_clip(mp4, ALL, end=1.5)
    assert past.frames_indices == list(range(12))
    assert [read_code(f) for f in past.frames] == list(range(12))
    assert max(past.timestamps) < 1.5


def test_sampling_rate_and_max_frames(tmp_path):
    mp4 = write_coded_mp4(tmp_path / "v.mp4", n=24, fps=8)
    cfg = VideoConfig(video_fps=2.0, video_min_frames=2, video_max_frames=128, video_min_pixels=3136, video_max_pixels=3136)
    clip = load_clip(mp4, cfg)  # 3 s at 2 fps -> 6 frames spread over the 24
    assert len(clip.frames) == 6
    assert clip.frames_indices[0] == 0 and clip.frames_indices[-1] == 23
    assert [read_code(f) for f in clip.frames] == clip.frames_indices
    assert clip.sampled_fps == pytest.approx(2.0)
    capped = load_clip(mp4, VideoConfig(video_fps=8.0, video_max_frames=4, video_min_frames=2, video_min_pixels=3136, video_max_pixels=3136))
    assert len(capped.frames) == 4
    cut = load_clip(mp4, cfg, start=0.5, end=2.5)  # 16 source frames at 2 fps -> 4 frames
    assert len(cut.frames) == 4 and cut.total_num_frames == 16
    assert cut.sampled_fps == pytest.approx(2.0)
    assert all(0.5 <= t < 2.5 for t in cut.timestamps)


def test_pixel_bounds_are_explicit(tmp_path):
    mp4 = write_coded_mp4(tmp_path / "v.mp4", n=8, fps=8, size=112)
    small = load_clip(mp4, VideoConfig(video_fps=8.0, video_min_frames=2, video_min_pixels=3136, video_max_pixels=3136))
    assert small.frames[0].size == (56, 56)
    keep = load_clip(mp4, VideoConfig(video_fps=8.0, video_min_frames=2, video_min_pixels=3136, video_max_pixels=16384))
    assert keep.frames[0].size == (112, 112)  # no upscaling past the source (the default-limits trap)
    budget = load_clip(mp4, VideoConfig(video_fps=8.0, video_min_frames=2, video_min_pixels=784, video_max_pixels=16384, video_total_pixels=8 * 3136 // 2))
    assert budget.frames[0].size == (56, 56)


def test_frame_list_and_folder_match_the_mp4(tmp_path):
    frames = coded_frames(12)
    fl = write_frame_list(frames, tmp_path / "clip.frames.json", fps=4)
    folder = tmp_path / "clip"  # the PNGs of the frame list
    cfg = VideoConfig(video_fps=4.0, video_min_frames=1, video_frames_fps=4.0, video_min_pixels=3136, video_max_pixels=3136)
    a = load_clip(fl, cfg, start=1.0, end=2.5)
    b = load_clip(folder, cfg, start=1.0, end=2.5)
    assert a.frames_indices == b.frames_indices == list(range(4, 10))
    assert [read_code(f) for f in a.frames] == list(range(4, 10))
    assert a.timestamps == [i / 4 for i in range(4, 10)]


def _write_jsonl(path, videos):
    lines = []
    for i, v in enumerate(videos):
        lines.append(json.dumps({"id": f"r{i}", "question": "q", "answer": "a", "answer_type": "text", "video": v}))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_bad_videos_name_file_line_or_are_counted(tmp_path):
    write_coded_mp4(tmp_path / "ok.mp4", n=16, fps=8)
    (tmp_path / "garbage.mp4").write_bytes(b"not a video at all" * 50)
    (tmp_path / "empty").mkdir()
    (tmp_path / "zero.frames.json").write_text(json.dumps({"fps": 2, "frames": []}))
    jsonl = _write_jsonl(
        tmp_path / "data.jsonl",
        [
            {"path": "ok.mp4", "start": 0.0, "end": 1.0},
            {"path": "garbage.mp4"},
            {"path": "empty"},
            {"path": "zero.frames.json"},
            {"path": "ok.mp4", "start": 5.0, "end": 6.0},  # past the end of a 2 s clip
        ],
    )
    recs, _ = load_records(jsonl)
    cfg = VideoConfig(video_min_pixels=3136, video_max_pixels=3136)
    with pytest.raises(RecordError) as e:
        load_record_video(recs[1], cfg)
    assert e.value.where == f"{jsonl}:2" and "undecodable video" in e.value.reason
    assert load_record_video(recs[0], cfg).frames
    skipped = []
    for rec in recs[1:]:
        with pytest.raises(RecordError) as e:
            load_record_video(rec, cfg)
        skipped.append(e.value)
    wheres = [s.where for s in skipped]
    assert wheres == [f"{jsonl}:{n}" for n in (2, 3, 4, 5)]
    reasons = [s.reason for s in skipped]
    assert "zero frames" in reasons[1] and "zero frames" in reasons[2] and "no frames in [5.0, 6.0)" in reasons[3]
    # the pre-flight check (no frame decoding) finds the same bad records
    kept, checked = check_record_videos(recs, cfg, lenient=True)
    assert [r.id for r in kept] == ["r0"] and [s.where for s in checked.skipped] == wheres
    with pytest.raises(RecordError, match=r"data\.jsonl:2: undecodable video"):
        check_record_videos(recs, cfg)


def test_record_time_range_and_missing_file_fail_at_load(tmp_path):
    write_coded_mp4(tmp_path / "ok.mp4", n=8, fps=8)
    bad_range = _write_jsonl(tmp_path / "a.jsonl", [{"path": "ok.mp4"}, {"path": "ok.mp4", "start": 2.0, "end": 2.0}])
    with pytest.raises(RecordError, match=r"a\.jsonl:2: field 'video': start 2.0 >= end 2.0"):
        load_records(bad_range)
    missing = _write_jsonl(tmp_path / "b.jsonl", [{"path": "nope.mp4"}])
    with pytest.raises(RecordError, match=r"b\.jsonl:1: video file not found"):
        load_records(missing)
    with pytest.raises(RecordError, match="start 1.0 >= end 0.5"):
        load_clip(tmp_path / "ok.mp4", VideoConfig(), start=1.0, end=0.5)
    recs, _ = load_records(bad_range, strict=False)
    assert recs[0].origin == f"{bad_range}:1" and "origin" not in recs[0].to_json()


def test_frames_in_range_is_half_open():
    ts = [i * 0.5 for i in range(6)]
    assert frames_in_range(ts, 0.5, 2.0) == [1, 2, 3]
    assert frames_in_range(ts, None, None) == list(range(6))


def _video_inputs(processor, clip):
    from mmreason.chat import chat_messages

    text = processor.apply_chat_template(chat_messages("what next?", video=True), add_generation_prompt=True)
    return processor(text=[text], return_tensors="pt", **processor_video_kwargs([clip]))


def test_processor_output_and_temporal_positions_not_constant(tmp_path, tiny_model_dir):
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    set_video_pixels(processor, 3136, 12544)
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir).eval()
    mp4 = write_coded_mp4(tmp_path / "v.mp4", n=16, fps=4, size=112)
    clip = load_clip(mp4, VideoConfig(video_fps=4.0, video_min_frames=2, video_max_frames=8, video_min_pixels=3136, video_max_pixels=12544))
    assert len(clip.frames) == 8 and clip.frames[0].size == (112, 112)
    batch = _video_inputs(processor, clip)
    for key in ("pixel_values_videos", "video_grid_thw", "second_per_grid_ts", "mm_token_type_ids"):
        assert key in batch, key
    assert batch["video_grid_thw"].tolist() == [[4, 8, 8]]
    assert batch["pixel_values_videos"].shape == (4 * 8 * 8, 1176)
    # 16 source frames at 4 fps, 8 sampled: 2 fps; second_per_grid_ts = temporal patch 2 / 2 fps
    assert clip.sampled_fps == pytest.approx(2.0)
    assert float(batch["second_per_grid_ts"][0]) == pytest.approx(1.0)
    assert int((batch["mm_token_type_ids"] == 2).sum()) == 64

    def temporal_ids(b):
        pos, _ = model.model.get_rope_index(
            b["input_ids"],
            b["mm_token_type_ids"],
            video_grid_thw=b["video_grid_thw"],
            second_per_grid_ts=b["second_per_grid_ts"],
            attention_mask=b["attention_mask"],
        )
        return pos[0, 0][b["mm_token_type_ids"][0] == 2]

    t = temporal_ids(batch)
    assert len(set(t.tolist())) == 4  # one temporal id per grid step
    assert torch.all(t.diff() >= 0)

    # the trap this guards against: frames without metadata -> 24 fps assumed -> ids collapse
    text = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "x"}]}], add_generation_prompt=True
    )
    bare = processor(text=[text], videos=[clip.frames], do_sample_frames=False, return_tensors="pt")
    assert len(set(temporal_ids(bare).tolist())) == 1


def test_video_config_joins_a_trl_parser():
    """The `video_` field prefix lets VideoConfig sit beside TRL's configs (and their image pixel fields)."""
    from trl import ModelConfig, SFTConfig, TrlParser

    _, _, video = TrlParser((SFTConfig, ModelConfig, VideoConfig)).parse_args_and_config(
        ["--output_dir", "unused", "--bf16", "false", "--use_cpu", "true", "--video_fps", "1", "--video_max_pixels", "12544", "--video_total_pixels", "99999"]
    )
    assert (video.video_fps, video.video_max_pixels, video.video_total_pixels) == (1.0, 12544, 99999)
    with pytest.raises(ValueError, match="min_pixels 5000 > max_pixels 4000"):
        VideoConfig(video_min_pixels=5000, video_max_pixels=4000)


def _truncate(png) -> None:
    png.write_bytes(png.read_bytes()[: len(png.read_bytes()) // 2])  # opens (the header is there), fails to decode


def test_a_corrupt_frame_in_the_cut_is_found_before_training(tmp_path):
    """A frame list / frames folder with one truncated frame: the pre-flight check decodes every frame of the cut,
    so the record is a file:line error (strict) or a counted skip (lenient) before any model loads, not a crash
    mid-run. A bad frame outside the cut is never read, by the check or by training."""
    frames = coded_frames(16)
    lst = write_frame_list(frames, tmp_path / "clip.frames.json", fps=8)
    folder = tmp_path / "folder"
    folder.mkdir()
    for i, im in enumerate(frames):
        im.save(folder / f"{i:04d}.png")
    bad_in_list = sorted((tmp_path / "clip").glob("*.png"))[5]
    _truncate(bad_in_list)
    _truncate(folder / "0012.png")
    jsonl = _write_jsonl(tmp_path / "data.jsonl", [
        {"path": "clip.frames.json", "end": 0.5},  # frames 0..3: the bad frame 5 is outside the cut
        {"path": "clip.frames.json", "start": 0.5, "end": 1.0},  # frames 4..7
        {"path": "folder", "start": 1.0},  # frames 8..15 of the folder (8 fps)
    ])
    recs, _ = load_records(jsonl)
    cfg = VideoConfig(video_frames_fps=8.0, video_min_pixels=3136, video_max_pixels=3136)
    with pytest.raises(RecordError) as e:
        check_record_videos(recs, cfg)
    assert e.value.where == f"{jsonl}:2" and f"unreadable frame 6 of 16 ({bad_in_list})" in e.value.reason
    kept, report = check_record_videos(recs, cfg, lenient=True)
    assert [r.id for r in kept] == ["r0"] and report.loaded == 1
    assert [s.where for s in report.skipped] == [f"{jsonl}:2", f"{jsonl}:3"]
    assert f"unreadable frame 13 of 16 ({folder / '0012.png'})" in report.skipped[1].reason
    assert len(load_clip(lst, ALL, end=0.5).frames) == 4  # the kept record trains


def test_nep_build_and_eval_check_decode_the_frames(tmp_path):
    """`nep build` and `eval run` call the same check (mmreason.media.video.check_video) on the clips they use."""
    from mmreason.eval.benchmark import VideoInput
    from mmreason.eval.run import video_check_config
    from mmreason.media.video import check_video

    lst = write_frame_list(coded_frames(8), tmp_path / "clip.frames.json", fps=8)
    assert check_video(lst, VideoConfig()) == 8
    _truncate(sorted((tmp_path / "clip").glob("*.png"))[7])
    with pytest.raises(RecordError, match="item x: unreadable frame 8 of 8"):
        check_video(lst, video_check_config(VideoInput(str(lst), reader="clip")), where="item x")
    assert check_video(lst, VideoConfig(), end=0.5) == 4  # the cut ends before the bad frame
