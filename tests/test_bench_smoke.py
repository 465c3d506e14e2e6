"""`make bench` must not break unseen: every bench/bench_*.py (found by glob, so a new one is covered without
an edit here) runs end to end in its smoke mode (`python -m bench.run --smoke NAME`); and the GRPO benchmark's
workers run on the tiny model (a few steps). Times are not checked (no timed tests); only that every bench and
mode ran and reported, and that the interleaving really alternates the trainers and hands each its own RNG."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCHES = sorted(p.stem for p in (REPO / "bench").glob("bench_*.py"))


@pytest.mark.slow
@pytest.mark.parametrize("name", BENCHES)
def test_every_bench_runs_end_to_end_in_smoke_mode(name, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1",
               MMREASON_OFFLINE="1")
    env.pop("MMREASON_BENCHMARKS", None)  # the test fixtures' small benchmark copies
    res = subprocess.run([sys.executable, "-m", "bench.run", "--smoke", name], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=900)
    out = res.stdout + res.stderr
    assert res.returncode == 0 and f"=== {name} ===" in out and "FAILED" not in out, out[-4000:]


def test_bench_list_is_every_bench_file():
    """The smoke test's list is the folder's bench files, and `bench.run` runs the same set by default."""
    assert BENCHES and all((REPO / "bench" / f"{n}.py").is_file() for n in BENCHES)
    assert {"bench_eval", "bench_grpo", "bench_rewards", "bench_sft", "bench_teacher"} <= set(BENCHES)


def test_grpo_bench_workers_run_every_mode(tiny_model_dir, tmp_path, monkeypatch):
    import bench.bench_grpo as B

    bench_data = B.write_records(tmp_path / "data", n=8)
    monkeypatch.setitem(B.SHAPES, "tiny vocab", dict(batch=4, length=4, warmup=2, steps=2, warmup_rounds=1,
                                                     min_rounds=2, max_rounds=2, budget_s=600))
    spec = {"model": str(tiny_model_dir), "data": str(bench_data), "label": "tiny vocab"}
    for mode in B.MODES:
        r = B.worker(dict(spec, mode=mode, out=str(tmp_path / mode)))
        assert r["step_s"] > 0 and r["cpu_s"] > 0 and r["peak_rss_mb"] > 0
    r = B.loss_worker(dict(spec, reps=4, out=str(tmp_path / "loss")))
    for part in ("loss", "gen"):
        assert set(r[part]) == {"stock", "clip_cov", "kl_cov"} and all(v > 0 for v in r[part].values())
    assert r["gen_reps"] == 1  # reps 2..5: generation timed on every 4th
    r = B.interleaved_worker(dict(spec, out=str(tmp_path / "inter"), profile_rounds=1))
    assert r["stopped"] in ("round cap 2", "95% interval within ±2%")
    for name, mode in B.TRAINERS.items():
        cyc = r["cycles"][name]
        assert len(cyc["cpu_s"]) == 2 and all(t > 0 for t in cyc["cpu_s"])
        assert all(0 <= k <= c for k, c in zip(cyc["sys_s"], cyc["cpu_s"])) and all(f >= 0 for f in cyc["minflt"])
        # the profile saw the trainer's own loss: ours calls the registry's, stock TRL does not
        prof = r["profile"][name]
        called = {n for n, (t, calls) in prof["functions"].items() if calls > 0}
        assert any("kl_cov_loss" in n for n in called) == (mode == "kl_cov")
        assert any("_apply_policy_loss" in n for n in called) == (mode != "stock")
        assert any("trl/trainer/grpo_trainer.py" in n and "_generate_and_score_completions" in n for n in called)
        # stock runs no mmreason code; ours does, a small part of the step
        assert (prof["own_s"] > 0) == (mode != "stock") and prof["own_s"] < prof["total_s"]


def test_own_time_counts_our_code_and_what_it_calls_not_trl():
    """own_time: our functions' self time, plus the non-TRL calls they make (with all below them); TRL /
    transformers functions called from our code (super() hooks) and torch ops called from TRL are left out."""
    from bench.bench_grpo import own_time

    ours = ("/x/site-packages/mmreason/rl/trainer.py", 10, "_apply_policy_loss")
    ours2 = ("/x/site-packages/mmreason/rl/losses/kl_cov.py", 5, "kl_cov_loss")
    trl = ("/x/site-packages/trl/trainer/grpo_trainer.py", 1, "_get_per_token_logps_and_entropies")
    topk = ("~", 0, "<built-in method torch.topk>")
    exp = ("~", 0, "<built-in method torch.exp>")
    stats = {  # (cc, ncalls, tottime, cumtime, {caller: (cc, ncalls, tottime, cumtime)})
        ours: (1, 1, 0.010, 5.0, {}),
        ours2: (1, 1, 0.002, 0.005, {ours: (1, 1, 0.002, 0.005)}),
        trl: (1, 1, 0.5, 4.9, {ours: (1, 1, 0.5, 4.9)}),  # the shared model pass: not ours
        topk: (2, 2, 0.004, 0.004, {ours2: (1, 1, 0.003, 0.003), trl: (1, 1, 0.001, 0.001)}),
        exp: (3, 3, 0.9, 0.9, {trl: (3, 3, 0.9, 0.9)}),
    }
    assert own_time(stats) == pytest.approx(0.010 + 0.002 + 0.003)
    assert own_time({trl: stats[trl], exp: stats[exp]}) == 0.0


def test_reset_mode_restarts_every_cycle_from_the_same_weights(tiny_model_dir, tmp_path, monkeypatch):
    """reset=True: each cycle starts from the trainer's starting weights and optimizer state with the RNG seeded by
    the round, so two trainers of the same code do identical work per round, and a round's first loss is the
    loss of the starting weights on that round's prompts, not of weights trained by the rounds before."""
    import torch

    import bench.bench_grpo as B
    from bench.interleave import train_interleaved

    data = B.write_records(tmp_path / "data", n=8)
    monkeypatch.setitem(B.SHAPES, "tiny vocab", dict(B.SHAPES["tiny vocab"], batch=4, length=4))
    spec = {"model": str(tiny_model_dir), "data": str(data), "label": "tiny vocab"}

    def make(name):
        return B.make_trainer(dict(spec, out=str(tmp_path / name)), "stock", max_steps=8, logging_steps=1,
                              learning_rate=1e-2, temperature=1.5)

    start = {k: v.clone() for k, v in make("probe").model.state_dict().items()}
    a, b = make("a"), make("b")
    at_start = []  # per cycle, as it starts (after the reset): the starting weights, and Adam's moments empty?

    def check(name):
        trainer = {"a": a, "b": b}[name]
        weights = trainer.model.state_dict()
        at_start.append((all(torch.equal(weights[k], start[k]) for k in start),
                         not trainer.optimizer.state_dict()["state"]))

    train_interleaved({"a": a, "b": b}, 2, reset=True, on_acquire=check)
    drift = make("drift")
    train_interleaved({"drift": drift}, 2)

    def losses(t):
        return [h["loss"] for h in t.state.log_history if "loss" in h]

    # 2 trainers x 4 cycles (the first from the weights as loaded, 3 restored, the 4th holds the end of train())
    assert at_start == [(True, True)] * 8
    assert losses(a) == losses(b) and len(losses(a)) == 8
    assert losses(a)[:2] == losses(drift)[:2]  # round 0: same start, same seed
    assert losses(a)[2:] != losses(drift)[2:]  # later rounds: reset weights vs weights trained on


def test_interleaving_alternates_trainers_and_keeps_each_rng(tiny_model_dir, tmp_path, monkeypatch):
    """Two identical stock trainers interleaved train exactly as one alone: same losses step by step (so the
    hand-overs keep each trainer's RNG: sampling draws from the global generator), and their cycles alternate
    in rotated order."""
    from transformers import TrainerCallback

    import bench.bench_grpo as B
    from bench.interleave import median_ci, train_interleaved

    data = B.write_records(tmp_path / "data", n=8)
    monkeypatch.setitem(B.SHAPES, "tiny vocab", dict(B.SHAPES["tiny vocab"], batch=4, length=4))
    spec = {"model": str(tiny_model_dir), "data": str(data), "label": "tiny vocab"}
    log: list[str] = []

    class Order(TrainerCallback):
        def __init__(self, name):
            self.name = name

        def on_step_end(self, *a, **k):
            log.append(self.name)

    def make(name):
        t = B.make_trainer(dict(spec, out=str(tmp_path / name)), "stock", max_steps=6, logging_steps=1,
                           learning_rate=1e-2, temperature=1.5)
        t.add_callback(Order(name))
        return t

    alone = make("alone")
    train_interleaved({"alone": alone}, 2)
    a, b = make("a"), make("b")
    log.clear()
    cycles = train_interleaved({"a": a, "b": b}, 2)

    def losses(t):
        return [h["loss"] for h in t.state.log_history if "loss" in h]

    assert losses(a) == losses(b) == losses(alone) and len(losses(a)) == 6
    assert len(set(losses(a))) > 1
    # cycles of 2 steps; rounds a b | b a | a b (the order rotates each round)
    assert log == ["a", "a", "b", "b", "b", "b", "a", "a", "a", "a", "b", "b"]
    assert len(cycles["a"]) == len(cycles["b"]) == 2  # the last cycle holds the end of train(): not counted
    assert median_ci([1.0, 2.0, 3.0]) == (2.0, 1.0, 3.0)
    assert median_ci([float(x) for x in range(1, 21)]) == (10.5, 6.0, 15.0)  # the textbook ranks for n = 20


def test_report_ratios_user_time_and_own_share(capsys):
    """The printed ratios on fixed cycles: ours 10% slower in user time with the same kernel time, A/A equal."""
    import bench.bench_grpo as B

    rounds = 7
    base = [1.0 + 0.1 * i for i in range(rounds)]  # the machine drifts; the per-round ratio does not

    def cycles(user_scale):
        return {"cpu_s": [b * user_scale + 0.5 for b in base], "wall_s": [b * user_scale + 0.6 for b in base],
                "sys_s": [0.5] * rounds, "minflt": [1000] * rounds}

    inter = {"cycles": {"stock": cycles(1.0), "stock_aa": cycles(1.0), "clip_cov": cycles(1.1), "kl_cov": cycles(1.0)},
             "stopped": "round cap 7", "elapsed_s": 1.0,
             "profile": {m: {"own_s": 0.0 if m.startswith("stock") else 0.01, "total_s": 2.0, "functions": {}}
                         for m in B.TRAINERS}}
    hooks = {"loss": dict.fromkeys(B.MODES, 1.0), "gen": dict.fromkeys(B.MODES, 2.0), "gen_reps": 1}
    sep = {m: {"cpu_s": 1.0, "step_s": 1.0, "peak_rss_mb": 100.0, "train_peak_mb": 10.0} for m in B.MODES}
    row = B.report("tiny vocab", inter, hooks, sep, reps=3)
    user = row["the same, user time only (without the kernel's page faults)"]
    assert user == ["1.100 [1.100–1.100]", "1.000 [1.000–1.000]"]
    assert row["A/A control: stock ÷ stock, same run, CPU time"] == ["1.000 [1.000–1.000]"] * 2
    assert row["mmreason's own code, share of the step (profile; upper bound)"] == ["0.50%", "0.50%"]
    cpu = [float(c.split()[0]) for c in row["whole step, interleaved, CPU time (median ratio [95% interval])"]]
    assert 1.05 < cpu[0] < 1.1 and cpu[1] == 1.0  # the kernel's share dilutes the CPU-time ratio
    assert "7 rounds" in capsys.readouterr().out
