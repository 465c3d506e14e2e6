r"""GRPO rewards, picked by name: `build_reward_funcs(["accuracy", "format"], num_generations=G)`.

| name | what | module |
|---|---|---|
| accuracy | last `\boxed{}` matches gold (math-verify in a timed process pool); 0 if several boxes (`single_box`) | verifiable |
| format | 1.0 (`scale`) for one `\boxed{}` ending a non-empty reasoning; weight it small via `reward_weights` | verifiable |
| mcq_letter | boxed option letter equals the gold letter (multiple choice only) | verifiable |
| answer_letter | the option letter in `<answer>` tags equals the gold (strict; `mode: official` = NEP paper; `mode: futurebench` = FutureBench's bare-letter extraction) | answer_tag |
| majority_vote | MM-UPT: 1 if in the group's largest answer cluster (no labels needed) | vote |
"""

from mmreason.rewards.registry import REWARDS, NamedReward, build_reward_funcs, register
from mmreason.rewards.verifiable import accuracy, format_reward, mcq_letter
from mmreason.rewards.answer_tag import answer_letter
from mmreason.verify import Result, VerifyPool, verify_many
from mmreason.rewards.vote import majority_vote

__all__ = [
    "REWARDS",
    "NamedReward",
    "Result",
    "VerifyPool",
    "accuracy",
    "answer_letter",
    "build_reward_funcs",
    "format_reward",
    "majority_vote",
    "mcq_letter",
    "register",
    "verify_many",
]
