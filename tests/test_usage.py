"""Issue 16 findings 3, 7, 8, 9: over-long prompts dropped before tokenisation, nothing usable is an error, counts
validated, conflicting predictions, one-line usage errors (exit 2, no traceback; MMREASON_DEBUG=1 keeps it)."""

import json
import os
from pathlib import Path

import pytest

from mmreason.cli import main as cli
from mmreason.eval.run import run_benchmark, score_file
from mmreason.records import RecordError, load_records
from mmreason.usage import NothingUsable, UsageError, check_training_counts

BIG = "x" * 1_000_000  # a 1 MB question


class EchoBackend:
    """Answers \\boxed{1} to everything and remembers the prompt lengths it was given."""

    def __init__(self):
        self.seen: list[str] = []

    def generate(self, inputs, progress=True, desc="", on_batch=None):
        texts = []
        for msgs, _ in inputs:
            self.seen.append(msgs[-1]["content"][-1]["text"])
            texts.append("\\boxed{1}")
        if on_batch is not None:
            on_batch(0, texts)
        return texts


def _records(path: Path, questions: list[str], **extra) -> Path:
    rows = [{"id": f"r{i}", "question": q, "answer": "1", "answer_type": "integer", "solution": "\\boxed{1}", **extra}
            for i, q in enumerate(questions)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# ---------------------------------------------------------------- finding 3: over-long prompts


def test_sft_drops_an_overlong_example_before_tokenisation(tmp_path):
    from mmreason.sft.dataset import build_sft_dataset, load_sft_records

    path = _records(tmp_path / "train.jsonl", ["q0", BIG, "q2"])
    recs, report = load_sft_records([str(path)])
    ds = build_sft_dataset(recs, max_text_chars=65536, report=report)
    assert len(ds) == 2 and report.loaded == 2
    assert report.dropped_long == [{"id": "r1", "chars": pytest.approx(1_000_000, abs=200)}]
    assert "1 dropped over max_text_chars=65536" in report.summary() and "dropped r1:" in report.summary()
    assert report.to_json()["dropped_long"][0]["id"] == "r1"
    with pytest.raises(NothingUsable, match="every training example is longer than max_text_chars=10"):
        build_sft_dataset(recs, max_text_chars=10, report=report)


def test_sft_script_argument_default_limits_text():
    from mmreason.sft.run import make_parser

    script_args, _, _, _ = make_parser().parse_args_and_config(["--output_dir", "x", "--model_name_or_path", "m"])
    assert script_args.max_text_chars == 65536


def test_eval_run_never_sends_an_overlong_prompt_and_counts_it(tmp_path):
    path = _records(tmp_path / "test.jsonl", ["q0", BIG, "q2"])
    be = EchoBackend()
    s = run_benchmark(None, path, tmp_path / "out", backend_obj=be, progress=False)
    assert len(be.seen) == 2 and max(map(len, be.seen)) < 1000
    assert [d["id"] for d in s["dropped_long"]["items"]] == ["r1"] and s["dropped_long"]["max_prompt_chars"] == 65536
    assert s["total"] == 3 and s["correct"] == 2 and s["missing"] == ["r1"]  # kept in the score, without an answer
    # the rerun does not stop at that item either: everything else is cached
    s2 = run_benchmark(None, path, tmp_path / "out", backend_obj=EchoBackend(), progress=False)
    assert s2["generation"]["generated"] == 0 and s2["correct"] == 2
    with pytest.raises(NothingUsable, match="longer than max_prompt_chars=1"):
        run_benchmark(None, path, tmp_path / "out2", backend_obj=be, progress=False, max_prompt_chars=1)


# ---------------------------------------------------------------- finding 7: nothing usable, counts


@pytest.mark.parametrize("content", ["", "\n\n  \n", '{"id": "x"}\n'])
def test_eval_run_on_an_empty_blank_or_all_bad_file_is_an_error(tmp_path, content):
    path = tmp_path / "test.jsonl"
    path.write_text(content)
    with pytest.raises(NothingUsable, match="no usable items"):
        run_benchmark(None, path, tmp_path / "out", backend_obj=EchoBackend(), progress=False)


@pytest.mark.parametrize("limit", [-3, 0])
def test_eval_run_limit_must_be_positive(tmp_path, limit):
    path = _records(tmp_path / "test.jsonl", ["q0", "q1", "q2", "q3"])
    with pytest.raises(UsageError, match=f"--limit must be an integer >= 1, got {limit}"):
        run_benchmark(None, path, tmp_path / "out", backend_obj=EchoBackend(), progress=False, limit=limit)


def test_eval_cli_rejects_a_negative_limit(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        cli(["eval", "run", "--model", "m", "--benchmark", "b.jsonl", "--output-dir", str(tmp_path), "--limit", "-3"])
    assert e.value.code == 2 and "--limit: must be >= 1, got -3" in capsys.readouterr().err


@pytest.mark.parametrize("max_steps,ok", [(-1, True), (1, True), (-5, False), (0, False)])
def test_max_steps_minus_one_means_epochs_other_negatives_are_errors(max_steps, ok):
    from mmreason.sft.run import make_parser

    _, targs, _, _ = make_parser().parse_args_and_config(["--output_dir", "x", "--max_steps", str(max_steps)])
    if ok:
        check_training_counts(targs)
    else:
        with pytest.raises(UsageError, match=f"max_steps must be an integer >= 1 \\(or -1\\), got {max_steps}"):
            check_training_counts(targs)


def test_sft_with_max_steps_minus_five_stops_before_training(tmp_path, capsys):
    path = _records(tmp_path / "train.jsonl", ["q0"])
    rc = cli(["sft", "--model_name_or_path", str(tmp_path), "--train_files", str(path), "--output_dir",
              str(tmp_path / "out"), "--max_steps", "-5"])
    assert rc == 2 and "max_steps must be an integer >= 1 (or -1), got -5" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def _preds(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_eval_score_empty_predictions_or_no_matching_id_is_an_error(tmp_path):
    recs = _records(tmp_path / "test.jsonl", ["q0", "q1"])
    empty = _preds(tmp_path / "empty.jsonl", [])
    with pytest.raises(NothingUsable, match="no predictions"):
        score_file(recs, empty, tmp_path / "s.json")
    other = _preds(tmp_path / "other.jsonl", [{"id": "p1", "response": "1"}, {"id": "p2", "response": "2"}])
    with pytest.raises(NothingUsable, match=r"none of its 2 prediction ids \(e.g. 'p1'\) matches the 2 items"):
        score_file(recs, other, tmp_path / "s.json")
    assert not (tmp_path / "s.json").exists()


def test_mathvista_predictions_scored_as_wemath_is_an_error(tmp_path):
    ann = tmp_path / "wemath"
    ann.mkdir()
    (ann / "testmini.json").write_text(json.dumps([{"ID": "1", "key": "2steps_1", "question": "q", "option": "A"}]))
    mv = _preds(tmp_path / "mv.jsonl", [{"id": "1", "response": "3"}, {"id": "2", "response": "4"}])
    with pytest.raises(NothingUsable, match="wrong --benchmark or --annotations"):
        score_file("wemath", mv, tmp_path / "s.json", annotations=str(ann))


def test_conflicting_duplicate_predictions_strict_error_lenient_reported(tmp_path):
    recs = _records(tmp_path / "test.jsonl", ["q0", "q1"])
    p = _preds(tmp_path / "p.jsonl", [{"id": "r0", "response": "\\boxed{1}"}, {"id": "r1", "response": "\\boxed{1}"},
                                      {"id": "r0", "response": "\\boxed{7}"}, {"id": "r1", "response": "\\boxed{1}"}])
    with pytest.raises(UsageError, match=rf"{p}:3: id 'r0' was already predicted differently at {p}:1"):
        score_file(recs, p, tmp_path / "s.json")
    s = score_file(recs, p, tmp_path / "s.json", lenient=True)
    assert s["correct"] == 2  # the first one was kept
    assert s["prediction_repeats"]["conflicting"] == [{"id": "r0", "kept": f"{p}:1", "dropped": f"{p}:3"}]
    assert s["prediction_repeats"]["identical_repeats"] == 1


@pytest.mark.parametrize("module", ["wemath", "mathvista"])
def test_non_object_prediction_line_is_warned_in_both_benchmarks(tmp_path, caplog, module):
    import importlib

    mod = importlib.import_module(f"mmreason.eval.{module}")
    p = _preds(tmp_path / "p.jsonl", [{"id": "1", "response": "A"}, "[1, 2]", '"text"'])
    with caplog.at_level("WARNING"):
        preds = mod.read_predictions(p)
    assert list(preds) == ["1"]
    assert len(preds.skipped) == 2 and preds.skipped[0].startswith(f"{p}:2: ")
    assert f"{p}:2" in caplog.text and f"{p}:3" in caplog.text


@pytest.mark.parametrize("answer", ["", "  "])
def test_empty_gold_answer_is_an_error_naming_the_line(tmp_path, answer):
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps({"id": "a", "question": "q", "answer": "1", "answer_type": "text"}) + "\n"
                    + json.dumps({"id": "b", "question": "q", "answer": answer, "answer_type": "text"}) + "\n")
    with pytest.raises(RecordError, match=rf"r.jsonl:2: field 'answer' is empty"):
        load_records(path, check_media=False)
    recs, rep = load_records(path, strict=False, check_media=False)
    assert [r.id for r in recs] == ["a"] and len(rep.skipped) == 1


def test_data_build_with_zero_records_exits_non_zero(tmp_path, capsys):
    from mmreason.data.build import main as build_main

    src = tmp_path / "src.jsonl"  # one question without a gold answer: dropped before any teacher call
    src.write_text(json.dumps({"id": "x", "question": "q", "answer_type": "integer"}) + "\n")
    recipe = Path(__file__).resolve().parents[1] / "data_recipes" / "distilled.yaml"
    rc = build_main(["--recipe", str(recipe), "--out", str(tmp_path / "out"), "--no-progress",
                     "--set", f"source.path={src}", "--set", "teacher.base_url=http://127.0.0.1:9/v1",
                     "--set", "teacher.model=none", "--set", "decontam.enabled=false"])
    err = capsys.readouterr().err
    assert rc == 2 and "no records built from 1 source questions (kept 0, dropped 1" in err, err


# ---------------------------------------------------------------- finding 9: one-line usage errors


def _one_line_error(capsys, argv, *, expect: str) -> str:
    rc = cli(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err and expect in err, err
    lines = [line for line in err.splitlines() if line.startswith("mmreason")]
    assert len(lines) == 1, err
    return err


def test_predictions_file_starting_with_a_json_array(tmp_path, capsys):
    ann = tmp_path / "wemath"
    ann.mkdir()
    (ann / "testmini.json").write_text(json.dumps([{"ID": "1", "key": "k"}]))
    p = _preds(tmp_path / "p.jsonl", ["[1, 2]", {"id": "1", "response": "A"}])
    _one_line_error(capsys, ["eval", "score", "--benchmark", "wemath", "--predictions", str(p), "--annotations",
                             str(ann), "--output", str(tmp_path / "s.json")],
                    expect=f"{p}: starts with '[' but is not one JSON array")


def test_missing_config_file_and_unknown_yaml_key(tmp_path, capsys):
    _one_line_error(capsys, ["sft", "--config", str(tmp_path / "nope.yaml")], expect="--config")
    _one_line_error(capsys, ["sft"], expect="give --config FILE.yaml")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("output_dir: x\nlearning_rat: 1.0e-3\n")
    for stage in ("sft", "grpo"):
        _one_line_error(capsys, [stage, "--config", str(cfg)],
                        expect=f"--config {cfg}: unknown key(s) ['learning_rat']")


def test_output_dir_that_is_a_file_or_not_creatable(tmp_path, capsys):
    recs = _records(tmp_path / "test.jsonl", ["q0"])
    f = tmp_path / "afile"
    f.write_text("")
    _one_line_error(capsys, ["eval", "run", "--model", str(tmp_path), "--benchmark", str(recs), "--output-dir", str(f)],
                    expect=f"--output-dir {f} is a file, not a folder")
    _one_line_error(capsys, ["sft", "--model_name_or_path", str(tmp_path), "--train_files", str(recs),
                             "--output_dir", str(f / "sub")], expect="output_dir")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_output_dir_read_only(tmp_path, capsys):
    recs = _records(tmp_path / "test.jsonl", ["q0"])
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o555)
    _one_line_error(capsys, ["eval", "run", "--model", str(tmp_path), "--benchmark", str(recs), "--output-dir", str(ro)],
                    expect="is not writable")


def test_score_output_that_is_a_folder_leaves_no_tmp(tmp_path, capsys):
    recs = _records(tmp_path / "test.jsonl", ["q0"])
    p = _preds(tmp_path / "p.jsonl", [{"id": "r0", "response": "\\boxed{1}"}])
    d = tmp_path / "outdir"
    d.mkdir()
    _one_line_error(capsys, ["eval", "score", "--benchmark", str(recs), "--predictions", str(p), "--output", str(d)],
                    expect=f"--output {d} is a folder")
    assert not list(tmp_path.glob("*.tmp")) and not list(d.iterdir())


def test_eval_run_model_on_a_missing_path(tmp_path, capsys):
    recs = _records(tmp_path / "test.jsonl", ["q0"])
    missing = tmp_path / "runs" / "nothing"
    _one_line_error(capsys, ["eval", "run", "--model", str(missing), "--benchmark", str(recs), "--output-dir",
                             str(tmp_path / "o"), "--no-progress"],
                    expect=f"--model {missing}: no such checkpoint folder")


def test_debug_env_keeps_the_traceback(tmp_path, monkeypatch):
    monkeypatch.setenv("MMREASON_DEBUG", "1")
    with pytest.raises(UsageError, match="give --config"):
        cli(["sft"])


def test_a_library_error_mid_work_keeps_its_traceback(monkeypatch):
    """Only our own checks become one line: a ValueError raised inside a library is re-raised as it is."""
    import mmreason.env

    def boom(argv):
        import json as j

        j.loads("{")  # raises inside the json library

    monkeypatch.setattr(mmreason.env, "main", boom)
    with pytest.raises(ValueError):
        cli(["env"])
