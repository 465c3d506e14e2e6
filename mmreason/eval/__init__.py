"""Evaluation: benchmarks as plugins (`benchmark.Benchmark`, one module per built-in: records, MathVista, We-Math,
FutureBench), one run/score pipeline (`run.run_benchmark`, `run.score_file`; `records_eval.evaluate_records` for a
records file), the prediction cache, reports, and the paired statistics (`paired`, `stats`) the demos, the papers
and `mmreason eval compare` share. Generation backends live in `mmreason.generation`."""
