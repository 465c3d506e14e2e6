"""Multi-process training checks shared by the stages (SFT, GRPO), and the job watchdog.

- `check_distributed(trainer, resume)` right after the trainer is built: stops a launch that would run
  silently wrong (several processes asked for, one started; processes without gradient sync; a ZeRO-3 run that
  cannot write a loadable checkpoint; a resume on another world size), passes `ddp_timeout` to the process group
  (transformers does not on CPU), under ZeRO-3 makes text-only batches run the vision tower too
  (mmreason/vision_sync.py: else ranks with and without images pair their parameter gathers wrongly), logs
  world size / backend / engine and writes `<output_dir>/distributed.json`.
- `finish_distributed(trainer)` after the final save: every rank's parameter digest (they must agree), and the
  saved folder must hold weights.
- `python -m mmreason.distributed watch [--timeout S] -- LAUNCH CMD...`: runs a launcher (torchrun /
  accelerate) and ends the whole process tree when a rank stops beating (frozen, e.g. `kill -STOP`, or dead) or
  when the launcher exits; used by scripts/launch.sh.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import hashlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

import psutil
import torch
import torch.distributed as dist
from accelerate.utils import gather_object
from transformers import AutoModelForImageTextToText
from transformers.integrations import deepspeed as hf_ds

from mmreason.vision_sync import run_vision_on_every_forward, vision_language_model

logger = logging.getLogger("mmreason.distributed")

HEARTBEAT_ENV = "MMREASON_HEARTBEAT_DIR"
HEARTBEAT_INTERVAL = 2.0  # seconds between a rank's beats
STOP_GRACE_ENV, STOP_GRACE = "MMREASON_STOP_GRACE", 300.0  # seconds a signalled job gets to save before SIGKILL
INFO_FILE = "distributed.json"
# accelerate distributed types that all-reduce gradients across processes
SYNCED = {"MULTI_CPU", "MULTI_GPU", "MULTI_XPU", "MULTI_NPU", "MULTI_MLU", "MULTI_MUSA", "MULTI_HPU", "MULTI_SDAA",
          "MULTI_NEURON", "DEEPSPEED", "FSDP", "MEGATRON_LM", "XLA"}  # fmt: skip


class DistributedSetupError(RuntimeError):
    """A launch that would train wrongly or write an unusable checkpoint; the message names the fix."""


def _truthy(value: str | None) -> bool:
    return str(value or "").strip().lower() in ("1", "true", "yes", "on")


def zero_config(trainer) -> dict:
    """The DeepSpeed zero_optimization section the trainer runs with ({} without DeepSpeed)."""
    plugin = getattr(trainer.accelerator.state, "deepspeed_plugin", None)
    if not getattr(trainer, "is_deepspeed_enabled", False) or plugin is None:
        return {}
    return dict(plugin.deepspeed_config.get("zero_optimization") or {})


def describe(trainer) -> dict:
    """World size, backend and engine of this process, as the trainer sees them."""
    acc = trainer.accelerator
    dtype = str(getattr(acc.distributed_type, "value", acc.distributed_type))
    zero = zero_config(trainer)
    stage = zero.get("stage")
    if stage is not None:
        engine = f"ZeRO-{stage}"
    elif dtype == "FSDP":
        engine = "FSDP"
    elif acc.num_processes > 1 and dtype in SYNCED:
        engine = "DDP"
    else:
        engine = "single"
    initialized = dist.is_available() and dist.is_initialized()
    return {
        "world_size": acc.num_processes,
        "env_world_size": int(os.environ.get("WORLD_SIZE", "1")),
        "rank": acc.process_index,
        "local_rank": acc.local_process_index,
        "num_nodes": max(1, acc.num_processes // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", acc.num_processes)))),
        "distributed_type": dtype,
        "backend": dist.get_backend() if initialized else None,
        "engine": engine,
        "zero_stage": stage,
        "offload_optimizer": (zero.get("offload_optimizer") or {}).get("device"),
        "offload_param": (zero.get("offload_param") or {}).get("device"),
        "gather_16bit_on_save": zero.get("stage3_gather_16bit_weights_on_model_save"),
        "device": str(acc.device),
        "ddp_timeout": trainer.args.ddp_timeout,
        "host": socket.gethostname(),
    }


def checkpoint_world_size(checkpoint: str | os.PathLike) -> int | None:
    """World size a Trainer checkpoint was written with: one rng_state_<rank>.pth per process (rng_state.pth
    alone: one process); None when the folder holds neither."""
    path = Path(checkpoint)
    ranks = list(path.glob("rng_state_*.pth"))
    if ranks:
        return len(ranks)
    return 1 if (path / "rng_state.pth").is_file() else None


def launch_errors(info: dict, env: dict) -> list[str]:
    problems = []
    if (_truthy(env.get("ACCELERATE_USE_CPU")) and env.get("MASTER_ADDR") and "WORLD_SIZE" not in env
            and not any(k in env for k in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"))):  # fmt: skip
        # accelerate's simple launcher: `accelerate launch --cpu --num_processes N` starts ONE process
        problems.append(
            "the launcher was asked for several processes but started one (MASTER_ADDR set, no WORLD_SIZE): "
            "`accelerate launch --cpu` always runs a single process. On CPU use `scripts/launch.sh` with "
            "ACCELERATE_CONFIG=configs/accelerate/ddp_cpu.yaml, or `accelerate launch --multi_gpu --num_processes N "
            "... --use_cpu true`, or `torchrun --nproc-per-node N -m mmreason ... --use_cpu true`"
        )
    if _truthy(env.get("ACCELERATE_USE_DEEPSPEED")) and info["distributed_type"] != "DEEPSPEED":
        problems.append(
            f"the launcher asked for DeepSpeed but the trainer runs {info['distributed_type']} "
            f"({info['engine']}): accelerate switches DeepSpeed off under use_cpu. On CPU run DeepSpeed with "
            "`--ddp_backend gloo` and without `--use_cpu` / ACCELERATE_USE_CPU (scripts/launch.sh does this)"
        )
    if info["env_world_size"] > 1 and info["world_size"] != info["env_world_size"]:
        problems.append(
            f"the launcher started WORLD_SIZE={info['env_world_size']} processes but the trainer runs as "
            f"{info['world_size']} process(es) ({info['distributed_type']}): each would train alone on the full data. "
            "Without GPUs pass `--use_cpu true` to the stage (or export ACCELERATE_USE_CPU=true; scripts/launch.sh "
            "does both)"
        )
    elif info["world_size"] > 1 and info["distributed_type"] not in SYNCED:
        problems.append(
            f"{info['world_size']} processes but distributed_type {info['distributed_type']}: the data is split "
            "and gradients are never synchronised. Without GPUs pass `--use_cpu true` to the stage (with "
            "--ddp_backend gloo it is not enough)"
        )
    return problems


def _save_errors(info: dict, trainer) -> list[str]:
    if info["zero_stage"] != 3 or info["gather_16bit_on_save"]:
        return []
    if getattr(trainer.model, "peft_config", None):
        return []  # adapters are saved unsharded by peft
    return [
        "ZeRO-3 without 16-bit gather on save writes no model weights a next stage can load: set "
        "`zero3_save_16bit_model: true` in the accelerate config (stage3_gather_16bit_weights_on_model_save in a "
        "DeepSpeed JSON), as configs/accelerate/deepspeed_zero3*.yaml do, or consolidate afterwards with "
        "`mmreason export CHECKPOINT OUT`"
    ]


def resume_errors(info: dict, resume: str | None) -> list[str]:
    if not resume:
        return []
    saved = checkpoint_world_size(resume)
    if saved is None or saved == info["world_size"]:
        return []
    return [
        f"{resume} was written by {saved} process(es) but this run has {info['world_size']}: resume with the "
        f"original world size ({saved} processes; optimizer shards, data order and the effective batch depend "
        "on it), or start a new run from its weights (`mmreason export` a DeepSpeed checkpoint first)"
    ]


def _sync_vision(trainer, info: dict) -> bool:
    """Under ZeRO-3, make every full forward run the vision tower (mmreason.vision_sync); True when installed."""
    if info["zero_stage"] != 3 or getattr(trainer.processing_class, "image_processor", None) is None:
        return False

    try:
        vision_language_model(trainer.model)
    except AttributeError:  # a text-only model: every rank takes the same path
        return False
    run_vision_on_every_forward(trainer.model, trainer.processing_class)
    return True


def check_distributed(trainer, resume: str | None = None) -> dict:
    """The start-of-stage guard (see the module docstring). Raises DistributedSetupError; returns describe()."""
    info = describe(trainer)
    problems = launch_errors(info, dict(os.environ)) + _save_errors(info, trainer) + resume_errors(info, resume)
    if problems:
        raise DistributedSetupError(f"rank {info['rank']}: " + "; ".join(problems))
    info["dummy_vision"] = _sync_vision(trainer, info)
    if info["backend"] is not None:
        # transformers passes ddp_timeout to the group only on GPU; without it a hung peer blocks gloo for 30 min
        dist.set_timeout(timedelta(seconds=trainer.args.ddp_timeout))
    logger.warning(
        "distributed: world size %(world_size)d, backend %(backend)s, engine %(engine)s (%(distributed_type)s), "
        "rank %(rank)d on %(host)s, ddp_timeout %(ddp_timeout)ss",
        info,
    )
    if trainer.accelerator.is_main_process:
        out = Path(trainer.args.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / INFO_FILE).write_text(json.dumps(info, indent=1))
    if info["world_size"] > 1 and os.environ.get(HEARTBEAT_ENV):
        start_heartbeat(os.environ[HEARTBEAT_ENV], info["rank"])
    return info


def parameter_digest(model) -> str:
    """sha256 over every parameter's name and bytes (gathered first under ZeRO-3, a collective)."""
    params = list(model.named_parameters())
    gather = contextlib.nullcontext()
    if any(hasattr(p, "ds_id") for _, p in params):
        import deepspeed  # lazy: DeepSpeed is optional (the deepspeed extra)

        gather = deepspeed.zero.GatheredParameters([p for _, p in params], modifier_rank=None)
    h = hashlib.sha256()
    with gather, torch.no_grad():
        for name, p in params:
            h.update(name.encode())
            h.update(p.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()


WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "adapter_model.safetensors")


def has_weights(folder: str | os.PathLike) -> bool:
    return any((Path(folder) / name).is_file() for name in WEIGHT_FILES)


def resave_canonical(folder: Path) -> None:
    """Rewrite a saved model with the key names a save without ZeRO-3 has: transformers' 16-bit ZeRO-3 gather path
    writes Qwen2.5-VL keys as model.model.layers.* (from_pretrained reads them back, and would save them that way
    again; other loaders expect model.layers.*). A model built from the config saves the default names."""
    # one process loads here: with the ZeRO-3 config still registered, from_pretrained would partition the
    # weights across ranks (zero.Init, a collective the other ranks never join) and hang
    registered = hf_ds._hf_deepspeed_config_weak_ref
    hf_ds.unset_hf_deepspeed_config()
    try:
        loaded = AutoModelForImageTextToText.from_pretrained(folder, dtype="auto", use_safetensors=True)
        with torch.device("meta"):
            fresh = AutoModelForImageTextToText.from_config(loaded.config)
        fresh.load_state_dict(loaded.state_dict(), assign=True)
        fresh.tie_weights()
        fresh.save_pretrained(folder)
    finally:
        hf_ds._hf_deepspeed_config_weak_ref = registered


def finish_distributed(trainer) -> None:
    """After the final save: all ranks' parameter digests must agree and the output folder must hold weights
    (under ZeRO-3 re-saved with the usual key names)."""
    acc = trainer.accelerator
    out = Path(trainer.args.output_dir)
    if acc.is_main_process and zero_config(trainer).get("stage") == 3 and not getattr(trainer.model, "peft_config", None):
        if has_weights(out):
            resave_canonical(out)
    if acc.num_processes > 1:
        digests = gather_object([parameter_digest(trainer.model)])
        if acc.is_main_process:
            path = out / INFO_FILE
            info = json.loads(path.read_text()) if path.is_file() else {}
            info.update(rank_parameter_sha256=digests, ranks_identical=len(set(digests)) == 1)
            path.write_text(json.dumps(info, indent=1))
        if len(set(digests)) != 1:
            raise DistributedSetupError(f"ranks finished with different parameters ({digests}): gradients were not synced")
    acc.wait_for_everyone()
    if acc.is_main_process and not has_weights(out):
        raise DistributedSetupError(f"{out}: the final save wrote no weights ({' / '.join(WEIGHT_FILES)})")


# --- heartbeat and watchdog -------------------------------------------------------------------------------------


def start_heartbeat(folder: str, rank: int, interval: float = HEARTBEAT_INTERVAL) -> threading.Thread:
    """A daemon thread touching <folder>/rank<R>.beat every `interval` s; a frozen process stops beating. The file
    is removed at a normal exit, so a rank that finished early is not mistaken for a frozen one."""
    path = Path(folder) / f"rank{rank}.beat"
    path.parent.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()

    tmp = path.with_suffix(".tmp")

    def beat():
        while not stop.is_set():
            tmp.write_text(f"{os.getpid()} {time.time():.3f}\n")
            os.replace(tmp, path)  # readers never see a half-written file
            stop.wait(interval)

    def done():
        stop.set()
        path.unlink(missing_ok=True)
        tmp.unlink(missing_ok=True)

    thread = threading.Thread(target=beat, name="mmreason-heartbeat", daemon=True)
    thread.start()
    atexit.register(done)
    return thread


def stale_beats(folder: Path, timeout: float, now: float | None = None) -> list[tuple[str, float]]:
    """(file, age in s) of every heartbeat older than `timeout`."""
    now = time.time() if now is None else now
    stale = []
    for path in sorted(folder.glob("rank*.beat")):
        try:
            age = now - path.stat().st_mtime
        except FileNotFoundError:  # removed by a normal exit meanwhile
            continue
        if age > timeout:
            stale.append((path.stem, age))
    return stale


def _tree(proc) -> list:
    try:
        return [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def kill_tree(procs: list, grace: float = 5.0) -> None:
    """SIGTERM (and SIGCONT, so a stopped process can act on it), then SIGKILL whatever is left after `grace`."""
    alive = []
    for p in procs:
        try:
            p.send_signal(signal.SIGTERM)
            p.send_signal(signal.SIGCONT)
            alive.append(p)
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(alive, timeout=grace)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=grace)


def watch(cmd: list[str], timeout: float, poll: float = 1.0, heartbeat_dir: str | None = None) -> int:
    """Run `cmd` (a launcher) and return its exit code; end its whole process tree (the launcher starts workers
    in their own sessions, so a process-group kill misses them) when a rank's heartbeat is older than `timeout`
    or when the launcher exits leaving processes behind. A stale rank gives exit code 124."""
    folder = Path(heartbeat_dir or tempfile.mkdtemp(prefix="mmreason-beats-"))
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("rank*.beat"):  # left by an earlier job killed in the same folder: not this job's ranks
        old.unlink(missing_ok=True)
    env = dict(os.environ, **{HEARTBEAT_ENV: str(folder)})
    child = subprocess.Popen(cmd, env=env)
    root = psutil.Process(child.pid)
    known: dict[int, psutil.Process] = {}

    def remember():
        for p in _tree(root):
            known.setdefault(p.pid, p)

    def end(code: int, why: str, grace: float = 5.0) -> int:
        print(f"mmreason watchdog: {why}; stopping the job", file=sys.stderr, flush=True)
        remember()
        kill_tree(list(known.values()), grace=grace)
        return code

    def on_signal(signum, _frame):
        # a scheduler's SIGTERM: the ranks finish their step and save a checkpoint (mmreason.preemption) first
        grace = float(os.environ.get(STOP_GRACE_ENV, STOP_GRACE))
        raise SystemExit(end(128 + signum, f"received signal {signum} (SIGKILL after {grace:.0f}s)", grace))

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    while True:
        remember()
        rc = child.poll()
        if rc is not None:
            left = [p for p in known.values() if p.pid != child.pid and p.is_running()]
            if left:
                end(rc or 1, f"launcher exited ({rc}) leaving {len(left)} process(es)")
            return rc
        stale = stale_beats(folder, timeout)
        if stale:
            names = ", ".join(f"{name} silent for {age:.0f}s" for name, age in stale)
            return end(124, f"{names} (frozen or dead; timeout {timeout:.0f}s)")
        time.sleep(poll)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mmreason.distributed", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("watch", help="run a launcher; end the job when a rank stops beating")
    w.add_argument("--timeout", type=float, default=float(os.environ.get("HEARTBEAT_TIMEOUT", 120)),
                   help="seconds without a heartbeat before the job is ended (env HEARTBEAT_TIMEOUT; default 120)")  # fmt: skip
    w.add_argument("--heartbeat-dir", default=os.environ.get(HEARTBEAT_ENV), help="folder for the ranks' beat files")
    w.add_argument("cmd", nargs=argparse.REMAINDER, help="-- then the launch command")
    args = parser.parse_args(argv)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        parser.error("watch: no command given (watch [--timeout S] -- torchrun ...)")
    return watch(cmd, args.timeout, heartbeat_dir=args.heartbeat_dir)


if __name__ == "__main__":
    sys.exit(main())
