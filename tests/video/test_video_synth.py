"""Synthetic video tasks: the known future is really in the future part, cuts hide it, letters are
balanced, splits are disjoint, outputs are deterministic, and each strategy's format is right."""

import collections
import json
import re

import pytest

from mmreason.records import load_records
from mmreason.media.video import VideoConfig, load_clip, load_record_video, open_source
from mmreason.video.prompts import CFT_SYSTEM_PROMPT, DISTILL_SYSTEM_PROMPT, SFT_QUESTION_POOL
from mmreason.video.synth import generate
from mmreason.video.synth_scenes import BALL_RGB, FPS, FRAMES_PER_ITEM, SHAPE_RGB, WALL_X

ALL_FRAMES = VideoConfig(video_fps=FPS, video_min_frames=1, video_max_frames=256, video_min_pixels=56 * 56, video_max_pixels=56 * 56)


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("nep_synth")
    generate(str(out), n=16, n_test=8, seed=3, size=56, video_format="both")
    return out


def _ball_x(im, rgb):
    px = im.load()
    xs = [x for x in range(im.size[0]) for y in range(im.size[1]) if sum(abs(a - b) for a, b in zip(px[x, y], rgb)) < 60]
    return sum(xs) / len(xs) if xs else None


def test_past_clip_is_cut_and_future_holds_the_answer(synth_dir):
    recs, _ = load_records(synth_dir / "train_mcq.jsonl")
    for rec in recs:
        past = load_record_video(rec, ALL_FRAMES)
        n_past = round(rec.metadata["t_split"] * FPS)
        # every past frame is a candidate, none after the cut; the sampled count is even (qwen-vl-utils)
        assert past.total_num_frames == n_past and past.frames_indices[-1] == n_past - 1
        assert len(past.frames) == n_past - n_past % 2 and max(past.timestamps) < rec.metadata["t_split"]
        src = open_source(rec.video_path(), rec.id, ALL_FRAMES)
        assert len(src.timestamps) == round(rec.metadata["future_end"] * FPS) > n_past
        frames = src.get(range(len(src.timestamps)))
        answer = rec.gold_text().rstrip(".").lower()
        scene = rec.metadata["scene"]
        if rec.metadata["family"] == "sequence":
            h = scene["hops"]
            frame = frames[n_past + (h - 1) * FRAMES_PER_ITEM]
            centre = frame.getpixel((28, 30))
            colour = min(SHAPE_RGB, key=lambda c: sum(abs(a - b) for a, b in zip(SHAPE_RGB[c], centre)))
            assert answer.startswith(f"a {colour} "), (rec.id, answer, colour)
            assert rec.metadata["question_type"] == f"hop{h}"
        else:
            rgb = BALL_RGB[scene["ball"]]
            x_last_past = _ball_x(frames[n_past - 1], rgb)
            x_end = _ball_x(frames[-1], rgb)
            if "bounces back" in answer:
                assert x_end < x_last_past - 3
            elif "passes through" in answer or "jumps over" in answer:
                assert x_end > WALL_X
            else:
                assert "stops" in answer and x_last_past <= x_end < WALL_X
                assert _ball_x(frames[-2], rgb) == x_end  # it stays


def test_letters_balanced_and_splits_disjoint(synth_dir):
    train, _ = load_records(synth_dir / "train_mcq.jsonl")
    test, _ = load_records(synth_dir / "test_mcq.jsonl")
    for recs in (train, test):
        for fam in ("ball", "sequence"):
            letters = collections.Counter(r.answer for r in recs if r.metadata["family"] == fam)
            assert set(letters.values()) == {len(recs) // 8}, letters
        assert all(r.answer_type == "choice" and len(set(r.choices)) == 4 for r in recs)
    assert not {r.metadata["scene_hash"] for r in train} & {r.metadata["scene_hash"] for r in test}
    assert len({r.metadata["scene_hash"] for r in train}) == len(train)
    hops = collections.Counter(r.metadata["question_type"] for r in train if r.metadata["family"] == "sequence")
    assert set(hops) <= {"hop1", "hop2", "hop3"} and len(hops) >= 2


def test_mcq_variants_balanced_and_same_gold_text(tmp_path):
    """--mcq-variants 4: every train MCQ four times, options rotated; each variant's gold letter points at the same
    option text, the letters are exactly balanced per family, the test split stays one MCQ per scene."""
    from mmreason.video.synth import mcq_variants

    generate(str(tmp_path), n=8, n_test=4, seed=5, mcq_variants_k=4)
    train, _ = load_records(tmp_path / "train_mcq.jsonl")
    test, _ = load_records(tmp_path / "test_mcq.jsonl")
    assert len(train) == 4 * 8 and len(test) == 4 and len({r.id for r in train}) == len(train)
    by_scene = collections.defaultdict(list)
    for r in train:
        by_scene[r.metadata["scene_hash"]].append(r)
    for variants in by_scene.values():
        assert len(variants) == 4 and sorted(r.answer for r in variants) == list("ABCD")
        assert len({r.gold_text() for r in variants}) == 1  # the same option text under four letters
        assert len({frozenset(r.choices) for r in variants}) == 1
        for r in variants:
            assert r.solution.endswith(f"<answer>\n{r.answer}\n</answer>")
    for fam in ("ball", "sequence"):
        letters = collections.Counter(r.answer for r in train if r.metadata["family"] == fam)
        assert set(letters.values()) == {len(train) // 8}, letters
    with pytest.raises(ValueError):
        mcq_variants(train[0], 5, "r")
    with pytest.raises(ValueError):
        generate(str(tmp_path / "bad"), n=2, n_test=1, mcq_variants_k=0)


def test_option_order_is_not_a_shortcut(synth_dir):
    """The distractors around the answer are not in one fixed order: with a fixed order (e.g. sorted), the answer is
    the one option out of place and a model could read it off the text."""
    recs = load_records(synth_dir / "train_mcq.jsonl")[0] + load_records(synth_dir / "test_mcq.jsonl")[0]
    ball = [r for r in recs if r.metadata["family"] == "ball"]
    others = [[c for c in r.choices if c != r.gold_text()] for r in ball]
    assert len(ball) >= 8 and len({tuple(o) for o in others}) > 4  # a fixed order gives one per outcome: 4


def test_sorted_option_order(tmp_path):
    """option_order 'sorted': options in alphabetical order and the gold letter where the answer falls; every ball
    MCQ has the same four lines in the same order, so its letter names the outcome (and the test file agrees)."""
    generate(str(tmp_path), n=8, n_test=4, seed=5, option_order="sorted")
    recs = load_records(tmp_path / "train_mcq.jsonl")[0] + load_records(tmp_path / "test_mcq.jsonl")[0]
    for r in recs:
        assert r.choices == sorted(r.choices) and r.choices[ord(r.answer) - 65] == r.gold_text()
    ball = [r for r in recs if r.metadata["family"] == "ball"]
    assert len({tuple(r.choices) for r in ball}) == 1
    assert len({(r.gold_text(), r.answer) for r in ball}) == len({r.gold_text() for r in ball})
    fb = json.loads((tmp_path / "test_futurebench.json").read_text())
    assert all(list(e["qa"]["Options"].values()) == sorted(e["qa"]["Options"].values()) for e in fb)


def test_strategy_formats(synth_dir):
    sft, _ = load_records(synth_dir / "train_sft.jsonl")
    assert all(r.question in SFT_QUESTION_POOL and r.solution == r.answer for r in sft)
    assert all(r.metadata["system_prompt"] is None and r.metadata["prompt_suffix"] == "" for r in sft)
    distill, _ = load_records(synth_dir / "train_distill.jsonl")
    for r in distill:
        assert re.fullmatch(r"<think>\n.+\n</think>\n<answer>\n.+\n</answer>", r.solution, re.S)
        assert r.solution.endswith(f"<answer>\n{r.answer}\n</answer>")
        assert r.metadata["system_prompt"] == DISTILL_SYSTEM_PROMPT
    cft, _ = load_records(synth_dir / "train_cft.jsonl")
    verdicts = collections.Counter(r.answer for r in cft)
    assert verdicts == {"wrong": 2 * len(cft) // 3 + (len(cft) % 3 == 2), "right": len(cft) - verdicts["wrong"]} or (
        abs(verdicts["wrong"] - 2 * verdicts["right"]) <= 2
    )
    for r in cft:
        assert r.question.startswith("Question:\n") and "\n\nSolution:\n\n<think>\n" in r.question
        assert r.solution.startswith("Critique:\n") and r.solution.endswith(f"\n\nConclusion:\n{r.answer}.")
        assert r.metadata["system_prompt"] == CFT_SYSTEM_PROMPT
    mix, _ = load_records(synth_dir / "train_mix.jsonl")
    assert collections.Counter(r.metadata["strategy"] for r in mix) == {"sft": 16, "cft": 16, "distill": 16}


def test_frame_list_matches_mp4_and_futurebench_file(synth_dir):
    recs, _ = load_records(synth_dir / "test_mcq.jsonl")
    rec = recs[0]
    a = load_record_video(rec, ALL_FRAMES)
    b = load_clip(synth_dir / rec.metadata["frame_list"], ALL_FRAMES, rec.video.start, rec.video.end)
    assert a.frames_indices == b.frames_indices
    fb = json.loads((synth_dir / "test_futurebench.json").read_text())
    assert [e["id"] for e in fb] == [r.id for r in recs]
    assert fb[0]["qa"]["Answer"] == rec.answer and fb[0]["qa"]["Options"]["A"] == rec.choices[0]
    from mmreason.eval.futurebench import video_file

    past = load_clip(video_file(fb[0], synth_dir), ALL_FRAMES)
    assert past.frames_indices == a.frames_indices  # the pre-cut past clip = the record's cut


def test_deterministic(tmp_path):
    generate(str(tmp_path / "a"), n=4, n_test=2, seed=1)
    generate(str(tmp_path / "b"), n=4, n_test=2, seed=1)
    for name in ("train_mcq.jsonl", "train_mix.jsonl", "test_cft.jsonl"):
        assert (tmp_path / "a" / name).read_text() == (tmp_path / "b" / name).read_text()
    generate(str(tmp_path / "c"), n=4, n_test=2, seed=2)
    assert (tmp_path / "a" / "train_mcq.jsonl").read_text() != (tmp_path / "c" / "train_mcq.jsonl").read_text()


def test_futurebench_official_video_reading_matches_media(synth_dir):
    """Our FutureBench video settings sample the same frames at the same size as the official reading."""
    from mmreason.eval.futurebench import futurebench_video, official_messages, official_video_inputs

    fb = json.loads((synth_dir / "test_futurebench.json").read_text())
    for doc in fb[:3]:
        video, meta = official_video_inputs(doc, synth_dir)
        msgs = official_messages(doc, synth_dir)
        ours = load_clip(msgs[1]["content"][0]["video"], futurebench_video())
        assert meta["frames_indices"] == ours.frames_indices and meta["total_num_frames"] == ours.total_num_frames
        assert tuple(video.shape[2:]) == (ours.frames[0].size[1], ours.frames[0].size[0])
        assert msgs[0] == {"role": "system", "content": "You are a helpful assistant."}
