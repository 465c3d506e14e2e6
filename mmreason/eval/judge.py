"""MathVista answer extraction by an LLM on any OpenAI-compatible endpoint (e.g. a local vLLM
server): the official few-shot prompt, temperature 0, the official retry ("patience") loop.
Base URL and key come from arguments or OPENAI_BASE_URL / OPENAI_API_KEY; the key is never logged."""

from __future__ import annotations

import json
import logging
import os
import time

import requests

from mmreason.http_deadline import post_within

logger = logging.getLogger(__name__)


class OpenAIJudge:
    def __init__(self, model: str, base_url: str | None = None, api_key: str | None = None,
                 max_tokens: int = 256, patience: int = 5, timeout: float = 60.0, sleep: float = 0.0):
        base_url = base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
        self.model = model
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY", "")
        self.max_tokens, self.patience, self.timeout, self.sleep = max_tokens, patience, timeout, sleep
        self.calls = 0
        self.failures = 0

    def __repr__(self) -> str:  # never shows the key
        return f"OpenAIJudge(model={self.model!r}, base_url={self.base_url!r})"

    def extract(self, prompt: str) -> str:
        """The extracted answer text, or "" when every attempt failed (as the official code)."""
        payload = json.dumps({"model": self.model, "messages": [{"role": "user", "content": prompt}],
                              "temperature": 0, "max_tokens": self.max_tokens})
        with requests.Session() as session:
            session.headers["Content-Type"] = "application/json"
            if self._api_key:
                session.headers["Authorization"] = f"Bearer {self._api_key}"
            for attempt in range(self.patience):
                self.calls += 1
                try:  # `timeout` bounds the whole reply, however slowly it arrives
                    r = post_within(session, f"{self.base_url}/chat/completions", payload, self.timeout)
                    if r.status_code >= 400:
                        raise RuntimeError(f"HTTP {r.status_code}")
                    text = (json.loads(r.content)["choices"][0]["message"]["content"] or "").strip()
                    if text:
                        return text
                except Exception as e:  # network errors, bad JSON, HTTP errors: retry, never log headers
                    logger.warning("judge call %d/%d failed: %s", attempt + 1, self.patience, type(e).__name__)
                if self.sleep:
                    time.sleep(self.sleep)
        self.failures += 1
        return ""
