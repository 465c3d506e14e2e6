"""Paired statistics and verdicts of `mmreason papers` on fixed inputs."""

import math

import pytest

from mmreason.eval.stats import bootstrap_ci, mcnemar_exact, paired_compare, unpaired_compare
from mmreason.papers.verdict import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, combine, decide, decide_paired


@pytest.mark.parametrize("b,c,p", [
    (0, 0, 1.0),
    (0, 5, 2 / 32),            # 2 * (1/2)^5
    (1, 5, 2 * 7 / 64),        # 2 * (C(6,0) + C(6,1)) / 2^6 = 0.21875
    (3, 3, 1.0),               # 2 * P(X <= 3 | n=6) = 2 * 42/64 > 1 -> 1
    (2, 10, 2 * 79 / 4096),    # (1 + 12 + 66) / 2^12, two-sided
    (10, 2, 2 * 79 / 4096),    # symmetric
])
def test_mcnemar_exact_binomial(b, c, p):
    assert mcnemar_exact(b, c) == pytest.approx(p, rel=1e-12)


def test_mcnemar_large_counts_stay_exact():
    # 150 vs 150 discordant pairs: p = 1; 0 vs 300: p = 2^-299, far below float's 2^-52 steps but representable
    assert mcnemar_exact(150, 150) == 1.0
    assert mcnemar_exact(0, 300) == pytest.approx(2.0 ** -299, rel=1e-12)
    with pytest.raises(ValueError):
        mcnemar_exact(-1, 2)


def test_paired_compare_counts_and_test():
    a = [1, 1, 0, 0, 1, 0, 1, 0, 0, 0]
    b = [1, 1, 1, 1, 1, 1, 0, 1, 1, 0]
    r = paired_compare(a, b, seed=0)
    assert (r.n, r.b_only_a, r.c_only_b) == (10, 1, 5)
    assert r.mean_a == pytest.approx(0.4) and r.mean_b == pytest.approx(0.8) and r.diff == pytest.approx(0.4)
    assert r.p_mcnemar == pytest.approx(2 * 7 / 64)
    d = [y - x for x, y in zip(a, b)]
    sd = math.sqrt(sum((x - 0.4) ** 2 for x in d) / 9)
    assert r.se_diff == pytest.approx(sd / math.sqrt(10))
    assert r.ci_low <= r.diff <= r.ci_high


def test_bootstrap_deterministic_with_seed_and_exact_on_constant_diffs():
    d = [0.0, 1.0, -1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0]
    assert bootstrap_ci(d, seed=3) == bootstrap_ci(d, seed=3)
    cont = [0.013 * k * (-1) ** k for k in range(40)]  # distinct values: another seed gives another interval
    assert bootstrap_ci(cont, seed=3) == bootstrap_ci(cont, seed=3) != bootstrap_ci(cont, seed=4)
    assert bootstrap_ci([0.25] * 7, seed=1) == (pytest.approx(0.25), pytest.approx(0.25))
    lo, hi = bootstrap_ci(d, n_boot=4000, seed=0)
    # the normal approximation of the mean's 95% interval: mean 0.4, s.e. 0.2 -> about [0.0, 0.8]
    assert -0.15 < lo < 0.15 and 0.65 < hi < 0.9


def test_fractional_scores_have_no_mcnemar():
    r = paired_compare([0.5, 0.2, 1.0], [1.0, 0.0, 1.0])
    assert r.p_mcnemar is None and r.b_only_a is None and r.diff == pytest.approx((0.5 - 0.2 + 0) / 3)
    with pytest.raises(ValueError, match="length"):
        paired_compare([1, 0], [1])


def test_unpaired_compare():
    r = unpaired_compare([0.30, 0.31, 0.29, 0.30], [0.10, 0.11, 0.09, 0.10], seed=0)
    assert r.diff == pytest.approx(-0.2) and r.ci_high < -0.15 and r.p_mcnemar is None


# ---------------------------------------------------------------- verdicts on synthetic result sets


def _items(n_both, n_only_a, n_only_b, n_neither):
    a = [1] * n_both + [1] * n_only_a + [0] * n_only_b + [0] * n_neither
    b = [1] * n_both + [0] * n_only_a + [1] * n_only_b + [0] * n_neither
    return a, b


def test_verdict_clearly_better_worse_and_within_noise():
    better = paired_compare(*_items(150, 3, 30, 117), seed=0)  # +9 points, 30 vs 3 discordant
    worse = paired_compare(*_items(150, 30, 3, 117), seed=0)
    noise = paired_compare(*_items(150, 10, 12, 128), seed=0)  # +0.7 points, 12 vs 10
    assert decide_paired(better).label == REPRODUCED
    assert decide_paired(worse).label == NOT_REPRODUCED
    assert decide_paired(noise).label == INCONCLUSIVE
    # a claimed decrease flips the first two
    assert decide_paired(better, expect="decrease").label == NOT_REPRODUCED
    assert decide_paired(worse, expect="decrease").label == REPRODUCED
    assert str(decide_paired(better)) == "reproduced at toy scale"


def test_verdict_needs_the_exact_test_too_and_honours_margin():
    # the CI excludes zero but McNemar does not reject: not called significant
    assert decide(0.05, 0.01, 0.09, p=0.08).label == INCONCLUSIVE
    assert decide(0.05, 0.01, 0.09, p=0.01).label == REPRODUCED
    # an effect surely smaller than the margin is no reproduction; without margin it is only within noise
    assert decide(0.002, -0.004, 0.008, margin=0.01).label == NOT_REPRODUCED
    assert decide(0.002, -0.004, 0.008).label == INCONCLUSIVE
    with pytest.raises(ValueError):
        decide(0.0, 0.1, -0.1)
    with pytest.raises(ValueError):
        decide(0.0, -0.1, 0.1, expect="up")


def test_combine():
    r, n, i = (decide(0.1, 0.05, 0.15), decide(-0.1, -0.15, -0.05), decide(0.0, -0.1, 0.1))
    assert combine([r, r]).label == REPRODUCED
    assert combine([r, i]).label == INCONCLUSIVE
    assert combine([r, i, n]).label == NOT_REPRODUCED
    assert combine([]).label == INCONCLUSIVE


# ---------------------------------------------------------------- paired comparison of two evals (eval.paired)


def test_compare_items_overall_and_per_group_and_readings():
    from mmreason.eval.paired import compare_items, paired_table

    # group x: B fixes 12 of A's misses and breaks none (+12 of 30); group y: 2 vs 2 discordant (0)
    a = {f"x{k}": float(k < 10) for k in range(30)} | {f"y{k}": float(k < 15) for k in range(30)}
    b = {f"x{k}": float(k < 22) for k in range(30)} | {f"y{k}": float(2 <= k < 17) for k in range(30)}
    groups = {i: i[0] for i in a}
    rows = compare_items(a, b, groups, seed=0)
    assert [g for g, _ in rows] == ["all", "x", "y"]
    (_, al), (_, x), (_, y) = rows
    assert (al.n, al.b_only_a, al.c_only_b) == (60, 2, 14) and al.diff == pytest.approx(12 / 60)
    assert (x.b_only_a, x.c_only_b, x.p_mcnemar) == (0, 12, pytest.approx(2 / 2**12))
    assert (y.b_only_a, y.c_only_b, y.p_mcnemar, y.diff) == (2, 2, 1.0, 0.0)
    md = paired_table([("A", "B", rows)])
    assert md[2].startswith("| B vs A | all (n = 60) | 41.7% → 61.7% | +20.0 [")
    assert md[2].endswith("| 0.00418 (2 / 14) | B better, beyond noise |")
    assert md[3].endswith("| B better, beyond noise |") and md[4].endswith("| 1 (2 / 2) | within noise |")
    # swapped: the same evidence the other way
    assert paired_table([("B", "A", compare_items(b, a, groups))])[2].endswith("| A worse, beyond noise |")
    # one group, or no grouping: the overall row only
    assert [g for g, _ in compare_items(a, b, {i: "x" for i in a})] == ["all"]
    assert [g for g, _ in compare_items(a, b)] == ["all"]


def test_compare_items_refuses_different_item_sets():
    from mmreason.eval.paired import compare_items, item_scores

    with pytest.raises(ValueError, match=r"SFT and GRPO scored different items \(3 vs 3\): 1 only in SFT \(c\), "
                                         r"1 only in GRPO \(d\)"):
        compare_items({"a": 1, "b": 0, "c": 1}, {"a": 1, "b": 1, "d": 0}, names=("SFT", "GRPO"))
    assert item_scores({"per_item": {"1": {"correct": True}, "2": {"correct": False}}}) == {"1": 1.0, "2": 0.0}
    with pytest.raises(ValueError, match="no per_item"):
        item_scores({"accuracy": 0.5})
    with pytest.raises(ValueError, match="no numeric 'correct'"):
        item_scores({"per_item": {"1": {"prediction": "A"}}})
