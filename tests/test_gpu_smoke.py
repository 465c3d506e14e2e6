"""scripts/gpu_smoke.sh must not rot between the rare GPU runs: its dry run (the same rows on CPU, fp32, 1-2 steps)
runs here and every row of its table must be ok, the vLLM rows with the stand-in engine (tests/fake_vllm.py) in each
row's process; and the row check must fail what it is there to catch."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ROWS = ["sft_image_5", "sft_video_3", "grpo_clip_cov_5", "grpo_kl_cov_5", "grpo_video_3", "eval_run_16",
        "grpo_vllm_image_1", "grpo_vllm_video_1"]


def smoke_module():
    spec = importlib.util.spec_from_file_location("gpu_smoke", REPO / "scripts/gpu_smoke.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_row_check_fails_crashes_non_finite_losses_and_dead_gradients(tmp_path):
    check = smoke_module().check_row
    train = ["grpo", "--config", "x"]
    good = {"code": 0, "error": None, "losses": [0.1, -0.2], "grad_norms": [0.5, 0.0]}
    assert check("r", train, good, tmp_path) == (True, "")
    assert not check("r", train, {**good, "losses": [0.1, float("nan")]}, tmp_path)[0]
    assert not check("r", train, {**good, "losses": []}, tmp_path)[0]
    assert not check("r", train, {**good, "grad_norms": [0.0, 0.0]}, tmp_path)[0]  # advantages all zero: no check
    assert not check("r", train, {**good, "grad_norms": [float("inf")]}, tmp_path)[0]
    assert not check("r", train, {**good, "code": 1}, tmp_path)[0]
    assert check("r", train, {**good, "error": "RuntimeError: CUDA error"}, tmp_path) == (False, "RuntimeError: CUDA error")
    assert not check("e", ["eval", "run"], {**good, "losses": []}, tmp_path)[0]  # no scores.json written
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "scores.json").write_text("{}")
    assert check("e", ["eval", "run"], {**good, "losses": []}, tmp_path)[0]


def test_cuda_run_without_a_gpu_says_so(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    p = subprocess.run([sys.executable, "scripts/gpu_smoke.py", "--out", str(tmp_path / "s")], cwd=REPO,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 2 and "no CUDA device (use --dry-run on CPU)" in p.stderr


@pytest.mark.slow
def test_gpu_smoke_dry_run_prints_every_row_ok(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "SMOKE_WHEELS": "0", "OMP_NUM_THREADS": "1",
           "SMOKE_FAKE_VLLM": str(REPO / "tests/fake_vllm.py")}
    # two halves of the rows side by side (each row is its own process anyway): the suite's two cores both work
    halves = [ROWS[0::2], ROWS[1::2]]
    procs = [subprocess.Popen(["bash", "scripts/gpu_smoke.sh", "--dry-run", "--only", ",".join(half), "--out",
                               str(tmp_path / f"smoke{i}")], cwd=REPO, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i, half in enumerate(halves)]
    cells = {}
    for proc, half in zip(procs, halves):
        stdout, stderr = proc.communicate(timeout=1500)
        assert proc.returncode == 0, stdout[-3000:] + stderr[-3000:]
        lines = [ln for ln in stdout.splitlines() if ln.startswith("| ") and not ln.startswith("| row")]
        got = {c[0]: c[1:] for c in ([x.strip() for x in ln.strip("|").split("|")] for ln in lines) if c[0] != "---"}
        assert list(got) == half
        assert stdout.startswith("gpu_smoke: cpu, fp32") and "vllm rows: stand-in engine (tests)" in stdout
        cells.update(got)
    for name, (status, seconds, peak, loss_finite) in cells.items():
        assert status == "ok", (name, status)
        assert float(seconds) > 0 and int(peak) > 0
        assert loss_finite == ("n/a" if name.startswith("eval") else "True")
