"""We-Math: official answer matching, four-dimensional metrics equal to the official definitions
(a step-for-step pandas re-implementation of the official scripts is the oracle), boxed mode, robustness."""

import json
import random

import pytest

from mmreason.eval import wemath as wm
from mmreason.eval.cli import main as eval_main
from mmreason.eval.reference import wemath_official_pandas


@pytest.fixture(scope="module")
def wm_dir(benchmarks):
    return benchmarks.root / "wemath"


@pytest.fixture(scope="module")
def rows(wm_dir):
    return wm.load_rows(wm_dir)


@pytest.fixture(scope="module")
def nodes(wm_dir):
    return wm.load_knowledge_nodes(wm_dir / "knowledge_structure_nodes.json")


@pytest.mark.parametrize("response,letter", [
    ("<Thought process>: x <Answer>: <<B>>", "B"),
    ("Answer: (B)", None),  # '(' is not stripped by the official code
    ("The answer is B", None),  # no "Answer" (capital A) in the text
    ("The Answer is B", None),  # text after "Answer" is " is B" -> 'i'
    ("Answer: b", None),  # case-sensitive
    ("Answer: B. 400, 300", "B"),
    ("Answer: <E>", "E"),
    ("Answer: I", None),
    ("", None), (None, None), (3, None),
    ("First Answer: A ... final Answer: C", "C"),
])
def test_official_letter(response, letter):
    assert wm.official_letter(response) == letter


@pytest.mark.parametrize("response,letter", [
    ("\\boxed{B}", "B"), ("\\boxed{(b)}", "B"), ("\\boxed{\\text{C}. 30}", "C"), ("\\boxed{B} then \\boxed{D}", "D"),
    ("\\boxed{Bob}", None), ("Answer: B", None), (None, None), ("\\boxed{12}", None),
])
def test_boxed_letter(response, letter):
    assert wm.boxed_letter(response) == letter


FORMATS = ["<Answer>: <<{L}>>", "Answer: ({L})", "The answer is {L}", "Answer: {l}", "", "Answer: {L}.",
           "{L}", "Answer:{L}", "blah Answer: <{L}> Answer: nope", None]


def _responses(rows, seed, p_correct):
    rng = random.Random(seed)
    out = {}
    for r in rows:
        L = r["answer"] if rng.random() < p_correct else rng.choice("ABCDE")
        fmt = rng.choice(FORMATS)
        out[wm.item_id(r)] = None if fmt is None else fmt.format(L=L, l=L.lower())
    return out


@pytest.mark.parametrize("seed,p", [(0, 0.5), (1, 0.9), (2, 0.2)])
def test_metrics_equal_official_definitions(rows, nodes, seed, p, benchmarks):
    resp = _responses(rows, seed, p)
    # the official pipeline crashes on None responses; give it "" there (both score them wrong)
    ref = wemath_official_pandas([dict(r, response=resp[wm.item_id(r)] or "") for r in rows], nodes,
                                 n_composite=benchmarks.wemath_composite)
    s = wm.score({k: {"response": v} for k, v in resp.items()}, rows, nodes=nodes)
    for key, val in ref.items():
        assert s[key] == val, key
    assert s["IK"] + s["IG"] + s["CM_strict"] + s["RM_strict"] == benchmarks.wemath_composite
    assert s["n_composite"] == benchmarks.wemath_composite


def test_hand_built_cases(rows, benchmarks):
    n = benchmarks.wemath_composite

    def make(step_ok, multi_ok):
        resp = {}
        for r in rows:
            ok = multi_ok if r["key"].endswith("multi") else step_ok
            wrong = "A" if r["answer"] != "A" else "B"
            resp[wm.item_id(r)] = {"response": f"Answer: {r['answer'] if ok else wrong}"}
        return wm.score(resp, rows)

    s = make(True, True)
    assert (s["CM_strict"], s["CM_loose"], s["IK"], s["IG"], s["RM_strict"]) == (n, n, 0, 0, 0)
    assert s["score_strict"] == s["score_loose"] == 100.0 and s["S1"] == s["S2"] == s["S3"] == 100.0
    s = make(True, False)
    assert s["IG"] == n and s["score_strict"] == 50.0
    s = make(False, True)
    assert s["RM_strict"] == s["RM_loose"] == n and s["RM_strict_rate"] == 100.0 and s["score_loose"] == 0.0
    s = make(False, False)
    assert s["IK"] == n and s["score_strict"] == 0.0 and s["RM_strict_rate"] is None  # no 0/0 crash


def test_missing_extra_and_bad_responses(rows, nodes, benchmarks):
    n = min(100, benchmarks.wemath_rows - 5)
    preds = {wm.item_id(r): {"response": "Answer: " + r["answer"]} for r in rows[:n]}
    preds["ghost|2steps_1"] = {"response": "Answer: A"}
    preds[wm.item_id(rows[n])] = {"response": "x" * 1_000_000}
    preds[wm.item_id(rows[n + 1])] = {"response": "Answer: " + "🙂" * 1000}
    preds[wm.item_id(rows[n + 2])] = {"response": 12}
    preds[wm.item_id(rows[n + 3])] = {"response": "\\boxed{" * 150_000}
    for mode in ("official", "boxed"):
        s = wm.score(preds, rows, nodes=nodes, mode=mode)
        assert len(s["missing"]) == benchmarks.wemath_rows - (n + 4) and s["extra"] == ["ghost|2steps_1"]
    assert wm.score(preds, rows, nodes=nodes)["correct"] == n


def test_cli_score_official_format(rows, wm_dir, tmp_path, benchmarks):
    resp = _responses(rows, 5, 0.7)
    official_rows = [{k: v for k, v in r.items() if not k.startswith("_")} | {"response": resp[wm.item_id(r)] or ""}
                     for r in rows]
    pred_file = tmp_path / "output.json"
    pred_file.write_text(json.dumps(official_rows))
    out = tmp_path / "scores.json"
    assert eval_main(["score", "--benchmark", "wemath", "--predictions", str(pred_file), "--output", str(out),
                      "--annotations", str(wm_dir / "testmini.json")]) == 0
    s = json.loads(out.read_text())
    for key in ("benchmark", "mode", "score_strict", "score_loose", "IK", "IG", "CM_strict", "CM_loose",
                "RM_strict", "RM_loose", "S1", "S2", "S3", "per_domain", "per_item"):
        assert key in s
    assert len(s["per_item"]) == benchmarks.wemath_rows and len(s["per_domain"]) == benchmarks.wemath_domains
    # the same responses as our JSONL give the same scores
    jl = tmp_path / "p.jsonl"
    jl.write_text("".join(json.dumps({"id": k, "response": v}) + "\n" for k, v in resp.items()))
    s2 = wm.score(wm.read_predictions(jl), rows, nodes=wm.load_knowledge_nodes(wm_dir / "knowledge_structure_nodes.json"))
    assert (s2["score_strict"], s2["S1"], s2["per_domain"]) == (s["score_strict"], s["S1"], s["per_domain"])
    assert (tmp_path / "wemath_4d.png").stat().st_size > 0 and "Score" in (tmp_path / "report.md").read_text()


def test_boxed_mode_labelled_non_official(rows):
    preds = {wm.item_id(r): {"response": f"... \\boxed{{{r['answer']}}}"} for r in rows}
    s = wm.score(preds, rows, mode="boxed")
    assert s["official"] is False and "NOT the official" in s["note"] and s["score_strict"] == 100.0
    assert wm.score(preds, rows, mode="official")["score_strict"] == 0.0
