r"""Completion text and `\boxed{}` spans, robust to anything TRL (or a broken model) hands us.

`boxed_spans` finds the same boxes as `mmreason.answers.extract_boxed_all` but in one linear pass, so a
1 MB completion repeating an unclosed `\boxed{` costs O(n), not O(n * boxes).
"""

from __future__ import annotations

import re
from typing import Any

_BOX = re.compile(r"\\(?:boxed|fbox)\s*\{")
_BRACE = re.compile(r"[{}]")


def completion_text(completion: Any) -> str | None:
    """The assistant text of a completion: a string, or TRL's conversational list of messages
    ([{"role": "assistant", "content": str | [{"type": "text", "text": str}, ...]}]); None if neither."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        completion = [completion]
    if not isinstance(completion, (list, tuple)):
        return None
    parts = []
    for msg in completion:
        if not isinstance(msg, dict) or msg.get("role", "assistant") != "assistant":
            continue
        content = msg.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, (list, tuple)):
            parts.extend(
                p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
            )
    return "".join(parts) if parts else None


def boxed_spans(text: str | None) -> list[tuple[int, int, str]]:
    r"""(start, end, stripped content) of every complete `\boxed{...}`/`\fbox{...}`, ordered by start.
    Unclosed boxes are ignored; braces inside a box must balance."""
    if not isinstance(text, str) or "box" not in text:
        return []
    opens = {m.end() - 1: m.start() for m in _BOX.finditer(text)}  # "{" position -> box start
    if not opens:
        return []
    spans, stack = [], []
    for m in _BRACE.finditer(text):
        i, c = m.start(), m.group()
        if c == "{":
            stack.append(i)
        elif c == "}" and stack:
            j = stack.pop()
            if j in opens:
                spans.append((opens[j], i + 1, text[j + 1 : i].strip()))
    spans.sort()
    return spans
