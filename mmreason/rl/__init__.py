"""GRPO stage: the policy losses (losses/: the registry and one file per built-in), the TRL trainer subclass
(trainer.py), its config (config.py), records -> dataset with the prompt budget (data.py), the stage script
(run.py), the entropy-performance law (entropy_law.py) and its plots (plot.py). Heavy imports stay inside
submodules."""
