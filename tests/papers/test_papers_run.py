"""`mmreason papers` end to end: every miniature's runner with the training / evaluation stages stubbed
(fast, designed results -> the verdicts they must give), and one slow smoke run of the real path."""

import json
from pathlib import Path

import pytest

from mmreason.demos import image as demo
from mmreason.papers import claims as C
from mmreason.papers.run import main as papers_main
from mmreason.rl import metrics as M
from mmreason.rl.callbacks import CLUSTER_ENTROPY, PSEUDO_LABEL_ACCURACY


def _state(dst: Path, entries: list[dict]) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    (dst / "trainer_state.json").write_text(json.dumps({"log_history": entries}))
    (dst / "model.safetensors").write_text("stub")


@pytest.fixture()
def stubbed(tmp_path, monkeypatch):
    """Real synthetic records; stub stages whose held-out results are designed per model name."""
    from mmreason.data.synth import synthesize

    n = 60
    grpo_calls = []

    def prepare(args, out):
        synthesize(out / "data", 4, n, seed=0, tasks=["color", "bars"], difficulty="easy", progress=False)
        (out / "base_model").mkdir(parents=True, exist_ok=True)
        return out / "base_model", out / "data"

    def run_sft(args, base, data, out):
        (out / "sft").mkdir(parents=True, exist_ok=True)
        return out / "sft"

    def run_grpo(args, start, data, dst, config=demo.GRPO_CONFIG):
        grpo_calls.append((start.name, dst.name, config.name, args.grpo_steps, list(args.grpo_arg)))
        mode = next((args.grpo_arg[i + 1] for i, a in enumerate(args.grpo_arg) if a == "--policy_loss"), None)
        steps = range(1, 21)
        if mode == "none":  # GRPO: entropy collapses
            ent = [0.6 - 0.025 * s for s in steps]
        else:  # the Cov methods hold it
            ent = [0.6 - 0.002 * s + 0.001 * (s % 3) for s in steps]
        rows = [{"step": s, M.ENTROPY_TOKEN_MEAN: e, M.reward_key("accuracy"): 0.5 + 0.01 * s} for s, e in zip(steps, ent)]
        if config == C.UNSUPERVISED_CONFIG:  # label-free: wrong consensus, early cluster-entropy collapse
            rows = [{"step": s, PSEUDO_LABEL_ACCURACY: 0.3, CLUSTER_ENTROPY: 0.4 if s <= 5 else 0.02,
                     M.ENTROPY_TOKEN_MEAN: 0.3, "pseudo_label_by_source/synth/bars": 0.4} for s in steps]
        _state(dst, rows)
        return dst

    # accuracy by model (eval name): per item correct for the first k of n items
    k_of = {"base": 0, "sft": 30, "rlcs_sft_grpo": 50, "rlcs_grpo_only": 0,
            "entropy_none": 40, "entropy_clip_cov": 41, "entropy_kl_cov": 39, "mmupt_grpo": 10}

    def evaluate(args, model, data, out, name):
        from mmreason.records import load_records

        recs, _ = load_records(data / "test.jsonl")
        k = k_of[name]
        per_item = {r.id: {"prediction": "x", "correct": j < k} for j, r in enumerate(recs)}
        return {"accuracy": k / len(recs), "correct": k, "total": len(recs), "per_item": per_item, "per_source": {}}

    def sample_answers(ctx, ids, g, temperature, top_p, seed, cache):
        # 3 of G samples give the gold answer, the rest scatter: maj@G right, one sample right 3/G of the time
        out = {}
        for i in ids:
            gold = ctx.records[i].answer
            out[i] = [f"\\boxed{{{gold}}}"] * 3 + [f"\\boxed{{wrong{j}}}" for j in range(g - 3)]
        return out

    for name, fn in (("prepare", prepare), ("run_sft", run_sft), ("run_grpo", run_grpo), ("evaluate", evaluate)):
        monkeypatch.setattr(demo, name, fn)
    monkeypatch.setattr(C, "sample_answers", sample_answers)
    return tmp_path, grpo_calls


def test_miniature_runners_with_stubbed_stages(stubbed, capsys):
    tmp, calls = stubbed
    out = tmp / "papers"
    assert papers_main(["--out", str(out), "--premise-n", "12", "--premise-g", "5", "--rlcs-steps", "7",
                        "--entropy-steps", "9", "--mmupt-steps", "11", "--grpo-arg=--logging_steps", "--grpo-arg=1"]) == 0
    # every GRPO run: start, folder, config, fixed steps, off-policy entropy runs, the probe reward
    runs = {dst: (start, cfg, steps, extra) for start, dst, cfg, steps, extra in calls}
    assert runs["grpo_from_base"][0] == "base_model" and runs["grpo"][0] == "sft"
    assert {runs[m][2] for m in ("none", "clip_cov", "kl_cov")} == {9}
    assert all("--steps_per_generation" in runs[m][3] and runs[m][3][runs[m][3].index("--steps_per_generation") + 1] == "2"
               for m in ("none", "clip_cov", "kl_cov"))
    mm = next(c for c in calls if c[2] == "tiny_unsupervised.yaml")
    assert mm[3] == 11 and C.PROBE in mm[4]
    assert all(c[4][-2:] == ["--logging_steps", "1"] for c in calls)  # --grpo-arg: every run, last

    data = {c["key"]: c for c in json.loads((out / "summary.json").read_text())}
    lines = {k: {ln["what"]: ln["verdict"] for ln in c["lines"]} for k, c in data.items()}
    # RLCS: 30/60 -> 50/60 (20 discordant, all one way) and 0/60 -> 50/60: reproduced
    assert lines["rlcs"]["SFT + GRPO vs SFT"] == "reproduced" and data["rlcs"]["overall"]["verdict"] == "reproduced"
    # entropy: GRPO's entropy falls, the Cov methods' stays above it; accuracy 40 vs 41 / 39: within noise
    assert lines["entropy"]["GRPO token entropy falls"] == "reproduced"
    assert lines["entropy"]["KL-Cov keeps entropy above GRPO (last 5 steps)"] == "reproduced"
    assert lines["entropy"]["Clip-Cov vs GRPO, held-out accuracy"] == "inconclusive"
    assert data["entropy"]["overall"]["verdict"] == "inconclusive"
    # MM-UPT: the premise holds (maj@5 always right vs 3/5 per sample), the run loses 20 points: not reproduced
    assert lines["mmupt"]["premise: maj@5 beats one sample"] == "reproduced"
    assert lines["mmupt"]["label-free GRPO vs its SFT start"] == "not reproduced"
    assert data["mmupt"]["overall"]["verdict"] == "not reproduced"
    notes = " ".join(data["mmupt"]["notes"])
    assert "pseudo-label accuracy 0.30" in notes and "cluster entropy fell" in notes
    md = (out / "summary.md").read_text()
    assert "| pseudo-label accuracy, synth/bars | 0.400 | 0.400 | +0.000 |" in md
    assert "| all (n = 12) | 100.0% | 60.0% | 100.0% | 0.0% |" in md  # SFT greedy gets the first 30 of 60 right
    for png in ("rlcs/rlcs.png", "entropy/entropy.png", "mmupt/mmupt.png"):
        assert (out / png).stat().st_size > 1000
    assert "inconclusive at toy scale" in capsys.readouterr().out


def test_mmupt_defaults_to_the_embedded_configs_step_count(stubbed):
    tmp, calls = stubbed
    out = tmp / "papers"
    assert papers_main(["--out", str(out), "--claims", "mmupt", "--premise-n", "6", "--premise-g", "5"]) == 0
    (mm,) = [c for c in calls if c[2] == "tiny_unsupervised.yaml"]
    assert mm[3] is None  # no --max_steps override: `make grpo-unsupervised`'s own run
    notes = " ".join(json.loads((out / "summary.json").read_text())[0]["notes"])
    assert f"for {C.config_steps(C.UNSUPERVISED_CONFIG)} steps" in notes


def test_unknown_claim_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="unknown claim"):
        papers_main(["--out", str(tmp_path), "--claims", "rlcs,nep"])


@pytest.mark.slow
def test_papers_smoke_real_stages(tmp_path):
    out = tmp_path / "papers"
    argv = ["--out", str(out), "--size", "tiny", "--n-train", "24", "--n-test", "6", "--tasks", "color,bars",
            "--sft-steps", "2", "--rlcs-steps", "1", "--entropy-steps", "2", "--mmupt-steps", "2", "--premise-n", "4",
            "--premise-g", "3", "--max-new-tokens", "8", "--eval-batch-size", "8", "--sft-arg=--save_steps=1000",
            "--grpo-arg=--save_steps=1000", "--grpo-arg=--max_completion_length=8", "--grpo-arg=--eval_max_samples=4"]
    assert papers_main(argv) == 0
    data = json.loads((out / "summary.json").read_text())
    assert [c["key"] for c in data] == ["rlcs", "entropy", "mmupt"]
    assert all(c["overall"]["verdict"] in ("reproduced", "not reproduced", "inconclusive") for c in data)
    for run in ("rlcs/grpo", "rlcs/grpo_from_base", "entropy/none", "entropy/clip_cov", "entropy/kl_cov", "mmupt/grpo"):
        assert (out / run / "trainer_state.json").is_file()
    hist = json.loads((out / "mmupt/grpo/trainer_state.json").read_text())["log_history"]
    assert any("rewards/pseudo_label_by_source/mean" in h for h in hist)  # the probe ran inside GRPO
    assert json.loads((out / "mmupt/premise_samples.json").read_text())["key"]["g"] == 3


def test_cli_lists_papers():
    from mmreason.cli import COMMANDS, usage

    assert COMMANDS["papers"][:2] == ("mmreason.papers.run", "main") and "papers" in usage()
