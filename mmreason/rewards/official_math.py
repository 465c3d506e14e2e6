r"""The official graders of RL-with-Cold-Start and MM-UPT, bug for bug: both call `mathruler` (pinned 0.1.0, the
package their code imports).

- RLCS GRPO/examples/score_function/math.py `accuracy_reward`: `extract_boxed_content` (the text after the LAST
  `\boxed{`, brace-matched; the string "None" when it does not close) graded by `grade_answer(answer, ground_truth)`.
- MM-UPT verl/workers/reward/function.py: `grade_answer(answer, majority)` for each member of a group.

Known differences from our math-verify grading (mathruler gives 0, ours 1): 2/4 vs 1/2, 50\% vs 0.5, an unclosed
last box after a complete one, \{1,2\} vs \{2,1\}, 2\times 10^3 vs 2000. Like the official code, grading runs
in-process without a timeout."""

from __future__ import annotations

from mathruler.grader import extract_boxed_content, grade_answer


def official_accuracy(predict_str: str, ground_truth: str) -> float:
    """RLCS math.py `accuracy_reward` (its `compute_score` returns it as `overall`; the format score is 0)."""
    answer = extract_boxed_content(predict_str)
    return 1.0 if grade_answer(answer, ground_truth) else 0.0


def mathruler_eq_batch(pairs) -> list[bool]:
    """MM-UPT's per-member check against the group's majority string, for `official_vote_groups`."""
    return [bool(grade_answer(answer, label)) for answer, label, *_ in pairs]
