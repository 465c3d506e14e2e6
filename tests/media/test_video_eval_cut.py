"""The records benchmark and training cut a clip the same way (start <= t < end): the frame AT `end` is the
first frame of the future and must not reach the eval prompt (qwen-vl-utils' own `video_end` keeps it)."""

import dataclasses
import json

import pytest
from video_fixtures import read_code, write_coded_mp4

from mmreason.eval.benchmark import Item, VideoInput
from mmreason.eval.records_eval import RecordsBenchmark
from mmreason.generation.vision import vision_inputs
from mmreason.records import load_records
from mmreason.media.video import clip_config, load_record_video
from mmreason.media.writer import write_frame_list
from video_fixtures import coded_frames

FPS, N, END = 8, 24, 1.5  # frame 12 sits exactly at t = END


def _records(tmp_path, video_name):
    path = tmp_path / "past.jsonl"
    path.write_text(json.dumps({"id": "r0", "question": "What happens next?", "answer": "x", "answer_type": "text",
                                "video": {"path": video_name, "start": 0.0, "end": END}}) + "\n")
    return path


def _eval_frames(path, **video_settings):
    """What the records benchmark sends to the generation backend for its only item."""
    spec = dataclasses.replace(RecordsBenchmark.detect(path), **video_settings)
    bench = RecordsBenchmark(spec)
    rec = bench.load(path, spec.split)[0]
    media = bench.media(rec)
    item = Item(rec.id, bench.messages("What happens next?", media, None), media)
    msgs, _ = item.backend_input()
    return rec, vision_inputs([msgs])


@pytest.mark.parametrize("kind", ["mp4", "frames"])
def test_records_eval_never_sees_the_frame_at_end(tmp_path, kind):
    if kind == "mp4":
        write_coded_mp4(tmp_path / "v.mp4", n=N, fps=FPS)
        name = "v.mp4"
    else:  # a frame list: qwen-vl-utils cannot read it at all
        write_frame_list(coded_frames(N), tmp_path / "v.frames.json", FPS)
        name = "v.frames.json"
    path = _records(tmp_path, name)
    settings = {"video_fps": float(FPS), "video_max_frames": 64, "video_min_pixels": 3136, "video_max_pixels": 3136}
    rec, inputs = _eval_frames(path, **settings)
    meta = inputs["video_metadata"][0]
    codes = [read_code(im) for im in inputs["videos"][0]]
    future = int(END * FPS)
    assert future not in meta["frames_indices"] and future not in codes
    assert meta["frames_indices"] == codes == list(range(future))  # every past frame, at 8 fps, in order
    assert meta["total_num_frames"] == future and meta["fps"] == pytest.approx(FPS)
    # the same frames training loads for this record (one cut rule)
    cfg = clip_config(FPS, 64, 3136, 3136)
    clip = load_record_video(load_records(path)[0][0], cfg)
    assert clip.frames_indices == meta["frames_indices"] and clip.metadata() == meta
    assert [read_code(im) for im in clip.frames] == codes


def test_qwen_vl_utils_reader_refuses_a_cut():
    with pytest.raises(ValueError, match="reader='clip'"):
        VideoInput("a.mp4", start=0.0, end=1.0)
    assert VideoInput("a.mp4", end=1.0, reader="clip").message_part()["video"].end == 1.0


def test_a_cache_from_before_the_cut_fix_is_refused(tmp_path):
    """Video records carry the cut rule in the cache identity, so answers cached when eval saw the frame at `end`
    are not reused; image-only records keep their old identity (their caches stay valid)."""
    write_coded_mp4(tmp_path / "clip.mp4", n=N, fps=FPS)
    path = _records(tmp_path, "clip.mp4")
    bench = RecordsBenchmark(RecordsBenchmark.detect(path))
    bench.load(path, bench.spec.split)
    assert bench.identity()["video_cut"] == "start<=t<end"
    img = tmp_path / "img.jsonl"
    img.write_text(json.dumps({"id": "i0", "question": "q", "answer": "1", "answer_type": "integer"}) + "\n")
    bench = RecordsBenchmark(RecordsBenchmark.detect(img))
    bench.load(img, bench.spec.split)
    assert "video_cut" not in bench.identity()
