import json
from pathlib import Path

import pytest
from PIL import Image

from mmreason.chat import prompt_messages, question_text, to_grpo_example, to_sft_example
from mmreason.errors import RecordError
from mmreason.records import BOXED_SUFFIX, Record, load_records, write_records


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


def test_one_bad_row_of_a_hf_dataset_strict_and_lenient(folder):
    """The Hugging Face source takes the same strict/lenient path as the JSONL one, naming `folder[row]`."""
    from datasets import Dataset

    from mmreason.formats import read_source
    from mmreason.records import LoadReport

    hf = folder / "hf"
    rows = [_good(0, images=["../img.png"]), _good(1, images=["../img.png"], answer="three"),
            _good(2, images=["../img.png"])]
    Dataset.from_list(rows).save_to_disk(str(hf))
    with pytest.raises(RecordError) as e:
        list(read_source(str(hf)))
    assert e.value.where == f"{hf}[1]" and "is not an integer" in e.value.reason
    report = LoadReport(str(hf))
    assert [r.id for r in read_source(str(hf), strict=False, report=report)] == ["r0", "r2"]
    assert report.loaded == 2 and [s.where for s in report.skipped] == [f"{hf}[1]"]


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
    from mmreason.chat import chat_messages, prompt_messages

    assert chat_messages("q", 2, "sys") == [
        {"role": "system", "content": [{"type": "text", "text": "sys"}]},
        {"role": "user", "content": [{"type": "image"}, {"type": "image"}, {"type": "text", "text": "q"}]},
    ]
    assert chat_messages("q", video=True) == [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "q"}]}]
    rec = Record(id="v", question="how?", answer="1", answer_type="integer", images=["a.png"])
    assert prompt_messages(rec, suffix=None) == [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "how?"}]}]


def _old_question_text(rec, suffix):
    """The user text as records.question_text built it by string concatenation before the jinja2 template."""
    text = rec.question
    if rec.choices:
        text += "\nChoices:\n" + "\n".join(f"({l}) {c}" for l, c in zip("ABCDEFGHIJ", rec.choices))
    if suffix:
        text += "\n" + suffix
    return text


@pytest.mark.parametrize("suffix", [BOXED_SUFFIX, None, "", "Answer with {braces} and \\boxed{} {{ not jinja }}."])
def test_default_template_reproduces_the_old_user_text_byte_for_byte(suffix):
    questions = ["How many?", "  Lead and trail \n\n", "Ünïcödé ∑ {x} {{ y }} {% z %} \\frac{1}{2}", "", "line\r\nbreak\n"]
    choice_sets = [None, [], ["3"], ["a{b}", "{{c}}", " spaced ", ""], [str(i) for i in range(10)]]
    for q in questions:
        for choices in choice_sets:
            rec = Record(id="x", question=q, answer=None, choices=choices)
            assert question_text(rec, suffix) == _old_question_text(rec, suffix)
            assert prompt_messages(rec, "sys", suffix)[1]["content"][-1]["text"] == _old_question_text(rec, suffix)


def test_spec_template_system_and_boxed_are_plain_text():
    from mmreason.prompts import PromptSpec

    rec = Record(id="x", question="2+2?", answer="4", answer_type="integer", images=["a.png"],
                 choices=["3", "4"], solution="\\boxed{4}")
    spec = PromptSpec(system="Be brief.", instruction="Put it in \\boxed{}.",
                      template="{{ instruction }}\nQ: {{ question }}{% if choices %} [{{ choices }}]{% endif %}")
    msgs = to_sft_example(rec, spec=spec)["messages"]
    assert msgs[0] == {"role": "system", "content": [{"type": "text", "text": "Be brief."}]}
    assert msgs[1]["content"] == [{"type": "image"}, {"type": "text", "text": "Put it in \\boxed{}.\nQ: 2+2? [(A) 3\n(B) 4]"}]
    assert to_grpo_example(rec, system="ignored", suffix="ignored", spec=spec)["prompt"] == msgs[:2]
    # "" and None both mean "none": no system message, no instruction line
    assert prompt_messages(rec, spec=PromptSpec(system="", instruction="")) == [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "2+2?\nChoices:\n(A) 3\n(B) 4"}]}]
    with pytest.raises(ValueError, match="does not parse"):
        PromptSpec(template="{% if %}")


def test_media_paths_resolve_one_way(tmp_path, monkeypatch):
    from mmreason.records import resolve_media

    monkeypatch.chdir(tmp_path)
    assert resolve_media("images/a.png", "data") == tmp_path / "data/images/a.png"  # relative base: from the cwd
    assert resolve_media("../b.png", tmp_path / "data") == tmp_path / "b.png"  # normalised, absolute
    assert resolve_media("/abs/c.png", tmp_path / "data") == Path("/abs/c.png")  # absolute: unchanged
    rec = Record(id="x", question="q", images=["../b.png"], base_dir="data")
    assert rec.image_paths() == [tmp_path / "b.png"] and rec.image_paths()[0].is_absolute()


def test_seeded_subset_is_ordered_and_reproducible():
    from mmreason.records import seeded_subset

    items = list(range(20))
    a = seeded_subset(items, 5, seed=1)
    assert a == seeded_subset(items, 5, seed=1) == sorted(a) and len(set(a)) == 5
    assert a != seeded_subset(items, 5, seed=2) and a != items[:5]
    assert seeded_subset(items, None, 0) == items == seeded_subset(items, 99, 0)
    with pytest.raises(ValueError, match="max_samples must be >= 1"):
        seeded_subset(items, 0, 0)


def test_bom_on_line_one_is_accepted(folder):
    path = folder / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + _write(folder, [_good(0), _good(1)]).read_bytes())
    recs, report = load_records(path)  # strict: the first record is no error
    assert [r.id for r in recs] == ["r0", "r1"] and not report.skipped


def test_jsonl_gz_is_read_with_media_beside_it(folder):
    import gzip

    from mmreason.formats import read_source

    path = folder / "data.jsonl.gz"
    path.write_bytes(gzip.compress(_write(folder, [_good(0), "{not json", _good(1)]).read_bytes()))
    with pytest.raises(RecordError) as e:
        load_records(path)
    assert e.value.where == f"{path}:2"  # line numbers are the decompressed file's
    recs, report = load_records(path, strict=False)
    assert [r.id for r in recs] == ["r0", "r1"] and recs[0].image_paths()[0] == folder / "img.png"
    assert [r.id for r in read_source(str(path), strict=False)] == ["r0", "r1"]
    with pytest.raises(FileNotFoundError):
        read_source(str(folder / "nope.jsonl.gz"))
