"""`mmreason nep synth`: synthetic verifiable video tasks with a known future.

    mmreason nep synth --out DIR --n N [--n-test M] [--seed S] [--families ball,sequence]
                       [--size 56] [--video-format mp4|frames|both] [--mcq-variants K]

For each scene (families in `synth_scenes.py`) one clip holds the past and the future; records
point at its past part by time (`video: {path, start: 0, end: t_split}`: the cut is made when the
clip is loaded, nothing is re-encoded). Per split (`train` N scenes, `test` M, default max(1, N//5)):

  <split>_mcq.jsonl      4-option MCQ (answer_type choice); the answer letters cycle A, B, C, D per family,
                         the distractors around the answer in an order drawn per record (a fixed order let
                         the answer be read off the option order); with --mcq-variants K each train MCQ is
                         written K times, its options rotated so the gold letter moves one place each time
  <split>_sft.jsonl      NEP SFT: "what happens next" question -> caption of the future part
  <split>_distill.jsonl  NEP Distill: <think> templated reasoning </think><answer> future </answer>
  <split>_cft.jsonl      NEP CFT: critique of a right (1 in 3) or wrong (2 in 3) templated solution
  train_mix.jsonl        sft + cft + distill of the train scenes
  test_futurebench.json  the test MCQs in FutureBench's official record layout (id, video_path,
                         question_type hop1..hop3, qa{Question, Options, Answer}) for `eval/futurebench.py`;
                         video_path is "video_dataset/videos/<scene>.past.mp4" (the past part only,
                         pre-cut as FutureBench's clips are), so DIR is its video root.

Videos: DIR/videos/<scene>.mp4 (PyAV, mpeg4) and/or <scene>.frames.json (PNG frame list). Train
and test are disjoint: a scene's canonical key hashes to a split independent of the seed; scenes
are unique within a split. The same arguments give the same files.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import random
from pathlib import Path

from mmreason.records import LETTERS, Record, Video, write_records
from mmreason.video.prompts import cft_record, conclusion_label, distill_record, mix, sft_record, think_answer
from mmreason.video.synth_scenes import FAMILIES, FPS, Rendered
from mmreason.media.writer import write_frame_list, write_mp4

TEST_BUCKETS = 5
MAX_TRIES = 500


def scene_key(family: str, scene: dict) -> str:
    return json.dumps({"family": family, "scene": scene}, sort_keys=True, separators=(",", ":"))


def scene_split(key: str) -> str:
    h = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
    return "test" if h % TEST_BUCKETS == 0 else "train"


def sample_scenes(split: str, n: int, seed: int, families: list[str]) -> list[tuple[str, dict]]:
    rngs = {f: random.Random(f"{seed}:{split}:{f}") for f in families}
    seen: set[str] = set()
    out = []
    for i in range(n):
        fam = families[i % len(families)]
        for _ in range(MAX_TRIES):
            scene = FAMILIES[fam][0](rngs[fam])
            key = scene_key(fam, scene)
            if key not in seen and scene_split(key) == split:
                seen.add(key)
                out.append((fam, scene))
                break
        else:
            raise RuntimeError(f"could not find {n} distinct {split} scenes for {fam}; lower --n")
    return out


def mcq_record(rid: str, r: Rendered, video: Video, letter_index: int, meta: dict, option_order: str = "drawn") -> Record:
    """option_order 'drawn': the gold option goes at `letter_index % 4`, the distractors around it in an order drawn
    per record (in a fixed order the answer would be the one option out of place: a text-only shortcut).
    'sorted': the four options in alphabetical order, the gold wherever it falls (a ball clip's options are then
    always the same four lines in the same order, so its letter names the outcome)."""
    if option_order == "sorted":
        choices = sorted([*r.distractors[:3], r.answer_text])
        letter = LETTERS[choices.index(r.answer_text)]
    else:
        letter = LETTERS[letter_index % 4]
        choices = list(r.distractors[:3])
        random.Random(f"{rid}:options").shuffle(choices)
        choices.insert(letter_index % 4, r.answer_text)
    return Record(id=rid, question=r.question, answer=letter, answer_type="choice", choices=choices,
                  solution=think_answer(r.reasoning, letter), video=video, source=f"synth-video/{meta['family']}",
                  metadata={"strategy": "mcq", "question_type": r.hop, **meta})


def mcq_variants(rec: Record, k: int, reasoning: str) -> list[Record]:
    """`rec` and k - 1 copies with its options rotated by 1..k-1 places: the same option texts in the same cyclic
    order, the gold letter moved from L to L+1, L+2, ... (k = 4: the gold text under each of A-D once). The
    first is `rec` itself; the copies' ids end in -v1, -v2, ...; their solutions are `reasoning` and the new letter."""
    if not 1 <= k <= len(rec.choices or []):
        raise ValueError(f"mcq variants must be between 1 and the number of options ({len(rec.choices or [])}), got {k}")
    out = [rec]
    g = LETTERS.index(rec.answer)
    for v in range(1, k):
        choices = rec.choices[-v:] + rec.choices[:-v]
        letter = LETTERS[(g + v) % len(choices)]
        out.append(dataclasses.replace(rec, id=f"{rec.id}-v{v}", answer=letter, choices=choices,
                                       solution=think_answer(reasoning, letter), metadata={**rec.metadata, "mcq_variant": v}))
    return out


def scene_records(rid: str, r: Rendered, video: Video, index: int, meta: dict,
                  option_order: str = "drawn") -> dict[str, Record]:
    rng = random.Random(rid)
    right = index % 3 == 0  # CFT: right : wrong = 1 : 2
    prediction, reasoning = (r.future_caption, r.reasoning) if right else (r.wrong_prediction, r.wrong_reasoning)
    critique = (
        f"The solution predicts: {prediction} The future part of the video shows: {r.future_caption} "
        + ("The prediction matches what happens." if right else "The prediction does not match what happens.")
    )
    conclusion = "right" if right else "wrong"
    assert conclusion_label(conclusion) == conclusion
    src = f"synth-video/{meta['family']}"
    return {
        "mcq": mcq_record(f"{rid}-mcq", r, video, index, meta, option_order),
        "sft": sft_record(f"{rid}-sft", video, r.future_caption, rng, source=src, metadata=dict(meta)),
        "distill": distill_record(f"{rid}-distill", video, r.reasoning, r.future_caption, rng, source=src,
                                  metadata=dict(meta)),
        "cft": cft_record(f"{rid}-cft", video, reasoning, prediction, critique, conclusion, rng, source=src,
                          metadata=dict(meta)),
    }


def futurebench_entry(rec: Record, video_path: str) -> dict:
    return {
        "id": rec.id,
        "video_path": video_path,
        "question_type": rec.metadata["question_type"],
        "qa": {"Question": rec.question, "Options": dict(zip("ABCD", rec.choices)), "Answer": rec.answer},
    }


def generate(out: str, n: int, n_test: int | None = None, seed: int = 0, families: list[str] | None = None,
             size: int = 56, video_format: str = "mp4", mcq_variants_k: int = 1,
             train_families: list[str] | None = None, option_order: str = "drawn") -> dict:
    """`families`: the families taken in turn, scene by scene (a name given twice gets twice the scenes);
    `train_families`: the train split's own list (default: `families`), e.g. a ball-heavy train set beside an
    even test set."""
    families = families or list(FAMILIES)
    train_families = train_families or families
    bad = [f for f in families + train_families if f not in FAMILIES]
    if bad:
        raise ValueError(f"unknown families {bad}; known: {sorted(FAMILIES)}")
    if video_format not in ("mp4", "frames", "both"):
        raise ValueError("video_format must be mp4, frames or both")
    if not 1 <= mcq_variants_k <= 4:
        raise ValueError(f"mcq variants must be between 1 and 4, got {mcq_variants_k}")
    if size % 28 or size < 56:
        raise ValueError("size must be a multiple of 28, at least 56 (one LLM token per 28x28 pixels)")
    out_dir = Path(out)
    n_test = max(1, n // 5) if n_test is None else n_test
    counts: dict = {}
    for split, count in (("train", n), ("test", n_test)):
        recs: dict[str, list[Record]] = {k: [] for k in ("mcq", "sft", "distill", "cft")}
        fb = []
        per_family: dict[str, int] = {}
        split_families = train_families if split == "train" else families
        for i, (fam, scene) in enumerate(sample_scenes(split, count, seed, split_families)):
            j = per_family[fam] = per_family.get(fam, -1) + 1  # letters and CFT verdicts cycle per family
            key = scene_key(fam, scene)
            rid = f"{split}-{fam}-{i:05d}"
            r = FAMILIES[fam][1](scene, size)
            rel_mp4, rel_frames = f"videos/{rid}.mp4", f"videos/{rid}.frames.json"
            if video_format in ("mp4", "both"):
                write_mp4(r.frames, out_dir / rel_mp4, FPS)
            if video_format in ("frames", "both"):
                write_frame_list(r.frames, out_dir / rel_frames, FPS)
            path = rel_frames if video_format == "frames" else rel_mp4
            t_split = r.n_past / FPS
            video = Video(path=path, start=0.0, end=t_split)
            meta = {"family": fam, "split": split, "scene": scene, "hop": r.hop, "t_split": t_split,
                    "future_end": len(r.frames) / FPS, "scene_hash": hashlib.sha256(key.encode()).hexdigest()[:16]}
            if video_format == "both":
                meta["frame_list"] = rel_frames
            for kind, rec in scene_records(rid, r, video, j, meta, option_order).items():
                many = kind == "mcq" and split == "train" and mcq_variants_k > 1
                recs[kind].extend(mcq_variants(rec, mcq_variants_k, r.reasoning) if many else [rec])
            if split == "test":  # FutureBench layout: pre-cut past clips under video_dataset/
                write_mp4(r.frames[: r.n_past], out_dir / f"videos/{rid}.past.mp4", FPS)
                fb.append(futurebench_entry(recs["mcq"][-1], f"video_dataset/videos/{rid}.past.mp4"))
        for kind, rs in recs.items():
            counts[f"{split}_{kind}"] = write_records(out_dir / f"{split}_{kind}.jsonl", rs)
        if split == "train":
            mixed, _ = mix({k: recs[k] for k in ("sft", "cft", "distill")}, random.Random(f"{seed}:mix"))
            counts["train_mix"] = write_records(out_dir / "train_mix.jsonl", mixed)
        else:
            (out_dir / "test_futurebench.json").write_text(json.dumps(fb, indent=1) + "\n")
    return counts


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="mmreason nep synth", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--n", type=int, required=True, help="train scenes")
    ap.add_argument("--n-test", type=int, default=None, help="test scenes (default max(1, n // 5))")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--families", default=",".join(FAMILIES), help=f"comma list of {sorted(FAMILIES)}")
    ap.add_argument("--size", type=int, default=56, help="frame edge in pixels (multiple of 28)")
    ap.add_argument("--video-format", default="mp4", choices=("mp4", "frames", "both"))
    ap.add_argument("--mcq-variants", type=int, default=1,
                    help="write each train MCQ K times (1-4), its options rotated so the gold letter moves A->B->C->D")
    a = ap.parse_args(argv)
    try:
        counts = generate(a.out, a.n, a.n_test, a.seed, [f for f in a.families.split(",") if f], a.size, a.video_format,
                          a.mcq_variants)
    except (ValueError, RuntimeError) as e:
        print(f"mmreason nep synth: error: {e}")
        return 2
    print(f"wrote {a.out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0
