"""MathVista (testmini): the official zero-shot query, answer extraction and scoring.

Reproduces lupantech/MathVista `evaluation/` logic (build_query.create_one_query, zero-shot,
solution hint, no caption/OCR; extract_answer.extract_answer rule shortcuts;
calculate_score.normalize_extracted_answer + safe_equal; per-field breakdowns), reimplemented:
- no eval()/exec of model text anywhere (list answers compare as `str(extraction)`, exactly
  what the official normalisation does);
- Levenshtein distance from `mmreason.eval.levenshtein` (identical to python-Levenshtein);
- bad responses (None, non-strings, huge, unicode) are scored wrong instead of crashing.
Extraction modes: `official` (stored extraction, else the rule shortcuts), `judge` (rules,
then the official few-shot extraction prompt on an OpenAI-compatible endpoint), `boxed`
(the last \\boxed{}; non-official, as in the cold-start and MM-UPT papers).
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any, Callable

from mmreason.eval.benchmark import Benchmark, Predictions, ScoreOptions, load_json_array, read_text, register
from mmreason.eval.levenshtein import distance
from mmreason.eval.report import hbar_chart, table
from mmreason.verify import extract_boxed

logger = logging.getLogger(__name__)

MODES = ("official", "judge", "boxed")
BREAKDOWN_FIELDS = ("question_type", "answer_type", "language", "source", "category", "task", "context",
                    "grade", "skills")
HUB_ID = "AI4Math/MathVista"

_HINTS = {
    "multi_choice": "Hint: Please answer the question and provide the correct option letter, e.g., A, B, C, D, at the end.",
    "integer": "Hint: Please answer the question requiring an integer answer and provide the final value, e.g., 1, 2, 3, at the end.",
    ("float", 1): "Hint: Please answer the question requiring a floating-point number with one decimal place and provide the final value, e.g., 1.2, 1.3, 1.4, at the end.",
    ("float", 2): "Hint: Please answer the question requiring a floating-point number with two decimal places and provide the final value, e.g., 1.23, 1.34, 1.45, at the end.",
    "list": "Hint: Please answer the question requiring a Python list as an answer and provide the final list, e.g., [1, 2, 3], [1.2, 1.3, 1.4], at the end.",
}

# The official few-shot extraction prompt (evaluation/prompts/ext_ans.py `demo_prompt`).
DEMO_PROMPT = """
Please read the following example. Then extract the answer from the model response and type it at the end of the prompt.

Hint: Please answer the question requiring an integer answer and provide the final value, e.g., 1, 2, 3, at the end.
Question: Which number is missing?

Model response: The number missing in the sequence is 14.

Extracted answer: 14

Hint: Please answer the question requiring a floating-point number with one decimal place and provide the final value, e.g., 1.2, 1.3, 1.4, at the end.
Question: What is the fraction of females facing the camera?

Model response: The fraction of females facing the camera is 0.6, which means that six out of ten females in the group are facing the camera.

Extracted answer: 0.6

Hint: Please answer the question requiring a floating-point number with two decimal places and provide the final value, e.g., 1.23, 1.34, 1.45, at the end.
Question: How much money does Luca need to buy a sour apple candy and a butterscotch candy? (Unit: $)

Model response: Luca needs $1.45 to buy a sour apple candy and a butterscotch candy.

Extracted answer: 1.45

Hint: Please answer the question requiring a Python list as an answer and provide the final list, e.g., [1, 2, 3], [1.2, 1.3, 1.4], at the end.
Question: Between which two years does the line  graph saw its maximum peak?

Model response: The line graph saw its maximum peak between 2007 and 2008.

Extracted answer: [2007, 2008]

Hint: Please answer the question and provide the correct option letter, e.g., A, B, C, D, at the end.
Question: What fraction of the shape is blue?\\nChoices:\\n(A) 3/11\\n(B) 8/11\\n(C) 6/11\\n(D) 3/5

Model response: The correct answer is (B) 8/11.

Extracted answer: B
"""


# ---------------------------------------------------------------- data


def load_problems(data_dir: str | Path | None = None, split: str = "testmini",
                  hub_id: str = HUB_ID) -> dict[str, dict[str, Any]]:
    """pid -> problem. From a local folder in the official layout (`<split>.json`, `images/`), or
    from the Hub dataset when no folder is given (needs network; images come decoded)."""
    if data_dir is not None:
        path = Path(data_dir) / f"{split}.json"
        if not path.is_file():
            raise FileNotFoundError(f"MathVista data: {path} not found (official layout: <dir>/{split}.json)")
        problems = json.loads(path.read_text(encoding="utf-8"))
        for p in problems.values():
            p["_image_path"] = str(Path(data_dir) / p["image"]) if p.get("image") else None
        return problems
    from datasets import load_dataset  # lazy: datasets (~1.6 s), to download from the Hub only

    ds = load_dataset(hub_id, split=split)
    out = {}
    for row in ds:
        row = dict(row)
        row["_image_obj"] = row.pop("decoded_image", None)
        out[str(row["pid"])] = row
    return out


def build_query(problem: dict[str, Any]) -> str:
    """The official zero-shot query (`query.json`): hint, question (+ unit), choices."""
    qt, at, precision = problem["question_type"], problem["answer_type"], problem.get("precision")
    if qt == "multi_choice":
        hint = _HINTS["multi_choice"]
    elif at == "float":
        hint = _HINTS.get(("float", precision), "")
    else:
        hint = _HINTS.get(at, "")
    question = f"Question: {problem['question']}"
    if problem.get("unit"):
        question += f" (Unit: {problem['unit']})"
    choices = ""
    if problem.get("choices"):
        choices = "\n".join(["Choices:"] + [f"({chr(ord('A') + i)}) {c}" for i, c in enumerate(problem["choices"])])
    return "\n".join(e for e in (hint, question, choices) if e != "").strip()


def problem_images(problem: dict[str, Any]) -> list[Any]:
    if problem.get("_image_obj") is not None:
        return [problem["_image_obj"]]
    return [problem["_image_path"]] if problem.get("_image_path") else []


# ---------------------------------------------------------------- extraction


def rule_extract(response: Any, problem: dict[str, Any], quick_extract: bool = True) -> str | None:
    """The official rule shortcuts of extract_answer(); None when they do not apply
    (the official code would then ask its LLM)."""
    if not isinstance(response, str):
        return ""  # None / numbers / lists: nothing a rule can read (the official code would crash)
    if response == "":
        return ""
    if problem["question_type"] == "multi_choice" and response in (problem.get("choices") or []):
        return response
    if problem["answer_type"] == "integer":
        try:
            return str(int(response))
        except (ValueError, OverflowError):
            pass
    if problem["answer_type"] == "float":
        try:
            return str(float(response))
        except (ValueError, OverflowError):
            pass
    if quick_extract:
        return _quick_extract(response)
    return None


_PREFIX = 'The answer is "'


def _quick_extract(response: str) -> str | None:
    """Exactly `re.search(r'The answer is "(.*)"\\.', response).group(1)` (or None), in linear time: the
    regex retries from every occurrence of the prefix (quadratic on a line full of them). `.` stops
    at "\\n" only, and the greedy group ends at the line's last `".` after the first prefix."""
    if _PREFIX not in response:
        return None
    for line in response.split("\n"):
        p = line.find(_PREFIX)
        if p >= 0:
            q = line.rfind('".')
            if q >= p + len(_PREFIX):
                return line[p + len(_PREFIX) : q]
    return None


def judge_prompt(query: str, response: str) -> str:
    """The official `create_test_prompt`."""
    return f"{DEMO_PROMPT.strip()}\n\n{query}\n\n{response}\n\nExtracted answer: "


def boxed_extract(response: Any) -> str | None:
    return extract_boxed(response) if isinstance(response, str) else None


# ---------------------------------------------------------------- normalisation and equality


def get_most_similar(prediction: str, choices: list[str]) -> str:
    dists = [distance(prediction, c) for c in choices]
    return choices[dists.index(min(dists))]


def normalize_extracted_answer(extraction: Any, choices: list[str] | None, question_type: str, answer_type: str,
                               precision: Any, ignore_empty_extractions: bool = False) -> str | None:
    """Official normalisation: multi-choice -> a choice text (letter or nearest by edit distance);
    integer -> str(int(float(x))); float -> str(round(float(x), precision)); list -> str(x)."""
    if question_type == "multi_choice":
        if isinstance(extraction, str):
            extraction = extraction.strip()
        else:
            try:
                extraction = str(extraction)
            except Exception:
                extraction = ""
        if ignore_empty_extractions and not extraction:
            return None
        letter = re.findall(r"\(([a-zA-Z])\)", extraction)
        if letter:
            extraction = letter[0].upper()
        letters = [chr(ord("A") + i) for i in range(len(choices or []))]
        if not choices:
            return None
        if extraction in letters:
            return choices[letters.index(extraction)]
        return get_most_similar(extraction, choices)
    try:
        if answer_type == "integer":
            return str(int(float(extraction)))
        if answer_type == "float":
            return str(round(float(extraction), int(precision)))
        if answer_type == "list":
            return str(extraction)  # the official `str(extraction)`: no eval of model text
    except Exception:  # exactly the official try/except: anything unparsable is None
        return None
    return None


def safe_equal(prediction: Any, answer: Any) -> bool:
    try:
        return bool(prediction == answer)
    except Exception:
        return False


# ---------------------------------------------------------------- predictions I/O


def read_predictions(path: str | Path) -> dict[str, dict[str, Any]]:
    """pid -> {"response", optional "extraction"}. Accepts the official output JSON (pid -> record)
    and our predictions JSONL ({"id", "response", ...} per line); repeats and skipped lines are counted
    (`mmreason.eval.benchmark.Predictions`)."""
    path = Path(path)
    text = read_text(path)
    stripped = text.lstrip()
    out = Predictions()
    if stripped.startswith("{"):
        try:
            obj = json.loads(text)
        except json.JSONDecodeError:
            obj = None
        if isinstance(obj, dict) and not ("id" in obj and "response" in obj):
            for k, v in obj.items():
                out.add(str(k), v if isinstance(v, dict) else {"response": v}, f"{path}[{k!r}]")
            return out
    if stripped.startswith("["):
        for i, r in enumerate(load_json_array(path, text)):
            if isinstance(r, dict) and ("pid" in r or "id" in r):
                out.add(str(r.get("pid", r.get("id"))), r, f"{path}[{i}]")
            else:
                out.skip(f"{path}[{i}]", "an entry that is not an object with 'pid' or 'id'")
        return out
    for lineno, line in enumerate(text.split("\n"), 1):  # not splitlines: U+2028 is valid inside a JSON string
        if not line.strip():
            continue
        try:
            r = json.loads(line)
        except json.JSONDecodeError as e:
            out.skip(f"{path}:{lineno}", f"invalid JSON ({e.msg})")
            continue
        if not isinstance(r, dict) or ("id" not in r and "pid" not in r):
            out.skip(f"{path}:{lineno}", "a line without 'id' (not a JSON object with an id)")
            continue
        out.add(str(r.get("id", r.get("pid"))), r, f"{path}:{lineno}")
    return out


# ---------------------------------------------------------------- scoring


def _acc(correct: int, total: int) -> float:
    return round(100.0 * correct / total, 2) if total else 0.0


def extract_for_mode(pred: dict[str, Any] | None, problem: dict[str, Any], mode: str,
                     judge: Callable[[str], str] | None = None, quick_extract: bool = True) -> tuple[Any, str]:
    """(extraction, how) for one prediction under `mode`."""
    if pred is None:
        return None, "missing"
    response = pred.get("response")
    if mode == "boxed":
        return boxed_extract(response), "boxed"
    if mode == "official" and "extraction" in pred:
        return pred["extraction"], "stored"
    ext = rule_extract(response, problem, quick_extract)
    if ext is not None:
        return ext, "rule"
    if mode == "judge":
        if judge is None:
            raise ValueError("mode 'judge' needs a judge client")
        return judge(judge_prompt(build_query(problem), response)), "judge"
    return "", "unresolved"  # what the official code stores when its extractor returns nothing


def score(predictions: dict[str, dict[str, Any]], problems: dict[str, dict[str, Any]], mode: str = "official",
          judge: Any = None, ids: list[str] | None = None, quick_extract: bool = True,
          ignore_empty_extractions: bool = False, breakdown_from_predictions: bool = False) -> dict[str, Any]:
    """Score `predictions` (pid -> {"response", ["extraction"]}) against `problems`.

    Scored set: `ids` if given, else every problem. A missing prediction is wrong and listed in
    `missing`; predictions for unknown pids are listed in `extra` and ignored. Breakdowns use the
    annotations' fields; `breakdown_from_predictions` takes them from the prediction records when
    those carry them (what the official scorer does: old output files carry older metadata)."""
    if mode not in MODES:
        raise ValueError(f"unknown MathVista mode {mode!r}; choose from {MODES}")
    pids = [str(p) for p in (ids if ids is not None else problems)]
    unknown = [p for p in pids if p not in problems]
    if unknown:
        raise KeyError(f"{len(unknown)} pid(s) not in the annotations, e.g. {unknown[:5]}")
    judge_fn = judge.extract if judge is not None and hasattr(judge, "extract") else judge
    per_item: dict[str, dict[str, Any]] = {}
    how_counts: dict[str, int] = {}
    correct = 0
    for pid in pids:
        prob = problems[pid]
        ext, how = extract_for_mode(predictions.get(pid), prob, mode, judge_fn, quick_extract)
        how_counts[how] = how_counts.get(how, 0) + 1
        if ext is None:
            pred = None
        else:
            pred = normalize_extracted_answer(ext, prob.get("choices"), prob["question_type"], prob["answer_type"],
                                              prob.get("precision"), ignore_empty_extractions)
        ok = safe_equal(pred, prob["answer"])
        correct += ok
        item = {"prediction": pred, "correct": ok, "extraction": ext if isinstance(ext, str) else None}
        if isinstance(item["extraction"], str) and len(item["extraction"]) > 1000:
            item["extraction"] = item["extraction"][:1000] + "…"
        per_item[pid] = item
    breakdown: dict[str, dict[str, dict[str, Any]]] = {}
    for fld in BREAKDOWN_FIELDS:
        groups: dict[str, list[int]] = {}
        for pid in pids:
            prob = problems[pid]
            src = predictions.get(pid) if breakdown_from_predictions else None
            if isinstance(src, dict) and (fld in src or fld in (src.get("metadata") or {})):
                prob = src
            val = prob.get(fld, (prob.get("metadata") or {}).get(fld))
            for v in (val if isinstance(val, list) else [val]):
                g = groups.setdefault(str(v), [0, 0])
                g[0] += 1
                g[1] += per_item[pid]["correct"]
        rows = {v: {"total": t, "correct": c, "accuracy": _acc(c, t)} for v, (t, c) in groups.items()}
        breakdown[fld] = dict(sorted(rows.items(), key=lambda kv: -kv[1]["accuracy"]))
    result = {
        "benchmark": "mathvista",
        "mode": mode,
        "official": mode != "boxed",
        "total": len(pids),
        "correct": correct,
        "accuracy": _acc(correct, len(pids)),
        "extraction_sources": how_counts,
        "missing": [p for p in pids if p not in predictions],
        "extra": sorted(p for p in predictions if p not in problems),
        "breakdown": breakdown,
        "per_item": per_item,
    }
    if mode == "judge" and judge is not None:
        result["judge_model"] = getattr(judge, "model", None)
    return result


# ---------------------------------------------------------------- the benchmark plugin

@register("mathvista")
class MathVistaBenchmark(Benchmark):
    """MathVista testmini: items are the problem dicts; template fields query (the official query.json text),
    question, choices (lettered lines), instruction."""

    modes = MODES
    fields = ("query", "question", "choices", "instruction")
    media_hint = ("MathVista images ship only with the Hub dataset {hub_id}: unpack its images/ into the data "
                  "folder, or run online without --data-dir")

    def __init__(self, spec):
        super().__init__(spec)
        self.hub_id = spec.hub_id or HUB_ID
        self.media_hint = self.media_hint.format(hub_id=spec.hub_id)

    def load(self, data_dir, split):
        return list(load_problems(data_dir, split, self.hub_id).values())

    def item_id(self, item):
        return str(item["pid"])

    def prompt_fields(self, item):
        choices = "\n".join(f"({chr(65 + i)}) {c}" for i, c in enumerate(item.get("choices") or []))
        return {"query": build_query(item), "question": item["question"], "choices": choices}

    def media(self, item):
        return problem_images(item)

    def read_predictions(self, path):
        return read_predictions(path)

    def score(self, predictions, items, opts: ScoreOptions):
        problems = {self.item_id(p): p for p in items}
        return score(predictions, problems, mode=opts.mode, judge=opts.judge, ids=list(problems),
                     breakdown_from_predictions=opts.breakdown_from_predictions)

    def report_md(self, s):
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
            lines += [f"## {fld}", "", table([fld, "accuracy %", "correct", "total"],
                                              [[k, g["accuracy"], g["correct"], g["total"]] for k, g in groups.items()]), ""]
        return "\n".join(lines)

    def charts(self, s, out_dir):
        cats = s["breakdown"].get("category", {})
        return [hbar_chart({k: g["accuracy"] for k, g in cats.items()}, out_dir / "mathvista_category.png",
                           f"MathVista per category (overall {s['accuracy']:.1f}%, mode {s['mode']})")]
