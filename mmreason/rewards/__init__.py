"""GRPO rewards: one module per family of built-ins, each reward registered by `@register("name")` and found by
scanning this folder (`registry.builtin_rewards()`); `registry.build_reward_funcs` turns YAML's `reward_funcs`
(built-in names or `file.py:NAME` / `package.module:NAME` plugins) into TRL reward callables."""
