"""What every reward needs from TRL's call: dataset columns as lists, and metric logging that never breaks
training."""

from __future__ import annotations

import logging

logger = logging.getLogger("mmreason.rewards")


def column(values, n: int) -> list:
    """A dataset column as a list of length n (missing column -> Nones)."""
    if isinstance(values, (list, tuple)) and len(values) == n:
        return list(values)
    return [None] * n


def emit_metric(log_metric, name: str, value: float) -> None:
    """Call TRL's `log_metric(name, value)` if the trainer passed one; a failure is logged, never raised."""
    if callable(log_metric):
        try:
            log_metric(name, float(value))
        except Exception:  # noqa: BLE001 - logging must not break training
            logger.debug("log_metric(%s) failed", name, exc_info=True)
