"""Verdicts from numbers and their uncertainty: a claim says an effect goes one way ("increase" or
"decrease"); the toy reproduces it when the confidence interval (and the exact test, when there is one)
excludes zero in that direction, fails to when it excludes zero the other way or rules out any effect of at
least `margin`, and is inconclusive otherwise. Nothing here knows which claim it judges."""

from __future__ import annotations

from dataclasses import dataclass

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
INCONCLUSIVE = "inconclusive"
SCALE = " at toy scale"


@dataclass
class Verdict:
    label: str  # REPRODUCED | NOT_REPRODUCED | INCONCLUSIVE
    reason: str

    def __str__(self) -> str:
        return self.label + SCALE


def decide(effect: float, ci_low: float, ci_high: float, expect: str = "increase", p: float | None = None,
           alpha: float = 0.05, margin: float = 0.0) -> Verdict:
    """effect = B - A with its CI; expect: the claimed direction of B - A. `p` (two-sided, e.g. McNemar)
    must also be below alpha for a significant call. margin >= 0: an effect whose CI lies wholly below
    `margin` in the claimed direction is too small to count as the claim (not reproduced)."""
    if expect not in ("increase", "decrease"):
        raise ValueError(f"expect must be 'increase' or 'decrease', got {expect!r}")
    if ci_low > ci_high:
        raise ValueError(f"CI low {ci_low} above high {ci_high}")
    s = 1.0 if expect == "increase" else -1.0
    e, lo, hi = s * effect, min(s * ci_low, s * ci_high), max(s * ci_low, s * ci_high)
    significant = p is None or p < alpha
    ptxt = "" if p is None else f", p = {p:.3g}"
    span = f"{effect:+.3g} [{ci_low:+.3g}, {ci_high:+.3g}]{ptxt}"
    if lo > 0 and significant:
        return Verdict(REPRODUCED, f"{span}: the claimed {expect}, beyond noise")
    if hi < 0 and significant:
        return Verdict(NOT_REPRODUCED, f"{span}: the opposite of the claimed {expect}, beyond noise")
    if margin > 0 and hi < margin:
        return Verdict(NOT_REPRODUCED, f"{span}: any {expect} is smaller than {margin:g}")
    return Verdict(INCONCLUSIVE, f"{span}: within noise (e = {e:+.3g} in the claimed direction)")


def decide_paired(res, expect: str = "increase", alpha: float = 0.05, margin: float = 0.0) -> Verdict:
    """`decide` on a stats.PairedResult (its bootstrap CI, and McNemar's p when the scores are binary)."""
    return decide(res.diff, res.ci_low, res.ci_high, expect, res.p_mcnemar, alpha, margin)


def combine(verdicts: list[Verdict]) -> Verdict:
    """A claim made of parts: reproduced if every part is, not reproduced if any part is not, else
    inconclusive."""
    if not verdicts:
        return Verdict(INCONCLUSIVE, "nothing measured")
    labels = [v.label for v in verdicts]
    if all(x == REPRODUCED for x in labels):
        return Verdict(REPRODUCED, "every part reproduced")
    if NOT_REPRODUCED in labels:
        return Verdict(NOT_REPRODUCED, f"{labels.count(NOT_REPRODUCED)} of {len(labels)} parts not reproduced")
    return Verdict(INCONCLUSIVE, f"{labels.count(INCONCLUSIVE)} of {len(labels)} parts within noise")
