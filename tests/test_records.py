import json

import pytest
from PIL import Image

from mmreason.records import (
    Record,
    RecordError,
    load_records,
    question_text,
    to_grpo_example,
    to_sft_example,
    write_records,
)


def _good(i, **kw):
    d = {"id": f"r{i}", "question": "How many red shapes?", "answer": "3", "answer_type": "integer",
         "images": ["img.png"], "solution": "I count 3 red shapes. \\boxed{3}", "source": "test"}
    d.update(kw)
    return d


@pytest.fixture
def folder(tmp_path):
    Image.new("RGB", (32, 32), "red").save(tmp_path / "img.png")
    return tmp_path


def _write(folder, rows):
    p = folder / "data.jsonl"
    p.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return p


def test_good_records_round_trip(folder):
    rows = [_good(0), _good(1, answer="B", answer_type="choice", choices=["2", "3"]),
            _good(2, answer="0.5", answer_type="float", precision=1)]
    recs, report = load_records(_write(folder, rows))
    assert [r.id for r in recs] == ["r0", "r1", "r2"] and report.loaded == 3 and not report.skipped
    assert recs[0].image_paths()[0] == folder / "img.png"
    assert recs[1].gold_text() == "3"
    out = folder / "copy.jsonl"
    write_records(out, recs)
    again, _ = load_records(out)
    assert [r.to_json() for r in again] == [r.to_json() for r in recs]


@pytest.mark.parametrize(
    "bad, reason",
    [
        ("{not json", "invalid JSON"),
        ({"id": "x", "answer": "3", "answer_type": "integer"}, "missing required field 'question'"),
        (_good(9, answer="three"), "is not an integer"),
        (_good(9, answer_type="number"), "must be one of"),
        (_good(9, answer_type="choice", choices=["a", "b"], answer="C"), "option letters"),
        (_good(9, answer=3), "field 'answer' must be str or null"),
        (_good(9, images=["missing.png"]), "image file not found"),
        (_good(9, images=["corrupt.png"]), "corrupt or unreadable image"),
        (_good(9, extra=1), "unknown field"),
        (_good(0), "duplicate id 'r0'"),
        (_good(9, answer=None), "allowed only for unlabeled data"),
    ],
)
def test_one_bad_line_strict_and_lenient(folder, bad, reason):
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    path = _write(folder, [_good(0), bad, _good(1)])
    with pytest.raises(RecordError) as e:
        load_records(path, strict=True)
    assert e.value.where == f"{path}:2" and reason in e.value.reason
    recs, report = load_records(path, strict=False)
    assert [r.id for r in recs] == ["r0", "r1"]
    assert report.loaded == 2 and len(report.skipped) == 1
    assert report.skipped[0].where == f"{path}:2"
    assert f"{path}:2" in report.summary() and reason in report.summary()


def test_jpeg_named_png_is_valid(folder):
    Image.new("RGB", (32, 32), "blue").save(folder / "actually.png", format="JPEG")
    recs, report = load_records(_write(folder, [_good(0, images=["actually.png"])]))
    assert len(recs) == 1 and not report.skipped
    with Image.open(recs[0].image_paths()[0]) as im:
        assert im.format == "JPEG"


def test_unlabeled_allowed_when_asked(folder):
    recs, _ = load_records(_write(folder, [_good(0, answer=None)]), require_answer=False)
    assert recs[0].answer is None


def test_video_record(folder):
    (folder / "clip.mp4").write_bytes(b"")
    d = _good(0, images=[], video={"path": "clip.mp4", "start": 1.0, "end": 2.5})
    recs, _ = load_records(_write(folder, [d]))
    assert recs[0].video.end == 2.5 and recs[0].video_path() == folder / "clip.mp4"
    with pytest.raises(RecordError, match="not both"):
        load_records(_write(folder, [_good(0, video={"path": "clip.mp4"})]))


def test_trl_formats(folder):
    rec = load_records(_write(folder, [_good(0, answer="A", answer_type="choice", choices=["3", "4"])]))[0][0]
    sft = to_sft_example(rec, system="sys")
    assert [m["role"] for m in sft["messages"]] == ["system", "user", "assistant"]
    assert sft["messages"][1]["content"][0] == {"type": "image"}
    assert "(A) 3\n(B) 4" in sft["messages"][1]["content"][1]["text"]
    assert sft["messages"][2]["content"][0]["text"] == rec.solution
    assert sft["images"] == [str(folder / "img.png")]
    grpo = to_grpo_example(rec)
    assert [m["role"] for m in grpo["prompt"]] == ["user"]
    assert grpo["answer"] == "A" and grpo["choices"] == ["3", "4"] and grpo["record_id"] == "r0"
    assert question_text(rec).endswith("\\boxed{}.")
    with pytest.raises(RecordError, match="no 'solution'"):
        to_sft_example(Record(id="n", question="q", answer="1", answer_type="integer"))


def test_chat_messages_layout_shared_by_training_and_eval():
    from mmreason.records import chat_messages, prompt_messages

    assert chat_messages("q", 2, "sys") == [
        {"role": "system", "content": [{"type": "text", "text": "sys"}]},
        {"role": "user", "content": [{"type": "image"}, {"type": "image"}, {"type": "text", "text": "q"}]},
    ]
    assert chat_messages("q", video=True) == [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "q"}]}]
    rec = Record(id="v", question="how?", answer="1", answer_type="integer", images=["a.png"])
    assert prompt_messages(rec, suffix=None) == [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "how?"}]}]
