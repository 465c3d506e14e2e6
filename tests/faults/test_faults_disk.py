"""Fault injection (issue 25): the disk fills up during a save — an SFT checkpoint, the data builder's ledger, the
eval prediction cache. Simulated by writers that raise ENOSPC part-way (the product has no test hook): one line
naming the folder and what was written, and the torn checkpoint is never resumed from."""

from __future__ import annotations

import errno
import json
import os

import pytest

from mmreason.disk_full import DiskFullError


def _enospc(*a, **k):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_sft_checkpoint_on_a_full_disk(tiny_model_dir, tmp_path, monkeypatch, fault_log):
    import torch

    from mmreason.data.synth import synthesize
    from mmreason.resume import incomplete_reason, resolve_resume
    from mmreason.sft.run import make_parser, train

    data = tmp_path / "data"
    synthesize(data, n_train=4, n_test=2, seed=0, tasks=["count"], difficulty="easy", progress=False)
    out = tmp_path / "sft"
    real_save = torch.save

    def save(obj, f, *a, **k):  # checkpoint-2's optimizer.pt: some bytes land, then the disk is full
        if "checkpoint-2" in str(f):
            with open(f, "wb") as fh:
                fh.write(b"\0" * 4096)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(obj, f, *a, **k)

    monkeypatch.setattr(torch, "save", save)
    argv = ["--model_name_or_path", str(tiny_model_dir), "--train_files", str(data / "train.jsonl"),
            "--output_dir", str(out), "--per_device_train_batch_size", "4", "--max_steps", "3",
            "--save_strategy", "steps", "--save_steps", "1", "--activation_checkpointing", "false",
            "--report_to", "none", "--resume_from_checkpoint", "true"]
    with pytest.raises(DiskFullError) as e:
        train(*make_parser().parse_args_and_config(argv))
    msg = str(e.value)
    torn = out / "checkpoint-2"
    assert msg.startswith(f"no space left on the disk of {torn} while writing checkpoint checkpoint-2: "), msg
    assert "written before it filled (a complete one is about" in msg and "free now" in msg and "\n" not in msg
    assert incomplete_reason(torn) is not None  # no trainer_state.json: torn
    assert resolve_resume("true", str(out)) == str(out / "checkpoint-1")  # resume never trusts it
    fault_log.record("fault", "ENOSPC in an SFT checkpoint save", "one line (folder, sizes); resume skips the torn one",
                     area="disk")


def test_data_build_ledger_on_a_full_disk_then_rerun(tmp_path, monkeypatch, capsys, fault_log):
    from test_build_common import Script, make_source

    import mmreason.jsonl as jsonl
    from mmreason.cli import main as cli
    from mmreason.data.loopback import LoopbackServer

    src = make_source(tmp_path / "src", 3, bad_inputs=False)
    real_write = os.write
    state = {"n": 0}

    def write(fd, data):  # the fourth line written (records or ledger) finds the disk full
        state["n"] += 1
        if state["n"] == 4:
            _enospc()
        return real_write(fd, data)

    with LoopbackServer(Script()) as srv:
        args = ["data", "build", "--recipe", "data_recipes/distilled.yaml", "--out", str(tmp_path / "o"),
                "--no-progress", "--set", f"source.path={src}", "--set", f"teacher.base_url={srv.base_url}",
                "--set", "teacher.model=scripted", "--set", "sampling.k=1", "--set", "decontam.enabled=false"]
        monkeypatch.setattr(jsonl.os, "write", write)
        assert cli(args) == 2
        err = capsys.readouterr().err
        (line,) = [x for x in err.splitlines() if x.startswith("mmreason")]
        assert f"no space left on the disk of {tmp_path / 'o'}" in line and "Traceback" not in err
        monkeypatch.setattr(jsonl.os, "write", real_write)  # space freed: the same command resumes
        assert cli(args) == 0
    stats = json.loads((tmp_path / "o" / "stats.json").read_text())
    assert stats["complete"] and stats["questions"]["total"] == 3
    ids = [json.loads(x)["id"] for x in (tmp_path / "o" / "train.jsonl").read_text().splitlines()]
    assert len(ids) == len(set(ids)) == stats["records"]
    fault_log.record("fault", "ENOSPC in the data builder's ledger", "one line; the rerun completes, nothing duplicated",
                     area="disk")


def test_eval_prediction_cache_on_a_full_disk(tmp_path, monkeypatch, capsys, fault_log):
    from faults_corpus import write_good_records

    import mmreason.jsonl as jsonl
    from mmreason.eval.run import run_benchmark

    class Echo:
        def generate(self, inputs, progress=True, desc="", on_batch=None):
            texts = ["\\boxed{1}" for _ in inputs]
            if on_batch is not None:
                on_batch(0, texts)
            return texts

    recs = write_good_records(tmp_path)
    monkeypatch.setattr(jsonl.os, "write", _enospc)
    with pytest.raises(DiskFullError, match=f"no space left on the disk of {tmp_path / 'ev'}"):
        run_benchmark(None, recs, tmp_path / "ev", backend_obj=Echo(), progress=False)
    fault_log.record("fault", "ENOSPC in the eval prediction cache", "one line naming the file", area="disk")
