r"""Completion text, robust to anything TRL (or a broken model) hands us, and the `\boxed{}` spans of
`mmreason.verify.answers` (one linear scanner for rewards, the data builder and evaluation; the answer box is
`final_box(spans)`, the last to close, as `extract_boxed`).
"""

from __future__ import annotations

from typing import Any

from mmreason.verify.answers import boxed_spans, final_box

__all__ = ["boxed_spans", "completion_text", "final_box"]


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
