"""The fault-injection suite (issue 16): every case records its outcome through `fault_log`; `make faults`
(tests/faults/report.py) runs the suite with MMREASON_FAULTS_LOG set and prints the table."""

from __future__ import annotations

import json
import os

import pytest


class FaultLog:
    """Appends {"entry", "case", "outcome", ...} rows to $MMREASON_FAULTS_LOG (nothing when it is unset)."""

    def __init__(self, path: str | None):
        self.path = path

    def record(self, entry: str, case: str, outcome: str, **extra) -> None:
        if self.path:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps({"entry": entry, "case": case, "outcome": outcome, **extra}) + "\n")


@pytest.fixture(scope="session")
def fault_log() -> FaultLog:
    return FaultLog(os.environ.get("MMREASON_FAULTS_LOG"))


@pytest.fixture(autouse=True)
def _image_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MMREASON_IMAGE_CACHE", str(tmp_path / "image_cache"))
