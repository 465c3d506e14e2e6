"""MM-UPT majority vote: clustering, ties, invalid votes, min support, check-count bound, metrics,
and a 2-process (gloo) run that matches the single-process rewards."""

import json
import math
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import mmreason.rewards.vote as vote_mod
from mmreason.rewards.registry import build_reward_funcs
from mmreason.rewards.vote import cluster_groups, majority_vote

REPO = Path(__file__).resolve().parents[2]


def box(x):
    return rf"Some reasoning. \boxed{{{x}}}"


def mv(completions, G, **kw):
    n = len(completions)
    kw.setdefault("answer_type", ["text"] * n)
    return majority_vote(["q"] * n, completions, G, **kw)


def test_importable_with_trl_signature():
    from mmreason.rewards.registry import builtin_rewards

    assert builtin_rewards()["majority_vote"].func is majority_vote and callable(majority_vote)
    f = build_reward_funcs(["majority_vote"], num_generations=3)[0]
    out = f(prompts=["q"] * 3, completions=[box(1), box(1), box(2)], completion_ids=[[1]] * 3,
            answer=[None] * 3, answer_type=["integer"] * 3, choices=[None] * 3, record_id=["r"] * 3,
            trainer_state=None, log_extra=lambda *a: None, log_metric=lambda *a: None)
    assert out == [1.0, 1.0, 0.0]


def test_equivalent_forms_cluster_together():
    comps = [box(r"\frac{3}{4}"), box("0.75"), box("3/4"), box("1"), box(r"\dfrac{3}{4}")]
    assert mv(comps, 5) == [1.0, 1.0, 1.0, 0.0, 1.0]


def test_conversational_and_groups_are_independent():
    comps = [[{"role": "assistant", "content": box(2)}], box(2), box(3), box(5), box(5), box(6)]
    assert mv(comps, 3) == [1.0, 1.0, 0.0, 1.0, 1.0, 0.0]


def test_multiple_choice_votes_by_letter_or_option_text():
    choices = [["red", "blue", "green"]] * 5
    comps = [box("B"), box("blue"), box("(B) blue"), box("A"), box("purple")]
    assert mv(comps, 5, answer_type=["choice"] * 5, choices=choices) == [1.0, 1.0, 1.0, 0.0, 0.0]


def test_long_numeric_vote_is_bounded_in_process():
    import time

    t0 = time.monotonic()
    out = mv([box("1" * 999 + "!"), box("A"), box("A")], 3, answer_type=["choice"] * 3, choices=[["1", "2"]] * 3)
    assert out == [0.0, 1.0, 1.0] and time.monotonic() - t0 < 1.0


def test_tie_rules():
    comps = [box(2), box(1), box(1), box(2)]
    assert mv(comps, 4) == [1.0, 0.0, 0.0, 1.0]  # "first": the tied cluster whose first member is earliest
    assert mv(comps, 4, ties="none") == [0.0] * 4


def test_invalid_answers_never_vote_or_win():
    comps = ["no box", "no box either", r"truncated \boxed{5", box(5)]
    assert mv(comps, 4) == [0.0, 0.0, 0.0, 1.0]  # the reference code would let "None" win 3:1
    assert mv(["", None, "x", r"\boxed{}"], 4) == [0.0] * 4
    ids = [[5, 2], [5, 9], [5, 2], [5, 9]]  # 2 = eos: completions 1 and 3 were cut at the length cap
    comps = [box(1), box(7), box(1), box(7)]
    assert mv(comps, 4, completion_ids=ids, stop_token_ids=[2]) == [1.0, 0.0, 1.0, 0.0]
    assert mv([box(7), box(7), box(1)], 3, completion_ids=[[2], [9], [2]], stop_token_ids=[2]) == [1.0, 0.0, 0.0]


def test_min_support_over_valid_votes():
    comps = [box(1), box(2), box(3), box(3)]
    assert mv(comps, 4, min_support=0.6) == [0.0] * 4
    assert mv(comps, 4, min_support=0.5) == [0.0, 0.0, 1.0, 1.0]
    comps = [box(1), box(1), "none", "none"]  # 2 of 2 valid votes
    assert mv(comps, 4, min_support=0.9) == [1.0, 1.0, 0.0, 0.0]


def test_check_count_bound(monkeypatch):
    calls = []
    real = vote_mod.pool_eq_batch

    def counting(*a, **k):
        eq = real(*a, **k)

        def wrapped(pairs):
            calls.append(len(pairs))
            return eq(pairs)

        return wrapped

    monkeypatch.setattr(vote_mod, "pool_eq_batch", counting)
    G = 8
    same = [box(r"\frac{1}{2}")] * 4 + [box("0.5")] * 4  # 1 cluster
    mv(same, G)
    assert sum(calls) <= G * 1 and sum(calls) == G - 1
    calls.clear()
    distinct = [box(k) for k in range(G)]  # G clusters: worst case
    mv(distinct, G)
    assert sum(calls) <= G * G and sum(calls) == G * (G - 1) // 2
    calls.clear()
    three = [box(k % 3) for k in range(G)]  # 3 clusters
    mv(three, G)
    assert sum(calls) <= G * 3


def test_cluster_groups_pure():
    def eq(pairs):
        return [a.lower() == b.lower() for a, b, _, _ in pairs]

    groups = [[("A", "text", None), ("b", "text", None), (None, "text", None), ("a", "text", None), ("B", "text", None)]]
    assert cluster_groups(groups, eq) == [[[0, 3], [1, 4]]]
    assert cluster_groups([[(None, "text", None)] * 3], eq) == [[]]
    # a failed check (None) counts as "different"
    assert cluster_groups([[("x", "t", None), ("x", "t", None)]], lambda p: [None] * len(p)) == [[[0], [1]]]


def test_metrics_and_gold_never_used_for_reward():
    comps = [box(1), box(1), box(2), "none", box(5), box(6), box(6), box(6)]
    logged = []
    out_gold = mv(comps, 4, answer=["2"] * 4 + ["6"] * 4, log_metric=lambda k, v: logged.append((k, v)))
    out_none = mv(comps, 4, answer=[None] * 8)
    assert out_gold == out_none == [1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0]
    got = {}
    for k, v in logged:
        got.setdefault(k, []).append(v)
    assert got["majority_vote/pseudo_label_accuracy"] == [0.0, 1.0]
    assert got["majority_vote/no_majority_frac"] == [0.0, 0.0]
    assert got["majority_vote/reward_mean"] == [0.5, 0.75]
    assert got["majority_vote/cluster_entropy"][0] == pytest.approx(-(2 / 3) * __import__("math").log(2 / 3) - (1 / 3) * __import__("math").log(1 / 3))
    assert got["majority_vote/valid_vote_frac"] == [0.75, 1.0]
    logged.clear()
    mv(["none"] * 4, 4, log_metric=lambda k, v: logged.append((k, v)))
    assert ("majority_vote/no_majority_frac", 1.0) in logged


def test_bad_group_size_logged_not_raised(caplog):
    logged = []
    assert mv([box(1)] * 3, 2, log_metric=lambda k, v: logged.append(k)) == [0.0] * 3
    assert "majority_vote/internal_errors" in logged
    assert mv([box(1)] * 3, None) == [0.0] * 3


# ---------------------------------------------------------------- two processes (gloo on 127.0.0.1)
RANK_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import torch.distributed as dist
    from mmreason.rewards.vote import majority_vote

    def main():
        dist.init_process_group("gloo", init_method="tcp://127.0.0.1:" + os.environ["PORT"],
                                rank=int(os.environ["RANK"]), world_size=2)
        rank = dist.get_rank()
        data = json.load(open(sys.argv[1]))
        out = {}
        for name, case in data.items():
            lo, hi = case["splits"][rank]
            sl = slice(lo, hi)
            logged = []
            rewards = majority_vote(
                ["q"] * (hi - lo), case["completions"][sl], case["G"], answer_type=case["types"][sl],
                answer=case["answers"][sl], log_metric=lambda k, v: logged.append([k, v]))
            out[name] = {"rewards": rewards, "logged": logged}
        json.dump(out, open(sys.argv[2] + f".{rank}", "w"))
        dist.destroy_process_group()

    if __name__ == "__main__":
        main()
    """
)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_match_single_process(tmp_path):
    G = 4
    # group 1 straddles the ranks: rank 0 alone sees a 5-vs-7 tie (and would pick 5); the whole group picks 7
    completions = [box(1), box(1), box(2), "none",
                   box(5), box(7), box(7), box(r"\frac{14}{2}"),
                   box("x+1"), box("1+x"), box("y"), box("y")]
    types = ["integer"] * 8 + ["text"] * 4
    answers = ["1"] * 4 + ["7"] * 4 + [None] * 4
    cases = {
        "even": {"splits": [[0, 6], [6, 12]]},
        "uneven": {"splits": [[0, 5], [5, 12]]},
    }
    for c in cases.values():
        c.update(G=G, completions=completions, types=types, answers=answers)
    (tmp_path / "in.json").write_text(json.dumps(cases))
    (tmp_path / "rank.py").write_text(RANK_SCRIPT)
    env = {**os.environ, "PORT": str(_free_port()), "MMREASON_VERIFY_WORKERS": "1",
           "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    procs = [subprocess.Popen([sys.executable, str(tmp_path / "rank.py"), str(tmp_path / "in.json"),
                               str(tmp_path / "out")], env={**env, "RANK": str(r)}, cwd=str(tmp_path),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for r in range(2)]
    logs = [p.communicate(timeout=240)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), logs
    outs = [json.loads((tmp_path / f"out.{r}").read_text()) for r in range(2)]

    single_logged = []
    single = majority_vote(["q"] * 12, completions, G, answer_type=types, answer=answers,
                           log_metric=lambda k, v: single_logged.append([k, v]))
    assert single == [1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0]
    lo_only = majority_vote(["q"] * 4, completions[4:6] + ["none", "none"], G)
    assert lo_only[:2] == [1.0, 0.0]  # the straddling group really needs the other rank's votes
    for name in cases:
        assert outs[0][name]["rewards"] + outs[1][name]["rewards"] == single, name
        # metrics: every group logged exactly once across ranks, so TRL's cross-rank mean is the global mean
        both = sorted(map(tuple, outs[0][name]["logged"] + outs[1][name]["logged"]))
        assert [x for x in both if x[0] != "majority_vote/verify_failures"] == sorted(
            tuple(x) for x in single_logged if x[0] != "majority_vote/verify_failures")


# ------------------------------------------------------------------ vote_rule: official (MM-UPT's string majority)


def test_official_rule_is_a_string_majority():
    comps = [box(r"\frac{1}{2}"), box("0.5"), box("1/2"), box(3), box(3)]
    assert mv(comps, 5, vote_rule="official") == [0.0, 0.0, 0.0, 1.0, 1.0]
    assert mv(comps, 5) == [1.0, 1.0, 1.0, 0.0, 0.0]  # equivalence: the three halves form the majority


def test_official_rule_lets_none_win():
    comps = ["no box", "still no box", r"unclosed \boxed{7", box(7), box(7)]
    assert mv(comps, 5, vote_rule="official") == [1.0, 1.0, 1.0, 0.0, 0.0]
    assert mv(comps, 5) == [0.0, 0.0, 0.0, 1.0, 1.0]
    # a literal \boxed{None} is the same vote as no box, as in the official code
    assert mv([box("None"), "no box", box(2)], 3, vote_rule="official") == [1.0, 1.0, 0.0]


def test_official_rule_details():
    # last box by position: an unclosed last box makes the vote "None" even after a complete one
    assert vote_mod.official_vote(r"\boxed{2} then \boxed{3") == "None"
    assert vote_mod.official_vote(r"\boxed{ \frac{1}{2} }") == r"\frac{1}{2}"
    assert vote_mod.official_vote(r"\boxed{2}, no, \boxed{3}") == "3"
    # ties go to the string seen first; members equivalent to the label are rewarded too
    assert mv([box(2), box(1), box(1), box(2)], 4, vote_rule="official") == [1.0, 0.0, 0.0, 1.0]
    assert mv([box("1/2"), box("1/2"), box("0.5"), box(3)], 4, vote_rule="official") == [1.0, 1.0, 1.0, 0.0]
    # truncated completions and non-option answers vote (the equivalence rule drops them)
    ids = [[5, 9], [5, 9], [5, 2]]
    assert mv([box(1), box(1), box(7)], 3, completion_ids=ids, stop_token_ids=[2], vote_rule="official") == [1.0, 1.0, 0.0]
    assert mv([box(1), box(1), box(7)], 3, completion_ids=ids, stop_token_ids=[2]) == [0.0, 0.0, 1.0]
    choices = [["red", "blue"]] * 3
    assert mv([box("purple"), box("purple"), box("A")], 3, answer_type=["choice"] * 3, choices=choices,
              vote_rule="official") == [1.0, 1.0, 0.0]


def test_official_rule_options_and_registry():
    f = build_reward_funcs(["majority_vote"], 5, options={"majority_vote": {"vote_rule": "official"}})[0]
    comps = [box(r"\frac{1}{2}"), box("0.5"), box("1/2"), box(3), box(3)]
    assert f(prompts=["q"] * 5, completions=comps, answer_type=["text"] * 5) == [0.0, 0.0, 0.0, 1.0, 1.0]
    metrics = {}
    log = lambda k, v: metrics.setdefault(k, []).append(v)  # noqa: E731
    assert mv(comps, 5, vote_rule="bogus", log_metric=log) == [0.0] * 5  # a bad option: logged zeros, no crash
    assert metrics["majority_vote/internal_errors"] == [1]
    assert mv(comps, 5, vote_rule="official", ties="none") == [0.0] * 5


def test_official_rule_metrics():
    metrics = {}
    log = lambda k, v: metrics.setdefault(k, []).append(v)  # noqa: E731
    comps = ["no box", "no box", box(7)]
    assert mv(comps, 3, vote_rule="official", answer=["7"] * 3, log_metric=log) == [1.0, 1.0, 0.0]
    assert metrics["majority_vote/reward_mean"] == [pytest.approx(2 / 3)]
    assert metrics["majority_vote/no_majority_frac"] == [0.0]
    assert metrics["majority_vote/pseudo_label_accuracy"] == [0.0]  # the label "None" is not the gold 7
    assert metrics["majority_vote/cluster_entropy"][0] == pytest.approx(-(2 / 3) * math.log(2 / 3) - (1 / 3) * math.log(1 / 3))
