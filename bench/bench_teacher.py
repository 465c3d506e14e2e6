"""Teacher throughput: the OpenAI-compatible backend against a loopback server (its own process) with 50 ms
latency per call, sequential vs concurrency 8 and 32. Goal: speed-up >= 0.8 x concurrency until the server
saturates.

Prints lines like
  teacher_concurrency_8: ours 0.0071 s/request, baseline 0.0527 s/request, ratio 7.4 (goal >= 6.4)
where baseline is the same backend at concurrency 1.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.smoke import size

LATENCY = 0.05
SERVER = """
import sys, time
from mmreason.data.loopback import LoopbackServer, Scripted
reply = Scripted(text="I count the dots step by step. There are 3. \\\\boxed{3}")
with LoopbackServer(lambda body: reply, latency=float(sys.argv[1])) as srv:
    print(srv.base_url, flush=True)
    sys.stdin.read()  # serve until the parent closes stdin
"""


def _throughput(base_url: str, image: Path, concurrency: int, n: int) -> float:
    from mmreason.data.recipe import SamplingConfig, TeacherConfig
    from mmreason.data.teachers import ChatRequest, OpenAITeacher, image_part, text_part

    teacher = OpenAITeacher(TeacherConfig(model="bench", base_url=base_url, concurrency=concurrency, timeout=30))
    msgs = [{"role": "user", "content": [image_part(image), text_part("How many dots? Answer in \\boxed{}.")]}]
    reqs = [ChatRequest(msgs, seed=i) for i in range(n)]
    sampling = SamplingConfig(max_tokens=64)
    teacher.chat(reqs[: min(n, concurrency)], sampling)  # warm the connection pool
    t0 = time.perf_counter()
    replies = teacher.chat(reqs, sampling)
    dt = time.perf_counter() - t0
    teacher.close()
    assert all(r.error is None for r in replies), [r.error for r in replies if r.error][:3]
    return dt / n


def _server(latency: float) -> tuple[subprocess.Popen, str]:
    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(latency)], cwd=repo, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    return proc, proc.stdout.readline().strip()


def _stop(proc: subprocess.Popen) -> None:
    proc.stdin.close()
    proc.wait(timeout=30)


def main() -> None:
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        image = Path(tmp) / "img.png"
        Image.new("RGB", (112, 112), "white").save(image)
        # saturation point of this machine: the same server and client with no latency at all
        proc, url = _server(0.0)
        try:
            cap = 1 / _throughput(url, image, 32, size(320, 32))
        finally:
            _stop(proc)
        print(f"teacher_loopback_capacity: {cap:.0f} requests/s with zero latency (client + server on this machine)")
        server, url = _server(LATENCY)
        try:
            base = _throughput(url, image, 1, size(30, 4))
            print(f"teacher_sequential: {base:.4f} s/request at {LATENCY * 1000:.0f} ms server latency")
            for c in (8, 32):
                per = _throughput(url, image, c, size(10, 2) * c)
                ratio = base / per
                saturated = c / base > 0.8 * cap
                print(f"teacher_concurrency_{c}: ours {per:.4f} s/request, baseline {base:.4f} s/request, "
                      f"ratio {ratio:.1f} (goal >= {0.8 * c:.1f}{', met' if ratio >= 0.8 * c else ', NOT met'}"
                      f"{'; ideal rate exceeds 80% of loopback capacity: saturated' if saturated else ''})")
        finally:
            _stop(server)


if __name__ == "__main__":
    main()
