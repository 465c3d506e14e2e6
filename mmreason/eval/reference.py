"""The official scripts' approach, re-implemented step for step, as a test oracle and a speed
baseline (bench/bench_eval.py). Not used for scoring.

- `wemath_official_pandas`: We-Math's DataFrame pipeline (str-accessor matching, per-step frame
  merges on ID, boolean row filters, groupby means). The original calls `DataFrame._append`,
  which pandas 3 removed, and is written for pandas < 3; this version builds its result dict
  directly and otherwise runs the same operations on pandas 3.
- `mathvista_official_loop`: MathVista calculate_score's per-pid loop plus its DataFrame breakdown
  (`pd.DataFrame(results).T`, one boolean filter per field value), with a plain dynamic-programming
  Levenshtein as python-Levenshtein is not installed. The original also fails on pandas 3: its
  `results_df['skills'][i]` is positional indexing on a pid-labelled Series (KeyError in pandas 3);
  this version uses `.iloc[i]`.
"""

from __future__ import annotations

import re
from typing import Any


def dp_distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def wemath_official_pandas(rows_with_response: list[dict[str, Any]], nodes: list[dict[str, Any]],
                           n_composite: int = 525) -> dict[str, Any]:
    """`n_composite`: the official scripts' constant 525 (testmini's composite problems); a slice passes its own."""
    import pandas as pd  # lazy: pandas is a dev extra (the official scorers' re-implementations)

    df = pd.DataFrame(rows_with_response)
    df["processed_answer"] = (
        df["response"].str.split("Answer").str[-1].str.strip().str.replace(r"[>><<:.]", "", regex=True).str.strip()
    )
    df["processed_answer"] = df["processed_answer"].apply(lambda x: x[0] if x and x[0] in "ABCDEFGH" else None)
    df["joker"] = df["processed_answer"] == df["answer"]

    def merge_steps(d, steps):
        parts = {f"{steps}steps_{i}": d[d["key"] == f"{steps}steps_{i}"].copy() for i in range(1, steps + 1)}
        parts[f"{steps}steps_multi"] = d[d["key"] == f"{steps}steps_multi"].copy()
        for key, part in parts.items():
            part.columns = [c + f"_{key.split('_')[-1]}" for c in part.columns]
        merged = parts[f"{steps}steps_1"]
        for i in range(2, steps + 1):
            merged = pd.merge(merged, parts[f"{steps}steps_{i}"], left_on="ID_1", right_on=f"ID_{i}", how="left")
        return pd.merge(merged, parts[f"{steps}steps_multi"], left_on="ID_1", right_on="ID_multi", how="left")

    m2 = merge_steps(df[df["key"].str.contains("2steps")], 2)
    m3 = merge_steps(df[df["key"].str.contains("3steps")], 3)

    def filt(m, steps, need_all_steps, steps_value, multi_value):
        conds = [m[f"joker_{i}"] == steps_value for i in range(1, steps + 1)]
        c = conds[0]
        for x in conds[1:]:
            c = (c & x) if need_all_steps else (c | x)
        return len(m[c & (m["joker_multi"] == multi_value)])

    def both(*args):
        return filt(m2, 2, *args) + filt(m3, 3, *args)

    counts = {
        "IG": both(True, True, False),
        "IK": both(False, False, False),
        "CM_loose": both(False, True, True),
        "CM_strict": both(True, True, True),
        "RM_loose": both(True, False, True),
        "RM_strict": both(False, False, True),
    }
    out: dict[str, Any] = dict(counts)
    out["score_strict"] = round(100 * (n_composite - 0.5 * counts["IG"] - counts["RM_strict"] - counts["IK"]) / n_composite, 2)
    out["score_loose"] = round(100 * (n_composite - 0.5 * counts["IG"] - counts["RM_loose"] - counts["IK"]) / n_composite, 2)
    den_s, den_l = counts["CM_strict"] + counts["RM_strict"], counts["CM_loose"] + counts["RM_loose"]
    out["RM_strict_rate"] = round(100 * counts["RM_strict"] / den_s, 2) if den_s else None
    out["RM_loose_rate"] = round(100 * counts["RM_loose"] / den_l, 2) if den_l else None

    nd = pd.DataFrame(nodes)
    nd["final_key"] = nd["full node"].str.split("_").str[-1]
    steps_frames = []
    for m, steps in ((m2, 2), (m3, 3)):
        for i in range(1, steps + 1):
            part = m[[f"joker_{i}", f"knowledge concept_{i}"]]
            part = pd.merge(part, nd[["final_key", "full node", "root2"]], left_on=f"knowledge concept_{i}",
                            right_on="final_key", how="left")
            steps_frames.append(part.rename(columns={f"joker_{i}": "joker"}))
    concat = pd.concat(steps_frames, axis=0)
    concat["joker"] = concat["joker"].astype(float)
    out["S1"] = round(100 * concat["joker"].mean(), 2)
    out["S2"] = round(100 * m2["joker_multi"].astype(float).mean(), 2)
    out["S3"] = round(100 * m3["joker_multi"].astype(float).mean(), 2)
    per_concept = concat.groupby("final_key")["joker"].mean()
    nd["final_rode"] = nd["full node"].str.split("_").str[-1]
    merged = pd.merge(nd, per_concept, left_on="final_rode", right_on="final_key", how="left")
    dom = merged.groupby("root2")["joker"].mean()
    out["per_domain"] = {k: (None if pd.isna(v) else round(100 * v, 2)) for k, v in dom.items()}
    return out


def mathvista_official_loop(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """`results`: pid -> official record (choices, question_type, answer_type, precision, answer,
    extraction, metadata). Returns {"average": ..., field: {value: {...}}} like the official."""
    import pandas as pd  # lazy: pandas is a dev extra (the official scorers' re-implementations)

    def most_similar(pred, choices):
        d = [dp_distance(pred, c) for c in choices]
        return choices[d.index(min(d))]

    def normalize(ext, choices, qt, at, precision):
        if qt == "multi_choice":
            ext = ext.strip() if isinstance(ext, str) else str(ext)
            letter = re.findall(r"\(([a-zA-Z])\)", ext)
            if letter:
                ext = letter[0].upper()
            opts = [chr(ord("A") + i) for i in range(len(choices))]
            return choices[opts.index(ext)] if ext in opts else most_similar(ext, choices)
        try:
            if at == "integer":
                return str(int(float(ext)))
            if at == "float":
                return str(round(float(ext), int(precision)))
            if at == "list":
                return str(ext)
        except Exception:
            return None

    results = {k: dict(v) for k, v in results.items()}
    for pid, p in results.items():
        pred = normalize(p["extraction"], p["choices"], p["question_type"], p["answer_type"], p["precision"])
        p["prediction"] = pred
        p["true_false"] = pred == p["answer"]
    correct = sum(1 for p in results.values() if p["true_false"])
    scores: dict[str, Any] = {"average": {"accuracy": correct / len(results), "correct": correct, "total": len(results)}}
    for p in results.values():
        p.update(p.pop("metadata"))
    df = pd.DataFrame(results).T
    for key in ("question_type", "answer_type", "language", "source", "category", "task", "context", "grade", "skills"):
        if key == "skills":
            values = list({v for i in range(len(df)) for v in df[key].iloc[i]})
        else:
            values = df[key].unique()
        scores[key] = {}
        for value in values:
            sub = df[df[key].apply(lambda x: value in x)] if key == "skills" else df[df[key] == value]
            c = len(sub[sub["true_false"] == True])  # noqa: E712 (the official comparison)
            if len(sub):
                scores[key][value] = {"accuracy": c / len(sub), "correct": c, "total": len(sub)}
    return scores
