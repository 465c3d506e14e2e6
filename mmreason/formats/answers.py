r"""The final answer of a released chain of thought: the content of its last complete `\boxed{}`.

Kept here (below `mmreason.verify`, which grades answers) because readers run before anything grades; one
linear pass over the braces."""

from __future__ import annotations

import re

_TOKEN = re.compile(r"\\boxed\s*\{|\\fbox\s*\{|\{|\}")


def last_boxed(text: str) -> str | None:
    r"""Content of the `\boxed{...}` that closes last, stripped; None without a complete box."""
    if not isinstance(text, str) or "box" not in text:
        return None
    stack: list[tuple[bool, int]] = []  # (is a box, content start)
    last = None
    for m in _TOKEN.finditer(text):
        tok = m.group()
        if tok == "}":
            if stack:
                is_box, start = stack.pop()
                if is_box:
                    last = (start, m.start())
        else:
            stack.append((tok != "{", m.end()))
    return text[last[0]:last[1]].strip() if last else None


def answer_and_target(value) -> tuple[str | None, str | None]:
    r"""(answer, solution) of a released answer column: a value holding a `\boxed{}` is a chain of thought, kept
    verbatim as the SFT target, with its last box as the answer; anything else is the answer itself."""
    if value is None:
        return None, None
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value) or None, None
    text = str(value)
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed or None, text
    m = re.fullmatch(r"\s*<answer>(.*?)</answer>\s*", text, re.S)
    return (m.group(1).strip() if m else text.strip()) or None, None
