"""GRPO step time and peak memory: our trainer with Clip-Cov and with KL-Cov (entropy and covariance logging
on) against stock TRL GRPOTrainer, same model, same data, same seed. Two models: the tiny Qwen2.5-VL, and the
same with the real Qwen vocabulary (151,936 rows; the small tokenizer's ids fit). Completions are forced to full
length (min_new_tokens = max_completion_length) so every trainer does the same work. Goal: ratio <= 1.05.

Measurements per model, printed side by side:
- whole training steps, interleaved in one process (bench/interleave.py): stock TRL, a second stock TRL (the A/A
  control: how far two copies of the same code differ here) and ours take turns one generation cycle
  (steps_per_generation = 2 steps) at a time, in rotated order. Every cycle starts (untimed) from the same
  checkpoint weights with a fresh optimizer state and the RNG seeded by the round, so within a round every
  trainer does the same work — same prompts, same sampled completions, same forced lengths — and differs only in
  its code. The ratio of each round (ours / stock on neighbouring cycles) cancels the machine's drift; rounds run
  until the 95% interval of the median ratio is within +-2% (or the round / time cap: the output says which).
  Timed as thread CPU time, split into user and kernel time (page faults), and as wall time;
- mmreason's own code per step, from a short cProfile of the same interleaved steps: the self time of our
  functions and the torch ops they call, as a share of the step — the overhead measured as work, which the
  machine's noise does not move (an upper bound: cProfile slows Python code more than torch kernels);
- the two hooks our trainer overrides (loss + backward, generate + score), interleaved call by call on one
  batch;
- peak memory: one separate process per trainer (its RSS high-water mark), with its whole-step time for
  reference (separate processes cannot resolve a few per cent here: identical runs differ by 10%).

`make bench ARGS=--profile` (or BENCH_PROFILE=1) also prints the profile's tables: top functions by self time
and the largest differences ours - stock."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.smoke import SMOKE, size

QWEN_VOCAB = 151_936
MODES = ("stock", "clip_cov", "kl_cov")
# the interleaved run: name -> mode; stock_aa is a second stock TRL, whose ratio to stock is the noise floor
TRAINERS = {"stock": "stock", "stock_aa": "stock", "clip_cov": "clip_cov", "kl_cov": "kl_cov"}
LOSS_REPS = int(os.environ.get("BENCH_GRPO_LOSS_REPS", size("40", "4")))
CYCLE = 2  # steps_per_generation: a generation cycle is one generating step and one from the buffer
GOAL = 0.02  # stop the interleaved rounds once the 95% interval of the median ratio is within +-2%
# per model: prompts x completions per step, completion length; interleaved whole steps: warm-up rounds (not
# counted), at least min_rounds, at most max_rounds or budget_s seconds; separate processes (peak memory):
# warm-up and timed steps (whole cycles). A Qwen-vocabulary cycle is ~6.5 s of CPU here (over half of it kernel
# time: page faults), a tiny one ~0.3 s; a round runs the 4 trainers.
# BENCH_GRPO_BUDGET=x scales both time budgets (e.g. 3 for a longer, tighter run on a quiet machine).
_budget = float(os.environ.get("BENCH_GRPO_BUDGET", "1"))
SHAPES = {
    "tiny vocab": dict(batch=8, length=24, warmup_rounds=1, min_rounds=10, max_rounds=200, budget_s=90 * _budget,
                       warmup=2, steps=6),
    f"Qwen vocab {QWEN_VOCAB}": dict(batch=4, length=8, warmup_rounds=1, min_rounds=8, max_rounds=100,
                                     budget_s=600 * _budget, warmup=2, steps=2),
}
if SMOKE:  # the tiny model only, two rounds of the smallest batch
    SHAPES = {"tiny vocab": dict(batch=4, length=4, warmup_rounds=1, min_rounds=2, max_rounds=2, budget_s=60,
                                 warmup=2, steps=2)}


def _build(tmp: Path) -> dict[str, Path]:
    import torch
    from transformers import AutoProcessor, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    from mmreason.tiny import build_tiny_model

    small = build_tiny_model(tmp / "tiny", "tiny", seed=0)
    if SMOKE:
        return {"tiny vocab": small, "data": write_records(tmp / "data")}
    config = Qwen2_5_VLConfig.from_pretrained(small)
    config.text_config.vocab_size = QWEN_VOCAB
    torch.manual_seed(0)
    big = tmp / "tiny_qwen_vocab"
    model = Qwen2_5_VLForConditionalGeneration(config).to(torch.float32)
    model.generation_config = Qwen2_5_VLForConditionalGeneration.from_pretrained(small).generation_config
    model.save_pretrained(big)
    AutoProcessor.from_pretrained(small).save_pretrained(big)
    return {"tiny vocab": small, f"Qwen vocab {QWEN_VOCAB}": big, "data": write_records(tmp / "data")}


def write_records(data: Path, n: int = 16) -> Path:
    """n one-image GRPO records with their PNGs under `data`; returns the JSONL path."""
    from PIL import Image

    (data / "images").mkdir(parents=True)
    with open(data / "train.jsonl", "w") as f:
        for i in range(n):
            Image.new("RGB", (56, 56), (15 * i, 80, 200 - 10 * i)).save(data / f"images/{i}.png")
            f.write(json.dumps({"id": f"b{i}", "question": f"How many shapes are there? ({i})", "answer": str(i % 5),
                                "answer_type": "integer", "images": [f"images/{i}.png"]}) + "\n")
    return data / "train.jsonl"


def bench_reward(completions, completion_ids, **kwargs):
    return [float(sum(ids) % 5) for ids in completion_ids]


def make_trainer(spec: dict, mode: str, **extra):
    """Stock TRL GRPOTrainer (mode "stock") or ours with policy_loss=mode, on the bench's model, data and shape."""
    from transformers import AutoProcessor
    from trl import GRPOConfig, GRPOTrainer

    from mmreason.rl.config import MMReasonGRPOConfig
    from mmreason.rl.data import build_grpo_dataset
    from mmreason.rl.trainer import MMReasonGRPOTrainer

    processor = AutoProcessor.from_pretrained(spec["model"], padding_side="left")
    ds, _ = build_grpo_dataset(spec["data"], processor=processor)
    shape = SHAPES[spec["label"]]
    L = shape["length"]
    common = dict(
        output_dir=spec["out"], per_device_train_batch_size=shape["batch"], num_generations=4, steps_per_generation=2,
        max_completion_length=L, generation_kwargs={"min_new_tokens": L}, bf16=False, gradient_checkpointing=False,
        report_to="none", save_strategy="no", seed=0, beta=0.0, disable_tqdm=True, **extra,
    )
    kw = dict(model=spec["model"], reward_funcs=[bench_reward], train_dataset=ds, processing_class=processor)
    if mode == "stock":
        return GRPOTrainer(args=GRPOConfig(**common), **kw)
    return MMReasonGRPOTrainer(args=MMReasonGRPOConfig(**common, policy_loss=mode, clip_cov_lb=0.0), **kw)


def worker(spec: dict) -> dict:
    import time

    import psutil
    from transformers import TrainerCallback

    shape = SHAPES[spec["label"]]
    WARMUP = shape["warmup"]
    trainer = make_trainer(spec, spec["mode"], max_steps=WARMUP + shape["steps"], logging_steps=1, learning_rate=1e-4)

    times, cpu, t0 = [], [], [0.0, 0.0]

    class Timer(TrainerCallback):
        def on_step_begin(self, *a, **k):
            t0[:] = time.perf_counter(), time.process_time()

        def on_step_end(self, *a, **k):
            times.append(time.perf_counter() - t0[0])
            cpu.append(time.process_time() - t0[1])

    trainer.add_callback(Timer())
    # Peak memory: the process's RSS high-water mark (no sampling thread: one would contend for the GIL with
    # the many small ops of a tiny model and slow it down several-fold).
    base = psutil.Process().memory_info().rss
    trainer.train()
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {  # whole generation cycles (even step counts)
        "step_s": statistics.fmean(times[WARMUP:]),
        "cpu_s": statistics.fmean(cpu[WARMUP:]),
        "train_peak_mb": (peak - base) / 2**20,
        "peak_rss_mb": peak / 2**20,
    }


def loss_worker(spec: dict) -> dict:
    """The part of a step where our trainer differs from stock TRL: the loss (Clip-Cov / KL-Cov, entropy and
    covariance logging) and its backward pass on one fixed rollout batch, and generate+score (image fitting,
    per-source reward logging) on one prompt batch. All three trainers in one process,
    calls interleaved, median of many: run-to-run noise (~10% for whole training runs here) cancels out."""
    import time

    import torch

    trainers = {mode: make_trainer(spec, mode) for mode in MODES}
    ds, shape = trainers["stock"].train_dataset, SHAPES[spec["label"]]
    for t in trainers.values():
        t.model.train()
        t.current_gradient_accumulation_steps = 1  # set by Trainer.train() per step; one micro-batch here
    rows = [ds[i] for i in range(shape["batch"] * 2 // 4) for _ in range(4)]  # one generation batch
    inputs = trainers["stock"]._generate_and_score_completions(rows)
    loss: dict[str, list[float]] = {m: [] for m in trainers}
    gen: dict[str, list[float]] = {m: [] for m in trainers}
    for rep in range(spec["reps"] + 2):  # 2 warm-up reps
        for mode, t in trainers.items():
            t.model.zero_grad(set_to_none=True)
            t0 = time.process_time()
            t.compute_loss(t.model, dict(inputs)).backward()
            t1 = time.process_time()
            if rep % 4 == 0 or rep < 2:  # generation is the slow part: every 4th rep
                torch.manual_seed(rep)
                t._generate_and_score_completions(rows)
            if rep >= 2:
                loss[mode].append(t1 - t0)
                if rep % 4 == 0:
                    gen[mode].append(time.process_time() - t1)
    return {"loss": {m: statistics.median(v) for m, v in loss.items()},
            "gen": {m: statistics.median(v) for m, v in gen.items()}, "gen_reps": len(gen["stock"])}


def interleaved_worker(spec: dict) -> dict:
    """Whole training steps of stock TRL, a second stock TRL (the A/A control: the noise floor of the comparison)
    and ours (Clip-Cov, KL-Cov) interleaved in this process (bench/interleave.py) with `reset`: every cycle starts
    from the checkpoint's weights and a fresh optimizer state, RNG seeded by the round, so in a round the
    trainers do the same work (same prompts, same sampled completions) and differ only in their code. Rounds run
    until the 95% interval of every median ratio (ours / stock, CPU time per round) is within GOAL, or the round
    or time cap. Then a short interleaved run under cProfile (one profiler per trainer thread) gives each
    trainer's self time per function and the time spent in mmreason's own code."""
    import time

    from bench.interleave import train_interleaved

    shape = SHAPES[spec["label"]]
    skip, t_start, reason = shape["warmup_rounds"], time.perf_counter(), []
    max_steps = CYCLE * (skip + shape["max_rounds"] + 1)

    def make(tag: str) -> dict:
        return {name: make_trainer(dict(spec, out=f"{spec['out']}_{tag}_{name}"), mode, max_steps=max_steps,
                                   logging_steps=1, learning_rate=1e-4) for name, mode in TRAINERS.items()}

    def should_stop(cycles: dict) -> bool:
        n = len(cycles["stock"]) - skip
        if n < shape["min_rounds"]:
            return False
        widths = [_interval(cycles[m][skip:], cycles["stock"][skip:], "cpu_s")[3] for m in MODES[1:]]
        if max(widths) <= GOAL:
            reason.append(f"95% interval within ±{GOAL:.0%}")
        elif n >= shape["max_rounds"]:
            reason.append(f"round cap {shape['max_rounds']}")
        elif time.perf_counter() - t_start > shape["budget_s"]:
            reason.append(f"time budget {shape['budget_s']:.0f} s")
        return bool(reason)

    cycles = train_interleaved(make("time"), CYCLE, seed=0, should_stop=should_stop, reset=True)
    out = {m: {k: [getattr(c, k) for c in cs[skip:]] for k in ("cpu_s", "wall_s", "sys_s", "minflt")}
           for m, cs in cycles.items()}
    result = {"cycles": out, "stopped": reason[0] if reason else f"max_steps {max_steps}",
              "elapsed_s": time.perf_counter() - t_start}
    result["profile"] = _profile(make("profile"), skip, rounds=spec.get("profile_rounds", 3))
    return result


def _profile(trainers: dict, skip: int, rounds: int) -> dict:
    """{trainer: {"functions": {function: [self seconds per cycle, calls per cycle]}, "own_s": seconds per
    cycle in mmreason's code, "total_s": profiled seconds per cycle}} over `rounds` cycles after `skip`."""
    import cProfile
    import pstats

    from bench.interleave import train_interleaved

    profs = {m: cProfile.Profile() for m in trainers}
    turns = dict.fromkeys(trainers, 0)

    def acquire(m):
        turns[m] += 1
        if turns[m] > skip:
            profs[m].enable()

    def release(m):
        profs[m].disable()

    cycles = train_interleaved(trainers, CYCLE, seed=0, should_stop=lambda c: len(c["stock"]) >= skip + rounds,
                               on_acquire=acquire, on_release=release, reset=True)
    n = max(1, len(cycles["stock"]) - skip)
    out = {}
    for m, prof in profs.items():
        st = pstats.Stats(prof).stats  # {(file, line, name): (cc, ncalls, tottime, cumtime, callers)}
        out[m] = {"functions": {_func_name(k): [v[2] / n, v[1] / n] for k, v in st.items()},
                  "own_s": own_time(st) / n, "total_s": sum(v[2] for v in st.values()) / n}
    return out


_PACKAGE = str(Path(__file__).resolve().parents[1] / "mmreason") + os.sep


def _ours(key) -> bool:
    """A function of the mmreason package (this checkout's, or an installed copy's; not ~/.cache/mmreason/venv)."""
    return key[0].startswith(_PACKAGE) or f"site-packages{os.sep}mmreason{os.sep}" in key[0]


def _shared(key) -> bool:
    """Code stock TRL runs as well: TRL and transformers (the model, generation, the trainer loop). Accelerate
    is not: our logging's reductions through it are our cost."""
    return any(f"site-packages{os.sep}{pkg}{os.sep}" in key[0] for pkg in ("trl", "transformers"))


def own_time(stats: dict) -> float:
    """Seconds spent in mmreason's code from a pstats table: the self time of its
    functions, plus everything they call directly that is not shared with stock TRL (torch ops, the standard
    library), with all below it. Calls from our code back into TRL (`super()` hooks: generation, the model's
    log-prob pass) are left out, since stock runs them too. An upper bound of our overhead: it does not subtract
    the loss arithmetic of TRL's `_compute_loss` that ours replaces."""
    total = 0.0
    for key, (_, _, tottime, _, callers) in stats.items():
        if _ours(key):
            total += tottime
        elif not _shared(key):
            total += sum(ct for caller, (_, _, _, ct) in callers.items() if _ours(caller))
    return total


def _func_name(key) -> str:
    file, line, name = key
    if file == "~":
        return name
    parts = Path(file).parts
    for anchor in ("site-packages", "mmreason", "bench"):
        if anchor in parts:
            i = parts.index(anchor)
            file = "/".join(parts[i + 1 if anchor == "site-packages" else i:])
            break
    return f"{file}:{line}({name})"


def _interval(ours: list, base: list, key: str) -> tuple[float, float, float, float]:
    """Per-round ratios ours / stock -> (median, lo, hi, relative half-width of the 95% interval)."""
    from bench.interleave import median_ci

    get = (lambda c: c[key]) if isinstance(ours[0], dict) else (lambda c: getattr(c, key))
    med, lo, hi = median_ci([get(o) / get(b) for o, b in zip(ours, base)])
    return med, lo, hi, max(med - lo, hi - med) / med


def _run(spec: dict, flag: str) -> dict:
    if SMOKE:  # in-process: one torch/TRL start-up instead of one per worker (the numbers mean nothing here)
        return WORKERS[flag](spec)
    # One thread per worker: on a shared 2-core machine, OpenMP threads of concurrent jobs spin against each
    # other and make small-op timings swing 10x; a single thread is much less sensitive.
    env = dict(os.environ, MMREASON_OFFLINE="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", PYTHONWARNINGS="ignore",
               OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    res = subprocess.run([sys.executable, "-m", "bench.bench_grpo", flag, json.dumps(spec)], cwd=root,
                         env=env, capture_output=True, text=True)
    lines = [l for l in res.stdout.splitlines() if l.startswith("RESULT ")]
    if res.returncode != 0 or not lines:
        raise RuntimeError(f"worker {flag} {spec.get('mode', '')} failed:\n{res.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


WORKERS = {"--worker": worker, "--loss-worker": loss_worker, "--interleaved-worker": interleaved_worker}


def _fmt_ratio(med: float, lo: float, hi: float) -> str:
    return f"{med:.3f} [{lo:.3f}–{hi:.3f}]"


def _print_profile(label: str, prof: dict, top: int = 15) -> None:
    fn = {m: p["functions"] for m, p in prof.items()}
    base = fn["stock"]
    print(f"\ngrpo profile [{label}]: cProfile self time per {CYCLE}-step cycle (ms), interleaved in one process; "
          f"total: " + ", ".join(f"{m} {1e3 * p['total_s']:.0f} ms" for m, p in prof.items()))
    print("  " + " ".join(f"{m:>8}" for m in TRAINERS) + f"  function (top {top} by stock self time)")
    for name, _ in sorted(base.items(), key=lambda kv: -kv[1][0])[:top]:
        print("  " + " ".join(f"{1e3 * fn[m].get(name, [0.0, 0])[0]:8.1f}" for m in TRAINERS) + f"  {name}")
    for mode in MODES[1:]:
        names = set(base) | set(fn[mode])
        diff = sorted(names, key=lambda k: -abs(fn[mode].get(k, [0.0])[0] - base.get(k, [0.0])[0]))[:top]
        print(f"  largest differences, {mode} - stock (ms per cycle; calls per cycle ours / stock):")
        for name in diff:
            o, b = fn[mode].get(name, [0.0, 0]), base.get(name, [0.0, 0])
            print(f"  {1e3 * (o[0] - b[0]):+8.1f}  {o[1]:.0f} / {b[1]:.0f}  {name}")


def _cycles(cyc: dict, name: str) -> list[dict]:
    """One dict per cycle, with user_s = cpu_s - sys_s (the computation, without the kernel's page faults)."""
    return [dict(c, user_s=c["cpu_s"] - c["sys_s"]) for c in (dict(zip(cyc[name], v)) for v in zip(*cyc[name].values()))]


def report(label: str, inter: dict, hooks: dict, sep: dict, reps: int) -> dict[str, list[str]]:
    """Print one vocabulary's lines; returns {docs/results.md table row: [Clip-Cov cell, KL-Cov cell]}."""
    cyc, prof = inter["cycles"], inter["profile"]
    n = len(cyc["stock"]["cpu_s"])
    base = _cycles(cyc, "stock")
    med = {m: statistics.median(cyc[m]["cpu_s"]) / CYCLE for m in TRAINERS}
    kernel = {m: statistics.median(cyc[m]["sys_s"]) / CYCLE for m in TRAINERS}
    faults = {m: statistics.median(cyc[m]["minflt"]) / CYCLE for m in TRAINERS}
    print(f"grpo whole steps interleaved [{label}]: {n} rounds of one {CYCLE}-step cycle per trainer, every cycle "
          f"from the same weights, prompts and samples ({inter['elapsed_s']:.0f} s; stopped: {inter['stopped']})")
    for m in TRAINERS:
        print(f"  {m:9s} CPU per step {med[m]:.3f} s, of which kernel {kernel[m]:.3f} s "
              f"({kernel[m] / med[m]:.0%}; {faults[m]:,.0f} page faults)")
    aa = _interval(_cycles(cyc, "stock_aa"), base, "cpu_s")
    aa_user = _interval(_cycles(cyc, "stock_aa"), base, "user_s")
    print(f"grpo whole step, interleaved [{label}] A/A control (stock / stock, the same code): ratio "
          f"{_fmt_ratio(*aa[:3])} = ±{aa[3]:.1%}; user time only {_fmt_ratio(*aa_user[:3])} = ±{aa_user[3]:.1%}: "
          f"the noise floor of this comparison")
    row: dict[str, list[str]] = {}
    for mode in MODES[1:]:
        ours = _cycles(cyc, mode)
        c_med, c_lo, c_hi, c_w = _interval(ours, base, "cpu_s")
        w_med, w_lo, w_hi, _ = _interval(ours, base, "wall_s")
        u_med, u_lo, u_hi, u_w = _interval(ours, base, "user_s")
        verdict = "within" if c_w <= GOAL else "NOT within"
        print(f"grpo whole step, interleaved [{label}] {mode}: ours {med[mode]:.3f} s, stock {med['stock']:.3f} s CPU "
              f"per step (medians), ratio {_fmt_ratio(c_med, c_lo, c_hi)} = ±{c_w:.1%} ({verdict} ±{GOAL:.0%}; "
              f"median of {n} per-round ratios, [95% interval]); user time only {_fmt_ratio(u_med, u_lo, u_hi)} = "
              f"±{u_w:.1%}; wall ratio {_fmt_ratio(w_med, w_lo, w_hi)}")
        p = prof[mode]
        print(f"grpo own code [{label}] {mode}: {1e3 * p['own_s'] / CYCLE:.1f} ms per step in mmreason's code and the "
              f"torch ops it calls, {p['own_s'] / p['total_s']:.2%} of the profiled step (stock's self time "
              f"{1e3 * prof['stock']['total_s'] / CYCLE:.0f} ms, ours {1e3 * p['total_s'] / CYCLE:.0f} ms): an upper "
              f"bound of our overhead, measured as work, not as a ratio of noisy times")
        lo, ge = hooks["loss"], hooks["gen"]
        print(f"grpo loss+backward [{label}] {mode}: ours {1e3 * lo[mode]:.1f} ms, stock {1e3 * lo['stock']:.1f} ms, "
              f"ratio {lo[mode] / lo['stock']:.3f}  [median of {reps} interleaved calls on one rollout batch, CPU time]")
        print(f"grpo generate+score [{label}] {mode}: ours {1e3 * ge[mode]:.1f} ms, stock {1e3 * ge['stock']:.1f} ms, "
              f"ratio {ge[mode] / ge['stock']:.3f}  [median of {hooks['gen_reps']} interleaved calls on one prompt "
              f"batch, CPU time]")
        r, b = sep[mode], sep["stock"]
        print(f"grpo whole step, separate processes [{label}] {mode}: ours {r['cpu_s']:.3f} s, stock {b['cpu_s']:.3f} s "
              f"CPU per step, ratio {r['cpu_s'] / b['cpu_s']:.3f}; wall ratio {r['step_s'] / b['step_s']:.3f}  "
              f"[one process each, {SHAPES[label]['steps']} steps: for reference]")
        print(f"grpo peak memory [{label}] {mode}: ours {r['peak_rss_mb']:.0f} MB, stock {b['peak_rss_mb']:.0f} MB, "
              f"ratio {r['peak_rss_mb'] / b['peak_rss_mb']:.3f} (training increment: ours {r['train_peak_mb']:.0f} MB, "
              f"stock {b['train_peak_mb']:.0f} MB)")
        cells = {
            "whole step, interleaved, CPU time (median ratio [95% interval])": _fmt_ratio(c_med, c_lo, c_hi),
            "the same, user time only (without the kernel's page faults)": _fmt_ratio(u_med, u_lo, u_hi),
            "A/A control: stock ÷ stock, same run, CPU time": _fmt_ratio(*aa[:3]),
            "mmreason's own code, share of the step (profile; upper bound)": f"{p['own_s'] / p['total_s']:.2%}",
            "loss + backward (interleaved calls, same batch)": f"{lo[mode] / lo['stock']:.3f}",
            "generate + score (interleaved calls, same prompts)": f"{ge[mode] / ge['stock']:.3f}",
            "whole step, separate processes (one run each, CPU)": f"{r['cpu_s'] / b['cpu_s']:.3f}",
            "peak memory (separate processes)": f"{r['peak_rss_mb'] / b['peak_rss_mb']:.3f}",
        }
        for k, v in cells.items():
            row.setdefault(k, []).append(v)
    return row


def main(profile: bool = False) -> None:
    from mmreason.offline import offline_defaults

    offline_defaults()
    profile = profile or os.environ.get("BENCH_PROFILE", "") not in ("", "0")
    table: dict[str, dict[str, list[str]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench_grpo_") as tmp:
        paths = _build(Path(tmp))
        for label in (k for k in paths if k != "data"):
            shape = SHAPES[label]
            spec = {"model": str(paths[label]), "data": str(paths["data"]), "label": label}
            print(f"grpo [{label}]: batch {shape['batch']} completions x {shape['length']} tokens per step, "
                  f"generation every {CYCLE} steps, one torch thread", flush=True)
            inter = _run(dict(spec, out=str(Path(tmp) / "out_inter")), "--interleaved-worker")
            reps = LOSS_REPS if label == "tiny vocab" else max(5, LOSS_REPS // 4)
            hooks = _run(dict(spec, reps=reps, out=str(Path(tmp) / "out_loss")), "--loss-worker")
            sep = {m: _run(dict(spec, mode=m, out=str(Path(tmp) / f"out_{m}")), "--worker") for m in MODES}
            table[label] = report(label, inter, hooks, sep, reps)
            raw = (Path(tmp) if SMOKE else Path("runs/bench")) / f"grpo_{label.replace(' ', '_')}.json"
            raw.parent.mkdir(parents=True, exist_ok=True)
            raw.write_text(json.dumps({"interleaved": {k: v for k, v in inter.items() if k != "profile"},
                                       "own_s": {m: p["own_s"] for m, p in inter["profile"].items()},
                                       "hooks": hooks, "separate": sep}, indent=1))
            print(f"(raw numbers: {raw})")
            if profile:
                _print_profile(label, inter["profile"])
            sys.stdout.flush()
    labels = list(table)
    print("\ndocs/results.md table (ours ÷ stock TRL, Clip-Cov / KL-Cov):")
    print("| GRPO, ours ÷ stock TRL, Clip-Cov / KL-Cov | " + " | ".join(labels) + " |")
    print("|---" * (len(labels) + 1) + "|")
    for key in table[labels[0]]:
        print(f"| {key} | " + " | ".join(" / ".join(table[l][key]) for l in labels) + " |")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] in WORKERS:
        import logging

        logging.disable(logging.WARNING)
        out = WORKERS[sys.argv[1]](json.loads(sys.argv[2]))
        print("RESULT " + json.dumps(out), flush=True)
    else:
        main(profile="--profile" in sys.argv[1:])
