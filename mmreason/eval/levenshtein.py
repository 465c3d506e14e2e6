"""Exact Levenshtein distance (what the official MathVista scorer takes from python-Levenshtein),
bit-parallel (Myers/Hyyrö) so a 1 MB model answer against short choices stays fast."""

from __future__ import annotations

import numpy as np


def _peq(pattern: str, alphabet: set[str]) -> dict[str, int]:
    """Bit masks of the positions of each character of `alphabet` in `pattern`."""
    if len(pattern) < 4096:
        masks: dict[str, int] = {}
        for i, ch in enumerate(pattern):
            if ch in alphabet:
                masks[ch] = masks.get(ch, 0) | (1 << i)
        return masks

    codes = np.frombuffer(pattern.encode("utf-32-le"), dtype=np.uint32)
    out = {}
    for ch in alphabet:
        bits = np.packbits(codes == ord(ch), bitorder="little")
        out[ch] = int.from_bytes(bits.tobytes(), "little")
    return out


def distance(a: str, b: str) -> int:
    """Levenshtein distance: unit-cost insertions, deletions and substitutions."""
    if a == b:
        return 0
    if len(a) < len(b):
        a, b = b, a  # bit vector over the longer string, loop over the shorter one
    m = len(a)
    if not b:
        return m
    peq = _peq(a, set(b))
    full = (1 << m) - 1
    top = 1 << (m - 1)
    pv, mv, score = full, 0, m
    for ch in b:
        eq = peq.get(ch, 0)
        xv = eq | mv
        xh = (((eq & pv) + pv) ^ pv) | eq
        ph = mv | (~(xh | pv) & full)
        mh = pv & xh
        if ph & top:
            score += 1
        elif mh & top:
            score -= 1
        ph = ((ph << 1) | 1) & full
        mh = (mh << 1) & full
        pv = mh | (~(xv | ph) & full)
        mv = ph & xv
    return score
