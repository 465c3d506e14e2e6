"""Multi-process training on CPU (gloo): the launch files really start 2 synchronised processes with the engine
asked for (DDP, ZeRO-2, ZeRO-3; one node and two simulated nodes on 127.0.0.1); DDP equals the
accumulation-equivalent single process bit for bit and ZeRO within 1e-6 of DDP; the checkpoints load in the next
stage; the silent launches stop at the guard; a frozen or killed rank ends the whole job within the documented
bound; a killed run resumes bit-identically; text-only records beside image records do not break ZeRO-3 (SFT, GRPO).

The multi-process runs are module fixtures shared by the tests that read them (one run per configuration, the
slow part). The first DeepSpeed run JIT-builds an op (~2.5 min cold) into ~/.cache/mmreason/torch_extensions."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from ports import free_port
from safetensors.torch import load_file

from mmreason.distributed import (
    launch_errors,
    resume_errors,
    checkpoint_world_size,
    watch,
)

REPO = Path(__file__).resolve().parents[1]
ACC = REPO / "configs" / "accelerate"
# a constant learning rate: the schedule does not depend on max_steps, so a run stopped (killed) at any step
# resumes into the same trajectory as an uninterrupted max_steps-4 run
SFT_ARGS = ["--per_device_train_batch_size", "4", "--max_steps", "4", "--learning_rate", "1e-4", "--seed", "0",
            "--lr_scheduler_type", "constant",
            "--logging_steps", "1", "--save_strategy", "steps", "--save_steps", "4", "--report_to", "none",
            "--activation_checkpointing", "false", "--dataloader_num_workers", "0",
            "--ddp_timeout", "180"]  # fmt: skip  (a hung collective fails in 3 min, not 30)


def env(**extra) -> dict:
    e = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", PYTHON=sys.executable, USE_CPU="1",
             MMREASON_OFFLINE="1", TOKENIZERS_PARALLELISM="false")  # fmt: skip
    e.setdefault("TORCH_EXTENSIONS_DIR", str(Path.home() / ".cache" / "mmreason" / "torch_extensions"))
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "ACCELERATE_USE_CPU"):
        e.pop(k, None)
    e.update({k: str(v) for k, v in extra.items()})
    return e


def launch(stage: str, args: list, log: Path, config: str, **extra) -> subprocess.Popen:
    extra.setdefault("MASTER_PORT", free_port())
    cmd = ["bash", str(REPO / "scripts" / "launch.sh"), stage, *map(str, args)]
    return subprocess.Popen(cmd, cwd=REPO, env=env(ACCELERATE_CONFIG=ACC / config, **extra), stdout=log.open("w"),
                            stderr=subprocess.STDOUT)  # fmt: skip


def stop(*procs: subprocess.Popen) -> None:
    """End each launch's whole process tree (workers run in their own sessions)."""
    import psutil

    from mmreason.distributed import kill_tree

    for proc in procs:
        try:
            root = psutil.Process(proc.pid)
            kill_tree([root, *root.children(recursive=True)], grace=2)
        except psutil.NoSuchProcess:
            pass


def finish(*runs: tuple[subprocess.Popen, Path], timeout: float = 600) -> None:
    """Wait for launches (several: the nodes of one job) and require exit 0; on a timeout or a failure, end them all."""
    deadline = time.monotonic() + timeout
    try:
        for proc, log in runs:
            rc = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            assert rc == 0, log.read_text()[-4000:]
    finally:
        stop(*(proc for proc, _ in runs))


def signal_rank1(proc: subprocess.Popen, log: Path, beats: Path, ready, sig: int, timeout: float) -> tuple[int, float, int]:
    """Wait (at most 300 s, the job still running) until `ready()` and rank 1's heartbeat file exist, send `sig` to
    rank 1's pid, wait for the job to end -> (exit code, seconds from the signal to the end, rank 1's pid). The
    job is ended in any case."""
    try:
        deadline = time.monotonic() + 300
        while not ((beats / "rank1.beat").is_file() and ready()):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        pid = int((beats / "rank1.beat").read_text().split()[0])
        os.kill(pid, sig)
        start = time.monotonic()
        rc = proc.wait(timeout=timeout)
        return rc, time.monotonic() - start, pid
    finally:
        stop(proc)


def weights(folder: Path) -> dict:
    return load_file(folder / "model.safetensors")


def info(folder: Path) -> dict:
    return json.loads((folder / "distributed.json").read_text())


@pytest.fixture(scope="module")
def sft_data(tmp_path_factory):
    from mmreason.data.synth import synthesize

    out = tmp_path_factory.mktemp("dist_data")
    synthesize(out, n_train=48, n_test=4, seed=0, tasks=["count", "bars", "color"], difficulty="easy", progress=False)
    return out


@pytest.fixture(scope="module")
def sft_base(tiny_model_dir, sft_data):
    return ["--model_name_or_path", tiny_model_dir, "--train_files", sft_data / "train.jsonl", *SFT_ARGS]


@pytest.fixture(scope="module")
def ddp_run(sft_base, tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp") / "sft"
    log = out.parent / "log.txt"
    finish((launch("sft", [*sft_base, "--output_dir", out], log, "ddp_cpu.yaml", GPUS_PER_NODE=2), log))
    return out


@pytest.fixture(scope="module")
def zero2_run(sft_base, tmp_path_factory):
    out = tmp_path_factory.mktemp("zero2") / "sft"
    log = out.parent / "log.txt"
    finish((launch("sft", [*sft_base, "--output_dir", out], log, "deepspeed_zero2_cpu.yaml", GPUS_PER_NODE=2), log))
    return out


@pytest.fixture(scope="module")
def zero3_nodes_run(sft_base, tmp_path_factory):
    """ZeRO-3 on two simulated nodes: two launch.sh processes (node ranks 0 and 1) on 127.0.0.1, one output folder
    (the shared filesystem)."""
    out = tmp_path_factory.mktemp("zero3_nodes") / "sft"
    port = free_port()
    nodes = [dict(NNODES=2, NODE_RANK=r, MASTER_ADDR="127.0.0.1", MASTER_PORT=port, GPUS_PER_NODE=1) for r in (0, 1)]
    logs = [out.parent / f"node{r}.txt" for r in (0, 1)]
    procs = [launch("sft", [*sft_base, "--output_dir", out], log, "deepspeed_zero3_cpu.yaml", **n)
             for n, log in zip(nodes, logs)]  # fmt: skip
    finish(*zip(procs, logs))
    return out


@pytest.fixture(scope="module")
def mixed_data(sft_data):
    """Two records, one with an image and one text-only: at per-device batch 1 on 2 processes (SFT), or one
    prompt per process (GRPO), every step gives one rank the image and the other the text."""
    image = json.loads((sft_data / "train.jsonl").read_text().splitlines()[0])
    image["images"] = [str(sft_data / p) for p in image["images"]]
    text = dict(image, id="text-only-0", images=[], question="What is 2 + 3?", answer="5", answer_type="integer",
                solution="2 + 3 = 5. \\boxed{5}", choices=None)  # fmt: skip
    path = sft_data / "mixed.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in (image, text)))
    return path


MIXED_ARGS = ["--per_device_train_batch_size", "1", "--max_steps", "3", "--save_strategy", "no"]


@pytest.fixture(scope="module")
def zero3_mixed_run(tiny_model_dir, mixed_data, tmp_path_factory):
    """SFT under ZeRO-3 on 2 processes, one rank with an image and the other without at every step: without
    mmreason/vision_sync.py the ranks' parameter gathers pair wrongly (gloo aborts: "Received data size doesn't
    match expected size"; NCCL would hang)."""
    out = tmp_path_factory.mktemp("zero3_mixed") / "sft"
    log = out.parent / "log.txt"
    args = ["--model_name_or_path", tiny_model_dir, "--train_files", mixed_data, *SFT_ARGS, *MIXED_ARGS,
            "--output_dir", out]  # fmt: skip
    finish((launch("sft", args, log, "deepspeed_zero3_cpu.yaml", GPUS_PER_NODE=2), log), timeout=300)
    return out


def grpo_args(model, train_file, out) -> list:
    return ["--model_name_or_path", model, "--train_file", train_file, "--output_dir", out,
            "--reward_funcs", "dist_rewards.varied", "--per_device_train_batch_size", "4", "--num_generations", "4",
            "--max_completion_length", "8", "--max_steps", "2", "--learning_rate", "1e-4", "--seed", "0",
            "--bf16", "false", "--gradient_checkpointing", "false", "--report_to", "none", "--logging_steps", "1",
            "--save_strategy", "no", "--eval_strategy", "no", "--max_prompt_length", "512",
            "--dataloader_num_workers", "0"]  # fmt: skip


def reward_module(folder: Path) -> str:
    """A PYTHONPATH with a reward that varies inside every group (the tiny model's answers all score 0 on
    accuracy: no gradient)."""
    (folder / "dist_rewards.py").write_text(
        "def varied(completions, **kw):\n    return [float(i % 4) for i in range(len(completions))]\n"
    )
    return f"{REPO}:{folder}"


def eval_run(model: Path, benchmark: Path, out: Path) -> None:
    cmd = [sys.executable, "-m", "mmreason", "eval", "run", "--model", str(model), "--benchmark", str(benchmark),
           "--output-dir", str(out), "--max-new-tokens", "8", "--no-progress"]  # fmt: skip
    res = subprocess.run(cmd, cwd=REPO, env=env(), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]


# ---------------------------------------------------------------- fast: the guard's rules, resume, watchdog


def _info(**kw):
    base = dict(world_size=2, env_world_size=2, distributed_type="MULTI_CPU", engine="DDP")
    return base | kw


def test_guard_names_each_silent_launch():
    # accelerate launch --cpu --num_processes 2: one process, MASTER_ADDR set, no WORLD_SIZE
    single = launch_errors(_info(world_size=1, env_world_size=1, distributed_type="NO", engine="single"),
                            {"ACCELERATE_USE_CPU": "True", "MASTER_ADDR": "127.0.0.1"})  # fmt: skip
    assert len(single) == 1 and "started one" in single[0] and "--use_cpu true" in single[0]
    # --multi_gpu without --use_cpu: two processes, each alone
    alone = launch_errors(_info(world_size=1, distributed_type="NO", engine="single"), {"WORLD_SIZE": "2"})
    assert len(alone) == 1 and "WORLD_SIZE=2" in alone[0] and "--use_cpu true" in alone[0]
    # torchrun --ddp_backend gloo without --use_cpu: a process group, no gradient sync
    nosync = launch_errors(_info(distributed_type="NO", engine="single"), {"WORLD_SIZE": "2"})
    assert len(nosync) == 1 and "never synchronised" in nosync[0]
    # a DeepSpeed config with --use_cpu true: accelerate quietly runs DDP
    dropped = launch_errors(_info(), {"WORLD_SIZE": "2", "ACCELERATE_USE_DEEPSPEED": "true"})
    assert len(dropped) == 1 and "--ddp_backend gloo" in dropped[0]
    assert launch_errors(_info(), {"WORLD_SIZE": "2"}) == []
    assert launch_errors(_info(world_size=1, env_world_size=1, distributed_type="NO", engine="single"), {}) == []


def test_resume_world_size_from_rng_files(tmp_path):
    assert checkpoint_world_size(tmp_path) is None
    (tmp_path / "rng_state.pth").touch()
    assert checkpoint_world_size(tmp_path) == 1
    for r in (0, 1):
        (tmp_path / f"rng_state_{r}.pth").touch()
    assert checkpoint_world_size(tmp_path) == 2
    (msg,) = resume_errors({"world_size": 1}, str(tmp_path))
    assert "written by 2 process(es)" in msg and "this run has 1" in msg
    assert resume_errors({"world_size": 2}, str(tmp_path)) == [] and resume_errors({"world_size": 1}, None) == []


BEATER = """
import os, signal, subprocess, sys, time
from mmreason.distributed import start_heartbeat
rank = int(sys.argv[1])
if rank == 0:  # the "launcher": a worker in its own session, as torchrun starts them
    subprocess.Popen([sys.executable, __file__, "1"], start_new_session=True)
start_heartbeat(os.environ["MMREASON_HEARTBEAT_DIR"], rank, interval=0.5)
time.sleep(2)
if rank == 1:
    os.kill(os.getpid(), signal.SIGSTOP)  # frozen
time.sleep(600)
"""


def test_watchdog_ends_a_frozen_rank_and_its_whole_tree(tmp_path, monkeypatch, capfd):
    import psutil

    script = tmp_path / "beater.py"
    script.write_text(BEATER)
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    (tmp_path / "beats").mkdir()
    (tmp_path / "beats" / "rank7.beat").write_text("1 0\n")  # an earlier job's leftover: not a rank of this one
    os.utime(tmp_path / "beats" / "rank7.beat", (0, 0))
    start = time.monotonic()
    rc = watch([sys.executable, str(script), "0"], timeout=3, poll=0.5, heartbeat_dir=str(tmp_path / "beats"))
    elapsed = time.monotonic() - start
    assert rc == 124 and elapsed < 20
    left = [p for p in psutil.process_iter(["cmdline"]) if str(script) in " ".join(p.info["cmdline"] or [])]
    assert left == []
    err = capfd.readouterr().err
    assert "rank1 silent for" in err and "rank0 silent" not in err and "rank7" not in err  # rank 0 beat until the end


# ---------------------------------------------------------------- slow: real multi-process runs


@pytest.mark.slow
def test_ddp_is_two_synced_processes_equal_to_accumulation(ddp_run, sft_base, tmp_path):
    got = info(ddp_run)
    assert (got["world_size"], got["engine"], got["backend"], got["distributed_type"]) == (2, "DDP", "gloo", "MULTI_CPU")
    assert got["ranks_identical"] and len(got["rank_parameter_sha256"]) == 2
    single = tmp_path / "single"
    cmd = [sys.executable, "-m", "mmreason", "sft", *map(str, sft_base), "--gradient_accumulation_steps", "2",
           "--save_strategy", "no", "--output_dir", str(single)]  # fmt: skip
    res = subprocess.run(cmd, cwd=REPO, env=env(), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert info(single)["world_size"] == 1 and info(single)["engine"] == "single"
    a, b = weights(ddp_run), weights(single)
    assert a.keys() == b.keys()
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
    assert not torch.equal(a["lm_head.weight"], weights(Path(sft_base[1]))["lm_head.weight"])  # it trained


@pytest.mark.slow
def test_zero2_is_two_processes_within_1e6_of_ddp_and_exports(zero2_run, ddp_run, tmp_path):
    got = info(zero2_run)
    assert (got["world_size"], got["engine"], got["distributed_type"], got["zero_stage"]) == (2, "ZeRO-2", "DEEPSPEED", 2)
    assert got["ranks_identical"]
    a, b = weights(zero2_run), weights(ddp_run)
    assert max((a[k] - b[k]).abs().max().item() for k in a) <= 1e-6
    # the sharded checkpoint-4 (global_step4/) consolidates to the weights the final save wrote
    ckpt = zero2_run / "checkpoint-4"
    assert (ckpt / "latest").is_file()
    res = subprocess.run([sys.executable, "-m", "mmreason", "export", str(ckpt), str(tmp_path / "exp")], cwd=REPO,
                         env=env(), capture_output=True, text=True, timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    exported = weights(tmp_path / "exp")
    assert exported.keys() == a.keys() and all(torch.equal(exported[k], a[k]) for k in a)
    assert (tmp_path / "exp" / "config.json").is_file() and (tmp_path / "exp" / "processor_config.json").is_file()


@pytest.mark.slow
def test_resume_on_another_world_size_names_the_original(zero2_run, sft_base, tmp_path):
    cmd = [sys.executable, "-m", "mmreason", "sft", *map(str, sft_base), "--output_dir", str(tmp_path / "o"),
           "--resume_from_checkpoint", str(zero2_run / "checkpoint-4"), "--max_steps", "5"]  # fmt: skip
    res = subprocess.run(cmd, cwd=REPO, env=env(), capture_output=True, text=True, timeout=300)
    assert res.returncode == 2
    assert "written by 2 process(es) but this run has 1" in res.stderr


@pytest.mark.slow
def test_zero3_on_two_nodes_within_1e6_of_ddp_with_a_loadable_checkpoint(zero3_nodes_run, ddp_run):
    got = info(zero3_nodes_run)
    assert (got["world_size"], got["num_nodes"], got["engine"], got["gather_16bit_on_save"]) == (2, 2, "ZeRO-3", True)
    assert got["ranks_identical"]
    a, b = weights(zero3_nodes_run), weights(ddp_run)
    assert a.keys() == b.keys() and max((a[k] - b[k]).abs().max().item() for k in a) <= 1e-6
    assert (zero3_nodes_run / "config.json").is_file() and (zero3_nodes_run / "processor_config.json").is_file()


@pytest.mark.slow
def test_grpo_zero2_on_two_nodes_from_the_zero3_checkpoint_then_eval(zero3_nodes_run, sft_data, tmp_path):
    """The issue's acceptance: launch.sh NNODES=2 trains GRPO with ZeRO-2 (ranks identical) from the previous
    stage's ZeRO-3 checkpoint, and `eval run` loads the result."""
    out = tmp_path / "grpo"
    path = reward_module(tmp_path)
    args = grpo_args(zero3_nodes_run, sft_data / "train.jsonl", out)
    port = free_port()
    logs = [tmp_path / f"node{r}.txt" for r in (0, 1)]
    procs = [launch("grpo", args, log, "deepspeed_zero2_cpu.yaml", NNODES=2, NODE_RANK=r, MASTER_ADDR="127.0.0.1",
                    MASTER_PORT=port, GPUS_PER_NODE=1, PYTHONPATH=path)
             for r, log in zip((0, 1), logs)]  # fmt: skip
    finish(*zip(procs, logs))
    got = info(out)
    assert (got["world_size"], got["num_nodes"], got["engine"]) == (2, 2, "ZeRO-2") and got["ranks_identical"]
    before, after = weights(zero3_nodes_run), weights(out)
    assert any(not torch.equal(before[k], after[k]) for k in before)  # GRPO moved the weights
    eval_run(out, sft_data / "test.jsonl", tmp_path / "eval")


@pytest.mark.slow
def test_silent_single_process_launch_fails_at_the_guard(sft_base, tmp_path):
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2", "--main_process_port",
           str(free_port()), "-m", "mmreason", "sft", *map(str, sft_base), "--output_dir", str(tmp_path / "o")]  # fmt: skip
    res = subprocess.run(cmd, cwd=REPO, env=env(), capture_output=True, text=True, timeout=300)
    assert res.returncode != 0
    assert "the launcher was asked for several processes but started one" in res.stderr
    assert not (tmp_path / "o" / "model.safetensors").exists()


@pytest.mark.slow
def test_frozen_rank_ends_the_job_within_the_bound(sft_base, tmp_path):
    import psutil

    beats, out, log = tmp_path / "beats", tmp_path / "o", tmp_path / "log.txt"
    args = [*sft_base, "--output_dir", out, "--max_steps", "100000", "--save_strategy", "no"]
    proc = launch("sft", args, log, "ddp_cpu.yaml", GPUS_PER_NODE=2, HEARTBEAT_TIMEOUT=10,
                  MMREASON_HEARTBEAT_DIR=beats)  # fmt: skip
    rc, elapsed, pid = signal_rank1(proc, log, beats, (beats / "rank0.beat").is_file, signal.SIGSTOP, timeout=120)
    assert rc == 124, log.read_text()[-3000:]
    assert elapsed < 10 + 25, elapsed  # HEARTBEAT_TIMEOUT + poll + the kill grace, with slack for a loaded machine
    assert "rank1 silent for" in log.read_text()
    left = [p.pid for p in psutil.process_iter(["cmdline"]) if str(out) in " ".join(p.info["cmdline"] or [])]
    assert left == [] and not psutil.pid_exists(pid)


@pytest.mark.slow
def test_ddp_timeout_reaches_the_gloo_group_without_the_watchdog(sft_base, tmp_path):
    """transformers leaves the CPU process group at 30 min; the guard sets ddp_timeout on it, so a frozen peer makes
    the survivor's collective fail and torchrun end the job (its SIGTERM-then-SIGKILL grace is 30 s)."""
    import psutil

    beats, out, log = tmp_path / "beats", tmp_path / "o", tmp_path / "log.txt"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
           "--master-port", str(free_port()), "-m", "mmreason", "sft", *map(str, sft_base), "--output_dir", str(out),
           "--max_steps", "100000", "--save_strategy", "no", "--use_cpu", "true", "--ddp_timeout", "10"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=REPO, env=env(MMREASON_HEARTBEAT_DIR=beats), stdout=log.open("w"),
                            stderr=subprocess.STDOUT)  # fmt: skip
    # beats are written whenever the variable is set: 2 s after rank 1's first beat it is in the training loop
    first_beat: list[float] = []

    def in_loop() -> bool:
        first_beat[:] = first_beat or [time.monotonic()]
        return time.monotonic() - first_beat[0] >= 2

    rc, elapsed, pid = signal_rank1(proc, log, beats, in_loop, signal.SIGSTOP, timeout=150)
    text = log.read_text()
    # gloo words it either way, depending on where the survivor waits (a send, or a pair it reads from)
    assert rc != 0 and ("Timed out waiting 10000ms" in text or "Application timeout" in text), text[-3000:]
    assert elapsed < 10 + 30 + 45, elapsed  # ddp_timeout + torchrun's kill grace + its monitor, loaded-machine slack
    left = [p.pid for p in psutil.process_iter(["cmdline"]) if str(out) in " ".join(p.info["cmdline"] or [])]
    assert left == [] and not psutil.pid_exists(pid)


@pytest.mark.slow
def test_sigterm_to_one_rank_saves_on_every_rank_and_resumes_bit_identically(ddp_run, sft_base, tmp_path):
    """SIGTERM to rank 1 alone (before its step 2, tests/faults/killer.py): the ranks agree at the step's end, both
    save checkpoint-2 (each its RNG file) and exit 143; resuming it on 2 processes to step 4 ends bit-identical to
    the uninterrupted run."""
    from mmreason.resume import incomplete_reason

    out, log = tmp_path / "termed", tmp_path / "termed.txt"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
           "--master-port", str(free_port()), str(REPO / "tests" / "faults" / "killer.py"), "term", "2", "--", "sft",
           *map(str, sft_base), "--output_dir", str(out), "--save_steps", "1000", "--use_cpu", "true"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, env=env(MMREASON_KILLER_RANK=1), stdout=log.open("w"),
                          stderr=subprocess.STDOUT, timeout=600)  # fmt: skip
    text = log.read_text()
    assert proc.returncode != 0 and "exitcode  : 143" in text, text[-3000:]
    assert text.count("SIGTERM: finishing the current step") == 1  # only rank 1 was signalled
    assert "SFT stopped by SIGTERM at step 2" in text
    ckpt = out / "checkpoint-2"
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2"]
    assert incomplete_reason(ckpt) is None and (ckpt / "rng_state_0.pth").is_file() and (ckpt / "rng_state_1.pth").is_file()

    resumed, log2 = tmp_path / "resumed", tmp_path / "resumed.txt"
    args = [*sft_base, "--output_dir", resumed, "--resume_from_checkpoint", ckpt]
    finish((launch("sft", args, log2, "ddp_cpu.yaml", GPUS_PER_NODE=2, TRANSFORMERS_VERBOSITY="info"), log2))
    assert "Resuming training from checkpoint with epoch 0 and global step 2" in log2.read_text()
    a, b = weights(resumed), weights(ddp_run)
    assert a.keys() == b.keys() and [k for k in a if not torch.equal(a[k], b[k])] == []
    want = losses(ddp_run / "checkpoint-4")
    assert [s for s, _, _ in want] == [1, 2, 3, 4] and losses(resumed / "checkpoint-4") == want


@pytest.mark.slow
def test_sigterm_to_the_launch_saves_on_every_rank(sft_base, tmp_path):
    """SIGTERM to scripts/launch.sh (what a scheduler sends the job): the watchdog passes it to the whole tree and
    waits MMREASON_STOP_GRACE; every rank gets it at least twice (the watchdog's, torchrun's copy), finishes its
    step and saves one checkpoint with both RNG files; the job ends with 143."""
    from mmreason.resume import incomplete_reason

    beats, out, log = tmp_path / "beats", tmp_path / "termed", tmp_path / "log.txt"
    args = [*sft_base, "--output_dir", out, "--max_steps", "100000", "--save_steps", "1000"]
    proc = launch("sft", args, log, "ddp_cpu.yaml", GPUS_PER_NODE=2, MMREASON_HEARTBEAT_DIR=beats)
    first_beat: list[float] = []

    def in_loop() -> bool:  # beats start with the training loop; 2 s later it is inside it
        first_beat[:] = first_beat or [time.monotonic()]
        return time.monotonic() - first_beat[0] >= 2

    try:
        deadline = time.monotonic() + 300
        while not ((beats / "rank1.beat").is_file() and in_loop()):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=240)
    finally:
        stop(proc)
    text = log.read_text()
    assert rc == 128 + signal.SIGTERM, text[-3000:]
    ckpts = sorted(out.glob("checkpoint-*"))
    assert len(ckpts) == 1 and incomplete_reason(ckpts[0]) is None, text[-3000:]
    assert (ckpts[0] / "rng_state_0.pth").is_file() and (ckpts[0] / "rng_state_1.pth").is_file()
    assert text.count("SFT stopped by SIGTERM at step") >= 1 and not (out / "run.lock").exists()


def test_dummy_image_forward_is_exactly_neutral(tiny_model_dir):
    """The ZeRO-3 text-only fix (mmreason/vision_sync.py) runs the vision tower on a text-only forward and
    changes neither the loss nor any gradient (the tower's are zeros); forwards with an image and decode steps
    are left alone."""
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from mmreason.vision_sync import run_vision_on_every_forward

    proc = AutoProcessor.from_pretrained(tiny_model_dir)
    chat = [{"role": "user", "content": [{"type": "text", "text": "What is 2 + 3?"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "5"}]}]  # fmt: skip
    text = proc.apply_chat_template(chat, tokenize=True, return_dict=True, return_tensors="pt")
    image_chat = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Count."}]}]
    image = proc(text=proc.apply_chat_template(image_chat, add_generation_prompt=True), images=[Image.new("RGB", (56, 56))],
                 return_tensors="pt")  # fmt: skip

    def run(hooked: bool):
        torch.manual_seed(0)
        model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
        calls = []
        model.model.visual.register_forward_hook(lambda *a: calls.append(1))
        if hooked:
            run_vision_on_every_forward(model, proc)
        out = model(**text, labels=text["input_ids"])
        out.loss.backward()
        grads = {n: p.grad for n, p in model.named_parameters()}
        n_text = len(calls)
        with torch.no_grad():
            model(**image)
            gen = model.generate(**text, max_new_tokens=4, do_sample=False)
        return out.loss.detach(), out.logits.detach(), grads, n_text, len(calls) - n_text, gen

    loss0, logits0, grads0, calls0, _, gen0 = run(False)
    loss1, logits1, grads1, calls1, later1, gen1 = run(True)
    assert (calls0, calls1) == (0, 1)  # the tower ran on the text-only forward only with the fix
    assert later1 == 2  # the image forward (its own pixels, no dummy) + generation's first step only, not decoding
    assert torch.equal(loss0, loss1) and torch.equal(logits0, logits1) and torch.equal(gen0, gen1)
    visual = [n for n in grads1 if ".visual." in f".{n}"]
    assert visual and all(grads0[n] is None and torch.count_nonzero(grads1[n]) == 0 for n in visual)
    others = [n for n in grads0 if n not in visual]
    assert others and all(torch.equal(grads0[n], grads1[n]) for n in others)


@pytest.mark.slow
def test_zero3_text_only_beside_images_runs_and_equals_one_process(zero3_mixed_run, tiny_model_dir, mixed_data,
                                                                   tmp_path):  # fmt: skip
    """A rank without an image in its batch beside one with: the ZeRO-3 run finishes (the dummy image is on),
    and equals the accumulation-equivalent single process (no dummy) within 1e-6: the fix is loss-neutral."""
    got = info(zero3_mixed_run)
    assert (got["world_size"], got["engine"], got["dummy_vision"]) == (2, "ZeRO-3", True) and got["ranks_identical"]
    single = tmp_path / "single"
    cmd = [sys.executable, "-m", "mmreason", "sft", "--model_name_or_path", str(tiny_model_dir), "--train_files",
           str(mixed_data), *SFT_ARGS, *MIXED_ARGS, "--gradient_accumulation_steps", "2", "--output_dir", str(single)]  # fmt: skip
    res = subprocess.run(cmd, cwd=REPO, env=env(), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert info(single)["dummy_vision"] is False
    a, b = weights(zero3_mixed_run), weights(single)
    assert a.keys() == b.keys() and max((a[k] - b[k]).abs().max().item() for k in a) <= 1e-6
    merger = [k for k in a if "merger" in k]
    assert merger and any(not torch.equal(a[k], weights(tiny_model_dir)[k]) for k in merger)  # the images trained it


@pytest.mark.slow
def test_grpo_zero3_two_processes_mixed_records_then_eval(zero3_mixed_run, mixed_data, sft_data, tmp_path):
    """GRPO under ZeRO-3 (TRL's default ds3_gather_for_generation: true) on 2 processes, from the ZeRO-3 SFT
    checkpoint, one rank's prompt with an image and the other's text-only at every step; `eval run` loads it."""
    from dataclasses import fields

    from mmreason.rl.config import MMReasonGRPOConfig

    assert {f.name: f.default for f in fields(MMReasonGRPOConfig)}["ds3_gather_for_generation"] is True  # this run's
    out = tmp_path / "grpo"
    log = tmp_path / "log.txt"
    proc = launch("grpo", grpo_args(zero3_mixed_run, mixed_data, out), log, "deepspeed_zero3_cpu.yaml",
                  GPUS_PER_NODE=2, PYTHONPATH=reward_module(tmp_path))  # fmt: skip
    finish((proc, log), timeout=400)
    got = info(out)
    assert (got["world_size"], got["engine"], got["dummy_vision"]) == (2, "ZeRO-3", True) and got["ranks_identical"]
    before, after = weights(zero3_mixed_run), weights(out)
    assert before.keys() == after.keys() and any(not torch.equal(before[k], after[k]) for k in before)
    eval_run(out, sft_data / "test.jsonl", tmp_path / "eval")


def losses(checkpoint: Path) -> list[tuple[int, float, float]]:
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    return [(e["step"], e["loss"], e["grad_norm"]) for e in state["log_history"] if "loss" in e]


@pytest.mark.slow
def test_killed_rank_ends_the_job_and_its_checkpoint_resumes_bit_identically(ddp_run, sft_base, tmp_path):
    """kill -9 of one rank of a 2-process DDP run (after its checkpoint-2) ends the job within the bound with a
    non-zero exit and nothing left; resuming checkpoint-2 on 2 processes to step 4 ends bit-identical to the
    uninterrupted run (parameters and the logged loss / grad-norm sequence), each rank restoring its own RNG file."""
    import psutil

    beats, killed, log = tmp_path / "beats", tmp_path / "killed", tmp_path / "killed.txt"
    args = [*sft_base, "--output_dir", killed, "--max_steps", "100000", "--save_steps", "2"]
    proc = launch("sft", args, log, "ddp_cpu.yaml", GPUS_PER_NODE=2, HEARTBEAT_TIMEOUT=10, MMREASON_HEARTBEAT_DIR=beats)
    ckpt = killed / "checkpoint-2"
    # the checkpoint is complete once trainer_state.json is there (resume.py's barrier comes after every rank's
    # RNG file); the RNG file is checked as well, so the test still holds if that barrier were removed
    complete = lambda: (ckpt / "trainer_state.json").is_file() and (ckpt / "rng_state_1.pth").is_file()  # noqa: E731
    rc, elapsed, pid = signal_rank1(proc, log, beats, complete, signal.SIGKILL, timeout=120)
    print(f"kill -9 of rank 1: the job ended in {elapsed:.1f}s with exit code {rc}")
    assert rc != 0, log.read_text()[-3000:]
    assert elapsed < 10 + 25, elapsed  # HEARTBEAT_TIMEOUT + poll + the kill grace (torchrun is usually first)
    left = [p.pid for p in psutil.process_iter(["cmdline"]) if str(killed) in " ".join(p.info["cmdline"] or [])]
    assert left == [] and not psutil.pid_exists(pid)

    resumed, log2 = tmp_path / "resumed", tmp_path / "resumed.txt"
    args = [*sft_base, "--output_dir", resumed, "--resume_from_checkpoint", ckpt]
    finish((launch("sft", args, log2, "ddp_cpu.yaml", GPUS_PER_NODE=2, TRANSFORMERS_VERBOSITY="info"), log2))
    text = log2.read_text()
    assert "Resuming training from checkpoint with epoch 0 and global step 2" in text, text[-3000:]
    assert "Didn't find an RNG file" not in text
    a, b = weights(resumed), weights(ddp_run)
    assert a.keys() == b.keys() and [k for k in a if not torch.equal(a[k], b[k])] == []
    want = losses(ddp_run / "checkpoint-4")
    assert [s for s, _, _ in want] == [1, 2, 3, 4] and losses(resumed / "checkpoint-4") == want


def test_images_and_videos_go_through_one_tower_call(tiny_model_dir):
    """A forward with images and videos calls the vision tower once under the ZeRO-3 fix (beside a rank with one
    kind, which calls it once too), with the same logits as the two calls it replaces."""
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from video_fixtures import coded_frames

    from mmreason.media.video import set_video_pixels
    from mmreason.vision_sync import run_vision_on_every_forward

    proc = AutoProcessor.from_pretrained(tiny_model_dir)
    set_video_pixels(proc, 56 * 56, 56 * 56)
    chat = [{"role": "user", "content": [{"type": "image"}, {"type": "video"}, {"type": "text", "text": "Next?"}]}]
    frames = coded_frames(4)
    batch = proc(text=[proc.apply_chat_template(chat, add_generation_prompt=True)], images=[coded_frames(1)[0]],
                 videos=[frames], video_metadata=[{"fps": 2.0, "total_num_frames": 4, "frames_indices": [0, 1, 2, 3]}],
                 do_sample_frames=False, return_tensors="pt")  # fmt: skip
    assert batch["pixel_values"].numel() and batch["pixel_values_videos"].numel()
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    calls = []
    model.model.visual.register_forward_hook(lambda *a: calls.append(1))
    with torch.no_grad():
        plain = model(**batch).logits
        run_vision_on_every_forward(model, proc)
        once = model(**batch).logits
    assert calls == [1, 1, 1]  # two calls without the fix, one with it
    print("max |logit difference| images+videos in one call vs two:", (plain - once).abs().max().item())
    assert torch.allclose(plain, once, atol=1e-6, rtol=0)
