"""The GRPO benchmark's workers run on the tiny model (a few steps): `make bench` must not break unseen.
Times are not checked (no timed tests); only that every mode ran and reported, and that the interleaving
really alternates the trainers and hands each its own RNG."""

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
    r = B.interleaved_worker(dict(spec, out=str(tmp_path / "inter"), profile=True, profile_rounds=1))
    assert r["stopped"] in ("round cap 2", "95% interval within ±2%")
    for mode in B.MODES:
        assert len(r["cycles"][mode]["cpu_s"]) == 2 and all(t > 0 for t in r["cycles"][mode]["cpu_s"])
        # the profile saw the trainer's own loss: ours calls the registry's, stock TRL does not
        called = {name for name, (t, calls) in r["profile"][mode].items() if calls > 0}
        assert any("kl_cov_loss" in n for n in called) == (mode == "kl_cov")
        assert any("_compute_registry_loss" in n for n in called) == (mode != "stock")
        assert any("trl/trainer/grpo_trainer.py" in n and "_generate_and_score_completions" in n for n in called)


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
        t = B._trainer(dict(spec, out=str(tmp_path / name)), "stock", max_steps=6, logging_steps=1,
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
