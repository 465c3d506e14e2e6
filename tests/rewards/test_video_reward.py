"""`answer_letter` (video GRPO's MCQ reward on <answer> tags): the strict default and the NEP paper's
official rule, on crafted completions."""

import pytest

from mmreason.rewards.answer_tag import answer_letter
from mmreason.rewards.registry import REWARDS, build_reward_funcs
from mmreason.verify.letters import strict_tag_letter as strict_letter

CHOICES = ["falls", "rolls", "stops", "jumps"]


@pytest.mark.parametrize(
    "completion, strict, official",
    [
        ("<think>it slows</think><answer>C</answer>", 1.0, 1.0),
        ("<think>x</think><answer>(C)</answer>", 1.0, 1.0),
        ("<think>x</think><answer>C. It stops.</answer>", 1.0, 1.0),
        ("<think>x</think><answer> c </answer>", 0.0, 0.0),  # lower case: no capital letter
        ("<think>x</think><answer>Based on the clip, C</answer>", 0.0, 0.0),  # official takes the B of "Based"
        ("<think>x</think><answer>Clearly it stops</answer>", 0.0, 1.0),  # official: the C of "Clearly"
        ("<think>x</think>C", 0.0, 0.0),  # no answer tag
        ("<answer>C</answer><answer>A</answer>", 1.0, 1.0),  # the first tag
        ("<answer>(C</answer>", 0.0, 1.0),
        ("<answer>C because it slows</answer>", 0.0, 1.0),
    ],
)
def test_strict_and_official(completion, strict, official):
    kw = dict(answer=["C"], answer_type=["choice"], choices=[CHOICES])
    assert answer_letter(None, [completion], **kw) == [strict]
    assert answer_letter(None, [completion], mode="official", **kw) == [official]


def test_rows_and_registry():
    out = answer_letter(None, ["<answer>A</answer>", "<answer>A</answer>", "<answer>E</answer>"],
                        answer=["A", None, "E"], answer_type=["choice", "choice", "choice"],
                        choices=[CHOICES, CHOICES, CHOICES + ["flies"]])
    assert out == [1.0, None, 1.0]  # 5 options: E is a valid letter
    assert answer_letter(None, ["<answer>A</answer>"], answer=["A"], answer_type=["text"], choices=[None]) == [None]
    assert strict_letter("<answer>E</answer>", 4) is None
    assert "answer_letter" in REWARDS
    f = build_reward_funcs(["answer_letter"], num_generations=2, options={"answer_letter": {"mode": "official"}})[0]
    assert f(None, ["<answer>Clearly</answer>"], answer=["C"], answer_type=["choice"], choices=[CHOICES]) == [1.0]
    # a bad mode is a bug in the config: the safe wrapper gives zeros, never a crash mid-run
    assert answer_letter(None, ["<answer>C</answer>"], mode="lenient", answer=["C"], answer_type=["choice"],
                         choices=[CHOICES]) == [0.0]


def test_official_rule_is_futurebench_reasoning_rule():
    """One rule in one place: the reward's official mode scores what FutureBench's reasoning mode extracts."""
    from mmreason.eval.futurebench import official_reasoning_letter

    for text in ["<answer>Based on it, C</answer>", "<answer>\nD\n</answer>", "C", "<answer>" + "word " * 12 + "</answer>",
                 "<answer>(a)</answer>", "<think>A</think><answer>none</answer>"]:
        for gold in "ABCD":
            got = answer_letter(completions=[text], answer=[gold], answer_type=["choice"], choices=[CHOICES],
                                mode="official")
            assert got == [1.0 if official_reasoning_letter(text).lower() == gold.lower() else 0.0], (text, gold)


@pytest.mark.parametrize(
    "completion, reward",
    [
        ("C", 1.0),
        ("C.", 1.0),
        (" (C) it stops", 1.0),
        ("The answer is C", 1.0),  # an official prefix, removed
        ("Best option: C", 0.0),  # the official list's missing comma: never removed, the "B" of "Best" counts
        ("Based on the clip, C", 0.0),  # the "B" of "Based"
        ("Clearly", 1.0),  # the "C" of "Clearly"
        ("c", 0.0),  # lower case: no capital A-D
        ("<think>x</think><answer>A</answer>", 0.0),  # tags mean nothing here: the first capital A-D anywhere
        ("the ball stops at the wall and then stays there for a while longer", 0.0),  # > 10 words, no A-D
        ("", 0.0),
        ("D", 0.0),
    ],
)
def test_futurebench_mode(completion, reward):
    """Mode 'futurebench' reads a bare-letter completion as FutureBench's eval does (its quirks included) and
    agrees with the benchmark's own scoring of the same response, item by item."""
    from mmreason.eval.futurebench import score

    kw = dict(answer=["C"], answer_type=["choice"], choices=[CHOICES])
    got = answer_letter(None, [[{"role": "assistant", "content": completion}]], mode="futurebench", **kw)
    assert got == [reward]
    doc = {"id": "x", "question_type": "hop1",
           "qa": {"Question": "q", "Options": dict(zip("ABCD", CHOICES)), "Answer": "C"}}
    assert score({"x": completion}, [doc])["per_item"]["x"]["correct"] == (reward == 1.0)


def test_futurebench_mode_rows():
    out = answer_letter(None, ["B", "B", "B", "B"], mode="futurebench", answer=["b", "B", None, "B"],
                        answer_type=["choice", "choice", "choice", "text"], choices=[CHOICES, CHOICES, CHOICES, None])
    assert out == [1.0, 1.0, None, None]  # the gold is upper-cased as FutureBench does; non-MCQ rows: None
    f = build_reward_funcs(["answer_letter"], num_generations=2, options={"answer_letter": {"mode": "futurebench"}})[0]
    assert f(None, ["Clearly"], answer=["C"], answer_type=["choice"], choices=[CHOICES]) == [1.0]
