"""`mmreason eval run | score | compare`.

  mmreason eval run --model PATH --benchmark mathvista|wemath|SPEC.yaml|RECORDS.jsonl --output-dir OUT
                    [--backend hf|vllm] [--limit N] [--data-dir D] [--mode M] [--batch-size B]
                    [--max-new-tokens T] [--temperature X] [--system-prompt S] [--instruction I]
                    [--judge-model ID --judge-base-url URL]
  mmreason eval score --benchmark mathvista|wemath|SPEC.yaml|RECORDS.jsonl --predictions P --output S
                      [--annotations A] [--mode M]
  mmreason eval compare A B [--labels LA LB] [--seed N] [--json OUT]
      A, B: two scores.json (or eval output folders) of the same items; prints B − A paired: exact McNemar p
      and a paired bootstrap 95% CI, overall and per source (records evals)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from mmreason.eval.compare import compare_files
from mmreason.eval.judge import OpenAIJudge
from mmreason.eval.run import run_benchmark, score_file
from mmreason.formats.options import add_format_flags, format_flags_given
from mmreason.offline import offline_defaults
from mmreason.prompts import MAX_TEXT_CHARS
from mmreason.usage import positive_int


def _judge(args):
    if args.mode != "judge":
        return None
    if not args.judge_model:
        raise SystemExit("--mode judge needs --judge-model (the extraction model id on the endpoint)")

    return OpenAIJudge(args.judge_model, base_url=args.judge_base_url, api_key=os.environ.get(args.judge_api_key_env, ""))


def _add_judge(p: argparse.ArgumentParser) -> None:
    p.add_argument("--judge-model", help="judge model id (mode judge)")
    p.add_argument("--judge-base-url", help="OpenAI-compatible base URL (default: $OPENAI_BASE_URL)")
    p.add_argument("--judge-api-key-env", default="OPENAI_API_KEY",
                   help="environment variable holding the API key (keys never go on the command line or in logs)")


def _compare(args) -> int:
    try:
        md, rows = compare_files(args.a, args.b, tuple(args.labels) if args.labels else None, args.seed,
                                 by_group=not args.no_groups)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"mmreason eval compare: {e}") from None
    print("\n".join(md))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=1)
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="mmreason eval", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="generate and score")
    r.add_argument("--model", required=True, help="checkpoint folder (or hub id), or a LoRA adapter folder")
    r.add_argument("--benchmark", required=True, help="mathvista | wemath | eval/<spec>.yaml | records .jsonl | a "
                                                      "data file/folder in a layout of mmreason.formats")
    r.add_argument("--output-dir", required=True)
    r.add_argument("--backend", default="hf", choices=["hf", "vllm"])
    r.add_argument("--limit", type=positive_int, help="first N items (We-Math: whole problem groups up to N rows)")
    r.add_argument("--data-dir", help="local benchmark folder in the official layout (else the spec's / the Hub)")
    r.add_argument("--video-root", help="folder the items' video paths resolve against (the spec's video_root; "
                                        "FutureBench: V1-33K/first_part_video)")
    r.add_argument("--mode", help="scoring mode (default: the spec's)")
    r.add_argument("--batch-size", type=positive_int)
    r.add_argument("--max-new-tokens", type=positive_int)
    r.add_argument("--max-prompt-chars", type=positive_int, default=MAX_TEXT_CHARS,
                   help="prompts longer than this many characters are not generated (counted in scores.json "
                        "'dropped_long', scored without a prediction): checked before tokenisation")
    r.add_argument("--temperature", type=float)
    r.add_argument("--system-prompt", help="system message (default: the checkpoint's prompt.json, else the spec's; "
                                           "'' = none)")
    r.add_argument("--instruction", help="value of {{ instruction }} in the prompt template (default: the "
                                         "checkpoint's prompt.json, else the spec's; '' = none)")
    r.add_argument("--no-progress", action="store_true")
    add_format_flags(r)
    _add_judge(r)
    s = sub.add_parser("score", help="score predictions produced anywhere")
    s.add_argument("--benchmark", required=True, help="mathvista | wemath | eval/<spec>.yaml | records .jsonl")
    s.add_argument("--predictions", required=True, help="official output JSON, our predictions JSONL ({id, response}), "
                                                        "a JSON list of them, or lmms-eval --log_samples JSONL")
    s.add_argument("--output", required=True, help="scores.json path (report.md and charts go beside it)")
    s.add_argument("--annotations", help="benchmark folder (official layout) or its testmini.json; default: the Hub")
    s.add_argument("--mode", help="mathvista: official|judge|boxed; wemath: official|boxed (default: official)")
    s.add_argument("--only-predicted", action="store_true", help="score only ids present in the predictions")
    s.add_argument("--lenient", action="store_true",
                   help="an id predicted twice with different content: keep the first and report both places "
                        "(default: an error)")
    s.add_argument("--breakdown-from-predictions", action="store_true",
                   help="MathVista: take breakdown fields from the prediction records (official scorer behaviour)")
    add_format_flags(s)
    _add_judge(s)
    c = sub.add_parser("compare", help="paired test of two evals of the same items (McNemar, paired bootstrap)")
    c.add_argument("a", help="scores.json (or its eval output folder) of model A, e.g. the starting checkpoint")
    c.add_argument("b", help="scores.json (or folder) of model B; differences are B - A")
    c.add_argument("--labels", nargs=2, metavar=("LA", "LB"), help="names of A and B in the table (default: the paths)")
    c.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    c.add_argument("--no-groups", action="store_true", help="overall only (no per-source rows)")
    c.add_argument("--json", help="also write the rows as JSON here")
    return ap


def main(argv: list[str] | None = None) -> int:
    offline_defaults()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    if args.cmd == "compare":
        return _compare(args)

    if args.cmd == "run":
        s = run_benchmark(args.model, args.benchmark, args.output_dir, backend=args.backend, limit=args.limit,
                          data_dir=args.data_dir, mode=args.mode, batch_size=args.batch_size,
                          max_new_tokens=args.max_new_tokens, temperature=args.temperature, judge=_judge(args),
                          progress=not args.no_progress, system_prompt=args.system_prompt,
                          instruction=args.instruction, max_prompt_chars=args.max_prompt_chars,
                          video_root=args.video_root, data_format=format_flags_given(args) or None)
    else:
        s = score_file(args.benchmark, args.predictions, args.output, annotations=args.annotations, mode=args.mode,
                       judge=_judge(args), only_predicted=args.only_predicted,
                       breakdown_from_predictions=args.breakdown_from_predictions, lenient=args.lenient,
                       data_format=format_flags_given(args) or None)
    keys = ("benchmark", "mode", "total", "correct", "accuracy", "score_strict", "score_loose")
    print(json.dumps({k: s[k] for k in keys if k in s}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
