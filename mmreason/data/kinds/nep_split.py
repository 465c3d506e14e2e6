"""nep_split: next-event-prediction annotations from raw videos + captions (arXiv 2505.22457, the V1-33K recipe).

Source records carry a `video` (path, optional start/end: the whole clip to split) and the video's caption in
`metadata.caption` (else `solution`). With a teacher, one chain per sample runs the official prompts
(data_recipes/nep_prompts/, verbatim from the NEP repository's assets/data_prompts.py):

  event_identification -> {"events": [{scene, description}]}
  causal_analysis      -> {"suitable": yes|no, "optimal_split_point": "between Scene X and Scene Y"}
  caption_split        -> {"caption_part1", "caption_part2"}
  reasoning            -> the teacher's <think>reasoning</think> prediction, from caption_part1 only
  rewrite_reasoning, rewrite_prediction -> the same texts speaking of "the video", not "the caption"
  critique             -> {"Critique", "Conclusion": right|wrong} of the rewritten prediction against caption_part2

The split time: the start of segment Y when the caption is timestamped with one segment per event, else the
end of scene X with equal-length scenes (start + (end - start) * X / n). Without a teacher (`teacher.backend:
none`): a timestamped caption splits at the segment boundary nearest `nep_fallback_ratio` of the clip; an
untimed one at that ratio of the clip and of its sentences; there is then no reasoning or critique (SFT only).

Each kept sample is one annotation record: the past clip (`video.end` = the split, cut when loaded, nothing
re-encoded), answer = caption_part2, and `metadata.nep` in the V1-33K entry layout, from which `mmreason nep
build --recipe` writes the SFT / CFT / Distill / Mix records exactly as from the released data.

Sample outcomes besides the transport ones: bad_events | unsuitable | no_split (no "Scene X and Scene Y") |
split_outside_video (scenes not adjacent or not listed, or no past frame before the split) | bad_caption_split |
no_reasoning (no <think> block or no prediction) | bad_critique | no_caption_split (fallback: fewer than 2
segments or sentences). A video whose samples all fail is dropped with that reason when it is the only one.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from mmreason.data.kinds.registry import RecipeKind
from mmreason.data.kinds.runner import Outcome, Runner, Target, classify
from mmreason.errors import RecordError
from mmreason.media.video import VideoConfig, frames_in_range, open_source
from mmreason.records import Record, Video

PROMPTS = {
    "event_identification": ("caption",),
    "causal_analysis": ("caption", "events_json"),
    "caption_split": ("caption", "events_json", "optimal_split_point"),
    "reasoning": ("caption", "caption_part1"),
    "rewrite_reasoning": ("reasoning",),
    "rewrite_prediction": ("prediction",),
    "critique": ("caption_part2", "prediction", "reasoning"),
}

SPLIT_POINT = re.compile(r"scene\s*(\d{1,4})\s*(?:and|&|/|-|to)\s*scene\s*(\d{1,4})", re.IGNORECASE)
THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL)
_TIME = r"(?:\d{1,3}:)?\d{1,3}:\d{2}(?:\.\d+)?|\d{1,5}(?:\.\d+)?\s?s\b"
TIME_RANGE = re.compile(rf"[\[(]?\s*({_TIME})\s*(?:-|–|to)\s*({_TIME})\s*[\])]?:?")
SENTENCE = re.compile(r"[^.!?]+[.!?]+|[^.!?]+$")


class NepOutcome(Outcome):
    """Drop reason = the failure itself when every sample failed the same way (e.g. split_outside_video)."""

    def drop_reason(self) -> str | None:
        if self.targets:
            return None
        failed = [k for k, v in self.samples.items() if v]
        return failed[0] if len(failed) == 1 else "no_accepted_sample"


def caption_of(rec: Record) -> str | None:
    c = rec.metadata.get("caption") if isinstance(rec.metadata.get("caption"), str) else rec.solution
    return c.strip() if isinstance(c, str) and c.strip() else None


def skip(rec: Record) -> str | None:
    if rec.video is None:
        return "no_video"
    return None if caption_of(rec) else "no_caption"


def json_object(text: str) -> dict | None:
    """The first {...} block of a reply (models wrap JSON in prose or ``` fences)."""
    a, b = text.find("{"), text.rfind("}")
    if a < 0 or b <= a:
        return None
    try:
        d = json.loads(text[a : b + 1])
    except json.JSONDecodeError:
        return None
    return d if isinstance(d, dict) else None


def parse_time(s: str) -> float:
    s = s.strip().rstrip("s").strip()
    parts = [float(p) for p in s.split(":")]
    t = 0.0
    for p in parts:
        t = t * 60 + p
    return t


def timed_segments(caption: str) -> list[tuple[float, float, str]]:
    """[(start, end, text)] of a caption whose parts begin with a time range ('[0:05-0:12] ...', '3.5s - 7s: ...');
    empty when it has fewer than two or they are not in order."""
    marks = list(TIME_RANGE.finditer(caption))
    segs = []
    for i, m in enumerate(marks):
        text = caption[m.end() : marks[i + 1].start() if i + 1 < len(marks) else len(caption)].strip()
        segs.append((parse_time(m.group(1)), parse_time(m.group(2)), text))
    if len(segs) < 2 or any(b[0] < a[0] or s[1] < s[0] for a, b, s in zip(segs, segs[1:], segs)):
        return []
    return segs


def clip_range(rec: Record) -> tuple[float, float, float, list[float]]:
    """(start, end, fps, timestamps) of the source clip: its video.start/end, else the whole file."""
    src = open_source(rec.video_path(), rec.id, VideoConfig())
    ts = src.timestamps
    lo = rec.video.start if rec.video.start is not None else 0.0
    hi = rec.video.end if rec.video.end is not None else ts[-1] + 1.0 / src.fps
    return lo, hi, src.fps, ts


def has_past_frame(ts: list[float], lo: float, t: float) -> bool:
    return bool(frames_in_range(ts, lo, t))


def entry(caption: str, events: Any, point: str | None, part1: str, part2: str, t: float, how: str,
          reasoning: dict | None = None, critique: dict | None = None) -> dict:
    """The V1-33K entry layout (`mmreason.video.nep.entry_records` reads it)."""
    e: dict[str, Any] = {"caption": caption, "events": events,
                         "video_split": {"optimal_split_point": point, "split_time": round(t, 6), "split_by": how,
                                         "split_caption": {"caption_part1": part1, "caption_part2": part2}}}
    if reasoning is not None:
        e["ds_reasoning"] = reasoning
    if critique is not None:
        e["o3_critique"] = critique
    return e


def fallback(ctx: Runner, rec: Record, caption: str, lo: float, hi: float, ts: list[float]) -> tuple[dict | None, str | None]:
    ratio = ctx.r.nep_fallback_ratio
    segs = timed_segments(caption)
    if segs:
        target = lo + ratio * (hi - lo)
        k = min(range(1, len(segs)), key=lambda j: abs(segs[j][0] - target))
        t, how = segs[k][0], "timestamps"
        part1 = " ".join(s[2] for s in segs[:k])
        part2 = " ".join(s[2] for s in segs[k:])
    else:
        sents = [s.strip() for s in SENTENCE.findall(caption) if s.strip()]
        if len(sents) < 2:
            return None, "no_caption_split"
        k = min(max(1, round(ratio * len(sents))), len(sents) - 1)
        t, how = lo + ratio * (hi - lo), "ratio"
        part1, part2 = " ".join(sents[:k]), " ".join(sents[k:])
    if not (lo < t < hi) or not has_past_frame(ts, lo, t) or not part1 or not part2:
        return None, "split_outside_video"
    return entry(caption, None, None, part1, part2, t, how), None


def chain(ctx: Runner, out: Outcome, rec: Record, i: int, caption: str, lo: float, hi: float,
          ts: list[float]) -> tuple[dict | None, str | None]:
    """One teacher chain -> (entry, None) or (None, failure outcome)."""

    def ask(prompt: str, aux: bool = True, **extra) -> tuple[str | None, str | None]:
        (rp,) = ctx.ask(out, [ctx.request(rec, prompt, i, prompt, aux=aux, caption=caption, **extra)])
        fail = classify(rp)
        return (None, fail) if fail else (rp.text, None)

    text, fail = ask("event_identification")
    if fail:
        return None, fail
    ev = json_object(text)
    events = ev.get("events") if ev else None
    if not isinstance(events, list) or not events:
        return None, "bad_events"
    events_json = json.dumps(ev, indent=2)
    text, fail = ask("causal_analysis", events_json=events_json)
    if fail:
        return None, fail
    an = json_object(text) or {}
    if str(an.get("suitable", "")).strip().lower() == "no":
        return None, "unsuitable"
    m = SPLIT_POINT.search(str(an.get("optimal_split_point", "")))
    if not m:
        return None, "no_split"
    x, y = int(m.group(1)), int(m.group(2))
    if not (1 <= x < len(events) and y == x + 1):
        return None, "split_outside_video"
    segs = timed_segments(caption)
    t = segs[x][0] if len(segs) == len(events) else lo + (hi - lo) * x / len(events)
    if not (lo < t < hi) or not has_past_frame(ts, lo, t):
        return None, "split_outside_video"
    text, fail = ask("caption_split", events_json=events_json, optimal_split_point=an["optimal_split_point"])
    if fail:
        return None, fail
    sp = json_object(text) or {}
    part1, part2 = sp.get("caption_part1"), sp.get("caption_part2")
    if not (isinstance(part1, str) and part1.strip() and isinstance(part2, str) and part2.strip()):
        return None, "bad_caption_split"
    text, fail = ask("reasoning", aux=False, caption_part1=part1.strip())
    if fail:
        return None, fail
    th = THINK.search(text)
    reasoning, prediction = (th.group(1).strip(), text[th.end() :].strip()) if th else ("", "")
    if not reasoning or not prediction:
        return None, "no_reasoning"
    (r1, r2) = ctx.ask(out, [ctx.request(rec, "rewrite_reasoning", i, "rewrite_reasoning", aux=True, reasoning=reasoning),
                             ctx.request(rec, "rewrite_prediction", i, "rewrite_prediction", aux=True,
                                         prediction=prediction)])
    fail = classify(r1) or classify(r2)
    if fail:
        return None, fail
    rr, rp = r1.text.strip(), r2.text.strip()
    text, fail = ask("critique", caption_part2=part2.strip(), prediction=rp, reasoning=rr)
    if fail:
        return None, fail
    cr = json_object(text) or {}
    conclusion = str(cr.get("Conclusion", "")).strip().lower().rstrip(".")
    if not isinstance(cr.get("Critique"), str) or not cr["Critique"].strip() or conclusion not in ("right", "wrong"):
        return None, "bad_critique"
    return entry(caption, events, an["optimal_split_point"], part1.strip(), part2.strip(), t, "teacher",
                 {"reasoning_content": reasoning, "prediction_content": prediction,
                  "rewritten_reasoning_content": rr, "rewritten_prediction_content": rp},
                 {"Critique": cr["Critique"].strip(), "Conclusion": conclusion}), None


def run(ctx: Runner, rec: Record) -> Outcome:
    out = NepOutcome()
    caption = caption_of(rec)
    try:
        lo, hi, _, ts = clip_range(rec)
    except RecordError:
        out.samples["bad_video"] += 1
        return out
    for i in range(ctx.r.sampling.k):
        e, fail = fallback(ctx, rec, caption, lo, hi, ts) if ctx.teacher is None else \
            chain(ctx, out, rec, i, caption, lo, hi, ts)
        if fail:
            out.samples[fail] += 1
        elif len(out.targets) >= ctx.r.filters.keep_per_question:
            out.samples["over_cap"] += 1
        else:
            out.samples["accepted"] += 1
            out.targets.append(Target(json.dumps(e, ensure_ascii=False), i, {"nep": e}))
        if ctx.teacher is None:
            break  # the fallback is deterministic: one annotation
    return out


def output(rec: Record, t: Target, out_dir: Path) -> Record:
    e = t.extra["nep"]
    split = e["video_split"]
    try:
        path = os.path.relpath(rec.video_path(), Path(out_dir).resolve())
    except ValueError:  # another drive
        path = str(rec.video_path())
    e["video_path"] = path
    e["full_video_path"] = path
    return Record(id=rec.id, question=rec.question, answer=split["split_caption"]["caption_part2"], answer_type="text",
                  video=Video(path=path, start=rec.video.start, end=split["split_time"]), source="nep/raw",
                  metadata={"nep": e, "split_time": split["split_time"], "split_by": split["split_by"]})


KIND = RecipeKind(
    name="nep_split",
    run=run,
    prompts=PROMPTS,
    required_when={name: (lambda r: r.teacher.backend != "none") for name in PROMPTS},
    video=True,
    needs_gold=False,
    skip=skip,
    teacherless=True,
    output=output,
    help="raw video + caption -> the official four NEP split prompts (+ rewrite, critique) -> a past clip cut at "
         "the chosen split with its V1-33K-layout annotation (teacher.backend none: timestamp / ratio fallback).",
)
