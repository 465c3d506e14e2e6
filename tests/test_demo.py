"""Smoke run of the whole demo pipeline (tiny model, synthetic data, SFT, GRPO, eval) at a tiny budget."""

import json

from mmreason.demo import main as demo_main


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
