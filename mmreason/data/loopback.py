"""A scripted OpenAI-compatible chat-completions server on 127.0.0.1 (tests, the teacher bench, demos).

`LoopbackServer(script, latency=0.05)` runs a `ThreadingHTTPServer` on a free port. `script(body) -> Scripted`
decides each reply from the request JSON (messages, seed, ...): the text and finish_reason, or an HTTP status,
or a raw (possibly malformed) body, plus an optional extra delay, extra headers, and a drip (the body sent one
byte at a time). `times` holds each request's arrival (time.monotonic()).

    with LoopbackServer(lambda body: Scripted(text="... \\boxed{3}")) as srv:
        srv.base_url  # http://127.0.0.1:PORT/v1
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


@dataclass
class Scripted:
    text: str | None = ""
    finish_reason: str = "stop"
    status: int = 200
    raw: bytes | None = None  # sent verbatim instead of a JSON completion
    delay: float = 0.0
    headers: dict | None = None  # extra response headers (e.g. {"Retry-After": "2"})
    drip: float = 0.0  # seconds between body bytes: a server that sends its reply one byte at a time


def last_user_text(body: dict) -> str:
    for m in reversed(body.get("messages", [])):
        if m.get("role") == "user":
            c = m["content"]
            return c if isinstance(c, str) else "\n".join(p.get("text", "") for p in c if p.get("type") == "text")
    return ""


class LoopbackServer:
    def __init__(self, script: Callable[[dict], Scripted], latency: float = 0.0, api_key: str | None = None):
        self.script = script
        self.latency = latency
        self.api_key = api_key
        self.calls = 0
        self.bodies: list[dict] = []
        self.auth_headers: list[str | None] = []
        self.times: list[float] = []
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            wbufsize = 1 << 16  # headers + body in one send: no Nagle / delayed-ACK stall per reply

            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(n) or b"{}")
                with outer.lock:
                    outer.calls += 1
                    outer.times.append(time.monotonic())
                    outer.bodies.append(body)
                    outer.auth_headers.append(self.headers.get("Authorization"))
                if outer.api_key and self.headers.get("Authorization") != f"Bearer {outer.api_key}":
                    return self._send(401, b'{"error": "bad key"}')
                if not self.path.endswith("/chat/completions"):
                    return self._send(404, b'{"error": "not found"}')
                s = outer.script(body)
                time.sleep(outer.latency + s.delay)
                if s.raw is not None:
                    return self._send(s.status, s.raw, s)
                if s.status != 200:
                    return self._send(s.status, json.dumps({"error": {"message": "scripted failure"}}).encode(), s)
                reply = {
                    "id": f"cmpl-{outer.calls}",
                    "object": "chat.completion",
                    "model": body.get("model"),
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": s.text},
                                 "finish_reason": s.finish_reason}],
                }
                self._send(200, json.dumps(reply).encode(), s)

            def _send(self, status: int, payload: bytes, s: Scripted | None = None):
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for k, v in ((s.headers or {}) if s else {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    if s is None or not s.drip:
                        self.wfile.write(payload)
                        return
                    self.wfile.flush()
                    for i in range(len(payload)):
                        if outer.stopped.wait(s.drip):
                            return
                        self.wfile.write(payload[i : i + 1])
                        self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and left

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> "LoopbackServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopped.set()
        self.httpd.shutdown()
        self.httpd.server_close()
