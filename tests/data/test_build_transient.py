"""The OpenAI-compatible teacher under transient faults (issue 25, items 1, 5 and 8): a per-request deadline that
holds against a dripping body, Retry-After honoured (seconds and HTTP date, capped by the request deadline), the
API key redacted from a reply. The builder-level cases (a dripping build, 500s then a healthy rerun, a key in a
successful reply) are in tests/faults/test_faults_teacher.py."""

from __future__ import annotations

import json
import time
from email.utils import formatdate

import pytest
from mmreason.data.loopback import LoopbackServer, Scripted
from mmreason.data.recipe import SamplingConfig, TeacherConfig
from mmreason.data.teachers import ChatRequest, OpenAITeacher, text_part
from mmreason.http_deadline import retry_after_seconds


def _teacher(url: str, **kw) -> OpenAITeacher:
    cfg = dict(model="scripted", base_url=url, concurrency=1, backoff_base=0.01, backoff_max=0.05)
    cfg.update(kw)
    return OpenAITeacher(TeacherConfig(**cfg))


REQ = ChatRequest([{"role": "user", "content": [text_part("Item 0: how many red dots?")]}])


def test_dripping_teacher_ends_at_its_deadline(caplog):
    # one byte a second: every socket read succeeds, so only a deadline on the whole reply can end it
    with LoopbackServer(lambda body: Scripted(text="x" * 200, drip=1.0)) as srv:
        t = _teacher(srv.base_url, timeout=2.0, max_retries=0)
        start = time.monotonic()
        reply = t.one(REQ, SamplingConfig())
        took = time.monotonic() - start
        t.close()
    assert reply.error == "timeout" and reply.text is None
    # the worker names the bytes received when it sees the deadline first; else the caller stops waiting
    assert reply.detail.startswith("deadline 2 s: ") and ("bytes in" in reply.detail or "slowly" in reply.detail), \
        reply.detail
    assert 1.9 < took < 3.6, took
    assert "teacher request failed after 1 attempt(s): timeout: deadline 2 s" in caplog.text  # the why, logged


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


def test_api_key_echoed_in_an_error_body_is_redacted_from_the_reply(monkeypatch):
    key = "sk-live-0123456789abcdef"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    with LoopbackServer(lambda body: Scripted(status=400, raw=json.dumps({"error": f"bad key {key}"}).encode())) as srv:
        t = _teacher(srv.base_url, timeout=2.0, max_retries=0)
        reply = t.one(REQ, SamplingConfig())
        t.close()
    assert reply.error == "http_error" and "HTTP 400" in reply.detail and "[REDACTED]" in reply.detail
    assert key not in reply.detail + repr(t)
