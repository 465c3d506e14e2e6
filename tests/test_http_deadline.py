"""`post_within`: the deadline holds for the whole exchange — a body dripped byte by byte, and headers dripped
byte by byte (the caller stops waiting; the abandoned exchange ends on its own)."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import requests

from mmreason.http_deadline import DeadlineExceeded, post_within


class HeaderDripper:
    """A loopback TCP server that answers any request with a status line sent one byte per `interval`, for at
    most `limit` seconds."""

    def __init__(self, interval: float = 0.2, limit: float = 5.0):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.interval, self.limit = interval, limit
        self.thread = threading.Thread(target=self.serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1/chat/completions"

    def serve(self):
        conn, _ = self.sock.accept()
        conn.recv(65536)
        end = time.monotonic() + self.limit
        try:
            for b in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"x" * 1000:
                if time.monotonic() > end:
                    break
                conn.sendall(bytes([b]))
                time.sleep(self.interval)
        except OSError:
            pass
        finally:
            conn.close()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.sock.close()


def test_dripping_headers_end_at_the_deadline():
    with HeaderDripper() as srv, requests.Session() as session:
        start = time.monotonic()
        with pytest.raises(DeadlineExceeded, match="no complete reply within 1 s"):
            post_within(session, srv.url, b"{}", 1.0)
        took = time.monotonic() - start
    assert 0.9 < took < 2.0, took


def test_a_prompt_reply_comes_back_whole():
    from mmreason.data.loopback import LoopbackServer, Scripted

    with LoopbackServer(lambda body: Scripted(text="hello \\boxed{2}")) as srv, requests.Session() as session:
        r = post_within(session, srv.base_url + "/chat/completions", b'{"messages": []}', 5.0)
    assert r.status_code == 200 and b"hello" in r.content and r.headers["content-type"] == "application/json"


def test_a_body_cut_short_is_a_requests_connection_error():
    """Content-Length 100, 10 bytes, then the connection closes: a `requests` error the teacher counts as a
    connection error (retryable), not an exception from urllib3 that would pass as a bug."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def serve():
        conn, _ = srv.accept()
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n" + b"{" * 10)
        conn.close()

    threading.Thread(target=serve, daemon=True).start()
    url = f"http://127.0.0.1:{srv.getsockname()[1]}/v1/chat/completions"
    with requests.Session() as session, pytest.raises(requests.RequestException):
        post_within(session, url, b"{}", 5.0)
    srv.close()
