"""Smoke run of the whole demo pipeline (tiny model, synthetic data, SFT, GRPO, eval) at a tiny budget."""

import json

import pytest

from mmreason.demos.image import main as demo_main


def test_demo_pipeline_tiny_budget(tmp_path, capsys):
    out = tmp_path / "demo"
    argv = ["--out", str(out), "--size", "tiny", "--n-train", "32", "--n-test", "8", "--tasks", "color,bars",
            "--sft-steps", "2", "--grpo-steps", "1", "--max-new-tokens", "12", "--eval-batch-size", "8",
            "--sft-arg=--save_steps=1000", "--grpo-arg=--save_steps=1000"]
    assert demo_main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary)[:3] == ["base", "SFT (cold start)", "SFT + GRPO"]
    for row in ("base", "SFT (cold start)", "SFT + GRPO"):
        assert summary[row]["total"] == 8 and 0 <= summary[row]["correct"] <= 8
        per = summary[row]["per_source"]
        assert set(per) == {"synth/color", "synth/bars"} and sum(v["total"] for v in per.values()) == 8
        assert sum(v["correct"] for v in per.values()) == summary[row]["correct"]
    for stage in ("base_model", "sft", "grpo"):
        assert (out / stage / "model.safetensors").is_file()
    assert (out / "grpo" / "trainer_state.json").is_file()
    trend = summary["grpo_reward_trend"]
    assert trend["steps"] == 1 and set(trend["sources"]) <= {"synth/color", "synth/bars"} and trend["sources"]
    printed = capsys.readouterr().out
    assert "| SFT + GRPO |" in printed and "/ 8 |" in printed and "| mean over sources |" in printed
    assert "| synth/bars | synth/color |" in printed
    # the paired tests under the table: SFT vs base and SFT + GRPO vs SFT, overall then per task
    pairs = [(r["a"], r["b"], r["group"]) for r in summary["paired"]]
    assert pairs == [(a, b, g) for a, b in (("base", "SFT (cold start)"), ("SFT (cold start)", "SFT + GRPO"))
                     for g in ("all", "synth/bars", "synth/color")]
    assert all(r["n"] == 8 for r in summary["paired"][::3]) and "| SFT + GRPO vs SFT (cold start) | all (n = 8) |" in printed
    # the fixed held-out questions were scored at the start of GRPO (eval_on_start), per source too
    evals = trend["eval"]
    assert evals["batch"][0] == [0, 1] and all(0 <= v <= 1 for v in evals["batch"][1])  # start and end
    assert set(evals["sources"]) == {"synth/color", "synth/bars"}
    assert "fixed held-out questions" in printed and "| step 0 |" in printed
    # `mmreason plot` ran on the GRPO stage: PNGs written; one step is too few points for the law, said so
    for png in ("entropy.png", "reward.png", "covariance.png", "entropy_law.png"):
        assert (out / "grpo" / png).stat().st_size > 1000
    assert "Entropy-performance law not fitted" in printed
    assert summary["grpo_entropy_law"] == {"points": 1, "basis": "training"}  # 1 eval after a step: too few

    # A rerun reuses every finished stage (no retraining) and prints the same table.
    before = (out / "sft" / "model.safetensors").stat().st_mtime_ns
    assert demo_main(argv) == 0
    assert (out / "sft" / "model.safetensors").stat().st_mtime_ns == before
    again = json.loads((out / "summary.json").read_text())
    assert {k: again[k] for k in ("base", "SFT (cold start)", "SFT + GRPO")} == {
        k: summary[k] for k in ("base", "SFT (cold start)", "SFT + GRPO")
    }


def test_prepare_only_builds_the_embedded_default(tmp_path):
    out = tmp_path / "demo"
    assert demo_main(["--out", str(out), "--size", "tiny", "--n-train", "10", "--n-test", "4", "--prepare-only"]) == 0
    assert (out / "base_model" / "config.json").is_file()
    assert sum(1 for _ in open(out / "data" / "train.jsonl")) == 10
    assert not (out / "sft").exists()
    # Reusing a run folder made with other settings is refused, not silently mixed.
    import pytest

    with pytest.raises(SystemExit, match="n_train"):
        demo_main(["--out", str(out), "--size", "tiny", "--n-train", "12", "--n-test", "4", "--prepare-only"])


def test_paired_section_on_fixed_evals():
    """The demo's paired tests under its accuracy table: each pair overall then per task, from per-item results."""
    from mmreason.demos.image import BASE, RL_ONLY, SFT, SFT_GRPO, paired_section

    ids = [f"{t}{k}" for t in ("bars", "color") for k in range(20)]

    def ev(right):
        return {"per_item": {i: {"prediction": "x", "correct": i in right} for i in ids}}

    base = ev(set())
    sft = ev({f"bars{k}" for k in range(15)} | {"color0", "color1"})  # 17 / 40
    grpo = ev({f"bars{k}" for k in range(1, 20)} | {"color1"})  # bars +4 (5 vs 1), colour -1 (0 vs 1)
    rows = [(BASE, base), (SFT, sft), (SFT_GRPO, grpo), (RL_ONLY, base)]
    groups = {i: "synth/" + i.rstrip("0123456789") for i in ids}
    md, js = paired_section(rows, [(BASE, SFT), (SFT, SFT_GRPO), (BASE, RL_ONLY)], groups, seed=0)
    table = [ln for ln in md if ln.startswith("| ") and "---" not in ln][1:]
    assert [ln.split(" | ")[:2] for ln in table] == [
        [f"| {b} vs {a}", g] for a, b in ((BASE, SFT), (SFT, SFT_GRPO), (BASE, RL_ONLY))
        for g in ("all (n = 40)", "synth/bars (n = 20)", "synth/color (n = 20)")]
    # exact McNemar on the discordant counts: 0 vs 17 -> 2 / 2^17; 2 vs 5 -> 2 * (1 + 7 + 21) / 2^7; 1 vs 5 -> 2 * 7 / 64
    assert table[0].endswith("| 0.0% → 42.5% | +42.5 [+27.5, +57.5] | 1.53e-05 (0 / 17) | SFT (cold start) better, beyond noise |")
    assert " | 42.5% → 50.0% | +7.5 [" in table[3] and table[3].endswith("| 0.453 (2 / 5) | within noise |")
    assert " | 75.0% → 95.0% | +20.0 [" in table[4] and table[4].endswith("| 0.219 (1 / 5) | within noise |")
    assert table[5].endswith("| 1 (1 / 0) | within noise |") and table[2].endswith("| 0.5 (0 / 2) | within noise |")
    assert table[6].endswith("| 0.0% → 0.0% | +0.0 [+0.0, +0.0] | 1 (0 / 0) | within noise |")
    row = js[3]
    assert {k: row[k] for k in ("a", "b", "group", "n", "b_only_a", "c_only_b", "reading")} == {
        "a": SFT, "b": SFT_GRPO, "group": "all", "n": 40, "b_only_a": 2, "c_only_b": 5, "reading": "within noise"}
    assert row["p_mcnemar"] == pytest.approx(58 / 128) and row["diff"] == pytest.approx(0.075)
    assert row["ci_low"] < 0 < row["diff"] < row["ci_high"]
    # a pair whose evals cover different questions is refused, naming both rows
    with pytest.raises(ValueError, match="base and SFT"):
        paired_section([(BASE, base), (SFT, {"per_item": dict(list(sft["per_item"].items())[1:])})], [(BASE, SFT)], groups)


def test_stage_runner_reuses_a_finished_stage_full_or_adapter(tmp_path):
    """The runner both demos and the papers share: a stage folder holding full weights or a LoRA adapter is reused
    when made with the same argv, refused when made with other settings; a failing stage stops the demo."""
    import pytest

    from mmreason.demos.runner import run_stage

    calls = []

    def stage(weights):
        def main(argv):
            calls.append(argv)
            (tmp_path / weights.split(".")[0]).mkdir(exist_ok=True)
            (tmp_path / weights.split(".")[0] / weights).write_text("stub")
            return 0

        return main

    for weights in ("model.safetensors", "adapter_model.safetensors"):
        dst = tmp_path / weights.split(".")[0]
        assert run_stage("SFT", stage(weights), ["--a", "1"], dst) == dst
        assert run_stage("SFT", stage(weights), ["--a", "1"], dst) == dst  # reused: not run again
        with pytest.raises(SystemExit, match="made with other settings"):
            run_stage("SFT", stage(weights), ["--a", "2"], dst)
    assert calls == [["--a", "1"], ["--a", "1"]]
    with pytest.raises(SystemExit, match="the GRPO stage failed"):
        run_stage("GRPO", lambda argv: 1, [], tmp_path / "grpo")
