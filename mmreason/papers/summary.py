"""The claims' results as data, and `runs/papers/summary.md` / `summary.json` written from them.

A claim holds measured lines (each with its verdict, decided by `verdict.py` from the numbers) and any
markdown tables that show the numbers behind them; its overall verdict combines its headline lines."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt

from mmreason.papers.verdict import Verdict, combine


@dataclass
class Line:
    """One measured statement: what is compared, the toy's numbers, the verdict."""

    what: str
    result: str
    verdict: Verdict
    headline: bool = True  # counts toward the claim's overall verdict (per-task detail lines do not)


@dataclass
class ClaimResult:
    key: str  # rlcs | entropy | mmupt
    title: str  # the claim, in a sentence
    paper: str  # the paper (arXiv id) and its headline number
    lines: list[Line] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)  # markdown blocks, printed before the lines
    notes: list[str] = field(default_factory=list)
    pngs: list[str] = field(default_factory=list)
    seconds: float | None = None

    @property
    def overall(self) -> Verdict:
        return combine([ln.verdict for ln in self.lines if ln.headline])

    def toy_result(self) -> str:
        heads = [ln for ln in self.lines if ln.headline]
        return "; ".join(f"{ln.what}: {ln.result}" for ln in heads) or "not measured"

    def markdown(self) -> list[str]:
        took = f" ({self.seconds:.0f} s)" if self.seconds is not None else ""
        md = [f"## {self.title}{took}", "", f"Paper: {self.paper}", ""]
        for t in self.tables:
            md += [t, ""]
        md += ["| measured | toy result | verdict |", "|---|---|---|"]
        md += [f"| {ln.what} | {ln.result} | {ln.verdict} |" for ln in self.lines]
        md += ["", f"**Overall: {self.overall}** ({self.overall.reason})", ""]
        md += [f"- {n}" for n in self.notes]
        if self.pngs:
            md += ["", "Plots: " + ", ".join(Path(p).name for p in self.pngs)]
        return md + [""]

    def as_dict(self) -> dict:
        return {
            "key": self.key, "title": self.title, "paper": self.paper, "seconds": self.seconds,
            "overall": {"verdict": self.overall.label, "reason": self.overall.reason},
            "lines": [{"what": ln.what, "result": ln.result, "verdict": ln.verdict.label,
                       "reason": ln.verdict.reason, "headline": ln.headline} for ln in self.lines],
            "notes": self.notes, "pngs": [Path(p).name for p in self.pngs],
        }


def overview_table(claims: list[ClaimResult]) -> str:
    """The layout of the paper-miniatures table in docs/results.md: claim, paper number, toy result, verdict."""
    rows = ["| claim | paper | toy result | verdict |", "|---|---|---|---|"]
    rows += [f"| {c.title} | {c.paper} | {c.toy_result()} | {c.overall} |" for c in claims]
    return "\n".join(rows)


def write_summary(out: str | Path, claims: list[ClaimResult], header: list[str] | None = None) -> str:
    """Write OUT/summary.md and OUT/summary.json; returns the markdown."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    md = ["# mmreason papers: each claim as a miniature on the embedded default", "", *(header or []), "",
          overview_table(claims), ""]
    for c in claims:
        md += c.markdown()
    text = "\n".join(md).rstrip() + "\n"
    (out / "summary.md").write_text(text)
    (out / "summary.json").write_text(json.dumps([c.as_dict() for c in claims], indent=1))
    return text


def _plt():
    matplotlib.use("Agg")
    return plt


def plot_accuracy_bars(path: str | Path, rows: list[tuple[str, float, float]], title: str) -> str:
    """rows: (model, accuracy %, s.e. %). A bar chart with error bars."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    names = [r[0] for r in rows]
    ax.bar(range(len(rows)), [r[1] for r in rows], yerr=[r[2] for r in rows], capsize=4, color="tab:blue")
    ax.set_xticks(range(len(rows)), names, rotation=15, fontsize=8)
    ax.set(ylabel="held-out accuracy (%)", title=title, ylim=(0, 100))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def plot_curves(path: str | Path, panels: list[tuple[str, dict[str, tuple[list, list]]]], title: str) -> str:
    """panels: (y label, {label: (steps, values)}), one subplot each, sharing the step axis."""
    plt = _plt()
    fig, axes = plt.subplots(len(panels), 1, figsize=(6, 3.2 * len(panels)), squeeze=False, sharex=True)
    for ax, (ylabel, curves) in zip(axes[:, 0], panels):
        for label, (xs, ys) in curves.items():
            if xs:
                ax.plot(xs, ys, label=label, lw=1.2)
        ax.set_ylabel(ylabel)
        if ax.get_lines():
            ax.legend(fontsize=7)
    axes[0, 0].set_title(title)
    axes[-1, 0].set_xlabel("step")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)
