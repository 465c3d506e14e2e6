"""Two evaluations of the same held-out items, compared pair by pair: overall and per group (task / source),
each with `stats.paired_compare` (exact McNemar p, seeded paired bootstrap CI) and a reading from
`stats.direction`. Shared by the papers' miniatures, `mmreason demo`'s table and `mmreason eval compare`."""

from __future__ import annotations

from typing import Mapping

from mmreason.eval.stats import PairedResult, direction, paired_compare

ALL = "all"


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def describe(res: PairedResult, label_a: str, label_b: str) -> str:
    """'A 60.0% -> B 63.7%: +3.7 pts [95% CI +0.3, +7.0], McNemar p = 0.04 (3 only A vs 14 only B), n = 300'."""
    test = (f", McNemar p = {res.p_mcnemar:.3g} ({res.b_only_a} only {label_a} vs {res.c_only_b} only {label_b})"
            if res.p_mcnemar is not None else "")
    return (f"{label_a} {pct(res.mean_a)} → {label_b} {pct(res.mean_b)}: {100 * res.diff:+.1f} pts "
            f"[95% CI {100 * res.ci_low:+.1f}, {100 * res.ci_high:+.1f}]{test}, n = {res.n}")


def item_scores(scores: Mapping, where: str = "scores") -> dict[str, float]:
    """Per-item correctness (0/1) from an eval summary (`scores.json`'s `per_item`)."""
    per = scores.get("per_item")
    if not isinstance(per, Mapping) or not per:
        raise ValueError(f"{where}: no per_item correctness to pair (an eval summary from `mmreason eval` has one)")
    out = {}
    for i, v in per.items():
        ok = v.get("correct") if isinstance(v, Mapping) else v
        if not isinstance(ok, (bool, int, float)):
            raise ValueError(f"{where}: item {i!r} has no numeric 'correct' ({ok!r})")
        out[str(i)] = float(ok)
    return out


def compare_items(a: Mapping[str, float], b: Mapping[str, float], groups: Mapping[str, str] | None = None,
                  seed: int = 0, names: tuple[str, str] = ("A", "B")) -> list[tuple[str, PairedResult]]:
    """[("all", result), (group, result), ...]: B - A on the same items, in A's order; one row per group (sorted)
    when `groups` (item id -> group) splits them into more than one. Different item sets are an error: a paired
    test on the intersection would silently drop what one side did not answer."""
    only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    if only_a or only_b:
        def some(ids):
            return ", ".join(ids[:3]) + (", ..." if len(ids) > 3 else "")

        raise ValueError(f"{names[0]} and {names[1]} scored different items ({len(a)} vs {len(b)}): "
                         f"{len(only_a)} only in {names[0]}" + (f" ({some(only_a)})" if only_a else "")
                         + f", {len(only_b)} only in {names[1]}" + (f" ({some(only_b)})" if only_b else "")
                         + "; evaluate both on the same benchmark file and limit")
    ids = list(a)
    rows = [(ALL, paired_compare([a[i] for i in ids], [b[i] for i in ids], seed=seed))]
    by: dict[str, list[str]] = {}
    for i in ids:
        by.setdefault(str((groups or {}).get(i) or "unknown"), []).append(i)
    if groups and len(by) > 1:
        rows += [(g, paired_compare([a[i] for i in gi], [b[i] for i in gi], seed=seed)) for g, gi in sorted(by.items())]
    return rows


def reading(res: PairedResult, label_b: str) -> str:
    """B against A in words: better / worse beyond noise, or within noise (`stats.direction`)."""
    sign = direction(res)
    if sign == 0:
        return "within noise"
    return f"{label_b} {'better' if sign > 0 else 'worse'}, beyond noise"


def paired_table(comparisons: list[tuple[str, str, list[tuple[str, PairedResult]]]]) -> list[str]:
    """Markdown rows for [(label A, label B, compare_items(...)), ...]."""
    md = ["| comparison | items | A → B | B − A (pts) [95% CI] | McNemar p (only A / only B) | reading |",
          "|---|---|---|---|---|---|"]
    for la, lb, rows in comparisons:
        for group, r in rows:
            test = f"{r.p_mcnemar:.3g} ({r.b_only_a} / {r.c_only_b})" if r.p_mcnemar is not None else "-"
            ci = f"{100 * r.diff:+.1f} [{100 * r.ci_low:+.1f}, {100 * r.ci_high:+.1f}]"
            md.append(f"| {lb} vs {la} | {group} (n = {r.n}) | {pct(r.mean_a)} → {pct(r.mean_b)} | {ci} | {test} "
                      f"| {reading(r, lb)} |")
    return md


def paired_json(comparisons: list[tuple[str, str, list[tuple[str, PairedResult]]]]) -> list[dict]:
    return [{"a": la, "b": lb, "group": g, **r.as_dict(), "reading": reading(r, lb)}
            for la, lb, rows in comparisons for g, r in rows]
