"""Fault injection (b): SIGTERM before a training step (SFT, GRPO: the step finishes, a checkpoint is saved, exit
143, the same command resumes bit-identically); SIGKILL at seeded random points — inside an SFT or GRPO checkpoint save or between steps,
inside the data builder's ledger/records append, inside the eval prediction-cache append — then the same command
again: nothing lost, nothing duplicated, the step/item sequence continuous, and the result equal to the
uninterrupted run (SFT and GRPO weights, losses and rewards bit for bit, the data builder's records and ledger, the
eval predictions). The killed
run is a real subprocess of the real CLI (tests/faults/killer.py patches the library's write calls; the product
has no test hook)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[2]
KILLER = Path(__file__).with_name("killer.py")
SEEDS = [int(s) for s in os.environ.get("MMREASON_FAULT_SEEDS", "0,1").split(",")]
SAVE_EVENTS_PER_CHECKPOINT = 5  # model.safetensors, optimizer.pt, scheduler.pt, rng_state.pth, training_args.bin

pytestmark = pytest.mark.slow


def killed(site: str, nth: int, argv: list[str], timeout: float = 300, code: int = -signal.SIGKILL
           ) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MMREASON_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, str(KILLER), site, str(nth), "--", *argv], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == code, (proc.returncode, proc.stderr[-3000:])
    return proc


def terminated(nth: int, argv: list[str]) -> subprocess.CompletedProcess:
    """SIGTERM before training step `nth`: the stage finishes that step, saves checkpoint-nth, exits 143."""
    return killed("term", nth, argv, code=128 + signal.SIGTERM)


NO_PERIODIC_SAVE = ["--save_steps", "1000"]  # the only checkpoint a SIGTERM run leaves is the one it saves on SIGTERM


@pytest.fixture(scope="module")
def sft_data(tmp_path_factory):
    from mmreason.data.synth import synthesize

    out = tmp_path_factory.mktemp("kill_data")
    synthesize(out, n_train=12, n_test=4, seed=0, tasks=["count", "color"], difficulty="easy", progress=False)
    return out


# ---------------------------------------------------------------- SFT

MAX_STEPS = 4


def _sft_argv(model, data, out):
    return ["--model_name_or_path", str(model), "--train_files", str(data / "train.jsonl"), "--output_dir", str(out),
            "--per_device_train_batch_size", "4", "--learning_rate", "1e-2", "--max_steps", str(MAX_STEPS),
            "--save_strategy", "steps", "--save_steps", "1", "--logging_steps", "1", "--activation_checkpointing",
            "false", "--seed", "0", "--resume_from_checkpoint", "true", "--report_to", "none"]


def _train(argv):
    from mmreason.sft.run import make_parser, train

    return train(*make_parser().parse_args_and_config(argv))


def _kill_points():
    points = []
    for seed in SEEDS:
        rng = random.Random(seed)
        points.append(("save", rng.randint(1, MAX_STEPS * SAVE_EVENTS_PER_CHECKPOINT)))
    points.append(("step", random.Random(SEEDS[0]).randint(2, MAX_STEPS)))
    return points


@pytest.fixture(scope="module")
def sft_uninterrupted(tiny_model_dir, sft_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("sft_whole") / "out"
    trainer = _train(_sft_argv(tiny_model_dir, sft_data, out))
    return out, [h["loss"] for h in trainer.state.log_history if "loss" in h]


@pytest.mark.parametrize("site,nth", _kill_points())
def test_sft_killed_resumes_by_itself(tiny_model_dir, sft_data, sft_uninterrupted, tmp_path, site, nth, fault_log):
    from mmreason.resume import last_complete_checkpoint

    out = tmp_path / "killed"
    killed(site, nth, ["sft", *_sft_argv(tiny_model_dir, sft_data, out)])
    start = last_complete_checkpoint(out)  # what the rerun resumes from (torn ones are moved aside, as it would)
    trainer = _train(_sft_argv(tiny_model_dir, sft_data, out))  # the same command again
    steps = [h["step"] for h in trainer.state.log_history if "loss" in h]
    lost = len(set(range(1, MAX_STEPS + 1)) - set(steps))
    duplicated = sum(n - 1 for n in Counter(steps).values())
    assert trainer.state.global_step == MAX_STEPS and steps == list(range(1, MAX_STEPS + 1))
    assert sorted(p.name for p in out.glob("checkpoint-*")) == [f"checkpoint-{i}" for i in range(1, MAX_STEPS + 1)]
    # deterministic on CPU: the killed and resumed run ends exactly where the uninterrupted one does
    whole, whole_losses = sft_uninterrupted
    assert [h["loss"] for h in trainer.state.log_history if "loss" in h] == whole_losses
    a, b = load_file(out / "model.safetensors"), load_file(whole / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    fault_log.record("kill", f"sft {site} #{nth}", "survived", resumed_from=Path(start).name if start else None,
                     lost=lost, duplicated=duplicated, kind="sft")


def test_sft_sigterm_saves_the_step_and_resumes_bit_identically(tiny_model_dir, sft_data, sft_uninterrupted,
                                                                 tmp_path, fault_log):
    from mmreason.resume import incomplete_reason

    out, nth = tmp_path / "termed", 2
    argv = [*_sft_argv(tiny_model_dir, sft_data, out), *NO_PERIODIC_SAVE]
    proc = terminated(nth, ["sft", *argv])
    assert "SFT stopped by SIGTERM at step 2" in proc.stderr
    assert [p.name for p in out.glob("checkpoint-*")] == [f"checkpoint-{nth}"]
    assert incomplete_reason(out / f"checkpoint-{nth}") is None and not (out / "model.safetensors").exists()
    trainer = _train(argv)  # the same command again
    steps = [h["step"] for h in trainer.state.log_history if "loss" in h]
    assert steps == list(range(1, MAX_STEPS + 1))
    whole, whole_losses = sft_uninterrupted
    assert [h["loss"] for h in trainer.state.log_history if "loss" in h] == whole_losses
    a, b = load_file(out / "model.safetensors"), load_file(whole / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    lost = len(set(range(1, MAX_STEPS + 1)) - set(steps))
    fault_log.record("kill", f"sft SIGTERM before step {nth}", "survived", resumed_from=f"checkpoint-{nth}",
                     lost=lost, duplicated=sum(n - 1 for n in Counter(steps).values()), kind="sft SIGTERM")


# ---------------------------------------------------------------- GRPO

GRPO_STEPS = 4
# model.safetensors, training_args.bin, optimizer.pt, scheduler.pt, rng_state.pth, grpo_generation_state.pt
GRPO_SAVE_EVENTS = 6


def _grpo_argv(model, data, out):
    """steps_per_generation 2: each rollout serves two steps, so a resume from an odd checkpoint lands inside a
    generation window (the buffered rollouts must come from the checkpoint). The reward is a function of the
    completion tokens (grpo_rewards.py): equal weights at the end mean equal generations on the way."""
    return ["--model_name_or_path", str(model), "--train_files", str(data / "train.jsonl"), "--output_dir", str(out),
            "--reward_funcs", "grpo_rewards:token_sum", "--per_device_train_batch_size", "4", "--num_generations",
            "4", "--steps_per_generation", "2", "--max_completion_length", "6", "--max_steps", str(GRPO_STEPS),
            "--learning_rate", "1e-2", "--save_strategy", "steps", "--save_steps", "1", "--logging_steps", "1",
            "--bf16", "false", "--gradient_checkpointing", "false", "--seed", "0", "--resume_from_checkpoint",
            "true", "--report_to", "none"]


def _grpo_logs(out: Path) -> list[dict]:
    state = json.loads((out / "trainer_state.json").read_text())
    return [h for h in state["log_history"] if "loss" in h]


def _grpo_kill_points():
    points = [("save", random.Random(seed).randint(1, GRPO_STEPS * GRPO_SAVE_EVENTS)) for seed in SEEDS]
    points.append(("step", random.Random(SEEDS[0]).choice([2, 4])))  # resumes inside a generation window
    return points


@pytest.fixture(scope="module")
def grpo_uninterrupted(tiny_model_dir, sft_data, tmp_path_factory):
    from mmreason.rl.run import main as grpo_main

    out = tmp_path_factory.mktemp("grpo_whole") / "out"
    assert grpo_main(_grpo_argv(tiny_model_dir, sft_data, out)) == 0
    return out


@pytest.mark.parametrize("site,nth", _grpo_kill_points())
def test_grpo_killed_resumes_by_itself(tiny_model_dir, sft_data, grpo_uninterrupted, tmp_path, site, nth,
                                       fault_log):
    from mmreason.resume import last_complete_checkpoint
    from mmreason.rl.run import main as grpo_main

    out = tmp_path / "killed"
    killed(site, nth, ["grpo", *_grpo_argv(tiny_model_dir, sft_data, out)])
    # a kill inside the k-th save leaves checkpoint-k torn; one before step k leaves checkpoint-(k-1) the newest
    last_good = (nth - 1) // GRPO_SAVE_EVENTS if site == "save" else nth - 1
    start = last_complete_checkpoint(out)  # what the rerun resumes from (torn ones are moved aside, as it would)
    assert (Path(start).name if start else None) == (f"checkpoint-{last_good}" if last_good else None)
    assert grpo_main(_grpo_argv(tiny_model_dir, sft_data, out)) == 0  # the same command again
    logs, whole = _grpo_logs(out), _grpo_logs(grpo_uninterrupted)
    steps = [h["step"] for h in logs]
    lost = len(set(range(1, GRPO_STEPS + 1)) - set(steps))
    duplicated = sum(n - 1 for n in Counter(steps).values())
    assert steps == list(range(1, GRPO_STEPS + 1))
    assert sorted(p.name for p in out.glob("checkpoint-*")) == [f"checkpoint-{i}" for i in range(1, GRPO_STEPS + 1)]
    # deterministic on CPU: the same rollouts (rewards), losses and final weights as the uninterrupted run
    keys = ("loss", "reward", "completions/mean_length")
    assert [[h.get(k) for k in keys] for h in logs] == [[h.get(k) for k in keys] for h in whole]
    a, b = load_file(out / "model.safetensors"), load_file(grpo_uninterrupted / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    fault_log.record("kill", f"grpo {site} #{nth}", "survived", resumed_from=Path(start).name if start else None,
                     lost=lost, duplicated=duplicated, kind="grpo")


def test_grpo_sigterm_saves_the_step_and_resumes_bit_identically(tiny_model_dir, sft_data, grpo_uninterrupted,
                                                                  tmp_path, fault_log):
    """SIGTERM before step 3: checkpoint-3 lands inside a generation window (steps_per_generation 2), so the resumed
    step 4 must train on the rollouts buffered in it."""
    from mmreason.resume import incomplete_reason
    from mmreason.rl.run import main as grpo_main

    out, nth = tmp_path / "termed", 3
    argv = [*_grpo_argv(tiny_model_dir, sft_data, out), *NO_PERIODIC_SAVE]
    proc = terminated(nth, ["grpo", *argv])
    assert "GRPO stopped by SIGTERM at step 3" in proc.stderr
    assert [p.name for p in out.glob("checkpoint-*")] == [f"checkpoint-{nth}"]
    assert incomplete_reason(out / f"checkpoint-{nth}") is None and not (out / "model.safetensors").exists()
    assert grpo_main(argv) == 0  # the same command again
    logs, whole = _grpo_logs(out), _grpo_logs(grpo_uninterrupted)
    steps = [h["step"] for h in logs]
    assert steps == list(range(1, GRPO_STEPS + 1))
    keys = ("loss", "reward", "completions/mean_length")
    assert [[h.get(k) for k in keys] for h in logs] == [[h.get(k) for k in keys] for h in whole]
    a, b = load_file(out / "model.safetensors"), load_file(grpo_uninterrupted / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    lost = len(set(range(1, GRPO_STEPS + 1)) - set(steps))
    fault_log.record("kill", f"grpo SIGTERM before step {nth}", "survived", resumed_from=f"checkpoint-{nth}",
                     lost=lost, duplicated=sum(n - 1 for n in Counter(steps).values()), kind="grpo SIGTERM")


# ---------------------------------------------------------------- data build


@pytest.fixture(scope="module")
def teacher():
    from mmreason.data.loopback import LoopbackServer, Scripted

    with LoopbackServer(lambda body: Scripted(text="I look at the image and count. \\boxed{1}")) as srv:
        yield srv


def _build_argv(source, out, url):
    return ["--recipe", str(ROOT / "data_recipes" / "distilled.yaml"), "--out", str(out), "--no-progress",
            "--set", f"source.path={source}", "--set", f"teacher.base_url={url}", "--set", "teacher.model=scripted",
            "--set", "decontam.enabled=false", "--set", "sampling.k=2", "--set", "teacher.max_retries=1"]


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


@pytest.fixture(scope="module")
def build_source(tmp_path_factory):
    """Records whose gold answer is 1 (the scripted teacher's answer) for half of them: kept and dropped rows."""
    root = tmp_path_factory.mktemp("build_src")
    from faults_corpus import make_images

    make_images(root)
    rows = [{"id": f"s{i}", "question": f"Item {i}: how many?", "answer": str(1 + i % 2), "answer_type": "integer",
             "images": ["images/ok.png"]} for i in range(8)]
    path = root / "src.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def build_reference(build_source, teacher, tmp_path_factory):
    from mmreason.data.build import main as build_main

    out = tmp_path_factory.mktemp("build_ref") / "out"
    assert build_main(_build_argv(build_source, out, teacher.base_url)) == 0
    return out


@pytest.mark.parametrize("seed", SEEDS)
def test_data_build_killed_inside_the_ledger_resumes(build_source, build_reference, teacher, tmp_path, seed,
                                                     fault_log):
    from mmreason.data.build import main as build_main

    out = tmp_path / "out"
    nth = random.Random(seed).randint(1, 10)  # 8 questions: 8 ledger + 4 records appends
    killed("append", nth, ["data", "build", *_build_argv(build_source, out, teacher.base_url)])
    assert build_main(_build_argv(build_source, out, teacher.base_url)) == 0  # the same command again
    ref_ledger, ledger = _lines(build_reference / "ledger.jsonl"), _lines(out / "ledger.jsonl")
    ids = [r["source_id"] for r in ledger]
    lost = len({r["source_id"] for r in ref_ledger} - set(ids))
    recs, ref_recs = _lines(out / "train.jsonl"), _lines(build_reference / "train.jsonl")
    rec_ids = [r["id"] for r in recs]
    duplicated = sum(n - 1 for n in Counter(ids).values()) + sum(n - 1 for n in Counter(rec_ids).values())
    lost += len({r["id"] for r in ref_recs} - set(rec_ids))
    assert lost == 0 and duplicated == 0
    assert ids == [r["source_id"] for r in ref_ledger]  # the same sequence, in source order
    assert sorted(map(json.dumps, recs)) == sorted(map(json.dumps, ref_recs))
    stats = json.loads((out / "stats.json").read_text())
    assert stats["complete"] and stats["records"] == len(ref_recs)
    fault_log.record("kill", f"data build append #{nth}", "survived", lost=lost, duplicated=duplicated,
                     kind="data build")


# ---------------------------------------------------------------- eval run


def _eval_argv(model, records, out):
    return ["run", "--model", str(model), "--benchmark", str(records), "--output-dir", str(out), "--batch-size", "1",
            "--max-new-tokens", "4", "--no-progress"]


@pytest.fixture(scope="module")
def eval_reference(tiny_model_dir, sft_data, tmp_path_factory):
    from mmreason.eval.cli import main as eval_main

    out = tmp_path_factory.mktemp("eval_ref") / "out"
    assert eval_main(_eval_argv(tiny_model_dir, sft_data / "train.jsonl", out)) == 0
    return out


@pytest.mark.parametrize("seed", SEEDS)
def test_eval_run_killed_inside_the_cache_write_resumes(tiny_model_dir, sft_data, eval_reference, tmp_path, seed,
                                                        fault_log):
    from mmreason.eval.cli import main as eval_main

    out = tmp_path / "out"
    records = sft_data / "train.jsonl"
    nth = random.Random(seed).randint(1, 12)  # one append per item (batch size 1)
    killed("append", nth, ["eval", *_eval_argv(tiny_model_dir, records, out)])
    raw = (out / "predictions.jsonl").read_bytes()
    assert not raw.endswith(b"\n")  # the kill tore the last line
    assert eval_main(_eval_argv(tiny_model_dir, records, out)) == 0  # the same command again
    rows, ref = _lines(out / "predictions.jsonl"), _lines(eval_reference / "predictions.jsonl")
    ids = [r["id"] for r in rows]
    lost = len({r["id"] for r in ref} - set(ids))
    duplicated = sum(n - 1 for n in Counter(ids).values())
    assert lost == 0 and duplicated == 0
    assert ids == [r["id"] for r in ref] and rows == ref  # the same items, order and (greedy) answers
    scores = json.loads((out / "scores.json").read_text())
    assert scores["generation"]["cached"] == nth - 1 and scores["total"] == len(ref)
    fault_log.record("kill", f"eval run cache #{nth}", "survived", lost=lost, duplicated=duplicated, kind="eval run")
