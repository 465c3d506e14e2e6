"""The NEP paper's SFT prompts and question pools, as its data script (`video_data_generation.py` in
sail-sg/Video-Next-Event-Prediction) produces them, and the record makers of the four strategies.

Two quirks of the official pools are kept, because they change what the model is trained on:
  * in the SFT and Distill pools a missing comma joins the first two questions into one,
    "what will happen next?What comes next?" (25 questions, not 26);
  * the CFT pool has all 26, each prefixed "Question:\\n".
"""

from __future__ import annotations

import random
from typing import Any

from mmreason.records import Record, Video

_NEXT_QUESTIONS = (
    "What is going to happen next?",
    "What follows from here?",
    "What's on the horizon?",
    "What happens after this?",
    "What comes after this?",
    "What is the next step?",
    "What is about to occur?",
    "What will follow?",
    "What is the subsequent event?",
    "What unfolds next?",
    "What is next in line?",
    "What is in store?",
    "What does the future hold for this?",
    "What's coming up next?",
    "What will transpire next?",
    "What is the next occurrence?",
    "What should we expect next?",
    "What will happen subsequently?",
    "What does the next chapter bring?",
    "What\u2019s the next move?",
    "What comes around the corner?",
    "What lies ahead?",
    "What is planned next?",
    "What will the future reveal?",
)
# official SFT / Distill pool (the joined first entry is the official script's missing comma)
SFT_QUESTION_POOL = ("what will happen next?" + "What comes next?",) + _NEXT_QUESTIONS
CFT_QUESTION_POOL = tuple("Question:\n" + q for q in ("what will happen next?", "What comes next?") + _NEXT_QUESTIONS)

DISTILL_SYSTEM_PROMPT = (
    "You are a helpful AI Assistant that provides well-reasoned and detailed responses. You first think about the "
    "reasoning process as an internal monologue and then provide the user with the answer. Respond in the following "
    "format: <think>\n...\n</think>\n<answer>\n...\n</answer>"
)
CFT_SYSTEM_PROMPT = "Please critique whether the following solution to the question is correct."
CFT_WRONG_RATIO = 2.1  # the official script's `wrong_ratio` (wrong / right after resampling); the issue text says 2:1

STRATEGIES = ("sft", "cft", "distill", "mix")


def think_answer(reasoning: str, prediction: str) -> str:
    return f"<think>\n{reasoning}\n</think>\n<answer>\n{prediction}\n</answer>"


def critique_target(critique: str, conclusion: str) -> str:
    return "Critique:\n" + critique + "\n\nConclusion:\n" + conclusion + "."


def _record(rid: str, strategy: str, question: str, answer: str, solution: str, video: Video, source: str,
            system: str | None, metadata: dict[str, Any]) -> Record:
    meta = {"strategy": strategy, "system_prompt": system, "prompt_suffix": "", **metadata}
    return Record(id=rid, question=question, answer=answer, answer_type="text", solution=solution, video=video,
                  source=source, metadata=meta)


def sft_record(rid: str, video: Video, future_caption: str, rng: random.Random, source: str = "nep/sft",
               metadata: dict | None = None) -> Record:
    """SFT: past clip + a 'what happens next' question -> the caption of the future part."""
    q = rng.choice(SFT_QUESTION_POOL)
    return _record(rid, "sft", q, future_caption, future_caption, video, source, None, metadata or {})


def distill_record(rid: str, video: Video, reasoning: str, prediction: str, rng: random.Random,
                   source: str = "nep/distill", metadata: dict | None = None) -> Record:
    """Distill: think/answer system prompt -> the teacher's reasoning and prediction in tags."""
    q = rng.choice(SFT_QUESTION_POOL)
    return _record(rid, "distill", q, prediction, think_answer(reasoning, prediction), video, source,
                   DISTILL_SYSTEM_PROMPT, metadata or {})


def cft_record(rid: str, video: Video, reasoning: str, prediction: str, critique: str, conclusion: str,
               rng: random.Random, source: str = "nep/cft", metadata: dict | None = None) -> Record:
    """CFT: critique system prompt; user = question + the reasoning model's solution -> critique + verdict."""
    q = rng.choice(CFT_QUESTION_POOL) + "\n\nSolution:\n\n" + think_answer(reasoning, prediction)
    verdict = conclusion_label(conclusion)
    return _record(rid, "cft", q, verdict, critique_target(critique, conclusion), video, source,
                   CFT_SYSTEM_PROMPT, {"conclusion": verdict, **(metadata or {})})


def conclusion_label(conclusion: str) -> str:
    """'wrong' when the official script counts it as wrong (strip + lower == 'wrong'), else 'right'."""
    return "wrong" if conclusion.strip().lower() == "wrong" else "right"


def resample_cft(records: list[Record], rng: random.Random, wrong_ratio: float = CFT_WRONG_RATIO) -> tuple[list[Record], dict]:
    """The official wrong:right resampling: keep every right one and sample round(ratio * n_right) wrong
    ones if there are enough; otherwise keep every wrong one and int(n_wrong / ratio) right ones."""
    wrong = [r for r in records if r.metadata["conclusion"] == "wrong"]
    right = [r for r in records if r.metadata["conclusion"] != "wrong"]
    if not right or not wrong:
        keep_wrong, keep_right = list(wrong), list(right)
    else:
        want_wrong = int(round(wrong_ratio * len(right)))
        if want_wrong <= len(wrong):
            keep_right, keep_wrong = list(right), rng.sample(wrong, want_wrong)
        else:
            keep_wrong = list(wrong)
            keep_right = rng.sample(right, min(int(len(wrong) / wrong_ratio), len(right)))
    out = keep_wrong + keep_right
    rng.shuffle(out)
    stats = {
        "available": {"wrong": len(wrong), "right": len(right)},
        "kept": {"wrong": len(keep_wrong), "right": len(keep_right)},
        "wrong_ratio_target": wrong_ratio,
        "wrong_ratio": round(len(keep_wrong) / len(keep_right), 4) if keep_right else None,
    }
    return out, stats


def mix(parts: dict[str, list[Record]], rng: random.Random, max_samples: int | None = None) -> tuple[list[Record], dict]:
    """Mix = SFT + CFT + Distill. Without a cap every record of the three sets is kept; with
    `max_samples` each strategy gets an equal share (max_samples // 3, the remainder to the first ones),
    smaller sets giving their unused share to the others."""
    names = [n for n in ("sft", "cft", "distill") if n in parts]
    if max_samples is None:
        chosen = {n: list(parts[n]) for n in names}
    else:
        quota = {n: 0 for n in names}
        left = max_samples
        while left > 0:
            open_ = [n for n in names if quota[n] < len(parts[n])]
            if not open_:
                break
            for n in open_:
                if left == 0:
                    break
                quota[n] += 1
                left -= 1
        chosen = {n: rng.sample(parts[n], quota[n]) for n in names}
    out = [r for n in names for r in chosen[n]]
    rng.shuffle(out)
    return out, {n: len(chosen[n]) for n in names}
