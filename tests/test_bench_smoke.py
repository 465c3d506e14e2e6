"""The GRPO benchmark's workers run on the tiny model (a few steps): `make bench` must not break unseen.
Times are not checked (no timed tests); only that every mode ran and reported."""


def test_grpo_bench_workers_run_every_mode(tiny_model_dir, tmp_path, monkeypatch):
    import bench.bench_grpo as B

    bench_data = B.write_records(tmp_path / "data", n=8)
    monkeypatch.setitem(B.SHAPES, "tiny vocab", dict(batch=4, length=4, warmup=2, steps=2, rounds=1))
    spec = {"model": str(tiny_model_dir), "data": str(bench_data), "label": "tiny vocab"}
    for mode in B.MODES:
        r = B.worker(dict(spec, mode=mode, out=str(tmp_path / mode)))
        assert r["step_s"] > 0 and r["cpu_s"] > 0 and r["peak_rss_mb"] > 0
    r = B.loss_worker(dict(spec, reps=4, out=str(tmp_path / "loss")))
    for part in ("loss", "gen"):
        assert set(r[part]) == {"stock", "clip_cov", "kl_cov"} and all(v > 0 for v in r[part].values())
    assert r["gen_reps"] == 1  # reps 2..5: generation timed on every 4th
