"""A run owns its output folder (issue 25, item 2): a second live run into it stops at once naming the holder, a
dead holder's lock is taken over, and a resume of another run's checkpoint (other settings, other data) stops and
names what differs, while an unchanged rerun resumes as before."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mmreason.run_lock import LOCK_NAME, RunLock, RunLockError


@pytest.fixture()
def live_pid():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield proc.pid
    proc.kill()
    proc.wait()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _hold(folder: Path, pid: int, host: str | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / LOCK_NAME).write_text(json.dumps({"pid": pid, "host": host or socket.gethostname(), "command": "x"}))


def test_lock_is_exclusive_and_released(tmp_path):
    with RunLock(tmp_path) as lock:
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
        with pytest.raises(RunLockError, match=f"pid {os.getpid()} on host"):
            RunLock(tmp_path).acquire()
        assert lock.held
    assert not (tmp_path / LOCK_NAME).exists()
    assert RunLock(tmp_path, enabled=False).acquire().held is False  # ranks other than 0 do not take it


def test_only_global_rank_0_takes_the_lock(tmp_path, monkeypatch, live_pid):
    _hold(tmp_path, live_pid)
    monkeypatch.setenv("RANK", "1")
    assert RunLock(tmp_path).acquire().held is False
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(RunLockError):
        RunLock(tmp_path).acquire()


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path, capsys, fault_log):
    dead = _dead_pid()
    _hold(tmp_path, dead)
    with RunLock(tmp_path):
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert f"taking over the stale lock {tmp_path / LOCK_NAME} of pid {dead}" in capsys.readouterr().err
    fault_log.record("run folder", "lock of a dead process", "taken over", stage="sft/grpo")


def test_lock_of_a_reused_pid_is_stale(tmp_path, live_pid):
    _hold(tmp_path, live_pid)
    lock = json.loads((tmp_path / LOCK_NAME).read_text())
    (tmp_path / LOCK_NAME).write_text(json.dumps({**lock, "started": 1.0}))  # that pid's process started long after
    with RunLock(tmp_path):
        pass


def test_lock_of_another_host_stops(tmp_path):
    _hold(tmp_path, 12345, host="node-17")
    with pytest.raises(RunLockError, match="pid 12345 on host 'node-17'.*delete"):
        RunLock(tmp_path).acquire()


@pytest.mark.parametrize("stage", ["sft", "grpo"])
def test_second_run_into_a_live_runs_folder_stops_at_once(stage, tiny_model_dir, tmp_path, live_pid, capsys,
                                                         fault_log):
    from mmreason.rl.run import main as grpo_main
    from mmreason.sft.run import main as sft_main

    out = tmp_path / "out"
    _hold(out, live_pid)
    data = tmp_path / "train.jsonl"
    data.write_text(json.dumps({"id": "a", "question": "q?", "answer": "1", "solution": "\\boxed{1}"}) + "\n")
    argv = ["--model_name_or_path", str(tiny_model_dir), "--train_files", str(data), "--output_dir", str(out),
            "--max_steps", "1", "--report_to", "none", *([] if stage == "sft" else ["--bf16", "false"])]
    assert (sft_main if stage == "sft" else grpo_main)(argv) == 2
    err = capsys.readouterr().err
    assert f"another run is live in this output folder (pid {live_pid} on host {socket.gethostname()!r}" in err
    assert json.loads((out / LOCK_NAME).read_text())["pid"] == live_pid  # the holder's lock is left alone
    assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]  # nothing written beside the live run's files
    fault_log.record("run folder", "second run into a live run's folder", "refused", stage=stage)


# ---------------------------------------------------------------- fingerprint on resume


def _sft_argv(model, data: Path, out: Path, *extra) -> list[str]:
    return ["--model_name_or_path", str(model), "--train_files", str(data), "--output_dir", str(out),
            "--per_device_train_batch_size", "2", "--learning_rate", "1e-2", "--max_steps", "1", "--save_steps", "1",
            "--activation_checkpointing", "false", "--seed", "0", "--resume_from_checkpoint", "true",
            "--report_to", "none", *extra]


@pytest.fixture(scope="module")
def sft_run(tiny_model_dir, tmp_path_factory):
    """One finished 1-step SFT run: its checkpoint-1 holds the run's fingerprint."""
    from mmreason.data.synth import synthesize
    from mmreason.sft.run import main as sft_main

    root = tmp_path_factory.mktemp("owned")
    synthesize(root / "data", n_train=4, n_test=1, seed=0, tasks=["count"], difficulty="easy", progress=False)
    out = root / "out"
    assert sft_main(_sft_argv(tiny_model_dir, root / "data" / "train.jsonl", out)) == 0
    assert (out / "checkpoint-1" / "run_fingerprint.json").is_file()
    return root / "data" / "train.jsonl", out


def test_resume_with_another_learning_rate_stops_and_names_it(tiny_model_dir, sft_run, capsys, fault_log):
    from mmreason.sft.run import main as sft_main

    data, out = sft_run
    before = sorted(p.name for p in out.iterdir())
    assert sft_main(_sft_argv(tiny_model_dir, data, out, "--learning_rate", "5e-3")) == 2
    err = capsys.readouterr().err
    assert "belongs to another run" in err and "settings.learning_rate: 0.01 -> 0.005" in err
    assert sorted(p.name for p in out.iterdir()) == before  # nothing written
    fault_log.record("run folder", "auto resume, another learning rate", "refused", stage="sft")


def test_resume_with_another_train_file_stops_and_names_it(tiny_model_dir, sft_run, tmp_path, capsys, fault_log):
    from mmreason.sft.run import main as sft_main

    data, out = sft_run
    other = data.with_name("other.jsonl")
    lines = data.read_text().splitlines(keepends=True)
    other.write_text("".join(lines[:-1]))  # another train file: one record fewer
    assert sft_main(_sft_argv(tiny_model_dir, other, out)) == 2
    err = capsys.readouterr().err
    assert f"data[0].path: \"{data.resolve()}\" -> \"{other.resolve()}\"" in err and "data[0].sha256" in err
    fault_log.record("run folder", "auto resume, another train file", "refused", stage="sft")


def test_a_train_file_edited_in_place_is_another_run(tmp_path):
    from mmreason.fingerprint import data_identity, differences

    data = tmp_path / "train.jsonl"
    data.write_text('{"id": "a", "answer": "1"}\n')
    before = {"data": [data_identity(str(data))]}
    data.write_text('{"id": "a", "answer": "2"}\n')  # same path, same size, other content
    diffs = differences(before, {"data": [data_identity(str(data))]})
    assert len(diffs) == 1 and diffs[0].startswith("data[0].sha256: ")


def test_unchanged_rerun_resumes_and_ignored_settings_do_not_count(tiny_model_dir, sft_run, capsys, fault_log):
    from mmreason.sft.run import main as sft_main

    data, out = sft_run
    # logging and saving cadence do not change training: the rerun resumes checkpoint-1 (0 steps left)
    assert sft_main(_sft_argv(tiny_model_dir, data, out, "--logging_steps", "7", "--save_steps", "3")) == 0
    err = capsys.readouterr().err
    assert "belongs to another run" not in err and "WARNING: resuming" not in err
    fault_log.record("run folder", "unchanged rerun (other logging / save cadence)", "resumed", stage="sft")


def test_explicit_resume_of_another_runs_checkpoint_proceeds_loudly(tiny_model_dir, sft_run, tmp_path, capsys,
                                                                   fault_log):
    from mmreason.sft.run import main as sft_main

    data, out = sft_run
    new = tmp_path / "new"
    argv = _sft_argv(tiny_model_dir, data, new, "--learning_rate", "5e-3")
    argv[argv.index("--resume_from_checkpoint") + 1] = str(out / "checkpoint-1")
    assert sft_main(argv) == 0
    err = capsys.readouterr().err
    assert f"WARNING: resuming {out / 'checkpoint-1'}, which was written by a run that differs in" in err
    assert "settings.learning_rate: 0.01 -> 0.005" in err
    fault_log.record("run folder", "explicit resume of another run's checkpoint", "resumed, differences printed",
                     stage="sft")


def test_grpo_resume_with_another_learning_rate_stops_and_names_it(tiny_model_dir, tmp_path, capsys, fault_log):
    """The GRPO stage checks the same fingerprint before it loads data or a model (its checkpoint is made here from
    the fingerprint of the first run's arguments, with the files that make it complete)."""
    from mmreason.fingerprint import run_fingerprint, write_fingerprint
    from mmreason.rl.run import main as grpo_main
    from mmreason.rl.run import make_parser

    data = tmp_path / "train.jsonl"
    data.write_text(json.dumps({"id": "a", "question": "q?", "answer": "1"}) + "\n")
    out = tmp_path / "out"

    def argv(lr):
        return ["--model_name_or_path", str(tiny_model_dir), "--train_files", str(data), "--output_dir", str(out),
                "--learning_rate", lr, "--max_steps", "2", "--bf16", "false", "--resume_from_checkpoint", "true",
                "--report_to", "none"]

    s, t, m = make_parser().parse_args_and_config(argv("1e-2"))
    ckpt = out / "checkpoint-1"
    ckpt.mkdir(parents=True)
    (ckpt / "trainer_state.json").write_text(json.dumps({"global_step": 1}))
    (ckpt / "model.safetensors").write_bytes(b"")
    write_fingerprint(ckpt, run_fingerprint(s, t, m, data_files=s.train_files, model=m.model_name_or_path))
    assert grpo_main(argv("5e-3")) == 2
    err = capsys.readouterr().err
    assert f"{ckpt} belongs to another run" in err and "settings.learning_rate: 0.01 -> 0.005" in err
    assert not (out / LOCK_NAME).exists()  # released on the way out
    fault_log.record("run folder", "auto resume, another learning rate", "refused", stage="grpo")
