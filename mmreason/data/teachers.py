"""Teacher backends behind one interface: `teacher.chat(requests) -> replies` (same order).

- `OpenAITeacher`: any OpenAI-compatible chat-completions server (`vllm serve Qwen/Qwen2.5-VL-72B-Instruct`,
  a hosted API). Images go as base64 data URLs. A thread pool gives `concurrency` requests in flight over a
  `requests.Session` whose connection pool has the same size; failed requests (connection error, timeout,
  HTTP 429/5xx, malformed JSON) are retried with exponential backoff and full jitter. Base URL and key come
  from the recipe or `$OPENAI_BASE_URL` / `$OPENAI_API_KEY` like the OpenAI client; the key is never logged.
- `VLLMTeacher`: the vLLM offline engine (GPU only; imported lazily on first use).
- `HFTeacher`: local transformers generation, batched, CPU-capable (model loading and image handling are
  `mmreason.generation.backends.HFBackend`'s).

A reply never raises: failures come back as `Reply(error=...)` so the builder counts them.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import mimetypes
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from mmreason.data.recipe import SamplingConfig, TeacherConfig
from mmreason.generation import GenerationSettings, HFBackend, fill_images
from mmreason.http_deadline import DeadlineExceeded, post_within, retry_after_seconds

logger = logging.getLogger(__name__)


class TeacherError(RuntimeError):
    """The teacher cannot be used at all (missing engine, bad configuration)."""


@dataclass
class ChatRequest:
    """Messages in a neutral form: content parts {"type": "text", "text"} or {"type": "image", "path"}."""

    messages: list[dict[str, Any]]
    seed: int | None = None
    temperature: float | None = None  # None: the sampling config's temperature


@dataclass
class Reply:
    text: str | None = None
    finish_reason: str | None = None
    error: str | None = None  # http_error | timeout | connection_error | malformed_response | engine_error
    attempts: int = 1
    detail: str = field(default="", repr=False)


# Keys shorter than this are placeholders servers ignore ("EMPTY", "none"), not secrets: replacing them
# would mangle ordinary words in the replies.
MIN_SECRET_LEN = 8
REDACTED = "[REDACTED]"


def redact(obj: Any, secret: str | None) -> Any:
    """`obj` (a string, or dicts/lists of them) with every occurrence of `secret` replaced by [REDACTED]."""
    if not secret or len(secret) < MIN_SECRET_LEN:
        return obj
    if isinstance(obj, str):
        return obj.replace(secret, REDACTED)
    if isinstance(obj, dict):
        return {redact(k, secret): redact(v, secret) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(redact(v, secret) for v in obj)
    return obj


def text_part(text: str) -> dict:
    return {"type": "text", "text": text}


def image_part(path: str | Path) -> dict:
    return {"type": "image", "path": str(path)}


def data_url(path: str | Path) -> str:
    """Base64 data URL of an image file; the MIME type is taken from the bytes (a JPEG named .png is fine).
    Cached per (path, size, mtime): the k samples of a question send the same image."""
    st = os.stat(path)
    return _data_url(str(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _data_url(path: str, size: int, mtime_ns: int) -> str:
    raw = Path(path).read_bytes()
    mime = _sniff_mime(raw) or mimetypes.guess_type(str(path))[0] or "image/png"
    return f"data:{mime};base64,{base64.b64encode(raw).decode('ascii')}"


def _sniff_mime(raw: bytes) -> str | None:
    if raw.startswith(b"\x89PNG"):
        return "image/png"
    if raw.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if raw[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if raw.startswith(b"RIFF") and raw[8:12] == b"WEBP":
        return "image/webp"
    return None


def to_openai_messages(messages: list[dict]) -> list[dict]:
    out = []
    for m in messages:
        content = m["content"]
        if isinstance(content, str):
            out.append({"role": m["role"], "content": content})
            continue
        parts = []
        for p in content:
            if p["type"] == "image":
                parts.append({"type": "image_url", "image_url": {"url": data_url(p["path"])}})
            else:
                parts.append({"type": "text", "text": p["text"]})
        out.append({"role": m["role"], "content": parts})
    return out


class Teacher:
    name = "teacher"
    # How many questions the builder should work on at once.
    parallel_questions = 1
    # What the builder redacts from everything it writes (the API key).
    secret: str | None = None

    def chat(self, requests: list[ChatRequest], sampling: SamplingConfig) -> list[Reply]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class OpenAITeacher(Teacher):
    name = "openai"

    def __init__(self, cfg: TeacherConfig):
        self.cfg = cfg
        base = cfg.base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
        self.url = base.rstrip("/") + "/chat/completions"
        self._key = os.environ.get(cfg.api_key_env) if cfg.api_key_env else None
        self.secret = self._key
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=cfg.concurrency, pool_maxsize=cfg.concurrency, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers["Content-Type"] = "application/json"
        if self._key:
            self.session.headers["Authorization"] = f"Bearer {self._key}"
        self.pool = ThreadPoolExecutor(cfg.concurrency, thread_name_prefix="teacher")
        self.parallel_questions = cfg.concurrency
        self._rng = random.Random()
        self._rng_lock = threading.Lock()

    def __repr__(self) -> str:  # never show the key
        return f"OpenAITeacher(url={self.url!r}, model={self.cfg.model!r}, key={'set' if self._key else 'unset'})"

    def chat(self, requests: list[ChatRequest], sampling: SamplingConfig) -> list[Reply]:
        futures = [self.pool.submit(self.one, r, sampling) for r in requests]
        return [f.result() for f in futures]

    def payload(self, req: ChatRequest, sampling: SamplingConfig) -> dict:
        body = {
            "model": self.cfg.model,
            "messages": to_openai_messages(req.messages),
            "temperature": sampling.temperature if req.temperature is None else req.temperature,
            "top_p": sampling.top_p,
            "max_tokens": sampling.max_tokens,
            "n": 1,
        }
        if req.seed is not None:
            body["seed"] = req.seed
        body.update(self.cfg.extra_body)
        return body

    def _backoff(self, attempt: int) -> float:
        with self._rng_lock:
            return self._rng.uniform(0, min(self.cfg.backoff_max, self.cfg.backoff_base * 2**attempt))

    def total_deadline(self) -> float:
        c = self.cfg
        return c.deadline if c.deadline is not None else (c.max_retries + 1) * c.timeout + c.backoff_max

    def one(self, req: ChatRequest, sampling: SamplingConfig) -> Reply:
        """One request with its retries, all within `total_deadline()`; each attempt within `cfg.timeout`."""
        try:
            body = json.dumps(self.payload(req, sampling))
        except OSError as e:  # unreadable image
            return Reply(error="bad_image", detail=self.redact(str(e)))
        reply = self._attempts(body)
        reply.text = self.redact(reply.text)
        reply.detail = self.redact(reply.detail)
        reply.finish_reason = self.redact(reply.finish_reason)
        if reply.error:  # the sample outcome is counted in stats.json; the why is here
            logger.warning("teacher request failed after %d attempt(s): %s: %s", reply.attempts, reply.error, reply.detail)
        return reply

    def _attempts(self, body: str) -> Reply:
        end = time.monotonic() + self.total_deadline()
        last = Reply(error="connection_error")
        wait = 0.0
        for attempt in range(self.cfg.max_retries + 1):
            if attempt:
                wait = max(wait, self._backoff(attempt - 1))
                if time.monotonic() + wait >= end:
                    last.detail += f" (the next try, {wait:.1f} s later, would pass the request deadline)"
                    last.attempts = attempt
                    return last
                time.sleep(wait)
            wait = 0.0
            left = end - time.monotonic()
            try:
                resp = post_within(self.session, self.url, body, min(self.cfg.timeout, left))
            except DeadlineExceeded as e:
                last = Reply(error="timeout", detail=f"deadline {min(self.cfg.timeout, left):g} s: {e}")
                continue
            except requests.Timeout as e:
                last = Reply(error="timeout", detail=type(e).__name__)
                continue
            except requests.RequestException as e:
                last = Reply(error="connection_error", detail=type(e).__name__)
                continue
            if resp.status_code == 429 or resp.status_code >= 500:
                retry_after = retry_after_seconds(resp.headers.get("Retry-After"))
                wait = retry_after or 0.0
                last = Reply(error="http_error", detail=f"HTTP {resp.status_code}"
                             + (f" (Retry-After {retry_after:g} s)" if retry_after is not None else ""))
                continue
            if resp.status_code >= 400:  # a client error does not get better by retrying
                return Reply(error="http_error", detail=f"HTTP {resp.status_code}: {resp.text[:200]}", attempts=attempt + 1)
            try:
                choice = json.loads(resp.content)["choices"][0]
                text = choice["message"]["content"]
                if text is not None and not isinstance(text, str):
                    raise TypeError("content is not a string")
                finish = choice.get("finish_reason")
                return Reply(text=text, finish_reason=finish if isinstance(finish, str) else None, attempts=attempt + 1)
            except (ValueError, KeyError, IndexError, TypeError) as e:
                last = Reply(error="malformed_response", detail=f"{type(e).__name__}: {e}"[:200])
                continue
        last.attempts = self.cfg.max_retries + 1
        return last

    def redact(self, text: str | None) -> str | None:
        return redact(text, self._key)

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self.session.close()


class VLLMTeacher(Teacher):
    """vLLM offline engine (GPU only). Messages go through `LLM.chat` in OpenAI form (data-URL images)."""

    name = "vllm"

    def __init__(self, cfg: TeacherConfig):
        try:
            # lazy: vLLM is optional (GPU machines)
            import vllm  # noqa: F401
        except ImportError as e:
            raise TeacherError(
                "teacher.backend=vllm needs the vLLM engine (GPU machines: pip install -r requirements/gpu.txt -e '.[vllm]'). "
                "On CPU use teacher.backend=openai against a `vllm serve` endpoint, or teacher.backend=hf."
            ) from e
        self.cfg = cfg
        self.parallel_questions = 1
        self.llm = vllm.LLM(
            model=cfg.model,
            tensor_parallel_size=cfg.tensor_parallel_size,
            gpu_memory_utilization=cfg.gpu_memory_utilization,
            dtype=cfg.dtype,
            trust_remote_code=cfg.trust_remote_code,
            load_format="safetensors",  # no pickled weights
        )

    def chat(self, requests: list[ChatRequest], sampling: SamplingConfig) -> list[Reply]:
        from vllm import SamplingParams  # lazy: vLLM is optional (GPU machines)

        params = [
            SamplingParams(
                n=1,
                temperature=sampling.temperature if r.temperature is None else r.temperature,
                top_p=sampling.top_p,
                max_tokens=sampling.max_tokens,
                seed=r.seed,
            )
            for r in requests
        ]
        try:
            outs = self.llm.chat([to_openai_messages(r.messages) for r in requests], params, use_tqdm=False)
        except Exception as e:  # noqa: BLE001 - an engine failure is counted per request, not a crash
            return [Reply(error="engine_error", detail=str(e)[:200]) for _ in requests]
        return [Reply(text=o.outputs[0].text, finish_reason=o.outputs[0].finish_reason) for o in outs]


class HFTeacher(Teacher):
    """Local transformers generation (batched; CPU works). Loading, LoRA adapters and image filling are
    `mmreason.generation.backends.HFBackend`'s; the generate call is ours because the builder needs each reply's
    finish reason (a reply that hit max_tokens is dropped as truncated)."""

    name = "hf"

    def __init__(self, cfg: TeacherConfig):
        self.cfg = cfg
        self.parallel_questions = 1
        self._lock = threading.Lock()
        self._backend = None

    def _load(self):
        if self._backend is None:
            dtype = None if self.cfg.dtype == "auto" else self.cfg.dtype
            try:
                self._backend = HFBackend(self.cfg.model, GenerationSettings(batch_size=self.cfg.batch_size),
                                          dtype=dtype, trust_remote_code=self.cfg.trust_remote_code)
            except Exception as e:  # noqa: BLE001
                raise TeacherError(f"teacher.backend=hf could not load {self.cfg.model!r}: {e}") from e
        return self._backend

    def chat(self, requests: list[ChatRequest], sampling: SamplingConfig) -> list[Reply]:
        with self._lock:
            be = self._load()
            out: list[Reply] = []
            for i in range(0, len(requests), self.cfg.batch_size):
                out += self._generate(be, requests[i : i + self.cfg.batch_size], sampling)
            return out

    @staticmethod
    def to_item(req: ChatRequest) -> tuple[list[dict], list[str]]:
        """Neutral messages -> (messages with {"type": "image"} placeholders, image paths)."""
        msgs, images = [], []
        for m in req.messages:
            content = m["content"] if isinstance(m["content"], list) else [text_part(m["content"])]
            parts = []
            for p in content:
                if p["type"] == "image":
                    images.append(p["path"])
                    parts.append({"type": "image"})
                else:
                    parts.append(p)
            msgs.append({"role": m["role"], "content": parts})
        return msgs, images

    def _generate(self, be, batch: list[ChatRequest], sampling: SamplingConfig) -> list[Reply]:
        import torch  # lazy: torch; imported by model-free commands
        from qwen_vl_utils import process_vision_info  # lazy: loads torch; imported by model-free commands

        try:
            convs = [fill_images(*self.to_item(r), be.settings) for r in batch]
            texts = [be.processor.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in convs]
            images = process_vision_info(convs)[0]
            inputs = be.processor(text=texts, images=images, padding=True, return_tensors="pt").to(be.device)
        except (OSError, ValueError) as e:  # unreadable image
            return [Reply(error="bad_image", detail=str(e)[:200]) for _ in batch]
        temperature = sampling.temperature if batch[0].temperature is None else batch[0].temperature
        kwargs: dict[str, Any] = {"max_new_tokens": sampling.max_tokens}
        if temperature > 0:
            kwargs.update(do_sample=True, temperature=temperature, top_p=sampling.top_p)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if batch[0].seed is not None:
            torch.manual_seed(batch[0].seed)
        tok = be.processor.tokenizer
        try:
            with torch.inference_mode():
                gen = be.model.generate(**inputs, **kwargs, pad_token_id=tok.pad_token_id)
        except Exception as e:  # noqa: BLE001 - counted per request
            return [Reply(error="engine_error", detail=str(e)[:200]) for _ in batch]
        new = gen[:, inputs["input_ids"].shape[1] :]
        gen_eos = getattr(getattr(be.model, "generation_config", None), "eos_token_id", None)
        gen_eos = gen_eos if isinstance(gen_eos, list) else [gen_eos]
        stop = {t for t in (tok.eos_token_id, tok.pad_token_id, *gen_eos) if t is not None}
        replies = []
        for row in new.tolist():
            end = next((j for j, t in enumerate(row) if t in stop), None)
            text = tok.decode(row if end is None else row[:end], skip_special_tokens=True)
            replies.append(Reply(text=text, finish_reason="length" if end is None else "stop"))
        return replies


def make_teacher(cfg: TeacherConfig) -> Teacher | None:
    """The configured teacher; None for `backend: none` (kinds that have a teacherless fallback)."""
    if cfg.backend == "none":
        return None
    if cfg.backend == "openai":
        return OpenAITeacher(cfg)
    if cfg.backend == "vllm":
        return VLLMTeacher(cfg)
    if cfg.backend == "hf":
        return HFTeacher(cfg)
    raise TeacherError(f"unknown teacher backend {cfg.backend!r}")
