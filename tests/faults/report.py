"""`make faults`: run the fault-injection suite (tests/faults) and print what it tried and what happened —
cases per entry point with their outcome counts, the teacher/disk/file/usage faults with their outcomes, kills
(SIGKILL, SIGTERM) survived with the items lost and duplicated (both must be 0), the output-folder ownership cases,
fuzzed texts per property. Exit status: pytest's, or 1 if anything was lost or duplicated.

  python tests/faults/report.py [pytest args...]"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def table(header: list[str], rows: list[list]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = lambda r: "  ".join(str(x).ljust(w) for x, w in zip(r, widths))  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def summarize(rows: list[dict]) -> tuple[str, int]:
    out = []
    inputs = defaultdict(Counter)
    for r in rows:
        if r["entry"] not in ("kill", "fuzz", "fault", "run folder"):
            inputs[r["entry"]][r["outcome"]] += 1
    order = ["records", "sft", "grpo", "eval run", "eval score", "data build"]
    out.append("bad inputs (one bad line among good ones, per entry point)")
    out.append(table(["entry point", "cases", "outcomes"],
                     [[e, sum(inputs[e].values()), ", ".join(f"{k} {v}" for k, v in sorted(inputs[e].items()))]
                      for e in sorted(inputs, key=lambda e: order.index(e) if e in order else 99)]))
    faults = sorted({(r.get("area", "?"), r["case"], r["outcome"]) for r in rows if r["entry"] == "fault"})
    if faults:
        out += ["", "faults around the inputs (teacher, disk, files, usage): one case each, what the user gets"]
        out.append(table(["area", "case", "outcome"], [list(f) for f in faults]))
    kills = defaultdict(lambda: [0, 0, 0, 0])
    for r in rows:
        if r["entry"] == "kill":
            k = kills[r.get("kind", "?")]
            k[0] += 1
            k[1] += r["outcome"] == "survived"
            k[2] += r.get("lost", 0)
            k[3] += r.get("duplicated", 0)
    out += ["", "SIGKILL at seeded points, SIGTERM before a step (stage 'X SIGTERM': saved, exit 143), then the same "
            "command again"]
    out.append(table(["stage", "kills", "survived", "items lost", "items duplicated"],
                     [[k, *v] for k, v in sorted(kills.items())] +
                     [["total", *[sum(v[i] for v in kills.values()) for i in range(4)]]]))
    owned = [r for r in rows if r["entry"] == "run folder"]
    if owned:
        out += ["", "a run owns its output folder (lock, fingerprint on resume)"]
        out.append(table(["case", "stage", "outcome"], [[r["case"], r.get("stage", ""), r["outcome"]] for r in owned]))
    fuzz = [r for r in rows if r["entry"] == "fuzz"]
    out += ["", "reward and scorer fuzzing (never raise, in time, in range)"]
    out.append(table(["property", "texts", "engine"], [[r["case"], r.get("n", 0), r.get("engine", "")] for r in fuzz]))
    bad = sum(v[2] + v[3] for v in kills.values()) + sum(v[0] - v[1] for v in kills.values())
    return "\n".join(out), bad


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "faults.jsonl"
        env = {**os.environ, "MMREASON_FAULTS_LOG": str(log), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/faults", *argv],
                              cwd=ROOT, env=env, capture_output=True, text=True)
        tail = [line for line in proc.stdout.splitlines() if line.strip()][-1:] or ["(no pytest output)"]
        if proc.returncode:
            print(proc.stdout[-6000:], proc.stderr[-3000:], sep="\n")
        rows = [json.loads(x) for x in log.read_text().splitlines()] if log.is_file() else []
    text, bad = summarize(rows)
    print(text)
    print(f"\npytest: {tail[0]}")
    return proc.returncode or (1 if bad else 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
