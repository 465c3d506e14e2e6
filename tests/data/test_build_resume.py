"""Kill-and-resume: a build killed mid-way (SIGKILL of a real subprocess) and rerun with the same arguments
yields exactly the records of an uninterrupted build; partial lines are repaired."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from test_build_common import ANSWERED, BENCHMARKS, REPO, RECIPES, Script, make_source, read_jsonl

from mmreason.data.build import main, read_jsonl_repair
from mmreason.data.loopback import LoopbackServer


def cli_args(src, url, out, cache):
    return ["--recipe", str(RECIPES / "distilled.yaml"), "--out", str(out), "--no-progress",
            "--set", f"source.path={src}", "--set", f"teacher.base_url={url}", "--set", "teacher.model=scripted",
            "--set", "teacher.backoff_base=0.01", "--set", "teacher.max_retries=2", "--set", "teacher.concurrency=4",
            "--set", "sampling.k=3", "--set", f"decontam.cache_dir={cache}",
            "--set", f"decontam.benchmarks_dir={BENCHMARKS}"]


def stable(stats):
    return {k: v for k, v in stats.items() if k != "resume_repair"}


def test_killed_build_resumes_to_identical_output(tmp_path):
    src = make_source(tmp_path / "src", n=40)
    cache = tmp_path.parent / "decontam_cache"
    with LoopbackServer(Script(ANSWERED), latency=0.03) as srv:
        ref, part = tmp_path / "ref", tmp_path / "part"
        assert main(cli_args(src, srv.base_url, ref, cache)) == 0

        env = dict(os.environ, PYTHONPATH=str(REPO))
        proc = subprocess.Popen([sys.executable, "-m", "mmreason", "data", "build", *cli_args(src, srv.base_url, part, cache)],
                                cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            ledger = part / "ledger.jsonl"
            if ledger.exists() and ledger.read_bytes().count(b"\n") >= 12:
                break
            time.sleep(0.05)
        assert proc.poll() is None, f"build finished before the kill: {proc.stderr.read().decode()[-2000:]}"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        done_before = len(read_jsonl(part / "ledger.jsonl"))
        assert 12 <= done_before < 44

        # what a kill mid-write leaves: records of an uncommitted question and a partial line
        with open(part / "train.jsonl", "a") as f:
            f.write(json.dumps({"id": "zzz--distilled-v1--0", "question": "q", "answer": "1", "answer_type": "integer",
                                "metadata": {"source_id": "q39"}}) + "\n")
            f.write('{"id": "q39--distilled-v1--1", "quest')
        with open(part / "ledger.jsonl", "a") as f:
            f.write('{"source_id": "q3')

        calls_before = srv.calls
        assert main(cli_args(src, srv.base_url, part, cache)) == 0
        assert srv.calls > calls_before

    assert (part / "train.jsonl").read_bytes() == (ref / "train.jsonl").read_bytes()
    assert (part / "ledger.jsonl").read_bytes() == (ref / "ledger.jsonl").read_bytes()
    s_ref = json.loads((ref / "stats.json").read_text())
    s_part = json.loads((part / "stats.json").read_text())
    assert stable(s_part) == stable(s_ref)
    assert s_part["resume_repair"]["partial_ledger_lines"] == 1
    assert s_part["resume_repair"]["uncommitted_records_dropped"] >= 1
    ids = [r["id"] for r in read_jsonl(part / "train.jsonl")]
    assert len(ids) == len(set(ids)) == s_ref["records"] > 0


def test_rerun_of_finished_build_asks_nothing_and_changes_nothing(tmp_path):
    src = make_source(tmp_path / "src", n=5)
    cache = tmp_path.parent / "decontam_cache"
    with LoopbackServer(Script()) as srv:
        out = tmp_path / "out"
        assert main(cli_args(src, srv.base_url, out, cache)) == 0
        before, calls = (out / "train.jsonl").read_bytes(), srv.calls
        assert main(cli_args(src, srv.base_url, out, cache)) == 0
        assert srv.calls == calls and (out / "train.jsonl").read_bytes() == before
        # a different recipe in the same folder is refused, naming the problem
        assert main(cli_args(src, srv.base_url, out, cache) + ["--set", "sampling.temperature=0.1"]) == 2


def test_read_jsonl_repair_cuts_partial_tail(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_text('{"a": 1}\n{"a": 2}\n{"a": ')
    rows, dropped = read_jsonl_repair(p)
    assert rows == [{"a": 1}, {"a": 2}] and dropped == 1 and p.read_text() == '{"a": 1}\n{"a": 2}\n'
    p.write_text('{"a": 1}\nnot json\n{"a": 3}\n')
    rows, dropped = read_jsonl_repair(p)
    assert rows == [{"a": 1}] and dropped == 2 and p.read_text() == '{"a": 1}\n'
