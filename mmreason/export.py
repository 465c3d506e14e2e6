"""`mmreason export CKPT OUT`: a sharded DeepSpeed checkpoint (ZeRO-2/3: `latest` + global_step*/ shard files,
what a Trainer checkpoint-N/ folder or a ZeRO-3 save without 16-bit gather holds) -> a normal HF checkpoint
folder (safetensors + config + processor) that `mmreason grpo`, `eval run` and from_pretrained load.

The weights are DeepSpeed's own fp32 consolidation (deepspeed.utils.zero_to_fp32) of the optimizer's master
copy; config and processor come from CKPT (or --config-from, e.g. the base model, when CKPT lacks them)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

DTYPES = ("float32", "bfloat16", "float16")


def deepspeed_tag(ckpt: Path, tag: str | None) -> str:
    """The global_step* folder to consolidate: --tag, else the one `latest` names; a clear error otherwise."""
    if tag is None:
        latest = ckpt / "latest"
        if not latest.is_file():
            steps = sorted(p.name for p in ckpt.glob("global_step*") if p.is_dir())
            if not steps:
                raise FileNotFoundError(f"{ckpt}: no DeepSpeed checkpoint here (no 'latest' file, no global_step*/)")
            raise FileNotFoundError(f"{ckpt}: no 'latest' file; pick one of {steps} with --tag")
        tag = latest.read_text().strip()
    if not (ckpt / tag).is_dir():
        raise FileNotFoundError(f"{ckpt / tag}: DeepSpeed tag folder not found")
    return tag


def export(ckpt: str | Path, out: str | Path, tag: str | None = None, config_from: str | Path | None = None,
           dtype: str = "float32") -> Path:  # fmt: skip
    # lazy: DeepSpeed is optional (the deepspeed extra)
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    ckpt, out = Path(ckpt), Path(out)
    source = Path(config_from) if config_from else ckpt
    if not (source / "config.json").is_file():
        raise FileNotFoundError(f"{source}: no config.json (give the base model folder with --config-from)")
    if (ckpt / "adapter_config.json").is_file():
        raise ValueError(f"{ckpt}: a LoRA adapter checkpoint; adapters are saved unsharded, use the folder as it is")
    tag = deepspeed_tag(ckpt, tag)
    state = get_fp32_state_dict_from_zero_checkpoint(str(ckpt), tag=tag)
    config = AutoConfig.from_pretrained(source)
    with torch.device("meta"):
        model = AutoModelForImageTextToText.from_config(config)
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    tied = {k for k in missing if k.endswith("lm_head.weight")} if config.get_text_config().tie_word_embeddings else set()
    if set(missing) - tied or unexpected:
        raise ValueError(f"{ckpt}/{tag}: weights do not match {source}/config.json "
                         f"(missing {sorted(set(missing) - tied)[:5]}, unexpected {sorted(unexpected)[:5]})")  # fmt: skip
    if tied:
        model.tie_weights()
    model.to(getattr(torch, dtype))
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    AutoProcessor.from_pretrained(source).save_pretrained(out)
    gen = source / "generation_config.json"
    if gen.is_file() and not (out / "generation_config.json").is_file():
        (out / "generation_config.json").write_text(gen.read_text())
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mmreason export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("checkpoint", help="folder with DeepSpeed's 'latest' file and global_step*/ shards")
    parser.add_argument("out", help="output folder (HF checkpoint: model.safetensors, config, processor)")
    parser.add_argument("--tag", default=None, help="global_step* folder to export (default: the one 'latest' names)")
    parser.add_argument("--config-from", default=None,
                        help="folder to take config.json + processor from when the checkpoint has none (base model)")  # fmt: skip
    parser.add_argument("--dtype", choices=DTYPES, default="float32", help="dtype of the written weights")
    args = parser.parse_args(argv)
    try:
        out = export(args.checkpoint, args.out, tag=args.tag, config_from=args.config_from, dtype=args.dtype)
    except (FileNotFoundError, ValueError) as e:
        print(f"mmreason export: error: {e}", file=sys.stderr)
        return 2
    print(f"exported {args.checkpoint} -> {out}")
    return 0
