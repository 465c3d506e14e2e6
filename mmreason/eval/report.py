"""scores.json -> report.md (tables) and PNG charts (matplotlib, Agg backend)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def write_json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    os.replace(tmp, path)


def _fmt(v: Any) -> str:
    return "n/a" if v is None else (f"{v:.2f}" if isinstance(v, float) else str(v))


def _table(header: list[str], rows: list[list[Any]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_fmt(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def mathvista_report(s: dict[str, Any]) -> str:
    lines = [f"# MathVista — mode `{s['mode']}`{'' if s.get('official') else ' (non-official extraction)'}", "",
             f"Accuracy: **{s['accuracy']:.2f}%** ({s['correct']}/{s['total']})", ""]
    if s.get("judge_model"):
        lines += [f"Judge model: `{s['judge_model']}`", ""]
    if s.get("extraction_sources"):
        src = ", ".join(f"{k}: {v}" for k, v in sorted(s["extraction_sources"].items()))
        lines += [f"Extraction sources: {src}"
                  + (" — `unresolved` items had no rule match and no judge (scored from an empty extraction, "
                     "as the official code does when its extractor fails; use `--mode judge`)"
                     if s["extraction_sources"].get("unresolved") else ""), ""]
    if s.get("missing"):
        lines += [f"Missing predictions (scored wrong): {len(s['missing'])}", ""]
    if s.get("extra"):
        lines += [f"Predictions for unknown ids (ignored): {len(s['extra'])}", ""]
    for fld, groups in s["breakdown"].items():
        lines += [f"## {fld}", "", _table([fld, "accuracy %", "correct", "total"],
                                           [[k, g["accuracy"], g["correct"], g["total"]] for k, g in groups.items()]), ""]
    return "\n".join(lines)


def wemath_report(s: dict[str, Any]) -> str:
    lines = [f"# We-Math — mode `{s['mode']}`", ""]
    if s.get("note"):
        lines += [f"**{s['note']}**", ""]
    lines += [_table(["metric", "strict", "loose"], [
        ["Score %", s["score_strict"], s["score_loose"]],
        ["IK (count)", s["IK"], s["IK"]],
        ["IG (count)", s["IG"], s["IG"]],
        ["CM (count)", s["CM_strict"], s["CM_loose"]],
        ["RM (count)", s["RM_strict"], s["RM_loose"]],
        ["RM rate % (RM/(CM+RM))", s["RM_strict_rate"], s["RM_loose_rate"]],
    ]), "", _table(["S1 %", "S2 %", "S3 %", "composite problems"], [[s["S1"], s["S2"], s["S3"], s["n_composite"]]]), ""]
    if s.get("per_domain"):
        lines += ["## Per domain (one-step accuracy %)", "", _table(["domain", "accuracy %"], list(map(list, s["per_domain"].items()))), ""]
    if s.get("missing"):
        lines += [f"Missing predictions (scored wrong): {len(s['missing'])}", ""]
    return "\n".join(lines)


def records_report(s: dict[str, Any]) -> str:
    lines = [f"# Records eval — {s.get('benchmark')}", "",
             f"Accuracy: **{100 * s['accuracy']:.2f}%** ({s['correct']}/{s['total']}), "
             f"answers boxed: {s.get('boxed', 'n/a')}", ""]
    for fld in ("per_source", "per_task", "per_answer_type"):
        if s.get(fld):
            lines += [f"## {fld}", "", _table(["value", "accuracy %", "correct", "total"],
                      [[k, 100 * g["accuracy"], g["correct"], g["total"]] for k, g in s[fld].items()]), ""]
    return "\n".join(lines)


def charts(s: dict[str, Any], out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths: list[Path] = []
    if s["benchmark"] == "mathvista":
        cats = s["breakdown"].get("category", {})
        fig, ax = plt.subplots(figsize=(7, 3.5))
        ax.barh(list(cats), [g["accuracy"] for g in cats.values()], color="#4c72b0")
        ax.set_xlabel("accuracy (%)")
        ax.set_xlim(0, 100)
        ax.set_title(f"MathVista per category (overall {s['accuracy']:.1f}%, mode {s['mode']})")
        p = out_dir / "mathvista_category.png"
    elif s["benchmark"] == "wemath":
        fig, ax = plt.subplots(figsize=(7, 3.5))
        names = ["IK", "IG", "CM", "RM"]
        strict = [s["IK"], s["IG"], s["CM_strict"], s["RM_strict"]]
        loose = [s["IK"], s["IG"], s["CM_loose"], s["RM_loose"]]
        xs = range(len(names))
        ax.bar([x - 0.2 for x in xs], strict, width=0.4, label="strict")
        ax.bar([x + 0.2 for x in xs], loose, width=0.4, label="loose")
        ax.set_xticks(list(xs), names)
        ax.set_ylabel("composite problems")
        ax.set_title(f"We-Math four dimensions (score strict {_fmt(s['score_strict'])}%, loose {_fmt(s['score_loose'])}%)")
        ax.legend()
        p = out_dir / "wemath_4d.png"
    else:
        groups = s.get("per_task") or s.get("per_source") or {}
        fig, ax = plt.subplots(figsize=(7, 3.5))
        ax.barh(list(groups), [100 * g["accuracy"] for g in groups.values()], color="#55a868")
        ax.set_xlim(0, 100)
        ax.set_xlabel("accuracy (%)")
        ax.set_title(f"accuracy per task (overall {100 * s['accuracy']:.1f}%)")
        p = out_dir / "records_accuracy.png"
    fig.tight_layout()
    fig.savefig(p, dpi=100)
    plt.close(fig)
    paths.append(p)
    return paths


def write_outputs(s: dict[str, Any], out_dir: str | os.PathLike, scores_name: str = "scores.json") -> dict[str, str]:
    """Write scores.json, report.md and the chart(s) into `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / scores_name, s)
    md = {"mathvista": mathvista_report, "wemath": wemath_report}.get(s["benchmark"], records_report)(s)
    (out / "report.md").write_text(md + "\n", encoding="utf-8")
    pngs = charts(s, out)
    return {"scores": str(out / scores_name), "report": str(out / "report.md"), "charts": [str(p) for p in pngs]}
