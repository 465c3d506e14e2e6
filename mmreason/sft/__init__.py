"""SFT stage: a thin script over TRL's SFTTrainer for Qwen2.5-VL (vision freezing, LoRA)."""
