"""A full disk during a save is one line naming the folder and the size (issue 25, item 6), simulated by writers
that raise ENOSPC (or torch's errno-less zip-writer error) part-way."""

from __future__ import annotations

import errno
import json
import os

import pytest

import mmreason.disk_full as df
import mmreason.jsonl as jsonl
from mmreason.disk_full import DiskFullError, guard_disk_full, write_text_atomic
from mmreason.jsonl import AppendLog


def _enospc(*a, **k):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_append_log_on_a_full_disk_names_the_file(tmp_path, monkeypatch):
    log = AppendLog(tmp_path / "ledger.jsonl")
    log.append([{"a": 1}])
    monkeypatch.setattr(jsonl.os, "write", _enospc)
    with pytest.raises(DiskFullError) as e:
        log.append([{"a": 2}])
    log.close()
    msg = str(e.value)
    assert msg.startswith(f"no space left on the disk of {tmp_path / 'ledger.jsonl'} while writing a line of it")
    assert "free now" in msg and "\n" not in msg and "Errno" not in msg
    assert e.value.errno == errno.ENOSPC  # still an OSError for whoever checks the errno


def test_atomic_write_on_a_full_disk_keeps_the_old_file_and_no_tmp(tmp_path, monkeypatch):
    path = tmp_path / "stats.json"
    path.write_text('{"old": true}')
    monkeypatch.setattr(df.os, "fsync", _enospc)  # NFS and friends report ENOSPC at fsync/close
    with pytest.raises(DiskFullError, match=r"while writing stats.json \(\d+ B\)"):
        write_text_atomic(path, json.dumps({"new": "x" * 100}))
    assert json.loads(path.read_text()) == {"old": True} and not list(tmp_path.glob("*.tmp"))


def test_torch_zip_writer_error_counts_as_disk_full_only_when_the_disk_is_full(tmp_path, monkeypatch):
    torch_msg = "[enforce fail at inline_container.cc:672] . unexpected pos 4096 vs 1024"
    folder = tmp_path / "checkpoint-2"

    def torn_save():
        folder.mkdir()
        (folder / "optimizer.pt").write_bytes(b"x" * 3000)
        raise RuntimeError(torch_msg)

    monkeypatch.setattr(df, "free_bytes", lambda p: 1 << 20)
    with pytest.raises(DiskFullError) as e:
        with guard_disk_full(folder, "checkpoint checkpoint-2", expected=5 << 20):
            torn_save()
    assert str(e.value).startswith(f"no space left on the disk of {folder} while writing checkpoint checkpoint-2: "
                                   "2.9 KiB written before it filled (a complete one is about 5.0 MiB), 1.0 MiB free")
    assert isinstance(e.value.__cause__, RuntimeError)
    monkeypatch.setattr(df, "free_bytes", lambda p: 50 << 30)  # plenty free: some other write failure, kept as is
    with pytest.raises(RuntimeError, match="unexpected pos"):
        with guard_disk_full(tmp_path / "other", "x"):
            raise RuntimeError(torch_msg)
    with pytest.raises(PermissionError):  # not a full disk: unchanged
        with guard_disk_full(tmp_path, "x"):
            raise PermissionError(errno.EACCES, "denied")


def test_builder_stats_on_a_full_disk_is_one_line_through_the_cli(tmp_path, monkeypatch, capsys):
    from mmreason.cli import main as cli

    src = tmp_path / "src.jsonl"
    src.write_text(json.dumps({"id": "a", "question": "q", "answer": "1", "answer_type": "integer"}) + "\n")
    monkeypatch.setattr(df.os, "fsync", _enospc)
    rc = cli(["data", "build", "--recipe", "data_recipes/distilled.yaml", "--out", str(tmp_path / "o"),
              "--set", f"source.path={src}", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err, err
    (line,) = [x for x in err.splitlines() if x.startswith("mmreason")]
    assert f"no space left on the disk of {tmp_path / 'o'}" in line and "written before it filled" in line


def test_eval_chart_and_prompt_json_on_a_full_disk(tmp_path, monkeypatch):
    from mmreason.eval.report import pyplot, save_figure
    from mmreason.prompts import PromptSpec, save_prompt_spec

    fig = pyplot().figure()
    monkeypatch.setattr(fig, "savefig", lambda *a, **k: _enospc())
    with pytest.raises(DiskFullError, match=r"while writing the chart acc\.png"):
        save_figure(fig, tmp_path / "acc.png")
    monkeypatch.setattr(df.os, "fsync", _enospc)
    with pytest.raises(DiskFullError, match=r"while writing prompt\.json"):
        save_prompt_spec(tmp_path / "checkpoint-3", PromptSpec())
    assert not (tmp_path / "checkpoint-3" / "prompt.json").exists()
