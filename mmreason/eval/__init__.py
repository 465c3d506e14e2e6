"""Evaluation: generation backends (HF / vLLM), MathVista and We-Math scorers, records eval, reports.

Public API:
- `evaluate_records(model_path, records_path, output_dir, ...) -> dict` (accuracy is a fraction)
- `run_benchmark(model, benchmark, output_dir, ...)`, `score_file(benchmark, predictions, output, ...)`
- `mmreason.generation.backends`: `GenerationSettings`, `HFBackend`, `VLLMBackend`, `load_backend`, `generate_texts`
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
