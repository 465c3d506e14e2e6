"""Fault injection (issue 25): the data builder against a misbehaving teacher — a reply dripped one byte a second,
HTTP 500s then a healthy server, a reply that contains the API key. Bounded, nothing lost, the key never written."""

from __future__ import annotations

import json
import logging
import time

import pytest
from test_build_common import Script, cot, make_source, read_jsonl, recipe_for

from mmreason.data.build import build, main
from mmreason.data.loopback import LoopbackServer, Scripted


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return make_source(tmp_path_factory.mktemp("src"), 3, bad_inputs=False)


def test_dripping_teacher_build_is_bounded_and_retryable(tmp_path, source, fault_log):
    with LoopbackServer(lambda body: Scripted(text=cot(0, True), drip=1.0)) as srv:
        recipe = recipe_for("distilled.yaml", source, srv.base_url, tmp_path / "cache",
                            **{"teacher.timeout": 1.5, "teacher.max_retries": 0, "sampling.k": 1,
                               "decontam.enabled": False})
        start = time.monotonic()
        stats = build(recipe, tmp_path / "out", limit=1, progress=False)
        took = time.monotonic() - start
    assert took < 6, took  # killed at 300 s before, with teacher.timeout=5
    assert stats["questions"]["retryable"] == 1 and stats["retryable"] == ["q0"] and not stats["complete"]
    assert stats["samples"]["by_outcome"] == {"timeout": 1}
    fault_log.record("fault", "teacher drips 1 byte/s", "ends at its deadline (teacher.timeout), question retryable",
                     area="teacher")


class FailingThenHealthy:
    """HTTP 500 on the first `n` requests, then the usual scripted teacher."""

    def __init__(self, n: int):
        self.n, self.inner = n, Script()

    def __call__(self, body: dict) -> Scripted:
        if self.n > 0:
            self.n -= 1
            return Scripted(status=500)
        return self.inner(body)


def test_500s_keep_the_question_retryable_and_the_rerun_builds_it(tmp_path, source, capsys, fault_log):
    out = tmp_path / "out"
    args = ["--recipe", "data_recipes/distilled.yaml", "--out", str(out), "--no-progress", "--limit", "1",
            "--set", f"source.path={source}", "--set", "teacher.model=scripted", "--set", "teacher.max_retries=2",
            "--set", "teacher.backoff_base=0.01", "--set", "sampling.k=1", "--set", "decontam.enabled=false"]
    with LoopbackServer(FailingThenHealthy(3)) as srv:  # three 500s: the request's three attempts
        assert main(args + ["--set", f"teacher.base_url={srv.base_url}"]) == 3
        assert srv.calls == 3
    err = capsys.readouterr().err
    assert "1 question(s) got no answer from the teacher" in err and "run the same command again" in err
    (row,) = read_jsonl(out / "ledger.jsonl")
    assert row["status"] == "retryable" and row["reason"] == "transport_failure" and row["samples"] == {"http_error": 1}
    with LoopbackServer(Script()) as srv:  # healthy: the rerun asks again and builds it
        assert main(args + ["--set", f"teacher.base_url={srv.base_url}"]) == 0
        assert srv.calls == 1
    stats = json.loads((out / "stats.json").read_text())
    assert stats["complete"] and stats["questions"]["kept"] == 1 and stats["questions"]["retryable"] == 0
    (row,) = read_jsonl(out / "ledger.jsonl")
    assert row["status"] == "kept"
    assert len(read_jsonl(out / "train.jsonl")) == 1
    fault_log.record("fault", "teacher answers HTTP 500 x3, then healthy", "retryable (exit 3); the rerun builds it",
                     area="teacher")


def test_api_key_in_a_successful_reply_is_redacted_everywhere(tmp_path, source, monkeypatch, capsys, caplog, fault_log):
    key = "sk-live-0123456789abcdef"
    monkeypatch.setenv("TEACHER_KEY", key)

    def leaky(body):
        return Scripted(text=f"My key is {key}. I count one dot. \\boxed{{1}}", finish_reason="stop")

    out = tmp_path / "out"
    with LoopbackServer(leaky, api_key=key) as srv:
        with caplog.at_level(logging.INFO):
            code = main(["--recipe", "data_recipes/distilled.yaml", "--out", str(out), "--no-progress", "--limit", "3",
                         "--set", f"source.path={source}", "--set", "teacher.model=scripted",
                         "--set", f"teacher.base_url={srv.base_url}", "--set", "teacher.api_key_env=TEACHER_KEY",
                         "--set", "sampling.k=1", "--set", "decontam.enabled=false"])
            logging.getLogger("mmreason.data.build").warning("a reply said %s", key)  # a log line that would leak it
    assert srv.auth_headers[0] == f"Bearer {key}"  # it was sent
    written = "".join(p.read_text() for p in out.iterdir() if p.is_file())
    assert "[REDACTED]" in (out / "train.jsonl").read_text()
    captured = capsys.readouterr()
    assert key not in written + captured.out + captured.err + caplog.text
    assert code == 0 and json.loads((out / "stats.json").read_text())["records"] == 1  # q0's gold is 1
    fault_log.record("fault", "API key inside a successful reply", "[REDACTED] in records, ledger, stats, logs",
                     area="teacher")
