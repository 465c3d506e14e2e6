r"""MM-UPT majority-vote reward: the most common answer of a prompt's G completions is the pseudo-label.

For each group (consecutive blocks of `num_generations` completions, TRL's layout):
1. Each completion votes with its last `\boxed{}` answer. Completions without a complete box, with an
   over-long answer, truncated ones (when `stop_token_ids` is bound: last token not eos/pad), and,
   on multiple-choice rows, answers that name no option never vote and get 0 (unlike the reference
   code, where the string "None" could win).
   Multiple choice: an answer votes for an option letter — the letter itself ('B', '(B)', 'B. ...'),
   else the option whose normalised text it equals, else the option with the same number.
2. Votes are clustered by equivalence (`match_answer` with the cluster's first member as "gold":
   math-verify for expressions, through the timed process pool): leader clustering — the first
   unassigned answer opens a cluster and every still-unassigned answer is checked against it, in
   one pool batch per round across all groups. That is at most G x (number of clusters) checks per
   group, never G^2, and gives the same clusters as sequential "join the first matching cluster".
   A check that times out or errors counts as "not equivalent" (counted and logged).
3. The pseudo-label is the largest cluster. Tie rule (`ties`): "first" (default) - the tied cluster
   whose first member comes earliest in the group wins; "none" - a tie means no majority.
   `min_support`: if the winner holds less than this fraction of the VALID votes, no majority.
4. Reward 1.0 for completions in the winning cluster, 0.0 otherwise; a group without a majority gets 0.

Across processes: TRL scores each rank's contiguous slice of the global batch and gathers the rewards
in rank order, so a group can straddle ranks. When torch.distributed is initialised with more than
one process, the (small) extracted answers are all-gathered, concatenated in rank order, grouped in
blocks of G exactly as TRL does, and each rank returns its own slice. Every rank must call this
reward the same number of times (TRL does).

Gold answers, when present, are used for one logged metric (pseudo-label accuracy), never for reward.

`vote_rule` (reward option): "equivalence" (default) is the rule above. "official" reproduces MM-UPT's
reward (waltonfuture/MM-UPT, verl/workers/reward/function.py) for a faithful reproduction:
- every completion votes with the text of its LAST `\boxed{` (found by position, then brace-matched,
  stripped), or the string "None" when that box is missing or unclosed (mathruler's
  `extract_boxed_content`); truncated, over-long and multiple-choice answers vote like any other;
- the pseudo-label is the most frequent exact string of the group (Counter.most_common: a tie goes to
  the string seen first), so "None" wins when most completions have no box, and `0.5`, `1/2` and
  `\frac{1}{2}` are three different votes;
- reward = 1.0 when the answer grades equal to the pseudo-label, else 0.0: identical strings are equal
  (as in mathruler's `grade_answer`), other pairs go through our equivalence check (math-verify) where
  the official code calls mathruler's `grade_answer` - the two graders differ on a few forms (unreduced
  fractions, sets in another order, percent vs decimal: see configs/grpo/qwen2_5_vl_7b_unsupervised.yaml).
  An answer outside the winning string can thus be rewarded (`0.5` when the label is `1/2`).
`ties` and `min_support` belong to the equivalence rule (an error with "official").
"""

from __future__ import annotations

import logging
import math
import sys
from dataclasses import dataclass
from typing import Callable, Literal, Sequence

from mmreason.records import LETTERS
from mmreason.rewards.columns import column, emit_metric
from mmreason.rewards.registry import register
from mmreason.verify import (
    MAX_ANSWER_CHARS,
    QUICK_MAX_CHARS,
    boxed_spans,
    completion_text,
    extract_letter,
    final_box,
    normalize_text,
    to_number,
    verify_many,
)
from mmreason.rewards.official_math import mathruler_eq_batch

logger = logging.getLogger("mmreason.rewards")

# eq_batch(pairs) -> list[bool | None]; a pair is (answer, representative, answer_type, precision);
# None means the check failed (timeout/error) and is treated as "not equivalent".
EqBatch = Callable[[list[tuple]], list]


VOTE_RULES = ("equivalence", "official")
NO_BOX = "None"  # mathruler's extract_boxed_content answer for a completion without a complete last box


@dataclass
class GroupVote:
    clusters: list[list[int]]  # member indices (within the group), clusters in creation order
    winner: int | None  # index into clusters, or None (no valid vote / tie under "none" / low support)
    n_valid: int
    scores: list[float] | None = None  # per-member rewards when they are not "in the winning cluster" (official)

    @property
    def label_index(self) -> int | None:
        return None if self.winner is None else self.clusters[self.winner][0]

    def rewards(self, size: int) -> list[float]:
        if self.scores is not None:
            return list(self.scores)
        out = [0.0] * size
        if self.winner is not None:
            for j in self.clusters[self.winner]:
                out[j] = 1.0
        return out

    def entropy(self) -> float:
        if not self.n_valid:
            return 0.0
        return 0.0 - sum((len(c) / self.n_valid) * math.log(len(c) / self.n_valid) for c in self.clusters)


def choice_vote(pred: str, choices: Sequence[str]) -> str | None:
    """The option letter an answer names on a multiple-choice row, or None."""
    letter = extract_letter(pred, len(choices))
    if letter is not None:
        return letter
    norm = normalize_text(pred)
    for k, opt in enumerate(choices):
        if normalize_text(str(opt)) == norm:
            return LETTERS[k]
    v = to_number(pred) if len(pred) <= QUICK_MAX_CHARS else None  # see mmreason.verify.pool.QUICK_MAX_CHARS
    if v is not None:
        for k, opt in enumerate(choices):
            o = to_number(str(opt)) if len(str(opt)) <= QUICK_MAX_CHARS else None
            if o is not None and math.isclose(v, o, rel_tol=1e-6, abs_tol=1e-9):
                return LETTERS[k]
    return None


def extract_vote(completion, answer_type=None, choices=None, completion_ids=None, stop_token_ids=None) -> str | None:
    """A completion's vote (None = invalid: no box, truncated, too long, names no option)."""
    if stop_token_ids and completion_ids is not None:
        try:
            if len(completion_ids) == 0 or int(completion_ids[-1]) not in stop_token_ids:
                return None
        except (TypeError, ValueError):
            pass
    spans = boxed_spans(completion_text(completion))
    if not spans:
        return None
    pred = final_box(spans)[2]
    if not pred or len(pred) > MAX_ANSWER_CHARS:
        return None
    if answer_type == "choice" and choices:
        return choice_vote(pred, list(choices))
    return pred


def official_vote(completion) -> str:
    r"""MM-UPT's vote: the stripped content of the last `\boxed{` when its braces close, else "None"."""
    text = completion_text(completion) or ""
    start = text.rfind("\\boxed{")
    if start < 0:
        return NO_BOX
    depth = 0
    body = text[start + len("\\boxed{") :]
    for k, ch in enumerate(body):
        depth += (ch == "{") - (ch == "}")
        if depth < 0:
            return body[:k].strip()
    return NO_BOX


def official_vote_groups(groups: list[list[str]], eq_batch: EqBatch) -> list[GroupVote]:
    """MM-UPT's rule: the most frequent exact string wins (ties: first seen); each member scores 1.0 when
    it equals the label or the equivalence check says so. All groups' checks go in one eq_batch call."""
    out, pairs, owners = [], [], []
    for g, votes in enumerate(groups):
        members: dict[str, list[int]] = {}
        for j, v in enumerate(votes):
            members.setdefault(v, []).append(j)
        clusters = list(members.values())  # in first-seen order
        best = max((len(c) for c in clusters), default=0)
        winner = next((k for k, c in enumerate(clusters) if len(c) == best), None)
        scores = [0.0] * len(votes)
        if winner is not None:
            label = votes[clusters[winner][0]]
            for j, v in enumerate(votes):
                if v == label:
                    scores[j] = 1.0
                else:
                    pairs.append((v, label, "text", None))
                    owners.append((g, j))
        out.append(GroupVote(clusters, winner, len(votes), scores))
    for (g, j), same in zip(owners, eq_batch(pairs) if pairs else []):
        if same:
            out[g].scores[j] = 1.0
    return out


def pool_eq_batch(timeout: float | None = None, failures: list | None = None) -> EqBatch:
    """Equivalence through the timed pool (choice letters compare by equality, in-process)."""

    def eq(pairs):
        out: list = [None] * len(pairs)
        items, where = [], []
        for k, (a, rep, answer_type, precision) in enumerate(pairs):
            if answer_type == "choice":
                out[k] = a == rep
            else:
                items.append((a, rep, answer_type or "text", None, precision))
                where.append(k)
        for k, r in zip(where, verify_many(items, timeout=timeout) if items else []):
            out[k] = None if r.failed else r.correct
            if r.failed and failures is not None:
                failures.append(r)
        return out

    return eq


def cluster_groups(groups: list[list[tuple]], eq_batch: EqBatch) -> list[list[list[int]]]:
    """Leader clustering of every group at once. groups[g][j] = (vote | None, answer_type, precision).
    Returns, per group, clusters as lists of member indices; invalid votes are in no cluster."""
    clusters: list[list[list[int]]] = [[] for _ in groups]
    unassigned = [[j for j, v in enumerate(grp) if v[0] is not None] for grp in groups]
    while any(unassigned):
        pairs, owners = [], []
        for g, rest in enumerate(unassigned):
            if not rest:
                continue
            lead = rest[0]
            clusters[g].append([lead])
            _, atype, prec = groups[g][lead]
            for j in rest[1:]:
                pairs.append((groups[g][j][0], groups[g][lead][0], atype, prec))
                owners.append((g, j))
            unassigned[g] = []  # refilled below with the members that did not join
        verdicts = eq_batch(pairs) if pairs else []
        for (g, j), same in zip(owners, verdicts):
            if same:
                clusters[g][-1].append(j)
            else:
                unassigned[g].append(j)
    return clusters


def pick_winner(clusters: list[list[int]], n_valid: int, ties: str = "first", min_support: float = 0.0) -> int | None:
    if not clusters:
        return None
    best = max(len(c) for c in clusters)
    tied = [k for k, c in enumerate(clusters) if len(c) == best]
    if len(tied) > 1 and ties == "none":
        return None
    winner = min(tied, key=lambda k: clusters[k][0])  # "first": earliest first member
    if n_valid and best / n_valid < min_support:
        return None
    return winner


def vote_groups(groups: list[list[tuple]], eq_batch: EqBatch, ties: str = "first", min_support: float = 0.0) -> list[GroupVote]:
    out = []
    for grp, cl in zip(groups, cluster_groups(groups, eq_batch)):
        n_valid = sum(v[0] is not None for v in grp)
        out.append(GroupVote(cl, pick_winner(cl, n_valid, ties, min_support), n_valid))
    return out


def _gather(local: list) -> tuple[list, int]:
    """(global list in rank order, offset of this rank's slice). Single process: (local, 0)."""
    if "torch" not in sys.modules:
        return local, 0
    import torch.distributed as dist  # lazy: only where torch is loaded already (checked above)

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return local, 0
    parts: list = [None] * dist.get_world_size()
    dist.all_gather_object(parts, local)
    rank = dist.get_rank()
    return [x for p in parts for x in p], sum(len(p) for p in parts[:rank])


@register("majority_vote", group_aware=True)
def majority_vote(
    prompts=None,
    completions=None,
    num_generations: int | None = None,
    *,
    completion_ids=None,
    answer=None,
    answer_type=None,
    choices=None,
    precision=None,
    record_id=None,
    min_support: float = 0.0,
    ties: str = "first",
    vote_rule: str = "equivalence",
    grader: Literal["verify", "mathruler"] = "verify",
    stop_token_ids=None,
    timeout: float | None = None,
    log_metric=None,
    log_extra=None,
    **kwargs,
) -> list[float]:
    """1.0 if the completion's boxed answer is in its group's largest answer cluster, else 0.0 (MM-UPT).
    vote_rule "official": MM-UPT's exact-string majority (see the module docstring). grader "mathruler" (with
    vote_rule official): each member is checked against the majority with mathruler's grade_answer, as MM-UPT's
    verl/workers/reward/function.py does; "verify" (default): math-verify."""
    completions = list(completions or [])
    n = len(completions)
    try:
        return _majority_vote(
            completions, n, num_generations, completion_ids, answer, answer_type, choices, precision, record_id,
            min_support, ties, set(stop_token_ids) if stop_token_ids else None, timeout, log_metric, log_extra,
            vote_rule, grader,
        )
    except Exception:  # noqa: BLE001 - a reward never crashes the run
        logger.exception("majority_vote failed on a batch of %d; giving 0.0", n)
        emit_metric(log_metric, "majority_vote/internal_errors", 1)
        return [0.0] * n


def _majority_vote(completions, n, G, completion_ids, answer, answer_type, choices, precision, record_id,
                   min_support, ties, stop_ids, timeout, log_metric, log_extra, vote_rule,
                   grader: str = "verify") -> list[float]:
    if ties not in ("first", "none"):
        raise ValueError(f"ties must be 'first' or 'none', got {ties!r}")
    if vote_rule not in VOTE_RULES:
        raise ValueError(f"vote_rule must be one of {list(VOTE_RULES)}, got {vote_rule!r}")
    official = vote_rule == "official"
    if grader not in ("verify", "mathruler") or (grader == "mathruler" and not official):
        raise ValueError(f"grader must be 'verify' or 'mathruler' (the latter with vote_rule 'official'), got {grader!r}")
    if official and (ties != "first" or min_support):
        raise ValueError("ties and min_support apply to vote_rule 'equivalence'; 'official' is MM-UPT's rule as is")
    types, opts, precs = column(answer_type, n), column(choices, n), column(precision, n)
    golds, rids, cids = column(answer, n), column(record_id, n), column(completion_ids, n)
    local = []
    for i, c in enumerate(completions):
        try:  # never raise before the all-gather below: the other ranks would wait forever
            vote = official_vote(c) if official else extract_vote(c, types[i], opts[i], cids[i], stop_ids)
        except Exception:  # noqa: BLE001
            logger.warning("majority_vote: could not read completion %d; it does not vote", i, exc_info=True)
            vote = NO_BOX if official else None
        local.append((vote, types[i], opts[i], precs[i], golds[i], rids[i]))
    if callable(log_extra):  # the vote of each completion, for TRL's completions table
        try:
            log_extra("majority_vote/answer", [row[0] for row in local])
        except Exception:  # noqa: BLE001
            logger.debug("log_extra failed", exc_info=True)
    rows, offset = _gather(local)
    total = len(rows)
    if not G or G < 1 or total % G:
        logger.error("majority_vote: %d completions do not split into groups of num_generations=%r; giving 0.0",
                     total, G)
        emit_metric(log_metric, "majority_vote/internal_errors", 1)
        return [0.0] * n
    first_g, last_g = offset // G, (offset + n - 1) // G if n else offset // G - 1
    group_ids = list(range(first_g, last_g + 1))
    groups = [[(r[0], r[1], r[3]) for r in rows[g * G : (g + 1) * G]] for g in group_ids]
    for g in group_ids:
        ids = {r[5] for r in rows[g * G : (g + 1) * G]}
        if len(ids) > 1:
            logger.warning("majority_vote: group %d mixes record ids %s: is num_generations=%d right "
                           "(e.g. num_generations_eval differs)?", g, sorted(map(str, ids))[:4], G)
            break
    failures: list = []
    if official:
        eq = mathruler_eq_batch if grader == "mathruler" else pool_eq_batch(timeout, failures)
        votes = official_vote_groups([[v[0] for v in grp] for grp in groups], eq)
    else:
        votes = vote_groups(groups, pool_eq_batch(timeout, failures), ties, min_support)
    rewards: list[float] = []
    for g, v in zip(group_ids, votes):
        rewards.extend(v.rewards(G))
    start = offset - first_g * G
    mine = rewards[start : start + n]
    if failures:
        logger.warning("majority_vote: %d equivalence check(s) timed out or failed (treated as different)",
                       len(failures))
    if callable(log_metric):
        _log_vote_metrics(log_metric, rows, group_ids, votes, offset, n, G, len(failures), timeout)
    return mine


def _log_vote_metrics(log_metric, rows, group_ids, votes, offset, n, G, n_failures, timeout) -> None:
    """Per owned group (the group's first completion is in this rank's slice), so TRL's cross-rank
    average of log_metric values is the average over all groups."""
    owned = [(g, v) for g, v in zip(group_ids, votes) if offset <= g * G < offset + n]
    checks = []
    for g, v in owned:
        emit_metric(log_metric, "majority_vote/reward_mean", sum(v.rewards(G)) / G)
        emit_metric(log_metric, "majority_vote/cluster_entropy", v.entropy())
        emit_metric(log_metric, "majority_vote/no_majority_frac", float(v.winner is None))
        emit_metric(log_metric, "majority_vote/valid_vote_frac", v.n_valid / G)
        label = v.label_index
        gold_row = rows[g * G]
        if label is not None and gold_row[4] is not None:
            label_vote = rows[g * G + label][0]
            checks.append((label_vote, str(gold_row[4]), gold_row[1] or "text", gold_row[2], gold_row[3]))
    if checks:  # logging only: pseudo-labels are never compared to gold for the reward
        for r in verify_many(checks, timeout=timeout):
            emit_metric(log_metric, "majority_vote/pseudo_label_accuracy", float(r.correct))
    emit_metric(log_metric, "majority_vote/verify_failures", n_failures)
