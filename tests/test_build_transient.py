"""The teacher under transient faults (issue 25, items 1, 5 and 9): a per-request deadline that holds against a
dripping body, Retry-After honoured, transport failures kept retryable in the ledger (a rerun asks again), and
the API key redacted from whatever the builder writes."""

from __future__ import annotations

import json
import logging
import time
from email.utils import formatdate

import pytest
from test_build_common import Script, cot, make_source, read_jsonl, recipe_for

from mmreason.data.build import build, main
from mmreason.data.loopback import LoopbackServer, Scripted
from mmreason.data.recipe import SamplingConfig, TeacherConfig
from mmreason.data.teachers import ChatRequest, OpenAITeacher, text_part
from mmreason.http_deadline import retry_after_seconds


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return make_source(tmp_path_factory.mktemp("src"), 3, bad_inputs=False)


def _teacher(url: str, **kw) -> OpenAITeacher:
    cfg = dict(model="scripted", base_url=url, concurrency=1, backoff_base=0.01, backoff_max=0.05)
    cfg.update(kw)
    return OpenAITeacher(TeacherConfig(**cfg))


REQ = ChatRequest([{"role": "user", "content": [text_part("Item 0: how many red dots?")]}])


def test_dripping_teacher_ends_at_its_deadline():
    # one byte a second: every socket read succeeds, so only a deadline on the whole reply can end it
    with LoopbackServer(lambda body: Scripted(text="x" * 200, drip=1.0)) as srv:
        t = _teacher(srv.base_url, timeout=2.0, max_retries=0)
        start = time.monotonic()
        reply = t.one(REQ, SamplingConfig())
        took = time.monotonic() - start
        t.close()
    assert reply.error == "timeout" and reply.text is None
    assert "deadline 2 s" in reply.detail and "bytes in" in reply.detail, reply.detail
    assert 1.9 < took < 3.6, took


def test_dripping_teacher_build_is_bounded_and_retryable(tmp_path, source):
    with LoopbackServer(lambda body: Scripted(text=cot(0, True), drip=1.0)) as srv:
        recipe = recipe_for("distilled.yaml", source, srv.base_url, tmp_path / "cache",
                            **{"teacher.timeout": 1.5, "teacher.max_retries": 0, "sampling.k": 1,
                               "decontam.enabled": False})
        start = time.monotonic()
        stats = build(recipe, tmp_path / "out", limit=1, progress=False)
        took = time.monotonic() - start
    assert took < 6, took
    assert stats["questions"]["retryable"] == 1 and stats["retryable"] == ["q0"] and not stats["complete"]
    assert stats["samples"]["by_outcome"] == {"timeout": 1}


def test_retry_after_seconds_and_http_date():
    assert retry_after_seconds("3") == 3.0
    now = time.time()
    assert retry_after_seconds(formatdate(now + 30, usegmt=True), now=now) == pytest.approx(30, abs=1)
    assert retry_after_seconds(formatdate(now - 30, usegmt=True), now=now) == 0.0  # a date in the past: go now
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None


class RateLimited:
    """429 with Retry-After on the first request, then a correct reply."""

    def __init__(self, header: str):
        self.header, self.n = header, 0

    def __call__(self, body: dict) -> Scripted:
        self.n += 1
        if self.n == 1:
            return Scripted(status=429, headers={"Retry-After": self.header})
        return Scripted(text="fine \\boxed{1}")


def test_429_waits_for_retry_after():
    with LoopbackServer(RateLimited("2")) as srv:
        t = _teacher(srv.base_url, timeout=5.0, max_retries=2)
        reply = t.one(REQ, SamplingConfig())
        t.close()
    assert reply.text == "fine \\boxed{1}" and reply.attempts == 2
    assert len(srv.times) == 2 and srv.times[1] - srv.times[0] >= 2.0, srv.times


def test_429_http_date_retry_after_is_honoured():
    with LoopbackServer(RateLimited(formatdate(time.time() + 2, usegmt=True))) as srv:
        t = _teacher(srv.base_url, timeout=5.0, max_retries=2)
        reply = t.one(REQ, SamplingConfig())
        t.close()
    assert reply.text == "fine \\boxed{1}"
    assert srv.times[1] - srv.times[0] >= 0.9, srv.times  # the date has one-second resolution


def test_retry_after_past_the_deadline_ends_the_request_at_once():
    with LoopbackServer(RateLimited("60")) as srv:
        t = _teacher(srv.base_url, timeout=1.0, max_retries=3, deadline=3.0)
        start = time.monotonic()
        reply = t.one(REQ, SamplingConfig())
        took = time.monotonic() - start
        t.close()
    assert took < 1.0 and srv.calls == 1
    assert reply.error == "http_error" and "Retry-After 60 s" in reply.detail and "deadline" in reply.detail


class FailingThenHealthy:
    """HTTP 500 on the first `n` requests, then the usual scripted teacher."""

    def __init__(self, n: int):
        self.n, self.inner = n, Script()

    def __call__(self, body: dict) -> Scripted:
        if self.n > 0:
            self.n -= 1
            return Scripted(status=500)
        return self.inner(body)


def test_500s_keep_the_question_retryable_and_the_rerun_builds_it(tmp_path, source, capsys):
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


def test_api_key_in_a_successful_reply_is_redacted_everywhere(tmp_path, source, monkeypatch, capsys, caplog):
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


def test_api_key_echoed_in_an_error_body_is_redacted_from_the_reply(monkeypatch):
    key = "sk-live-0123456789abcdef"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    with LoopbackServer(lambda body: Scripted(status=400, raw=json.dumps({"error": f"bad key {key}"}).encode())) as srv:
        t = _teacher(srv.base_url, timeout=2.0, max_retries=0)
        reply = t.one(REQ, SamplingConfig())
        t.close()
    assert reply.error == "http_error" and "HTTP 400" in reply.detail and "[REDACTED]" in reply.detail
    assert key not in reply.detail + repr(t)
