"""The one-GPU smoke check (scripts/gpu_smoke.sh runs it; docs/gpu.md): the tiny Qwen2.5-VL in bf16 on CUDA through
every stage, one table.

    python scripts/gpu_smoke.py [--device cuda|cpu] [--dry-run] [--out DIR]

Rows: SFT 5 steps (images), SFT 3 steps (video), GRPO 5 steps with Clip-Cov and with KL-Cov (HF generation), video
GRPO 3 steps, `eval run` on 16 records; with an importable `vllm`, one colocate GRPO step with vLLM on images and
one on video. Each row runs the `mmreason` CLI in its own process (a crash or a CUDA error fails that row only) and
reports ok / failed, seconds, peak memory (GPU: torch.cuda.max_memory_allocated; CPU: the process's peak RSS) and
whether every logged loss was finite (a training row is ok only with finite losses and a finite, non-zero gradient). `--dry-run` (= `--device cpu` with 1-2 steps per row, fp32) runs the same rows
on CPU; tests/test_gpu_smoke.py runs it so the script cannot rot. Exit status 0 only when every row is ok."""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULT = "smoke_row.json"
# tests only: a stand-in `vllm` module file (tests/fake_vllm.py, with an `install()`) put into each row's process, so
# the dry run also runs the vLLM rows through the CLI on CPU
FAKE_VLLM_ENV = "SMOKE_FAKE_VLLM"
SMOKE_REWARD = "smoke_text_hash"


def register_smoke_reward() -> None:
    """A deterministic reward that differs between different completion texts (registered in the row's process)."""
    import zlib

    from mmreason.rewards.registry import register

    @register(SMOKE_REWARD)
    def smoke_text_hash(completions, **kwargs):
        """Smoke check only: a hash of the completion text in [0, 1)."""
        texts = [c[-1]["content"] if isinstance(c, list) else str(c) for c in completions]
        return [zlib.crc32(t.encode()) % 1000 / 1000 for t in texts]


def rows(data: Path, out: Path, dry: bool, has_vllm: bool) -> list[tuple[str, list[str]]]:
    """(row name, mmreason CLI arguments) per row. Steps shrink to 1-2 in a dry run."""
    loss = "--policy_loss"
    base = str(data / "base_model")
    img, nep = data / "img", data / "nep"
    steps = (lambda n: str(min(n, 2))) if dry else str
    common = ["--model_name_or_path", base, "--save_strategy", "no", "--logging_steps", "1", "--report_to", "none",
              "--resume_from_checkpoint", "false"]
    # the untrained model never answers: SMOKE_REWARD gives every group reward variance, so the losses run with
    # non-zero advantages (a numerics check, not learning)
    reward = ["--reward_funcs", SMOKE_REWARD, "--reward_weights", "1.0", "--dynamic_sampling_reward", SMOKE_REWARD]
    grpo_img = ["grpo", "--config", "configs/grpo/tiny_demo.yaml", *common, "--train_files", str(img / "train.jsonl"),
                "--eval_strategy", "no", "--eval_on_start", "false", "--per_device_train_batch_size", "8",
                "--num_generations", "4", "--max_completion_length", "32", *reward]
    grpo_video = ["grpo", "--config", "configs/grpo/tiny_nep.yaml", *common,
                  "--train_files", str(nep / "train_mcq.jsonl"), "--max_completion_length", "16", *reward]
    table = [
        ("sft_image_5", ["sft", "--config", "configs/sft/tiny_demo.yaml", *common,
                         "--train_files", str(img / "train.jsonl"), "--output_dir", str(out / "sft_image"),
                         "--max_steps", steps(5), "--per_device_train_batch_size", "8"]),
        ("sft_video_3", ["sft", "--config", "configs/sft/tiny_nep.yaml", *common,
                         "--train_files", str(nep / "train_mcq.jsonl"), "--output_dir", str(out / "sft_video"),
                         "--max_steps", steps(3), "--per_device_train_batch_size", "4"]),
        ("grpo_clip_cov_5", [*grpo_img, "--output_dir", str(out / "grpo_clip_cov"), "--max_steps", steps(5),
                             loss, "clip_cov"]),
        # KL-Cov acts only off policy (|logp - old_logp| = 0 on policy): two updates per generation round
        ("grpo_kl_cov_5", [*grpo_img, "--output_dir", str(out / "grpo_kl_cov"), "--max_steps", steps(5),
                           loss, "kl_cov", "--steps_per_generation", "2", "--gradient_accumulation_steps", "1",
                           "--per_device_train_batch_size", "4"]),
        ("grpo_video_3", [*grpo_video, "--output_dir", str(out / "grpo_video"), "--max_steps", steps(3)]),
        ("eval_run_16", ["eval", "run", "--model", base, "--benchmark", str(img / "train.jsonl"), "--limit", "16",
                         "--output-dir", str(out / "eval"), "--max-new-tokens", "32", "--no-progress"]),
    ]
    if has_vllm:
        vllm = ["--use_vllm", "true", "--vllm_mode", "colocate", "--vllm_gpu_memory_utilization", "0.3",
                "--vllm_max_model_length", "2048"]
        table += [("grpo_vllm_image_1", [*grpo_img, *vllm, "--output_dir", str(out / "grpo_vllm_image"),
                                         "--max_steps", "1"]),
                  ("grpo_vllm_video_1", [*grpo_video, *vllm, "--output_dir", str(out / "grpo_vllm_video"),
                                         "--max_steps", "1"])]
    return table


def precision_args(argv: list[str], device: str) -> list[str]:
    """bf16 on CUDA, fp32 on CPU, for the training stages (eval picks bf16 on CUDA by itself)."""
    if argv[0] not in ("sft", "grpo"):
        return argv
    if device == "cuda":
        return [*argv, "--bf16", "true", "--dtype", "bfloat16"]
    return [*argv, "--bf16", "false", "--dtype", "float32", "--use_cpu", "true"]


# ---------------------------------------------------------------- one row, in its own process


def run_row(argv: list[str], result: Path) -> int:
    """Run `mmreason ARGV` here, recording every logged loss and the peak memory into `result`."""
    import resource

    import torch
    from transformers import Trainer

    losses: list[float] = []
    grad_norms: list[float] = []
    log = Trainer.log

    def spy(self, logs, *a, **k):
        if "loss" in logs:
            losses.append(float(logs["loss"]))
        if logs.get("grad_norm") is not None:
            grad_norms.append(float(logs["grad_norm"]))
        return log(self, logs, *a, **k)

    Trainer.log = spy
    register_smoke_reward()
    if os.environ.get(FAKE_VLLM_ENV):
        from mmreason.plugins import import_file

        import_file(os.environ[FAKE_VLLM_ENV], "smoke_fake_vllm").install()
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    from mmreason.cli import main

    code = 1
    error = None
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except Exception as e:  # reported in the table, not raised: the other rows still run
        error = f"{type(e).__name__}: {e}"
    peak = torch.cuda.max_memory_allocated() if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    result.write_text(json.dumps({"code": code, "error": error, "losses": losses, "grad_norms": grad_norms, "peak_bytes": peak,
                                  "memory": "gpu" if cuda else "rss"}))
    return 0 if code == 0 and error is None else 1


# ---------------------------------------------------------------- the table


def prepare(data: Path, env: dict, log) -> None:
    """The tiny model and the synthetic image and video records (video as frame folders: no decoder needed; no test
    split, whose FutureBench past clips are mp4 files written with PyAV, which the GPU image does not have)."""
    cmds = [["tiny-model", str(data / "base_model")],
            ["data", "synth", "--out", str(data / "img"), "--n", "48", "--seed", "0"],
            ["nep", "synth", "--out", str(data / "nep"), "--n", "8", "--n-test", "0", "--size", "56", "--video-format",
             "frames"]]
    for c in cmds:
        p = subprocess.run([sys.executable, "-m", "mmreason", *c], cwd=REPO, env=env, capture_output=True, text=True)
        log.write(f"$ mmreason {' '.join(c)}\n{p.stdout}{p.stderr}\n")
        if p.returncode != 0:
            raise SystemExit(f"gpu_smoke: preparing the data failed: mmreason {' '.join(c)}\n{p.stderr[-2000:]}")


def vllm_importable(env: dict) -> bool:
    p = subprocess.run([sys.executable, "-c", "import vllm"], env=env, capture_output=True)
    return p.returncode == 0


def check_row(name: str, argv: list[str], result: dict, out: Path) -> tuple[bool, str]:
    """ok, and why not."""
    if result.get("error") or result.get("code") != 0:
        return False, result.get("error") or f"exit {result.get('code')}"
    if argv[0] == "eval":
        scores = out / "eval" / "scores.json"
        return (True, "") if scores.is_file() else (False, f"no {scores}")
    if not result["losses"]:
        return False, "no loss logged"
    if not all(math.isfinite(x) for x in result["losses"]):
        return False, f"non-finite loss {result['losses']}"
    norms = result.get("grad_norms") or []
    if not (norms and all(math.isfinite(g) for g in norms) and any(g > 0 for g in norms)):
        return False, f"no finite non-zero gradient (grad norms {norms})"
    return True, ""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="The one-GPU smoke check: the tiny Qwen2.5-VL through every stage, one "
                                             "table (docs/gpu.md).")
    ap.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    ap.add_argument("--dry-run", action="store_true", help="CPU, fp32, 1-2 steps per row")
    ap.add_argument("--out", default="runs/gpu_smoke")
    ap.add_argument("--only", default="", help="comma-separated row names to run (default: all)")
    ap.add_argument("--timeout", type=float, default=240.0, help="seconds per row (a hung row fails, the rest run)")
    ap.add_argument("--row", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)  # internal: one row in this process
    a = ap.parse_args(argv)
    out = Path(a.out).resolve()
    if a.row is not None:
        return run_row(a.row, out / RESULT)
    device = "cpu" if a.dry_run else a.device
    env = {**os.environ, "MMREASON_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "WANDB_DISABLED": "true"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    else:
        import torch

        if not torch.cuda.is_available():
            print("gpu_smoke: no CUDA device (use --dry-run on CPU)", file=sys.stderr)
            return 2
    out.mkdir(parents=True, exist_ok=True)
    data = out / "data"
    started = time.time()
    with open(out / "smoke.log", "w") as log:
        prepare(data, env, log)
        fake_vllm = bool(env.get(FAKE_VLLM_ENV))
        has_vllm = fake_vllm or (device == "cuda" and vllm_importable(env))
        table = []
        selected = rows(data, out, a.dry_run, has_vllm)
        only = [r for r in a.only.split(",") if r]
        unknown = set(only) - {name for name, _ in selected}
        if unknown:
            raise SystemExit(f"gpu_smoke: no row(s) {sorted(unknown)}; rows: {[name for name, _ in selected]}")
        for name, args in selected:
            if only and name not in only:
                continue
            args = precision_args(args, device)
            row_out = out / name
            row_out.mkdir(parents=True, exist_ok=True)
            (row_out / RESULT).unlink(missing_ok=True)
            t0 = time.time()
            try:
                p = subprocess.run([sys.executable, __file__, "--out", str(row_out), "--row", *args], cwd=REPO, env=env,
                                   capture_output=True, text=True, timeout=a.timeout)
                tail = p.stdout + p.stderr
            except subprocess.TimeoutExpired as e:
                tail = f"timed out after {a.timeout:.0f} s\n{e.stderr or ''}"
            seconds = time.time() - t0
            log.write(f"==== {name}: mmreason {' '.join(args)}\n{tail}\n")
            log.flush()
            path = row_out / RESULT
            result = json.loads(path.read_text()) if path.is_file() else {"code": None, "error": tail.strip()[-300:]}
            ok, why = check_row(name, args, result, out)
            table.append({"row": name, "ok": ok, "seconds": round(seconds, 1),
                          "peak_mib": round(result.get("peak_bytes", 0) / 2**20),
                          "memory": result.get("memory", "-"),
                          "loss_finite": "n/a" if args[0] == "eval" else bool(result.get("losses"))
                          and all(math.isfinite(x) for x in result["losses"]),
                          "why": why.splitlines()[-1][:200] if why else ""})
    device_name = "cpu"
    if device == "cuda":
        import torch

        device_name = torch.cuda.get_device_name(0)
    vllm_note = ("stand-in engine (tests)" if fake_vllm else "yes" if has_vllm
                 else "no (vllm not importable)" if device == "cuda" else "no (cpu)")
    mem_label = "peak GPU MiB" if device == "cuda" else "peak RSS MiB"
    print(f"gpu_smoke: {device_name}, {'bf16' if device == 'cuda' else 'fp32'}, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, vllm rows: {vllm_note}")
    print(f"| row | status | seconds | {mem_label} | loss finite |")
    print("| --- | --- | --- | --- | --- |")
    for r in table:
        status = "ok" if r["ok"] else f"failed: {r['why']}"
        print(f"| {r['row']} | {status} | {r['seconds']} | {r['peak_mib']} | {r['loss_finite']} |")
    print(f"total {time.time() - started:.0f} s; log: {out / 'smoke.log'}")
    (out / "smoke_table.json").write_text(json.dumps({"device": device_name, "rows": table}, indent=1))
    return 0 if all(r["ok"] for r in table) else 1


if __name__ == "__main__":
    sys.exit(main())
