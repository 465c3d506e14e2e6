"""The entropy-performance law R = -a * exp(H) + b (Cui et al., 2025): fitted by least squares, closed
form, in x = exp(H). At H = 0 (a deterministic policy) it predicts the ceiling R = b - a."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence


@dataclass
class EntropyLawFit:
    a: float
    b: float
    r2: float  # coefficient of determination of the fit
    n: int  # number of points

    @property
    def ceiling(self) -> float:
        """Predicted reward once entropy is exhausted (H = 0)."""
        return self.b - self.a

    def predict(self, entropy: float) -> float:
        return -self.a * math.exp(entropy) + self.b

    def __iter__(self):  # so that `a, b = fit_entropy_law(...)` works
        return iter((self.a, self.b))


def fit_entropy_law(entropies: Sequence[float], rewards: Sequence[float]) -> EntropyLawFit:
    """Least-squares fit of rewards = -a * exp(entropies) + b. Needs >= 2 points with distinct entropies."""
    pts = [(math.exp(h), r) for h, r in zip(entropies, rewards, strict=True) if _finite(h) and _finite(r)]
    n = len(pts)
    if n < 2:
        raise ValueError(f"need at least 2 finite (entropy, reward) points, got {n}")
    mx = sum(x for x, _ in pts) / n
    my = sum(y for _, y in pts) / n
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    if sxx <= 1e-12 * max(1.0, mx * mx):
        raise ValueError("all entropies are equal: the law's slope is undetermined")
    sxy = sum((x - mx) * (y - my) for x, y in pts)
    slope = sxy / sxx
    a, b = -slope, my - slope * mx
    syy = sum((y - my) ** 2 for _, y in pts)
    sse = sum((y - (slope * x + b)) ** 2 for x, y in pts)
    r2 = 1.0 - sse / syy if syy > 0 else 1.0
    return EntropyLawFit(a=a, b=b, r2=r2, n=n)


def _finite(v) -> bool:
    return v is not None and isinstance(v, (int, float)) and math.isfinite(v)
