"""Run a `mmreason` command and SIGKILL it at the N-th event of a kind (no hook in the product code):

  python tests/faults/killer.py SITE N -- sft --config ...

SITE: `save`   — the N-th file a checkpoint save writes (torch.save / safetensors): the file is written, cut to half
                 its size, then the process is killed (a kill inside a checkpoint save);
      `step`   — the N-th training step, before it runs;
      `term`   — the N-th training step, before it runs: SIGTERM to this process (what a scheduler sends before
                 preempting a job); the stage must finish that step, save a checkpoint and exit 143. Under a
                 multi-process launch, MMREASON_KILLER_RANK=R signals rank R only;
      `append` — the N-th durable JSONL append (the data builder's records/ledger, the eval prediction cache):
                 half of the first line is written, then the process is killed (a kill inside a ledger/cache write).
N = 0 counts the events and prints `events: K` at exit instead of killing."""

from __future__ import annotations

import atexit
import os
import signal
import sys


def _kill() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def install(site: str, nth: int) -> None:
    count = [0]

    def hit() -> bool:
        count[0] += 1
        return nth > 0 and count[0] == nth

    if nth == 0:
        atexit.register(lambda: print(f"events: {count[0]}", file=sys.stderr, flush=True))
    if site == "save":
        import safetensors.torch
        import torch
        import transformers.modeling_utils as mu

        def torn(orig):
            def wrapper(obj, f, *a, **kw):
                out = orig(obj, f, *a, **kw)
                if hit() and isinstance(f, (str, os.PathLike)):
                    with open(f, "r+b") as fh:
                        fh.truncate(os.path.getsize(f) // 2)
                    _kill()
                return out

            return wrapper

        torch.save = torn(torch.save)
        mu.safe_save_file = torn(mu.safe_save_file)
        safetensors.torch.save_file = torn(safetensors.torch.save_file)
    elif site == "step":
        import transformers

        orig = transformers.Trainer.training_step

        def step(self, *a, **kw):
            if hit():
                _kill()
            return orig(self, *a, **kw)

        transformers.Trainer.training_step = step
    elif site == "term":
        import transformers

        orig = transformers.Trainer.training_step

        only = os.environ.get("MMREASON_KILLER_RANK")

        def step(self, *a, **kw):
            if hit() and (only is None or only == os.environ.get("RANK", "0")):
                os.kill(os.getpid(), signal.SIGTERM)
            return orig(self, *a, **kw)

        transformers.Trainer.training_step = step
    elif site == "append":
        import json

        import mmreason.jsonl as jl

        orig = jl.AppendLog.append

        def append(self, rows):
            rows = list(rows)
            if hit() and rows:
                data = (json.dumps(rows[0], ensure_ascii=False, sort_keys=self.sort_keys) + "\n").encode()
                os.write(self.fd, data[: max(1, len(data) // 2)])
                _kill()
            return orig(self, rows)

        jl.AppendLog.append = append
    else:
        raise SystemExit(f"unknown site {site!r}")


def main() -> int:
    site, nth, sep, *argv = sys.argv[1:]
    assert sep == "--", "usage: killer.py SITE N -- COMMAND ARGS"
    from mmreason.offline import offline_defaults

    offline_defaults()
    install(site, int(nth))
    from mmreason.cli import main as cli

    return cli(argv)


if __name__ == "__main__":
    sys.exit(main())
