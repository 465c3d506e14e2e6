"""Process-group helpers for the tests: a free TCP port on 127.0.0.1 (a fixed port collides with any other job on
the machine), and a worker script run as 2 gloo processes under torch.distributed.run."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def two_process_views(worker: str, args: list, out: Path, timeout: int) -> list[dict]:
    """Run tests/WORKER with `args` and `out` as 2 processes (torchrun, one CPU thread each); each rank writes its
    view as JSON to OUT.<rank>: the two views, after asserting the job succeeded."""
    env = {**os.environ, "PYTHONPATH": f"{REPO}:{REPO / 'tests'}", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
         str(REPO / "tests" / worker), *map(str, args), str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads(Path(f"{out}.{r}").read_text()) for r in (0, 1)]
