"""mmreason: cold-start SFT + GRPO with entropy-aware losses for Qwen2.5-VL."""

__version__ = "0.1.0"
