"""Answer extraction and comparison shared by rewards, the data builder and evaluation.

`match_answer` runs in-process with math-verify's own signal-based timeouts turned
off (they fail outside the main thread). Anything that scores untrusted model text
at scale (GRPO rewards, the data builder) calls it through
`mmreason.verify.pool`, which adds a hard per-call timeout in a process pool.
Model text is only ever parsed, never executed.
"""

from __future__ import annotations

import math
import re
import warnings

from mmreason.records import LETTERS

MAX_ANSWER_CHARS = 1000  # a "final answer" longer than this is not an answer
_BRACE_TOKEN = re.compile(r"\\(?:boxed|fbox)\s*\{|\{|\}")


def extract_boxed_all(text: str) -> list[str]:
    r"""Contents of every `\boxed{...}` (and `\fbox{...}`) in `text`, braces balanced, in order of opening."""
    return [content for *_, content in boxed_spans(text)]


def boxed_spans(text: str) -> list[tuple[int, int, str]]:
    r"""(box start, box end, stripped content) of every complete `\boxed{...}`/`\fbox{...}`, ordered by start.
    Unclosed boxes are ignored; braces inside a box must balance."""
    return sorted((start, end, text[a:b].strip()) for start, a, b, end in _closed_boxes(text))


def boxed_regions(text: str) -> list[tuple[int, int, int, int]]:
    r"""(box start, content start, content end, box end) of every complete box, ordered by start: where
    `\boxed{` begins, where its content begins and ends (raw, unstripped), and the index after its `}`."""
    return sorted(_closed_boxes(text))


def final_box(spans: list[tuple[int, int, str]]) -> tuple[int, int, str]:
    """The answer box among `spans` (non-empty): the last to close, the rule of `extract_boxed`."""
    return max(spans, key=lambda s: s[1])


def _closed_boxes(text: str) -> list[tuple[int, int, int, int]]:
    """(box start, content start, content end, box end) of every complete box, in closing order."""
    if not isinstance(text, str) or "box" not in text:
        return []
    # One linear pass over braces (a 1 MB reply of nested or unclosed boxes must not go quadratic).
    found: list[tuple[int, int, int, int]] = []
    open_boxes: list[tuple[int, int, int]] = []  # (box start, content start, brace depth outside the box)
    depth = 0
    for m in _BRACE_TOKEN.finditer(text):
        tok = m.group()
        if tok == "}":
            depth -= 1
            if open_boxes and open_boxes[-1][2] == depth:
                box_start, start, _ = open_boxes.pop()
                found.append((box_start, start, m.start(), m.end()))
        elif tok == "{":
            depth += 1
        else:
            open_boxes.append((m.start(), m.end(), depth))
            depth += 1
    return found


def extract_boxed(text: str) -> str | None:
    r"""The last complete `\boxed{}` content, or None. With several boxes the last one is the
    answer (a model that revises itself boxes its final answer last); "last" means last to close, so
    `\boxed{\boxed{2}+1}` gives `\boxed{2}+1`; an unclosed box is ignored."""
    boxes = _closed_boxes(text)
    return text[boxes[-1][1] : boxes[-1][2]].strip() if boxes else None


_TEXT_WRAP = re.compile(r"\\(?:text|textbf|mathrm|mathbf)\{([^{}]*)\}")


def normalize_text(s: str) -> str:
    """Lower-case, drop LaTeX text wrappers, `$`, surrounding punctuation and extra spaces."""
    s = _TEXT_WRAP.sub(r"\1", str(s))
    s = s.replace("$", "").replace("\\,", " ").replace("\\ ", " ").replace("\\!", "")
    s = re.sub(r"\s+", " ", s).strip().strip(".;:,").strip()
    return s.lower()


# Unambiguous pieces (no two quantifiers can split the same digits), so matching stays linear.
_NUMBER = re.compile(r"([-+]?(?:\d+(?:\.\d+)?|\.\d+)(?:e[-+]?\d+)?)\s*(%|[a-z°^][a-z°^\d ]*)?")
_LETTER = re.compile(r"^\(?\s*([A-Z])\s*\)?(?:[.:)]|\s|$)")


def extract_letter(pred: str, n_choices: int) -> str | None:
    """A choice letter at the start of `pred` ('B', '(B)', 'B.', 'B) text'), within range."""
    m = _LETTER.match(_TEXT_WRAP.sub(r"\1", pred.strip()).replace("$", "").strip())
    if m and m.group(1) in LETTERS[:n_choices]:
        return m.group(1)
    return None


def to_number(s: str) -> float | None:
    if len(s) > 100:  # no plain number (with unit) is this long
        return None
    s = normalize_text(s).replace(",", "")
    s = re.sub(r"^[a-z]\s*=\s*", "", s)  # "x = 3"
    m = _NUMBER.fullmatch(s)
    if not m:
        return None
    try:
        v = float(m.group(1))
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def math_equal(pred: str, gold: str) -> bool:
    """math-verify equivalence of two answer strings (gold first, as math-verify expects).
    Timeouts are the caller's job (see module doc)."""
    # lazy: math-verify loads sympy (~1 s); in-process callers use the quick checks only
    from math_verify import parse, verify

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = parse(f"${gold}$", parsing_timeout=None)
        p = parse(f"${pred}$", parsing_timeout=None)
        if not g or not p:
            return False
        return bool(verify(g, p, timeout_seconds=None))


def match_answer(
    pred: str | None,
    gold: str,
    answer_type: str,
    choices: list[str] | None = None,
    precision: int | None = None,
) -> bool:
    """Is the extracted answer `pred` correct for gold `gold` of `answer_type`?

    - choice: the option letter ('B', '(B)') or the option's text.
    - integer / float: numeric equality (to `precision` decimals when given, else 1e-6
      relative), falling back to math-verify for expressions (`\\frac{3}{4}`, `2\\sqrt{2}`).
    - list: same length, element-wise equal (comma separated).
    - text: normalised string equality, then math-verify.
    """
    return bool(decide_answer(pred, gold, answer_type, choices, precision, use_math_verify=True))


def decide_answer(
    pred: str | None,
    gold: str,
    answer_type: str,
    choices: list[str] | None = None,
    precision: int | None = None,
    use_math_verify: bool = True,
) -> bool | None:
    """`match_answer`'s decision. With use_math_verify=False nothing slow runs (linear regexes only) and
    the result is None where only math-verify could decide (`mmreason.verify.pool` then sends the
    check to a timed worker)."""
    if not isinstance(pred, str) or not pred.strip() or len(pred) > MAX_ANSWER_CHARS:
        return False
    if answer_type == "choice" and choices:
        letter = extract_letter(pred, len(choices))
        gold_letter = gold.strip().upper()[:1]
        if letter is not None:
            return letter == gold_letter
        gold_idx = LETTERS.find(gold_letter)
        if 0 <= gold_idx < len(choices):
            return _scalar_equal(pred, choices[gold_idx], precision, use_math_verify)
        return False
    if answer_type == "list":
        ps, gs = _split_list(pred), _split_list(gold)
        if len(ps) != len(gs):
            return False
        undecided = False
        for p, g in zip(ps, gs):
            r = _scalar_equal(p, g, precision, use_math_verify)
            if r is False:
                return False
            undecided |= r is None
        return None if undecided else True
    return _scalar_equal(pred, gold, precision, use_math_verify)


def _split_list(s: str) -> list[str]:
    s = s.strip().strip("[]()").strip()
    return [x.strip() for x in s.split(",") if x.strip()]


def _scalar_equal(pred: str, gold: str, precision: int | None, use_math_verify: bool = True) -> bool | None:
    pv, gv = to_number(pred), to_number(gold)
    if pv is not None and gv is not None:
        if precision is not None:
            return round(pv, precision) == round(gv, precision)
        return math.isclose(pv, gv, rel_tol=1e-6, abs_tol=1e-9)
    if normalize_text(pred) == normalize_text(gold):
        return True
    return math_equal(pred, gold) if use_math_verify else None
