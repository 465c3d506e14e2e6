"""FutureBench (arXiv 2505.22457): the official prompt, letter extraction and per-hop scoring.

Reproduces `lmms_eval/tasks/futurebench/utils.py` + `futurebench.yaml` of the lmms-eval fork in
sail-sg/Video-Next-Event-Prediction, reimplemented (pure functions, no model here):

- prompt (`doc_to_text`): pre_prompt + "\\n" + Question + "\\n" + "A. ..\\nB. ..\\nC. ..\\nD. .." + "\\n" + post_prompt,
  with the yaml's pre_prompt "" and post_prompt "\\nAnswer with the option's letter from the given
  choices directly." (so the user text starts with "\\n" and has a blank line before the instruction);
  system "You are a helpful assistant."; video at 2 fps, <= 32 frames, min_pixels 3136,
  total_pixels 1605632 (`futurebench_video()`, from eval/futurebench.yaml); greedy, 16 new tokens.
- extraction (`extract_characters_regex`; the functions are in `mmreason.verify.letters`), quirks kept in
  mode 'official':
  * the prefixes are removed with str.replace *anywhere* in the response, case-sensitively, in order;
  * two missing commas in the official list join "The best option is" + "The correct option is" and
    "Best answer:" + "Best option:" into single strings, so "The correct option is", "The best option
    is", "Best answer:" and "Best option:" are never removed;
  * then the first capital A-D *anywhere* counts: the "B" of "Based", the "A" of "Answer:", the "B" of
    "Best answer: C" all become the prediction;
  * the ">10 words and no A-D -> empty" rule is kept (it gives the same result as "no match").
- gold: qa.Answer.upper(); correct iff the extracted letter equals it exactly.
- aggregation: per question_type over hop1, hop2, hop3, hop5 and overall, in % (the task logs
  them with one decimal; the overall returned value is not rounded). An unknown question_type
  makes the official aggregation fail (KeyError); here it is a clear error in the official modes.

The plugin (`FutureBenchBenchmark`, registered as `futurebench`; specs eval/futurebench.yaml and
eval/futurebench_reasoning.yaml) runs this through `mmreason eval run | score --benchmark futurebench`.

Modes: 'official' (the yaml's direct-answer setting), 'official-reasoning' (the commented-out
reasoning setting of the yaml: the same first-A-D rule applied inside <answer>...</answer>, empty
without tags), and 'corrected' (NON-OFFICIAL: prefixes removed only at the start, case-insensitively,
with the commas fixed; inside <answer> tags when present; the letter must stand alone, e.g. "B",
"B.", "(B)", "B)"; a lone lower-case letter counts; a response equal to one option's text counts as
that option; unknown question types are scored under their own name).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mmreason.eval.benchmark import Benchmark, ScoreOptions, VideoInput, register
from mmreason.eval.report import table
from mmreason.eval.spec import load_spec
from mmreason.media.video import VideoConfig, clip_config
# The extraction rules live in verify/letters.py, shared with the answer_letter reward (mode 'futurebench').
from mmreason.verify.letters import answer_tag_letter as official_reasoning_letter
from mmreason.verify.letters import corrected_letter
from mmreason.verify.letters import futurebench_letter as official_letter

MODES = ("official", "official-reasoning", "corrected")
HOPS = ("hop1", "hop2", "hop3", "hop5")
SYSTEM_PROMPT = "You are a helpful assistant."
PRE_PROMPT = ""
POST_PROMPT = "\nAnswer with the option's letter from the given choices directly."
REASONING_PRE_PROMPT = (
    "You FIRST think about the reasoning process as an internal monologue and then provide the final answer.\n"
    "The reasoning process MUST BE enclosed within <think> </think> tags. The final answer MUST BE put in "
    "<answer> </answer> tags."
)
REASONING_POST_PROMPT = ""
# doc_to_text's fallbacks when the yaml gives no pre/post prompt
DEFAULT_PRE_PROMPT = (
    "Select the best answer to the following multiple-choice question based on the video. "
    "Respond with only the letter (A, B, C, or D) of the correct option."
)
DEFAULT_POST_PROMPT = "The best answer is:"


class FutureBenchError(ValueError):
    pass


# ---------------------------------------------------------------- prompt


def build_prompt(doc: dict[str, Any], pre_prompt: str | None = PRE_PROMPT, post_prompt: str | None = POST_PROMPT) -> str:
    """The user text of one item (`future_pred_doc_to_text`); None = the key absent from the yaml."""
    qa = doc["qa"]
    options = qa["Options"]
    option = "A. " + options["A"] + "\nB. " + options["B"] + "\nC. " + options["C"] + "\nD. " + options["D"]
    question = qa["Question"] + "\n" + option
    pre = DEFAULT_PRE_PROMPT if pre_prompt is None else pre_prompt
    post = DEFAULT_POST_PROMPT if post_prompt is None else post_prompt
    return pre + "\n" + question + "\n" + post


def prompt_for_mode(doc: dict[str, Any], mode: str) -> str:
    if mode == "official-reasoning":
        return build_prompt(doc, REASONING_PRE_PROMPT, REASONING_POST_PROMPT)
    return build_prompt(doc)


def video_file(doc: dict[str, Any], video_root: str | Path) -> Path:
    """`future_pred_doc_to_visual`: the part of video_path after 'video_dataset/', under the past-clip root."""
    vp = doc.get("video_path", "")
    if "video_dataset/" not in vp:
        raise FutureBenchError(f"item {doc.get('id')!r}: video_path {vp!r} has no 'video_dataset/' part")
    return Path(video_root) / vp.split("video_dataset/")[1]


def futurebench_video() -> VideoConfig:
    """FutureBench's video reading (eval/futurebench.yaml's video_* fields) as the training clip loader's settings;
    where the yaml leaves the per-frame max unset, qwen-vl-utils' VIDEO_MAX_PIXELS (768*28*28)."""
    spec = load_spec("futurebench")
    return clip_config(spec.video_fps, spec.video_max_frames, spec.video_min_pixels,
                       spec.video_max_pixels or 768 * 28 * 28, spec.video_total_pixels)


# The video element lmms-eval's qwen2_5_vl model builds (max_num_frames 32; qwen-vl-utils' default fps 2).
OFFICIAL_VIDEO_ELEMENT = {"min_pixels": 3136, "total_pixels": 1605632, "max_frames": 32}


def official_messages(doc: dict[str, Any], video_root: str | Path, mode: str = "official") -> list[dict]:
    """The conversation lmms-eval's qwen2_5_vl model sends for one item (system, then video + text)."""
    video = {"type": "video", "video": str(video_file(doc, video_root)), **OFFICIAL_VIDEO_ELEMENT}
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": [video, {"type": "text", "text": prompt_for_mode(doc, mode)}]},
    ]


def official_video_inputs(doc: dict[str, Any], video_root: str | Path):
    """(frames tensor [T, 3, H, W], video_metadata) read exactly as the official eval reads them
    (qwen-vl-utils `fetch_video` on the file); pass them to the processor with `do_sample_frames=False`."""
    from qwen_vl_utils.vision_process import fetch_video  # lazy: loads torch; imported by model-free commands

    path = video_file(doc, video_root)
    if not path.is_file():
        raise FutureBenchError(f"item {doc.get('id')!r}: video not found: {path}")
    return fetch_video({"video": str(path), **OFFICIAL_VIDEO_ELEMENT}, return_video_metadata=True)


# ---------------------------------------------------------------- extraction


def extract(response: Any, mode: str, doc: dict[str, Any] | None = None) -> str:
    if mode == "official":
        return official_letter(response)
    if mode == "official-reasoning":
        return official_reasoning_letter(response)
    if mode == "corrected":
        return corrected_letter(response, (doc or {}).get("qa", {}).get("Options"))
    raise FutureBenchError(f"unknown FutureBench mode {mode!r}; choose from {MODES}")


# ---------------------------------------------------------------- I/O


def _check_doc(d: Any, where: str) -> dict:
    if not isinstance(d, dict):
        raise FutureBenchError(f"{where}: expected a JSON object")
    for key in ("id", "question_type", "qa"):
        if key not in d:
            raise FutureBenchError(f"{where}: missing field '{key}'")
    qa = d["qa"]
    if not isinstance(qa, dict) or not isinstance(qa.get("Question"), str) or not isinstance(qa.get("Answer"), str):
        raise FutureBenchError(f"{where}: field 'qa' must hold 'Question' and 'Answer' strings")
    opts = qa.get("Options")
    if not isinstance(opts, dict) or not all(isinstance(opts.get(k), str) for k in "ABCD"):
        raise FutureBenchError(f"{where}: field 'qa.Options' must map A, B, C, D to strings")
    return d


def load_annotations(path: str | Path) -> list[dict[str, Any]]:
    """Official FutureBench records from a JSON list or JSONL; errors name file:line or file[index]."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    docs: list[dict] = []
    if text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as e:
            raise FutureBenchError(f"{path}: invalid JSON ({e.msg} at line {e.lineno})") from None
        docs = [_check_doc(r, f"{path}[{i}]") for i, r in enumerate(rows)]
    else:
        for lineno, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    r = json.loads(line)
                except json.JSONDecodeError as e:
                    raise FutureBenchError(f"{path}:{lineno}: invalid JSON ({e.msg})") from None
                docs.append(_check_doc(r, f"{path}:{lineno}"))
    seen: set[str] = set()
    for d in docs:
        if str(d["id"]) in seen:
            raise FutureBenchError(f"{path}: duplicate id {d['id']!r}")
        seen.add(str(d["id"]))
    return docs


# ---------------------------------------------------------------- scoring


def _pct(correct: int, total: int) -> float:
    return 100 * correct / total if total > 0 else 0


def score(predictions: dict[str, Any] | list[dict[str, Any]], annotations: list[dict[str, Any]],
          mode: str = "official") -> dict[str, Any]:
    """Accuracy overall and per hop, in %. A missing prediction is scored as an empty response (wrong)
    and listed in `missing`; predictions for unknown ids are listed in `extra` and not scored."""
    if mode not in MODES:
        raise FutureBenchError(f"unknown FutureBench mode {mode!r}; choose from {MODES}")
    if isinstance(predictions, list):
        predictions = {str(p["id"]): p.get("response") for p in predictions}
    else:
        predictions = {str(k): v for k, v in predictions.items()}
    official = mode != "corrected"
    counts: dict[str, dict[str, int]] = {h: {"correct": 0, "total": 0} for h in HOPS}
    per_item: dict[str, dict[str, Any]] = {}
    missing = []
    for doc in annotations:
        rid, hop = str(doc["id"]), doc["question_type"]
        if hop not in counts:
            if official:
                raise FutureBenchError(
                    f"item {rid!r}: question_type {hop!r} is not one of {list(HOPS)} (the official aggregation fails on it)"
                )
            counts[hop] = {"correct": 0, "total": 0}
        if rid not in predictions:
            missing.append(rid)
        pred = extract(predictions.get(rid, ""), mode, doc)
        gold = doc["qa"]["Answer"].upper() if official else doc["qa"]["Answer"].strip().upper()
        ok = pred == gold
        counts[hop]["total"] += 1
        counts[hop]["correct"] += ok
        per_item[rid] = {"prediction": pred, "answer": gold, "question_type": hop, "correct": bool(ok)}
    total = sum(c["total"] for c in counts.values())
    correct = sum(c["correct"] for c in counts.values())
    hops = [h for h in counts if official or counts[h]["total"]]
    per_hop = {h: _pct(counts[h]["correct"], counts[h]["total"]) for h in hops}
    log = [f"Evaluation on question types: {h}: {per_hop[h] : .1f}%" for h in hops]
    log.append(f"Overall Performance: {_pct(correct, total) : .1f}%")
    return {
        "benchmark": "futurebench",
        "mode": mode,
        "official": official,
        "overall": _pct(correct, total),
        "per_hop": per_hop,
        "per_hop_counts": {h: counts[h] for h in hops},
        "total": total,
        "correct": correct,
        "missing": missing,
        "extra": sorted(set(predictions) - {str(d["id"]) for d in annotations}),
        "official_log": log,
        "per_item": per_item,
    }


# ---------------------------------------------------------------- the benchmark plugin


def load_docs(data_dir: Path, split: str) -> list[dict[str, Any]]:
    """The annotations: `data_dir` itself when it is a file, else <data_dir>/<split>.json or .jsonl."""
    if data_dir.is_file():
        return load_annotations(data_dir)
    for suffix in (".json", ".jsonl"):
        if (data_dir / f"{split}{suffix}").is_file():
            return load_annotations(data_dir / f"{split}{suffix}")
    raise FileNotFoundError(f"FutureBench annotations not found: {data_dir}/{split}.json (or .jsonl); give "
                            "--data-dir the annotations file or its folder")


@register("futurebench")
class FutureBenchBenchmark(Benchmark):
    """FutureBench through `mmreason eval run | score --benchmark futurebench` (spec: eval/futurebench.yaml).
    Items are the official records; the video of an item is `video_file` under the spec's video_root (default:
    the annotations' folder), read by qwen-vl-utils with the spec's video settings and passed with its metadata.
    Fields: query (the official prompt of the spec's mode: `prompt_for_mode`), question, options (the official
    "A. ..\nB. .." lines), instruction."""

    modes = MODES
    fields = ("query", "question", "options", "instruction")
    default_template = "{{ query }}"
    media_hint = ("video_path's part after 'video_dataset/' resolves under --video-root (the spec's video_root), else "
                  "<data folder>/first_part_video when it exists, else the data folder")

    def data_location(self, annotations):
        if annotations is None:
            return self.spec.resolved_data_dir(), self.spec.split
        return Path(annotations), self.spec.split

    def load(self, data_dir, split):
        if data_dir is None:
            raise ValueError(f"{self.spec.where()}: FutureBench needs its annotations (eval run --data-dir, eval score "
                             "--annotations: the JSON / JSONL file or its folder)")
        data_dir = Path(data_dir)
        docs = load_docs(data_dir, split)
        base = data_dir.parent if data_dir.is_file() else data_dir
        # The released V1-33K folder keeps the past clips in first_part_video/ beside the annotations.
        official = base / "first_part_video"
        self.video_root = self.spec.resolved_video_root() or (official if official.is_dir() else base)
        return docs

    def identity(self):
        return {"video_root": str(getattr(self, "video_root", "")), "video": self.spec.video_part(),
                "prompt_mode": self.spec.mode}

    def item_id(self, item):
        return str(item["id"])

    def prompt_fields(self, item):
        opts = item["qa"]["Options"]
        return {"query": prompt_for_mode(item, self.spec.mode), "question": item["qa"]["Question"],
                "options": "\n".join(f"{k}. {opts[k]}" for k in "ABCD")}

    def media(self, item):
        return [VideoInput(str(video_file(item, self.video_root)), **self.spec.video_part())]

    def score(self, predictions, items, opts: ScoreOptions):
        responses = {k: (v or {}).get("response") for k, v in predictions.items()}
        try:
            return score(responses, items, opts.mode)
        except FutureBenchError as e:
            raise ValueError(f"{self.spec.where()}: {e}") from None

    def report_md(self, s):
        rows = [[h, s["per_hop"][h], s["per_hop_counts"][h]["correct"], s["per_hop_counts"][h]["total"]]
                for h in s["per_hop"]]
        rows.append(["overall", s["overall"], s["correct"], s["total"]])
        label = "official" if s["official"] else "NON-OFFICIAL (corrected)"
        return "\n".join([f"# FutureBench — mode `{s['mode']}` ({label})", "",
                          table(["question type", "accuracy %", "correct", "total"], rows), "",
                          "Official log lines:", "", *[f"    {line}" for line in s["official_log"]], ""])
