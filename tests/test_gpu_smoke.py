"""scripts/gpu_smoke.sh must not rot between the rare GPU runs: its dry run (the same rows on CPU, fp32, 1-2 steps)
runs here and every row of its table must be ok, the vLLM rows with the stand-in engine (tests/fake_vllm.py) in each
row's process; and the row check must fail what it is there to catch. The dry run runs in a venv that can import only
what the GPU machine will have (its image's packages, scripts/gpu_image_packages.txt, and the wheels
scripts/gpu_wheels.sh carries), so a dependency the wheels lack fails here, not in the GPU machine's few minutes."""

import importlib.metadata
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Needed here only by this venv's newer versions of a package the image has: (distribution, why).
HUB_2 = "huggingface-hub 2.x here needs it; the image's huggingface-hub 1.33 uses httpx and httpcore (there)"
VERSION_DRIFT = {"httpx2": HUB_2, "httpcore2": HUB_2, "truststore": HUB_2}
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


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def gpu_image_distributions() -> set[str]:
    """The GPU image's distributions, the carried wheels' and VERSION_DRIFT's (normalized names)."""
    listed = [ln.strip() for ln in (REPO / "scripts/gpu_image_packages.txt").read_text().splitlines()
              if ln.strip() and not ln.startswith("#")]
    carried = subprocess.run(["bash", "scripts/gpu_wheels.sh", "--list"], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout.split()
    return {normalized(n) for n in listed} | {normalized(p.split("==")[0]) for p in carried} | set(VERSION_DRIFT)


@pytest.fixture(scope="module")
def image_python(tmp_path_factory) -> str:
    """A venv's python whose site-packages links, from this environment, only the distributions the GPU machine will
    have once the wheels are installed: what a bare GPU machine can import."""
    folder = tmp_path_factory.mktemp("gpu_image") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = folder / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    allowed, linked = gpu_image_distributions(), set()
    for dist in importlib.metadata.distributions():
        if normalized(dist.metadata["Name"]) not in allowed:
            continue
        for f in dist.files or []:
            top = f.parts[0]
            if top in ("..", "__pycache__") or top.endswith(".pth") or top in linked:
                continue
            source = Path(dist.locate_file(top))
            if source.exists():
                (site / top).symlink_to(source)
                linked.add(top)
    return str(python)


def test_the_image_venv_imports_only_what_the_gpu_machine_will_have(image_python):
    ok = subprocess.run([image_python, "-c", "import torch, transformers, trl, mathruler, pylatexenc"],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr[-2000:]
    for absent in ("decord", "deepspeed"):  # installed here, but neither on the image nor carried
        p = subprocess.run([image_python, "-c", f"import {absent}"], capture_output=True, text=True)
        assert p.returncode != 0 and "No module named" in p.stderr, absent


@pytest.mark.slow
def test_gpu_smoke_dry_run_prints_every_row_ok(tmp_path, image_python):
    env = {**os.environ, "PYTHON": image_python, "SMOKE_WHEELS": "0", "OMP_NUM_THREADS": "1",
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
