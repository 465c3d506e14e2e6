"""verify_pool: in-process fast path == match_answer, hard per-call timeout with kill + replace, counters."""

import threading
import time

import pytest

from mmreason.verify.answers import match_answer
from mmreason.verify.pool import VerifyPool, quick_match

PATHOLOGICAL = r"9^{9^{9^{9}}}"  # sympy tries to evaluate the tower: hangs for minutes (measured > 15 s)

CASES = [
    ("3", "3", "integer", None, None),
    ("3.0", "3", "integer", None, None),
    ("4", "3", "integer", None, None),
    ("x = 3", "3", "integer", None, None),
    ("0.333", "0.33", "float", None, 2),
    ("0.336", "0.33", "float", None, 2),
    (r"\frac{3}{4}", "0.75", "float", None, None),
    ("3/4", "0.75", "text", None, None),
    (r"2\sqrt{2}", r"\sqrt{8}", "text", None, None),
    (r"\text{Red}", "red", "text", None, None),
    ("blue", "red", "text", None, None),
    ("B", "B", "choice", ["cat", "dog"], None),
    ("(A)", "B", "choice", ["cat", "dog"], None),
    ("dog", "B", "choice", ["cat", "dog"], None),
    ("0.5", "A", "choice", [r"\frac{1}{2}", "3"], None),
    ("1, 2", "[1, 2]", "list", None, None),
    ("1, 3", "1, 2", "list", None, None),
    (r"\frac{1}{2}, 2", "0.5, 2", "list", None, None),
    ("", "3", "integer", None, None),
    (None, "3", "integer", None, None),
    ("x" * 2000, "3", "text", None, None),
]


@pytest.fixture(scope="module")
def pool():
    p = VerifyPool(workers=2, timeout=10.0)  # generous: 2 cores shared by several test runs
    yield p
    p.close()


def test_quick_match_agrees_with_match_answer_whenever_it_decides():
    decided = 0
    for pred, gold, atype, choices, prec in CASES:
        q = quick_match(pred, gold, atype, choices, prec)
        if q is not None:
            decided += 1
            assert q == match_answer(pred, gold, atype, choices, prec), (pred, gold, atype)
    assert 8 <= decided < len(CASES)  # some cases really need math-verify


def test_pool_results_equal_match_answer(pool):
    results = pool.verify_many(CASES)
    assert [r.status for r in results if r.status not in ("correct", "incorrect")] == []
    assert [r.correct for r in results] == [match_answer(*c) for c in CASES]


def test_pathological_input_times_out_worker_killed_others_answered(pool):
    pool.verify_many([(r"\frac{1}{2}", "0.5", "text", None, None)])  # workers warm
    before = pool.stats()
    pids_before = {pr.pid for pr in pool.processes}
    items = [(PATHOLOGICAL, "1", "text", None, None), (r"\frac{3}{4}", "0.75", "text", None, None),
             (r"\sqrt{8}", r"2\sqrt{2}", "text", None, None), (PATHOLOGICAL, "1", "text", None, None)]
    t0 = time.monotonic()
    results = pool.verify_many(items, timeout=1.5)
    elapsed = time.monotonic() - t0
    assert results[0].status == "timeout" and results[3].status == "timeout"  # duplicate: checked once
    assert [r.status for r in results[1:3]] == ["correct", "correct"]
    assert elapsed < 1.5 + 0.5, elapsed
    after = pool.stats()
    assert after["timeouts"] == before["timeouts"] + 2  # what callers saw
    assert after["restarts"] == before["restarts"] + 1  # one worker killed
    killed = pids_before - {pr.pid for pr in pool.processes}
    assert len(killed) == 1  # exactly the stuck worker was replaced
    # the replacement works
    assert pool.verify_many([(r"\frac{1}{3}", "1/3", "text", None, None)])[0].status == "correct"


def test_pathological_in_accuracy_reward_gives_zero_and_is_counted(caplog):
    from mmreason.rewards.verifiable import accuracy
    from mmreason.verify.pool import get_pool, verify_many

    verify_many([(r"\frac{1}{2}", "0.5", "text", None, None)])  # start + warm the shared pool
    logged = {}
    before = get_pool().stats()["timeouts"]
    t0 = time.monotonic()
    out = accuracy(
        prompts=["q"], completions=[f"Compute. \\boxed{{{PATHOLOGICAL}}}"], answer=["1"], answer_type=["text"],
        choices=[None], timeout=1.0, log_metric=lambda k, v: logged.__setitem__(k, v),
    )
    assert time.monotonic() - t0 < 1.5
    assert out == [0.0]
    assert logged["accuracy/verify_timeouts"] == 1
    assert any("timed out" in r.getMessage() for r in caplog.records if r.name == "mmreason.rewards")
    assert get_pool().stats()["timeouts"] == before + 1


def test_bad_items_become_errors_not_exceptions(pool):
    res = pool.verify_many([("3",), ("3", "3", "integer", None, None), (object(), "1", "text", None, None)])
    assert res[0].status == "error"
    assert res[1].correct
    assert res[2].status == "incorrect"  # non-string prediction: never correct


def test_thread_safe_concurrent_batches(pool):
    out = {}

    def run(k):
        items = [(rf"\frac{{{k}}}{{4}}", str(k / 4), "text", None, None), (str(k), str(k), "integer", None, None)]
        out[k] = [r.status for r in pool.verify_many(items)]

    threads = [threading.Thread(target=run, args=(k,)) for k in range(1, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert out == {k: ["correct", "correct"] for k in range(1, 5)}


def test_close_stops_workers():
    p = VerifyPool(workers=1, timeout=2.0)
    assert p.verify_many([(r"\frac{1}{2}", "0.5", "text", None, None)])[0].correct
    procs = p.processes
    p.close()
    assert procs and all(not pr.is_alive() for pr in procs)


def test_repeated_checks_are_cached_not_recomputed(pool):
    item = (r"\frac{5}{7}", "5/7", "text", None, None)
    s0 = pool.stats()
    assert pool.verify_many([item, item, item])[2].correct
    s1 = pool.stats()
    assert s1["pooled"] - s0["pooled"] == 1 and s1["cached"] - s0["cached"] == 2
    assert pool.verify_many([item])[0].correct
    assert pool.stats()["pooled"] == s1["pooled"]


def test_workers_stop_when_the_process_exits(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / "use_pool.py"
    script.write_text(
        "from mmreason.verify.pool import get_pool, verify_many\n"
        "if __name__ == '__main__':\n"
        "    assert verify_many([(r'\\frac{1}{2}', '0.5', 'text', None, None)])[0].correct\n"
        "    print(' '.join(str(pr.pid) for pr in get_pool().processes), flush=True)\n"
    )
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "MMREASON_VERIFY_WORKERS": "2", "PYTHONPATH": str(repo)}
    out = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    pids = [int(p) for p in out.stdout.split()]
    assert len(pids) == 2
    deadline = time.monotonic() + 10
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [p for p in pids if Path(f"/proc/{p}").exists() and "Z" not in _state(p)]
        time.sleep(0.2)
    assert not alive, f"verify workers still running after exit: {alive}"


def _state(pid):
    try:
        return open(f"/proc/{pid}/stat").read().split(")")[-1].split()[0]
    except OSError:
        return "Z"


def test_backtracking_numbers_never_run_in_the_trainer_process(pool):
    # answers.to_number needs ~15 s on this in-process; here it must go to a worker under the timeout
    slow = "1" * 999 + "!"
    t0 = time.monotonic()
    assert quick_match(slow, "3", "integer") is None
    assert quick_match(slow, "B", "choice", ["1", "2"]) is None
    assert time.monotonic() - t0 < 0.5
    t0 = time.monotonic()
    res = pool.verify_many([(slow, "3", "integer", None, None), ("3", "3", "integer", None, None)], timeout=1.5)
    assert time.monotonic() - t0 < 2.0
    assert res[0].status in ("timeout", "incorrect") and res[1].correct
