"""Evaluation: benchmarks as plugins (`benchmark.Benchmark`: records, MathVista, We-Math), one run/score
pipeline (`run`), the prediction cache, reports.

Public API:
- `evaluate_records(model_path, records_path, output_dir, ...) -> dict` (accuracy is a fraction)
- `run_benchmark(model, benchmark, output_dir, ...)`, `score_file(benchmark, predictions, output, ...)`
- `mmreason.eval.benchmark`: `Benchmark`, `Item`, `Video`, `ScoreOptions`, `register` (adding a benchmark)
- generation backends live in `mmreason.generation`
Submodules are imported lazily so `import mmreason.eval` stays light.
"""

from __future__ import annotations


def evaluate_records(*args, **kwargs):
    from mmreason.eval.records_eval import evaluate_records as f

    return f(*args, **kwargs)


def run_benchmark(*args, **kwargs):
    from mmreason.eval.run import run_benchmark as f

    return f(*args, **kwargs)


def score_file(*args, **kwargs):
    from mmreason.eval.run import score_file as f

    return f(*args, **kwargs)


__all__ = ["evaluate_records", "run_benchmark", "score_file"]
