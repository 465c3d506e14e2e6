"""The one report writer: scores.json, then the benchmark's report.md and PNG charts; helpers for both."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from mmreason.disk_full import guard_disk_full, write_text_atomic


def write_json(path: Path, obj: Any) -> None:
    """Whole or not at all; a full disk is one line naming the file (`write_text_atomic`)."""
    write_text_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str))


def fmt(v: Any) -> str:
    return "n/a" if v is None else (f"{v:.2f}" if isinstance(v, float) else str(v))


def table(header: list[str], rows: list[list[Any]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(fmt(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def pyplot():
    """matplotlib's pyplot on the Agg backend (no display)."""
    import matplotlib  # lazy: pyplot takes ~1 s; every `mmreason eval` (scoring, compare, --help) imports this module

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: (as above) and after the backend is chosen

    return plt


def save_figure(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    try:
        with guard_disk_full(path, f"the chart {path.name}"):
            fig.savefig(path, dpi=100)
    finally:
        pyplot().close(fig)
    return path


def hbar_chart(values: dict[str, float], path: Path, title: str, color: str = "#4c72b0") -> Path:
    """Horizontal bars of percentages (0-100)."""
    fig, ax = pyplot().subplots(figsize=(7, 3.5))
    ax.barh(list(values), list(values.values()), color=color)
    ax.set_xlabel("accuracy (%)")
    ax.set_xlim(0, 100)
    ax.set_title(title)
    return save_figure(fig, path)


def write_outputs(bench: Any, scores: dict[str, Any], items: list[Any], predictions: dict[str, dict[str, Any]],
                  out_dir: str | os.PathLike, scores_name: str = "scores.json") -> dict[str, Any]:
    """Write scores.json, then the benchmark's report (report.md, charts, extra files) into `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / scores_name, scores)
    files = bench.write_report(scores, items, predictions, out)
    return {"scores": str(out / scores_name), "report": [str(p) for p in files]}
