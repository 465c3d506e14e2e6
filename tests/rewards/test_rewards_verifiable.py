"""accuracy / format / mcq_letter on crafted completions; registry; rewards never raise."""

import random

import pytest

from mmreason.rewards.registry import REWARDS, build_reward_funcs, register
from mmreason.rewards.verifiable import accuracy, format_reward, mcq_letter
from mmreason.rewards.vote import extract_vote
from mmreason.verify.answers import extract_boxed, extract_boxed_all
from mmreason.verify.text import boxed_spans, completion_text, final_box

CHOICES = ["red", "blue", "green"]


def conv(text):
    return [{"role": "assistant", "content": text}]


def run(func, completions, answers, types, choices=None, **kw):
    n = len(completions)
    return func(prompts=["q"] * n, completions=completions, completion_ids=[[1]] * n, answer=answers,
                answer_type=types, choices=choices or [None] * n, record_id=[str(i) for i in range(n)], **kw)


def test_boxed_spans_positions_and_order():
    cases = {  # text -> [(start, end, content)] worked out by hand, ordered by start
        r"a \boxed{1} b \boxed{\frac{1}{2}}": [(2, 11, "1"), (14, 33, r"\frac{1}{2}")],
        r"\boxed{\boxed{3}}": [(0, 17, r"\boxed{3}"), (7, 16, "3")],
        r"\fbox{x} \boxed{ y }": [(0, 8, "x"), (9, 20, "y")],
        r"\boxed{unclosed": [],
        r"} \boxed{2} {": [(2, 11, "2")],
        r"{ \boxed{a{b}c} ": [(2, 15, "a{b}c")],
        r"\boxed {7}": [(0, 10, "7")],
        "no box": [],
        "": [],
    }
    for t, want in cases.items():
        assert boxed_spans(t) == want, t
        assert extract_boxed_all(t) == [c for *_, c in want], t
    assert final_box(boxed_spans(r"\boxed{\boxed{3}}"))[2] == r"\boxed{3}"


def test_rewards_read_the_box_eval_reads():
    # Nested boxes: the answer is the last box to CLOSE (the outer one), in rewards, votes and eval alike.
    t = r"so \boxed{\boxed{2}+1}"
    assert extract_boxed(t) == r"\boxed{2}+1"
    assert extract_vote(conv(t)) == r"\boxed{2}+1"
    t = r"so \boxed{B \fbox{A}}"  # outer box says B, the inner (later-opening) one A
    assert extract_boxed(t) == r"B \fbox{A}"
    assert run(accuracy, [conv(t)], ["B"], ["choice"], [CHOICES], single_box=False) == [1.0]
    assert run(mcq_letter, [conv(t)], ["B"], ["choice"], [CHOICES], single_box=False) == [1.0]
    assert run(mcq_letter, [conv(t)], ["A"], ["choice"], [CHOICES], single_box=False) == [0.0]


def test_completion_text_forms():
    assert completion_text("x") == "x"
    assert completion_text(conv("y")) == "y"
    assert completion_text([{"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]) == "ab"
    assert completion_text(None) is None
    assert completion_text(3) is None
    assert completion_text([{"role": "user", "content": "not mine"}]) is None


def test_accuracy_types_and_forms():
    comps = [r"so \boxed{\frac{3}{4}}", conv(r"thus \boxed{0.75}"), r"\boxed{0.7}", "no box at all",
             r"\boxed{B}", r"\boxed{blue}", conv(r"\boxed{(A)}"), r"\boxed{12}"]
    answers = ["0.75", "0.75", "0.75", "0.75", "B", "B", "B", "12"]
    types = ["float"] * 4 + ["choice"] * 3 + ["integer"]
    choices = [None] * 4 + [CHOICES] * 3 + [None]
    assert run(accuracy, comps, answers, types, choices) == [1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0]


def test_accuracy_several_boxes_strict_by_default():
    hack = r"\boxed{red} red. " * 50
    comps = [hack, r"first \boxed{blue} then actually \boxed{red}", r"only \boxed{red}"]
    assert run(accuracy, comps, ["red"] * 3, ["text"] * 3) == [0.0, 0.0, 1.0]
    assert run(accuracy, comps, ["red"] * 3, ["text"] * 3, single_box=False) == [1.0, 1.0, 1.0]


def test_accuracy_without_gold_is_not_applicable():
    assert run(accuracy, [r"\boxed{1}", r"\boxed{2}"], [None, "2"], ["integer"] * 2) == [None, 1.0]
    # no answer column at all
    assert accuracy(prompts=["q"], completions=[r"\boxed{1}"], answer_type=["integer"]) == [None]


def test_format_reward():
    comps = [r"Two plus two is four. \boxed{4}", r"Reasoning... $\boxed{4}$.", r"\[ x \] so \[\boxed{4}\]",
             r"\boxed{4}", r"Reason \boxed{4} and more text after", r"Reason \boxed{4} \boxed{4}",
             r"Reason \boxed{}", "", None, conv(r"Because. \boxed{4}")]
    assert format_reward(completions=comps) == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]
    assert format_reward(completions=[r"ab \boxed{1}"], min_reasoning_chars=5) == [0.0]
    assert format_reward(completions=[r"abcdef \boxed{1}"], min_reasoning_chars=5, scale=0.1) == [0.1]


def test_mcq_letter():
    comps = [r"\boxed{B}", r"\boxed{(B) blue}", r"\boxed{blue}", r"\boxed{A}", "none", r"\boxed{7}"]
    answers = ["B"] * 5 + ["7"]
    types = ["choice"] * 5 + ["integer"]
    choices = [CHOICES] * 5 + [None]
    assert run(mcq_letter, comps, answers, types, choices) == [1.0, 1.0, 0.0, 0.0, 0.0, None]


def test_rewards_never_raise_on_junk():
    rng = random.Random(0)
    junk = [None, "", " ", 3, 2.5, {}, [], [{"role": "assistant"}], [{"content": None}], "\\boxed{", "}}}{{{",
            "\\boxed{" * 1000, "\\boxed{x}" * 1000, "ünïcödé \\boxed{ß²} 😀", "\\boxed{\x00\udcff}",
            "x" * (1 << 20) + "\\boxed{4}", "\\boxed{" * 100_000]
    junk += ["".join(rng.choice("\\{}boxed^_0123456789$ ") for _ in range(200)) for _ in range(20)]
    n = len(junk)
    cols = dict(answer=["4"] * n, answer_type=["integer"] * n, choices=[None] * n)
    for name in REWARDS:
        f = build_reward_funcs([name], num_generations=1)[0]
        out = f(prompts=["q"] * n, completions=junk, completion_ids=[[1]] * n, **cols)
        assert len(out) == n and all(v is None or isinstance(v, float) for v in out), name
    # broken columns: wrong lengths, wrong types
    for name in REWARDS:
        f = build_reward_funcs([name], num_generations=2)[0]
        out = f(prompts=None, completions=[r"\boxed{4}", "x"], answer="4", answer_type=5, choices=[[1, 2]])
        assert len(out) == 2
    big = "x" * (1 << 20) + r" \boxed{4}"
    assert run(accuracy, [big], ["4"], ["integer"]) == [1.0]


def test_registry_and_build():
    funcs = build_reward_funcs(["accuracy", "format", "mcq_letter", "majority_vote"], num_generations=4,
                               options={"accuracy": {"single_box": False}, "format": {"scale": 0.5}})
    assert [f.__name__ for f in funcs] == ["accuracy", "format", "mcq_letter", "majority_vote"]
    assert funcs[0].options == {"single_box": False}
    assert funcs[3].options["num_generations"] == 4
    assert funcs[1](completions=[r"why \boxed{1}"]) == [0.5]
    from trl.trainer.utils import get_callable_name

    assert get_callable_name(funcs[1]) == "format"
    with pytest.raises(ValueError, match="unknown reward"):
        build_reward_funcs(["nope"], 2)
    with pytest.raises(ValueError, match="no option"):
        build_reward_funcs(["format"], 2, options={"format": {"bogus": 1}})
    # common options go only where accepted
    f = build_reward_funcs(["format", "majority_vote"], 2, stop_token_ids=[0])
    assert "stop_token_ids" not in f[0].options and f[1].options["stop_token_ids"] == [0]

    @register("always_one_test")
    def always_one(prompts=None, completions=None, **kw):
        return [1.0] * len(completions)

    try:
        assert build_reward_funcs(["always_one_test"], 2)[0](completions=["a", "b"]) == [1.0, 1.0]
    finally:
        REWARDS.pop("always_one_test")


def test_named_reward_pickles():
    import pickle

    f = build_reward_funcs(["majority_vote"], num_generations=2)[0]
    g = pickle.loads(pickle.dumps(f))
    assert g.__name__ == "majority_vote" and g.options == f.options
