"""We-Math (testmini): the official prompt, answer matching and four-dimensional metrics.

Reimplements We-Math/We-Math `evaluation/four_dimensional_metrics.py` and `accuracy.py` without
pandas (their scripts need pandas < 3), with the same definitions:
- matching: text after the last "Answer", strip, drop '<', '>', ':', '.', strip; the first
  character if it is one of A-H (case-sensitive), compared with the gold letter;
- a composite problem (ID) joins its one-step rows (key `Nsteps_i`) and its `Nsteps_multi` row;
  a missing row makes that step unknown, which counts as neither right nor wrong (pandas NaN);
- IK: some step wrong and composite wrong; IG: all steps right, composite wrong;
  CM strict: all steps right and composite right (loose: any step right);
  RM strict: some step wrong, composite right (loose: all steps wrong);
- Score = (N - 0.5*IG - RM - IK) / N with N = number of composite problems (525 in testmini);
  RM rate = RM / (CM + RM); S1 = one-step accuracy, S2/S3 = two/three-step composite accuracy;
  per-domain = mean over the domain's knowledge concepts (tree level root2) of per-concept
  one-step accuracy.
Mode `boxed` (non-official) takes the option letter from the last \\boxed{} instead.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

from mmreason.eval.benchmark import Benchmark, Predictions, ScoreOptions, load_json_array, read_text, register
from mmreason.eval.report import fmt, pyplot, save_figure, table
from mmreason.prompts import render
from mmreason.verify import extract_boxed

logger = logging.getLogger(__name__)

MODES = ("official", "boxed")
HUB_ID = "We-Math/We-Math"
PROMPT_TEMPLATE = (  # jinja2
    "Now, we require you to solve a multiple-choice math question. Please briefly describe your thought process "
    "and provide the final answer(option).\nQuestion: {{ question }}\nOption: {{ option }}\nRegarding the format, please "
    "answer following the template below, and be sure to include two <> symbols:\n"
    "<Thought process>: <<your thought process>> <Answer>: <<your option>>"
)


def item_id(row: dict[str, Any]) -> str:
    """Unique id of a testmini row: problem ID and sub-problem key (e.g. '2steps_7|2steps_multi')."""
    return f"{row['ID']}|{row['key']}"


def group_key(row: dict[str, Any]) -> tuple[int, str]:
    """The composite problem a row belongs to, (number of steps, ID): its one-step rows (key `Nsteps_i`) and
    its `Nsteps_multi` row."""
    return int(row["key"].split("_", 1)[0][0]), row["ID"]


def limit_rows(rows: list[dict], limit: int | None) -> list[dict]:
    """The first composite problems (whole groups: their one-step rows and the composite row), in
    order of first appearance, up to `limit` rows (at least one group)."""
    if limit is None:
        return rows
    groups: dict[tuple[int, str], list[dict]] = {}
    for r in rows:
        groups.setdefault(group_key(r), []).append(r)
    out: list[dict] = []
    for g in groups.values():
        if out and len(out) + len(g) > limit:
            break
        out += g
    return out


def load_rows(data_dir: str | Path | None = None, split: str = "testmini", hub_id: str = HUB_ID) -> list[dict]:
    """testmini rows, from a local folder in the official layout (`<split>.json`, `2steps/image/...`)
    or from the Hub dataset when no folder is given (needs network)."""
    if data_dir is not None:
        path = Path(data_dir) / f"{split}.json"
        if not path.is_file():
            raise FileNotFoundError(f"We-Math data: {path} not found (official layout: <dir>/{split}.json)")
        rows = json.loads(path.read_text(encoding="utf-8"))
        for r in rows:
            r["_image_path"] = str(Path(data_dir) / r["image_path"]) if r.get("image_path") else None
        return rows
    from datasets import load_dataset  # lazy: datasets (~1.6 s), to download from the Hub only

    ds = load_dataset(hub_id, split=split)
    rows = []
    for r in ds:
        r = dict(r)
        img = r.get("image_path")
        if not isinstance(img, str):
            r["_image_obj"], r["image_path"] = img, None
        rows.append(r)
    return rows


def build_prompt(row: dict[str, Any], template: str = PROMPT_TEMPLATE) -> str:
    return render(template, question=row["question"], option=row["option"])


def row_images(row: dict[str, Any]) -> list[Any]:
    if row.get("_image_obj") is not None:
        return [row["_image_obj"]]
    return [row["_image_path"]] if row.get("_image_path") else []


def official_letter(response: Any) -> str | None:
    """The official answer matching (see module doc). Non-strings (None, numbers) give None."""
    if not isinstance(response, str):
        return None
    x = re.sub(r"[><:.]", "", response.split("Answer")[-1].strip()).strip()
    return x[0] if x and x[0] in "ABCDEFGH" else None


_BOX_WRAP = re.compile(r"\\(?:text|textbf|mathrm|mathbf)\{([^{}]*)\}")


def boxed_letter(response: Any) -> str | None:
    """Non-official: the option letter in the last \\boxed{} ('B', '(b)', 'B. 400, 300')."""
    box = extract_boxed(response) if isinstance(response, str) else None
    if box is None:
        return None
    s = _BOX_WRAP.sub(r"\1", box).replace("$", "").strip().lstrip("(").strip()
    m = re.match(r"([A-Ha-h])(?![A-Za-z0-9])", s)
    return m.group(1).upper() if m else None


def read_predictions(path: str | Path) -> dict[str, dict[str, Any]]:
    """item id -> {"response", ...}. Accepts the official output (a JSON list of testmini rows with
    `response`) and our predictions JSONL ({"id": "ID|key", "response"} per line); repeats and skipped lines are
    counted (`mmreason.eval.benchmark.Predictions`)."""
    path = Path(path)
    text = read_text(path)
    out = Predictions()
    rows: list[tuple[str, Any]]
    if text.lstrip().startswith("["):
        rows = [(f"{path}[{i}]", r) for i, r in enumerate(load_json_array(path, text))]
    else:
        rows = []
        for lineno, line in enumerate(text.split("\n"), 1):  # not splitlines: U+2028 is valid inside a JSON string
            if not line.strip():
                continue
            try:
                rows.append((f"{path}:{lineno}", json.loads(line)))
            except json.JSONDecodeError as e:
                out.skip(f"{path}:{lineno}", f"invalid JSON ({e.msg})")
    for where, r in rows:
        if not isinstance(r, dict):
            out.skip(where, f"a {type(r).__name__}, not a JSON object with 'id'")
            continue
        if "id" in r:
            k = str(r["id"])
        elif "ID" in r and "key" in r:
            k = item_id(r)
        else:
            out.skip(where, "a prediction without 'id' (or 'ID' and 'key')")
            continue
        out.add(k, r, where)
    return out


def _pct(num: float, den: float) -> float | None:
    return round(100.0 * num / den, 2) if den else None


def _mean_pct(vals: list[bool | None]) -> float | None:
    known = [v for v in vals if v is not None]
    return _pct(sum(known), len(known))


def load_knowledge_nodes(path: str | Path) -> list[dict[str, Any]]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def score(predictions: dict[str, dict[str, Any]], rows: list[dict[str, Any]], mode: str = "official",
          nodes: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Four-dimensional metrics of `predictions` (item id -> {"response"}) on testmini `rows`.
    A row without a prediction is wrong and listed in `missing`; unknown ids go to `extra`."""
    if mode not in MODES:
        raise ValueError(f"unknown We-Math mode {mode!r}; choose from {MODES}")
    letter_of = official_letter if mode == "official" else boxed_letter
    joker: dict[str, bool] = {}
    per_item: dict[str, dict[str, Any]] = {}
    for r in rows:
        k = item_id(r)
        pred = predictions.get(k)
        letter = letter_of(pred.get("response")) if isinstance(pred, dict) else None
        ok = letter is not None and letter == r["answer"]
        joker[k] = ok
        per_item[k] = {"prediction": letter, "correct": ok}

    # composite problems: ID -> {step index or 'multi': row}
    groups: dict[tuple[int, str], dict[str, dict]] = {}
    for r in rows:
        groups.setdefault(group_key(r), {})[r["key"].split("_", 1)[1]] = r

    counts = dict.fromkeys(("IK", "IG", "CM_strict", "CM_loose", "RM_strict", "RM_loose"), 0)
    multi_by_n: dict[int, list[bool | None]] = {2: [], 3: []}
    step_results: list[tuple[str, bool | None]] = []  # (knowledge concept, joker) of joined one-step rows
    n_composite = 0
    for (n, _id), g in groups.items():
        if "1" not in g:  # the official left join starts from the step-1 rows
            continue
        steps = [joker[item_id(g[str(i)])] if str(i) in g else None for i in range(1, n + 1)]
        multi = joker[item_id(g["multi"])] if "multi" in g else None
        for i in range(1, n + 1):
            row = g.get(str(i))
            step_results.append((row["knowledge concept"] if row else None, steps[i - 1]))
        multi_by_n.setdefault(n, []).append(multi)
        if "multi" in g:
            n_composite += 1
        all_true = all(s is True for s in steps)
        any_false = any(s is False for s in steps)
        all_false = all(s is False for s in steps)
        any_true = any(s is True for s in steps)
        if multi is True:
            counts["CM_strict"] += all_true
            counts["CM_loose"] += any_true
            counts["RM_strict"] += any_false
            counts["RM_loose"] += all_false
        elif multi is False:
            counts["IG"] += all_true
            counts["IK"] += any_false

    N = n_composite
    result: dict[str, Any] = {
        "benchmark": "wemath",
        "mode": mode,
        "official": mode == "official",
        "n_composite": N,
        "score_strict": _pct(N - 0.5 * counts["IG"] - counts["RM_strict"] - counts["IK"], N),
        "score_loose": _pct(N - 0.5 * counts["IG"] - counts["RM_loose"] - counts["IK"], N),
        **counts,
        "IK_rate": _pct(counts["IK"], N),
        "IG_rate": _pct(counts["IG"], N),
        "CM_strict_rate": _pct(counts["CM_strict"], N),
        "CM_loose_rate": _pct(counts["CM_loose"], N),
        "RM_strict_rate": _pct(counts["RM_strict"], counts["CM_strict"] + counts["RM_strict"]),
        "RM_loose_rate": _pct(counts["RM_loose"], counts["CM_loose"] + counts["RM_loose"]),
        "S1": _mean_pct([j for _, j in step_results]),
        "S2": _mean_pct(multi_by_n.get(2, [])),
        "S3": _mean_pct(multi_by_n.get(3, [])),
        "per_domain": per_domain(step_results, nodes) if nodes else {},
        "total": len(rows),
        "correct": sum(joker.values()),
        "accuracy": _pct(sum(joker.values()), len(rows)),
        "missing": [item_id(r) for r in rows if item_id(r) not in predictions],
        "extra": sorted(set(predictions) - set(joker)),
        "per_item": per_item,
    }
    if not result["official"]:
        result["note"] = "boxed matching: NOT the official We-Math answer matching"
    return result


def per_domain(step_results: list[tuple[str | None, bool | None]], nodes: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean over each domain's (root2) knowledge concepts of per-concept one-step accuracy."""
    by_concept: dict[str, list[bool]] = {}
    for concept, j in step_results:
        if concept is not None and j is not None:
            by_concept.setdefault(concept, []).append(j)
    concept_acc = {c: sum(v) / len(v) for c, v in by_concept.items()}
    domains: dict[str, list[float]] = {}
    for node in nodes:
        leaf = node["full node"].split("_")[-1]
        domains.setdefault(node["root2"], [])
        if leaf in concept_acc:
            domains[node["root2"]].append(concept_acc[leaf])
    return {d: (round(100.0 * sum(v) / len(v), 2) if v else None) for d, v in domains.items()}


# ---------------------------------------------------------------- the benchmark plugin


@register("wemath")
class WeMathBenchmark(Benchmark):
    """We-Math testmini: items are the rows; template fields query (the official prompt), question, option,
    instruction. `--limit` and `--only-predicted` keep whole composite problems (`group_key`)."""

    modes = MODES
    fields = ("query", "question", "option", "instruction")

    def load(self, data_dir, split):
        rows = load_rows(data_dir, split, self.spec.hub_id or HUB_ID)
        self.nodes = None
        if self.spec.knowledge_nodes:
            kp = Path(self.spec.knowledge_nodes)
            kp = kp if kp.is_absolute() or data_dir is None else Path(data_dir) / kp
            self.nodes = load_knowledge_nodes(kp) if kp.is_file() else None
        return rows

    def item_id(self, item):
        return item_id(item)

    def limit(self, items, n):
        return limit_rows(items, n)

    def select(self, items, ids):
        keep = {group_key(r) for r in items if item_id(r) in ids}
        return [r for r in items if group_key(r) in keep]

    def prompt_fields(self, item):
        return {"query": build_prompt(item), "question": item["question"], "option": item["option"]}

    def media(self, item):
        return row_images(item)

    def read_predictions(self, path):
        return read_predictions(path)

    def score(self, predictions, items, opts: ScoreOptions):
        return score(predictions, items, mode=opts.mode, nodes=getattr(self, "nodes", None))

    def report_md(self, s):
        lines = [f"# We-Math — mode `{s['mode']}`", ""]
        if s.get("note"):
            lines += [f"**{s['note']}**", ""]
        lines += [table(["metric", "strict", "loose"], [
            ["Score %", s["score_strict"], s["score_loose"]],
            ["IK (count)", s["IK"], s["IK"]],
            ["IG (count)", s["IG"], s["IG"]],
            ["CM (count)", s["CM_strict"], s["CM_loose"]],
            ["RM (count)", s["RM_strict"], s["RM_loose"]],
            ["RM rate % (RM/(CM+RM))", s["RM_strict_rate"], s["RM_loose_rate"]],
        ]), "", table(["S1 %", "S2 %", "S3 %", "composite problems"], [[s["S1"], s["S2"], s["S3"], s["n_composite"]]]), ""]
        if s.get("per_domain"):
            lines += ["## Per domain (one-step accuracy %)", "",
                      table(["domain", "accuracy %"], list(map(list, s["per_domain"].items()))), ""]
        if s.get("missing"):
            lines += [f"Missing predictions (scored wrong): {len(s['missing'])}", ""]
        return "\n".join(lines)

    def charts(self, s, out_dir):
        fig, ax = pyplot().subplots(figsize=(7, 3.5))
        names = ["IK", "IG", "CM", "RM"]
        strict = [s["IK"], s["IG"], s["CM_strict"], s["RM_strict"]]
        loose = [s["IK"], s["IG"], s["CM_loose"], s["RM_loose"]]
        xs = range(len(names))
        ax.bar([x - 0.2 for x in xs], strict, width=0.4, label="strict")
        ax.bar([x + 0.2 for x in xs], loose, width=0.4, label="loose")
        ax.set_xticks(list(xs), names)
        ax.set_ylabel("composite problems")
        ax.set_title(f"We-Math four dimensions (score strict {fmt(s['score_strict'])}%, loose {fmt(s['score_loose'])}%)")
        ax.legend()
        return [save_figure(fig, out_dir / "wemath_4d.png")]
