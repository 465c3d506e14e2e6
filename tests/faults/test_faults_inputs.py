"""Fault injection (a): the generated bad-input corpus fed to every entry point — records loader, SFT, GRPO,
eval run, eval score, data build — with the outcome of every case asserted: a strict error naming `file:line`
and the reason, a counted skip naming the same place, an accepted (converted) image, or a counted drop."""

from __future__ import annotations

import json

import pytest
from faults_corpus import BAD_LINE, CASES, N_GOOD, PRED_CASES, write_all, write_case, write_good_records, write_predictions

from mmreason.errors import RecordError
from mmreason.records import load_records
from mmreason.usage import NothingUsable

IDS = [c.name for c in CASES]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return tmp_path_factory.mktemp("corpus")


def _expect_error(exc, path, case):
    msg = str(exc)
    assert f"{path}:{BAD_LINE}: " in msg and case.reason in msg, msg


# ---------------------------------------------------------------- records loader


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_records_loader(corpus, case, fault_log):
    path = write_case(corpus, case)
    if case.reason:
        with pytest.raises(RecordError) as e:
            load_records(path)
        _expect_error(e.value, path, case)
        recs, rep = load_records(path, strict=False)
        assert len(recs) == N_GOOD and [s.where for s in rep.skipped] == [f"{path}:{BAD_LINE}"]
        assert case.reason in rep.skipped[0].reason
        fault_log.record("records", case.name, "error+skip")
    else:
        recs, rep = load_records(path)
        assert len(recs) == N_GOOD + 1 and not rep.skipped
        bad = recs[1]
        if case.converted:  # an 8-bit RGB PNG copy replaces the file no decoder downstream reads correctly
            from PIL import Image

            (img,) = bad.image_paths()
            assert img.suffix == ".png" and img.name != "ok.png"
            with Image.open(img) as im:
                assert im.mode == "RGB" and im.format == "PNG"
        fault_log.record("records", case.name, "converted" if case.converted else "accepted")


# ---------------------------------------------------------------- SFT


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_sft_data(corpus, case, fault_log):
    from mmreason.sft.dataset import build_sft_dataset, load_sft_records

    path = write_case(corpus, case)
    if case.reason:
        with pytest.raises(RecordError) as e:
            load_sft_records([str(path)])
        _expect_error(e.value, path, case)
    recs, report = load_sft_records([str(path)], lenient=True)
    ds = build_sft_dataset(recs, max_text_chars=65536, report=report)
    if case.reason:
        assert [s["where"] for s in report.skipped] == [f"{path}:{BAD_LINE}"] and len(ds) == N_GOOD
        outcome = "error+skip"
    elif case.long:
        assert [d["id"] for d in report.dropped_long] == ["bad"] and len(ds) == N_GOOD
        assert "dropped bad:" in report.summary()
        outcome = "dropped_long"
    else:
        assert len(ds) == N_GOOD + 1 and not report.skipped and not report.dropped_long
        outcome = "converted" if case.converted else "accepted"
    fault_log.record("sft", case.name, outcome)


# ---------------------------------------------------------------- GRPO


@pytest.fixture(scope="module")
def processor(tiny_model_dir):
    from mmreason.modeling import ModelLoad, load_processor

    return load_processor(ModelLoad(str(tiny_model_dir)), padding_side="left")


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_grpo_data(corpus, case, processor, fault_log):
    from mmreason.rl.data import build_grpo_dataset

    path = write_case(corpus, case)
    kw = dict(processor=processor, max_prompt_length=512)
    if case.reason:
        with pytest.raises(RecordError) as e:
            build_grpo_dataset(str(path), **kw)
        _expect_error(e.value, path, case)
    ds, report = build_grpo_dataset(str(path), lenient=True, **kw)
    if case.reason:
        assert report.skipped_bad == 1 and report.kept == len(ds) == N_GOOD
        outcome = "error+skip"
    elif case.long:
        assert [d["id"] for d in report.dropped_chars] == ["bad"] and len(ds) == N_GOOD
        assert report.dropped_long == 0 and "1 prompts dropped over max_prompt_chars=65536" in report.summary()
        outcome = "dropped_long"
    else:
        assert report.kept == N_GOOD + 1 and report.skipped_bad == 0
        outcome = "converted" if case.converted else "accepted"
    fault_log.record("grpo", case.name, outcome)


# ---------------------------------------------------------------- eval run


class EchoBackend:
    def __init__(self):
        self.ids_seen: list[int] = []

    def generate(self, inputs, progress=True, desc="", on_batch=None):
        texts = ["one dot \\boxed{1}" for _ in inputs]
        if on_batch is not None:
            on_batch(0, texts)
        return texts


def test_eval_run_counts_every_bad_line(corpus, fault_log):
    from mmreason.eval.run import run_benchmark

    path, line_of = write_all(corpus)
    s = run_benchmark(None, path, corpus / "eval_out", backend_obj=EchoBackend(), progress=False)
    skipped = s["skipped_records"]
    bad = [c for c in CASES if c.reason]
    assert len(skipped) == len(bad)
    for c in CASES:
        where = f"{path}:{line_of[c.name]}: "
        if c.reason:
            hit = [x for x in skipped if x.startswith(where)]
            assert len(hit) == 1 and c.reason in hit[0], (c.name, skipped)
            outcome = "skip"
        elif c.long:
            assert [d["id"] for d in s["dropped_long"]["items"]] == [f"bad_{c.name}"]
            outcome = "dropped_long"
        else:
            assert s["per_item"][f"bad_{c.name}"]["correct"], c.name
            outcome = "converted" if c.converted else "accepted"
        fault_log.record("eval run", c.name, outcome)
    usable = N_GOOD + sum(not c.reason for c in CASES)
    assert s["total"] == usable and s["correct"] == usable - 1  # the over-long one has no prediction


def test_eval_run_on_nothing_usable(corpus, fault_log):
    from mmreason.eval.run import run_benchmark

    bad = [c for c in CASES if c.reason and c.name != "duplicate_id"]  # alone, that one is a good record
    write_case(corpus, bad[0])  # the images
    path = corpus / "only_bad.jsonl"
    path.write_bytes(b"\n".join(c.line for c in bad) + b"\n")
    with pytest.raises(NothingUsable, match=rf"no usable items \({len(bad)} bad line"):
        run_benchmark(None, path, corpus / "eval_none", backend_obj=EchoBackend(), progress=False)
    fault_log.record("eval run", "all_bad", "error")


# ---------------------------------------------------------------- eval score


@pytest.mark.parametrize("case", PRED_CASES, ids=[c.name for c in PRED_CASES])
def test_eval_score(corpus, case, fault_log):
    from mmreason.eval.run import score_file

    recs = write_good_records(corpus)
    preds = write_predictions(corpus, case)
    outcomes = []
    for lenient, expected in ((False, case.error), (True, case.lenient_error)):
        out = corpus / f"score_{case.name}_{lenient}" / "scores.json"
        if expected:
            with pytest.raises(ValueError) as e:
                score_file(recs, preds, out, lenient=lenient)
            assert expected in str(e.value) and (str(preds) in str(e.value) or "prediction" in str(e.value))
            assert not out.exists()
            outcomes.append("error")
        else:
            s = score_file(recs, preds, out, lenient=lenient)
            assert s["predictions_matched"] >= 1 and json.loads(out.read_text())["total"] == N_GOOD
            if case.reported:
                assert s["prediction_repeats"][case.reported], s["prediction_repeats"]
                outcomes.append("reported")
            else:
                assert s["correct"] == N_GOOD
                outcomes.append("scored")
    fault_log.record("eval score", case.name,
                     outcomes[0] if outcomes[0] == outcomes[1] else f"{outcomes[0]} (lenient: {outcomes[1]})")


# ---------------------------------------------------------------- data build


def test_data_build_ledger_names_every_case(corpus, fault_log, tmp_path):
    from pathlib import Path

    from mmreason.data.build import build
    from mmreason.data.loopback import LoopbackServer, Scripted
    from mmreason.data.kinds.registry import load_recipe
    from mmreason.jsonl import read_jsonl_repair

    path, _ = write_all(corpus)
    recipe_file = Path(__file__).resolve().parents[2] / "data_recipes" / "distilled.yaml"
    with LoopbackServer(lambda body: Scripted(text="I count exactly one red dot here. \\boxed{1}")) as srv:
        recipe = load_recipe(recipe_file, [("source.path", str(path)), ("teacher.base_url", srv.base_url),
                                           ("teacher.model", "scripted"), ("teacher.max_retries", 1),
                                           ("decontam.enabled", False), ("sampling.k", 1)])
        stats = build(recipe, tmp_path / "build", progress=False)
    ledger, _ = read_jsonl_repair(tmp_path / "build" / "ledger.jsonl")
    by_line = {}
    for row in ledger:
        by_line.setdefault(row["source_id"], row)
    assert stats["complete"] and stats["questions"]["total"] == len(ledger) == N_GOOD + len(CASES)
    for c in CASES:
        sid = "g0@line" if c.name == "duplicate_id" else f"bad_{c.name}"
        rows = [r for r in ledger if r["source_id"].startswith(sid) or r["source_id"] == sid]
        if c.name in ("invalid_utf8", "invalid_json", "json_array", "missing_field"):
            rows = [r for r in ledger if r.get("detail", "").startswith(f"{path}:") and c.reason in r.get("detail", "")]
        assert len(rows) == 1, (c.name, [r["source_id"] for r in ledger])
        row = rows[0]
        if c.build_reason:
            assert row["status"] == "dropped" and row["reason"] == c.build_reason, row
            outcome = "skip"
        else:
            assert row["status"] == "kept", row
            outcome = "converted" if c.converted else "accepted"
        fault_log.record("data build", c.name, outcome)
    assert stats["records"] == N_GOOD + sum(not c.build_reason for c in CASES)
