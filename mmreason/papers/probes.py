"""A zero-weight probe reward for the MM-UPT miniature: pseudo-label accuracy per record source.

`majority_vote` logs one pseudo-label accuracy over all groups; on a mixed pool that number moves with the
batch's task mix. Listed after it with weight 0 (`--reward_funcs majority_vote
mmreason.papers.probes.pseudo_label_by_source --reward_weights 1.0 0.0`), this re-runs the same vote on each
source's groups and logs `pseudo_label_by_source/<source>`; it returns 0.0 for every completion, so the
training signal is unchanged. Single process only (the vote all-gathers across ranks, and the per-source
subsets differ between ranks): with more processes it logs nothing."""

from __future__ import annotations

import logging
import math
import sys

from mmreason.rewards.columns import column, emit_metric
from mmreason.rewards.vote import majority_vote

logger = logging.getLogger("mmreason.papers")

PREFIX = "pseudo_label_by_source/"


def group_size(record_ids: list) -> int:
    """TRL lays out each prompt's G completions consecutively: G is the gcd of the run lengths of equal ids."""
    runs, prev = [], object()
    for rid in record_ids:
        if runs and rid == prev:
            runs[-1] += 1
        else:
            runs.append(1)
        prev = rid
    g = 0
    for r in runs:
        g = math.gcd(g, r)
    return g


def _multi_process() -> bool:
    if "torch" not in sys.modules:
        return False
    import torch.distributed as dist  # lazy: only where torch is loaded already (checked above)

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def pseudo_label_by_source(prompts=None, completions=None, *, record_id=None, source=None, answer=None,
                           answer_type=None, choices=None, precision=None, log_metric=None, **kwargs) -> list[float]:
    """0.0 for every completion; logs each source's pseudo-label accuracy (rows with a gold answer)."""
    completions = list(completions or [])
    n = len(completions)
    if not n or not callable(log_metric) or _multi_process():
        return [0.0] * n
    try:
        rids, srcs = column(record_id, n), column(source, n)
        cols = {k: column(v, n) for k, v in
                dict(answer=answer, answer_type=answer_type, choices=choices, precision=precision).items()}
        ids = rids if any(r is not None for r in rids) else [p if isinstance(p, str) else repr(p) for p in
                                                             column(prompts, n)]
        g = group_size(ids)
        if g < 1 or n % g:
            return [0.0] * n
        by_src: dict[str, list[int]] = {}
        for start in range(0, n, g):
            by_src.setdefault(srcs[start] or "unknown", []).extend(range(start, start + g))
        for src, rows in by_src.items():
            got: list[float] = []

            def collect(name, value, _got=got):
                if name == "majority_vote/pseudo_label_accuracy":
                    _got.append(value)

            majority_vote(completions=[completions[i] for i in rows], num_generations=g,
                          record_id=[rids[i] for i in rows], log_metric=collect,
                          **{k: [v[i] for i in rows] for k, v in cols.items()})
            for v in got:
                emit_metric(log_metric, PREFIX + src, v)
    except Exception:  # noqa: BLE001 - a probe never breaks training
        logger.exception("pseudo_label_by_source failed on a batch of %d", n)
    return [0.0] * n
