r"""`accuracy` mode official and the MM-UPT vote with grader mathruler are the official graders bug for bug:
RL-with-Cold-Start GRPO/examples/score_function/math.py

    answer = extract_boxed_content(predict_str)
    return 1.0 if grade_answer(answer, ground_truth) else 0.0

and MM-UPT verl/workers/reward/function.py (`grade_answer(extracted_answers[i], majority_items[i])` after a
Counter.most_common(1) majority of the extract_boxed_content strings)."""

from collections import Counter

import pytest

import mathruler.grader as mathruler

from mmreason.rewards.verifiable import accuracy
from mmreason.rewards.vote import majority_vote

# (completion, gold): the five cases where mathruler and math-verify disagree, then cases where they agree.
DISAGREE = [
    ("so \\boxed{2/4}", "1/2"),
    ("so \\boxed{50\\%}", "0.5"),
    ("first \\boxed{3}, then \\boxed{3", "3"),  # an unclosed last box
    ("\\boxed{\\{1,2\\}}", "\\{2,1\\}"),
    ("\\boxed{2\\times 10^3}", "2000"),
]
AGREE = [
    ("\\boxed{3}", "3"), ("\\boxed{4}", "3"), ("\\boxed{0.5}", "\\frac{1}{2}"), ("\\boxed{\\frac{1}{2}}", "1/2"),
    ("\\boxed{3.0}", "3"), ("\\boxed{2\\sqrt{2}}", "\\sqrt{8}"), ("\\boxed{x=3}", "3"), ("\\boxed{30^\\circ}", "30"),
    ("\\boxed{1,000}", "1000"), ("\\boxed{b}", "B"), ("\\boxed{\\text{B}}", "B"), ("no box at all: 3", "3"),
    ("\\boxed{\\boxed{2}}", "2"), ("The answer is \\boxed{7} and \\boxed{8}", "8"), ("\\boxed{ 12 }", "12"),
]


def official_math_py(predict_str: str, ground_truth: str) -> float:
    """GRPO/examples/score_function/math.py accuracy_reward, as written there."""
    answer = mathruler.extract_boxed_content(predict_str)
    return 1.0 if mathruler.grade_answer(answer, ground_truth) else 0.0


def _acc(cases, **opts):
    comps = [[{"role": "assistant", "content": c}] for c, _ in cases]
    return accuracy(completions=comps, answer=[g for _, g in cases], answer_type=["text"] * len(cases), **opts)


def test_official_mode_equals_mathruler_on_the_crafted_set():
    cases = DISAGREE + AGREE
    assert _acc(cases, mode="official") == [official_math_py(c, g) for c, g in cases]
    # the five cases of the issue: the official grader gives 0 where ours (last complete box, math-verify) gives 1
    assert _acc(DISAGREE, mode="official") == [0.0] * 5
    assert _acc(DISAGREE, single_box=False) == [1.0] * 5
    # and the two agree elsewhere
    assert _acc(AGREE, mode="official") == _acc(AGREE, single_box=False)


def test_official_mode_keeps_label_free_rows_not_applicable_and_rejects_unknown_modes():
    comps = [[{"role": "assistant", "content": "\\boxed{1}"}]] * 2
    assert accuracy(completions=comps, answer=[None, "1"], mode="official") == [None, 1.0]
    from mmreason.rewards.registry import build_reward_funcs

    with pytest.raises(ValueError, match=r"reward 'accuracy': option mode='mathrulr' is not one of \['verify', "
                                         r"'official'\]"):
        build_reward_funcs(["accuracy"], 4, {"accuracy": {"mode": "mathrulr"}})
    with pytest.raises(ValueError, match=r"option grader='math_ruler'"):
        build_reward_funcs(["majority_vote"], 4, {"majority_vote": {"grader": "math_ruler"}})
    assert len(build_reward_funcs(["accuracy"], 4, {"accuracy": {"mode": "official"}})) == 1


def _function_py(answers: list[str], n: int) -> list[float]:
    """MM-UPT function.py's scoring of extracted answers in groups of n."""
    out = []
    for g in range(len(answers) // n):
        group = answers[g * n:(g + 1) * n]
        majority = Counter(group).most_common(1)[0][0]
        out += [1.0 if mathruler.grade_answer(a, majority) else 0.0 for a in group]
    return out


def test_official_vote_with_mathruler_grader_equals_function_py():
    groups = [["\\boxed{1/2}", "\\boxed{2/4}", "\\boxed{1/2}", "\\boxed{0.5}"],
              ["\\boxed{2000}", "\\boxed{2\\times 10^3}", "x", "\\boxed{2000}"],
              ["\\boxed{3", "none", "\\boxed{3}", "\\boxed{3}"]]
    comps = [[{"role": "assistant", "content": t}] for g in groups for t in g]
    got = majority_vote(completions=comps, num_generations=4, vote_rule="official", grader="mathruler")
    assert got == _function_py([mathruler.extract_boxed_content(t) for g in groups for t in g], 4)
    assert got[1] == 0.0  # 2/4 vs the majority 1/2: mathruler 0 (math-verify would say 1)
