"""The error every layer raises for bad input data: a record, an image, a clip or a line that cannot be used."""

from __future__ import annotations


class RecordError(ValueError):
    """A bad record: `where` is `file:line` (or a record id), `reason` says what is wrong."""

    def __init__(self, where: str, reason: str):
        super().__init__(f"{where}: {reason}")
        self.where = where
        self.reason = reason


class PluginError(ValueError):
    """A plugin reference (a reward, loss, benchmark or recipe kind) that cannot be resolved: the message names
    the reference, what was expected and what went wrong."""
