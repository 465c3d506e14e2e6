"""Paired statistics for comparing two models on the same held-out questions: McNemar's exact test on the
discordant pairs, a seeded paired bootstrap of the mean difference, and an unpaired bootstrap (for curves
such as per-step entropies, whose points are not paired)."""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass
from typing import Sequence


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: b = pairs only the first model got right, c = only the second.
    Under H0 each discordant pair is a fair coin: p = min(1, 2 * P(Binomial(b + c, 1/2) <= min(b, c)))."""
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be >= 0, got b={b}, c={c}")
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1))
    return min(1.0, 2 * tail / 2**n)  # int / int: exact big-integer ratio, correctly rounded


def _quantile(sorted_xs: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default) of an already sorted sequence."""
    pos = q * (len(sorted_xs) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_xs) - 1)
    return sorted_xs[lo] + (sorted_xs[hi] - sorted_xs[lo]) * (pos - lo)


def bootstrap_ci(diffs: Sequence[float], n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile CI of the mean of `diffs` (per-item paired differences), resampled with a seeded RNG."""
    n = len(diffs)
    if n == 0:
        raise ValueError("bootstrap of an empty sample")
    rng = random.Random(seed)
    means = sorted(sum(diffs[rng.randrange(n)] for _ in range(n)) / n for _ in range(n_boot))
    alpha = (1 - level) / 2
    return _quantile(means, alpha), _quantile(means, 1 - alpha)


@dataclass
class PairedResult:
    """Model A vs model B on the same n items (scores in [0, 1]; diff = B - A)."""

    n: int
    mean_a: float
    mean_b: float
    diff: float
    ci_low: float
    ci_high: float
    se_diff: float  # standard error of the mean paired difference
    b_only_a: int | None = None  # binary scores: items only A got right
    c_only_b: int | None = None  # items only B got right
    p_mcnemar: float | None = None  # exact two-sided McNemar (binary scores only)

    def as_dict(self) -> dict:
        return asdict(self)


def paired_compare(a: Sequence[float], b: Sequence[float], n_boot: int = 2000, seed: int = 0,
                   level: float = 0.95) -> PairedResult:
    """Per-item scores of two models on the same items, in the same order (bools, 0/1, or fractions such as
    'share of G samples correct'). McNemar is added when every score is 0 or 1."""
    if len(a) != len(b):
        raise ValueError(f"paired samples differ in length: {len(a)} vs {len(b)}")
    n = len(a)
    if n == 0:
        raise ValueError("paired comparison of zero items")
    a, b = [float(x) for x in a], [float(x) for x in b]
    d = [y - x for x, y in zip(a, b)]
    mean_d = sum(d) / n
    var = sum((x - mean_d) ** 2 for x in d) / (n - 1) if n > 1 else 0.0
    lo, hi = bootstrap_ci(d, n_boot, seed, level)
    res = PairedResult(n, sum(a) / n, sum(b) / n, mean_d, lo, hi, math.sqrt(var / n))
    if all(x in (0.0, 1.0) for x in a + b):
        res.b_only_a = sum(x == 1.0 and y == 0.0 for x, y in zip(a, b))
        res.c_only_b = sum(x == 0.0 and y == 1.0 for x, y in zip(a, b))
        res.p_mcnemar = mcnemar_exact(res.b_only_a, res.c_only_b)
    return res


def unpaired_compare(a: Sequence[float], b: Sequence[float], n_boot: int = 2000, seed: int = 0,
                     level: float = 0.95) -> PairedResult:
    """Mean of b minus mean of a for two independent samples (e.g. per-step entropies of two windows or
    two runs); the CI resamples each sample on its own. No McNemar."""
    if not a or not b:
        raise ValueError(f"unpaired comparison needs two non-empty samples, got {len(a)} and {len(b)}")
    a, b = [float(x) for x in a], [float(x) for x in b]
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    rng = random.Random(seed)
    diffs = sorted(sum(rng.choice(b) for _ in b) / len(b) - sum(rng.choice(a) for _ in a) / len(a)
                   for _ in range(n_boot))
    alpha = (1 - level) / 2

    def var(xs, m):
        return sum((x - m) ** 2 for x in xs) / (len(xs) - 1) if len(xs) > 1 else 0.0

    se = math.sqrt(var(a, ma) / len(a) + var(b, mb) / len(b))
    return PairedResult(min(len(a), len(b)), ma, mb, mb - ma, _quantile(diffs, alpha), _quantile(diffs, 1 - alpha), se)


def direction(res: PairedResult, alpha: float = 0.05) -> int:
    """+1 / -1 when B - A is beyond noise upward / downward (the CI excludes zero and, for binary scores, McNemar's
    p < alpha), else 0."""
    significant = res.p_mcnemar is None or res.p_mcnemar < alpha
    if significant and res.ci_low > 0:
        return 1
    if significant and res.ci_high < 0:
        return -1
    return 0


def binomial_se(p: float, n: int) -> float:
    """Standard error of an accuracy p (a fraction) over n items: the one the demos, the papers and the reports use."""
    return math.sqrt(max(p * (1 - p), 0.0) / n) if n else 0.0
