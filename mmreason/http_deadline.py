"""HTTP POST with a deadline on the whole exchange, and `Retry-After` parsing.

`requests`' `timeout` bounds each socket read, not the request: a server that drips one byte a second never
trips it. `post_within` streams the body and checks the deadline between reads, and runs the exchange in a
daemon thread the caller stops waiting for at the deadline (a server that drips its *headers* cannot hold the
caller either; the abandoned thread ends at its next read timeout or chunk check).
"""

from __future__ import annotations

import email.utils
import threading
import time
from dataclasses import dataclass, field
from datetime import timezone

import requests
from urllib3 import exceptions as u3

CHUNK = 1 << 16
# How long the caller waits past the deadline for the worker thread to report its own deadline error (so the
# usual case names the bytes received) before it stops waiting.
_GRACE = 0.5


class DeadlineExceeded(Exception):
    """No complete reply within the deadline."""


@dataclass
class HttpReply:
    status_code: int
    content: bytes
    headers: dict = field(default_factory=dict)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


def _exchange(session, url: str, data: bytes | str, deadline: float, read_timeout: float) -> HttpReply:
    left = deadline - time.monotonic()
    if left <= 0:
        raise DeadlineExceeded("deadline reached before the request was sent")
    per_read = max(0.01, min(read_timeout, left))
    resp = session.post(url, data=data, timeout=(per_read, per_read), stream=True)
    whole = False
    try:
        chunks, got = [], 0
        for chunk in _arrivals(resp):
            chunks.append(chunk)
            got += len(chunk)
            if time.monotonic() > deadline:
                raise DeadlineExceeded(f"HTTP {resp.status_code} body still arriving at the deadline ({got} bytes in)")
        whole = True
        return HttpReply(resp.status_code, b"".join(chunks), resp.headers)  # case-insensitive
    finally:
        if whole:  # the connection goes back to the pool (keep-alive: no new TCP/TLS handshake per request)
            resp.raw.release_conn()
        else:  # a half-read body: the connection cannot be reused
            resp.close()


def _arrivals(resp):
    """The body as it arrives: urllib3 2's read1 returns whatever is there (urllib3 1 lacks it: fixed-size reads,
    bounded by the caller's wait instead). urllib3's errors become the `requests` ones `iter_content` raises, so
    callers see one family: a cut connection, a read timeout."""
    read1 = getattr(resp.raw, "read1", None)
    if read1 is None:
        yield from resp.iter_content(1024)
        return
    try:
        while chunk := read1(CHUNK, decode_content=True):
            yield chunk
    except u3.ReadTimeoutError as e:
        raise requests.ReadTimeout(e) from None
    except u3.ProtocolError as e:  # the connection closed before the body was whole
        raise requests.exceptions.ChunkedEncodingError(e) from None
    except u3.DecodeError as e:
        raise requests.exceptions.ContentDecodingError(e) from None
    except (u3.HTTPError, OSError) as e:
        raise requests.ConnectionError(e) from None


def post_within(session, url: str, data: bytes | str, seconds: float, read_timeout: float | None = None) -> HttpReply:
    """POST `data` and return the complete reply, or raise `DeadlineExceeded` once `seconds` have passed (connect,
    headers and the whole body, however slowly they arrive). `requests` exceptions (connection errors, read
    timeouts) propagate. `read_timeout` additionally bounds each socket read (default: `seconds`)."""
    deadline = time.monotonic() + seconds
    box: dict = {}
    done = threading.Event()

    def work() -> None:
        try:
            box["reply"] = _exchange(session, url, data, deadline, read_timeout or seconds)
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            box["error"] = e
        finally:
            done.set()

    threading.Thread(target=work, name="http-deadline", daemon=True).start()
    if not done.wait(seconds + _GRACE):
        raise DeadlineExceeded(f"no complete reply within {seconds:g} s (the server is sending slowly or not at all)")
    if "error" in box:
        raise box["error"]
    return box["reply"]


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """`Retry-After` as seconds to wait: delta-seconds ("3") or an HTTP-date ("Wed, 21 Oct 2015 07:28:00 GMT");
    None when absent or unreadable. A date in the past is 0."""
    if value is None or not str(value).strip():
        return None
    value = str(value).strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


__all__ = ["DeadlineExceeded", "HttpReply", "post_within", "retry_after_seconds"]
