"""The summary writer, the collapse-warning callback and the pseudo-label probe on fixed inputs."""

import json
from types import SimpleNamespace

import pytest

from mmreason.eval.stats import paired_compare
from mmreason.papers.summary import ClaimResult, Line, overview_table, plot_accuracy_bars, plot_curves, write_summary
from mmreason.papers.verdict import decide, decide_paired
from mmreason.rl.callbacks import CLUSTER_ENTROPY, PSEUDO_LABEL_ACCURACY, CollapseWarningCallback


def _claims():
    better = paired_compare([1] * 50 + [0] * 50, [1] * 50 + [1] * 30 + [0] * 20)
    noise = paired_compare([1, 0] * 20, [0, 1] * 20)
    a = ClaimResult("rlcs", "Cold start + RL beats SFT alone", "arXiv 2505.22334: 66.3% → 73.4%")
    a.tables.append("| model | acc |\n|---|---|\n| SFT | 50% |")
    a.lines += [Line("SFT + GRPO vs SFT", "50.0% → 80.0%", decide_paired(better)),
                Line("SFT + GRPO vs SFT — synth/bars", "detail", decide_paired(noise), headline=False)]
    a.seconds = 12.4
    b = ClaimResult("mmupt", "Label-free GRPO improves the model", "arXiv 2505.22453: 66.3% → 72.9%")
    b.lines += [Line("premise", "maj beats sample", decide_paired(better)),
                Line("after vs before", "within noise", decide_paired(noise))]
    b.notes.append("no collapse warning fired")
    return a, b


def test_summary_writer_on_fixed_results(tmp_path):
    a, b = _claims()
    text = write_summary(tmp_path, [a, b], ["header line"])
    assert (tmp_path / "summary.md").read_text() == text
    assert text.startswith("# mmreason papers") and "header line" in text
    # the overview: one row per claim, overall verdict from the headline lines only
    assert ("| Cold start + RL beats SFT alone | arXiv 2505.22334: 66.3% → 73.4% | SFT + GRPO vs SFT: 50.0% → 80.0% "
            "| reproduced at toy scale |") in text
    assert "| Label-free GRPO improves the model | arXiv 2505.22453: 66.3% → 72.9% |" in text
    assert "premise: maj beats sample; after vs before: within noise | inconclusive at toy scale |" in text
    assert "| SFT + GRPO vs SFT — synth/bars | detail | inconclusive at toy scale |" in text
    assert "## Cold start + RL beats SFT alone (12 s)" in text and "| SFT | 50% |" in text
    assert "- no collapse warning fired" in text
    data = json.loads((tmp_path / "summary.json").read_text())
    assert [c["overall"]["verdict"] for c in data] == ["reproduced", "inconclusive"]
    assert data[0]["lines"][1] == {"what": "SFT + GRPO vs SFT — synth/bars", "result": "detail",
                                   "verdict": "inconclusive", "reason": data[0]["lines"][1]["reason"],
                                   "headline": False}
    assert overview_table([a]).count("\n") == 2


def test_a_worse_headline_makes_the_claim_not_reproduced():
    a, _ = _claims()
    a.lines.append(Line("SFT + GRPO vs GRPO only", "worse", decide(-0.1, -0.15, -0.05)))
    assert a.overall.label == "not reproduced"


def test_plots_write_pngs(tmp_path):
    p = plot_accuracy_bars(tmp_path / "bars.png", [("SFT", 60.0, 2.8), ("SFT + GRPO", 63.7, 2.8)], "t")
    q = plot_curves(tmp_path / "curves.png", [("entropy", {"GRPO": ([1, 2, 3], [0.3, 0.2, 0.1]), "none": ([], [])})], "t")
    for f in (p, q):
        assert (tmp_path / f.split("/")[-1]).stat().st_size > 1000


# ---------------------------------------------------------------- collapse warnings


def _replay(logs, max_steps=100, **kw):
    cb = CollapseWarningCallback(**kw)
    for step, entry in logs:
        cb.on_log(None, SimpleNamespace(global_step=step, max_steps=max_steps), None, logs=entry)
    return cb


def test_callback_warns_on_low_pseudo_label_accuracy_once():
    logs = [(s, {PSEUDO_LABEL_ACCURACY: 0.7 if s < 10 else 0.3}) for s in range(1, 30)]
    cb = _replay(logs)
    assert len(cb.warnings) == 1
    step, msg = cb.warnings[0]
    assert 10 < step < 16 and "pseudo-label accuracy" in msg and "below 0.5" in msg


def test_callback_warns_on_early_cluster_entropy_collapse_only():
    collapse = [(s, {CLUSTER_ENTROPY: 0.33 if s <= 5 else 0.04}) for s in range(1, 40)]
    cb = _replay(collapse)
    assert len(cb.warnings) == 1 and cb.warnings[0][0] == 10 and "0.330 to 0.040" in cb.warnings[0][1]
    # the same fall late in the run (after half of max_steps) is convergence, not an early collapse
    late = [(s, {CLUSTER_ENTROPY: 0.33 if s <= 60 else 0.04}) for s in range(1, 100)]
    assert _replay(late).warnings == []
    # a healthy run: no warning; entries without the metrics are ignored
    healthy = [(s, {CLUSTER_ENTROPY: 0.3, PSEUDO_LABEL_ACCURACY: 0.8, "loss": 1.0}) for s in range(1, 50)]
    assert _replay(healthy + [(50, {"loss": 0.5})]).warnings == []


def test_callback_thresholds_are_settings():
    logs = [(s, {PSEUDO_LABEL_ACCURACY: 0.6}) for s in range(1, 10)]
    assert _replay(logs).warnings == []
    assert len(_replay(logs, min_pseudo_label_accuracy=0.7).warnings) == 1
    with pytest.raises(ValueError):
        CollapseWarningCallback(window=0)


# ---------------------------------------------------------------- the per-source pseudo-label probe


def test_group_size_from_record_ids():
    from mmreason.papers.probes import group_size

    assert group_size(["a"] * 4 + ["b"] * 4 + ["a"] * 4) == 4
    assert group_size(["a"] * 3 + ["b"] * 6) == 3  # two groups of the same record next to each other


def test_probe_logs_pseudo_label_accuracy_per_source():
    from mmreason.papers.probes import PREFIX, pseudo_label_by_source

    box = lambda a: [{"role": "assistant", "content": f"so \\boxed{{{a}}}"}]  # noqa: E731
    comps = [box(x) for x in ("3", "3", "4")] + [box(x) for x in ("red", "blue", "blue")] + [box(x) for x in ("5", "5", "5")]
    logged = []
    out = pseudo_label_by_source(
        completions=comps, record_id=["q1"] * 3 + ["q2"] * 3 + ["q3"] * 3,
        source=["synth/count"] * 3 + ["synth/color"] * 3 + ["synth/count"] * 3,
        answer=["3"] * 3 + ["red"] * 3 + ["6"] * 3, answer_type=["integer"] * 3 + ["text"] * 3 + ["integer"] * 3,
        choices=[None] * 9, precision=[None] * 9, log_metric=lambda k, v: logged.append((k, v)))
    assert out == [0.0] * 9  # zero-weight: no training signal
    assert sorted(logged) == sorted([(PREFIX + "synth/count", 1.0), (PREFIX + "synth/count", 0.0),
                                     (PREFIX + "synth/color", 0.0)])
