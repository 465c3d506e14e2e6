"""`mmreason eval compare A B`: two evaluations of the same items, paired (B − A): exact McNemar p and a seeded
paired bootstrap 95% CI, overall and per source when the records eval's `predictions_scored.jsonl` lies beside
both `scores.json` files (`mmreason.eval.paired`)."""

from __future__ import annotations

import json
from pathlib import Path

from mmreason.eval.paired import compare_items, item_scores, paired_json, paired_table

SCORED = "predictions_scored.jsonl"


def scores_path(p: str | Path) -> Path:
    """A scores.json, or an eval output folder holding one."""
    p = Path(p)
    if p.is_dir():
        p = p / "scores.json"
    if not p.is_file():
        raise FileNotFoundError(f"no eval summary at {p} (give a scores.json or the eval output folder)")
    return p


def item_groups(scores: Path, field: str = "source") -> dict[str, str]:
    """Item id -> `field` from the predictions_scored.jsonl beside `scores` ({} when there is none)."""
    f = scores.with_name(SCORED)
    if not f.is_file():
        return {}
    out = {}
    for line in f.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            if "id" in row and row.get(field) is not None:
                out[str(row["id"])] = str(row[field])
    return out


def compare_files(a: str | Path, b: str | Path, labels: tuple[str, str] | None = None, seed: int = 0,
                  by_group: bool = True) -> tuple[list[str], list[dict]]:
    """The markdown table and JSON rows of B vs A. Raises ValueError when the two scored different items."""
    pa, pb = scores_path(a), scores_path(b)
    la, lb = labels or (str(a), str(b))
    sa = item_scores(json.loads(pa.read_text(encoding="utf-8")), str(pa))
    sb = item_scores(json.loads(pb.read_text(encoding="utf-8")), str(pb))
    groups = None
    if by_group:
        ga, gb = item_groups(pa), item_groups(pb)
        if ga and gb and any(ga.get(i) != gb.get(i) for i in sa):
            raise ValueError(f"{pa.with_name(SCORED)} and {pb.with_name(SCORED)} give the same items different "
                             "sources: are they evaluations of the same benchmark file?")
        groups = ga or None
    comparisons = [(la, lb, compare_items(sa, sb, groups, seed, (la, lb)))]
    return paired_table(comparisons), paired_json(comparisons)
