"""Parity with stock TRL, one TRL GRPO feature per test: the same 2 training steps on the tiny Qwen2.5-VL with
`trl.GRPOTrainer` and with `MMReasonGRPOTrainer` swapped in as a TRL user would (TRL's positional constructor, a
stock `GRPOConfig`), compared on the logged loss and the parameters after the steps: equal with our extras off,
moved with one on (Clip-Cov selecting tokens). Written from TRL's documented behaviour."""

import math

import pytest
import torch

from grpo_fixtures import token_reward, trl_args, write_records


@pytest.fixture(scope="module")
def data(tiny_model_dir, tmp_path_factory):
    from transformers import AutoProcessor

    from mmreason.rl.data import build_grpo_dataset

    processor = AutoProcessor.from_pretrained(tiny_model_dir, padding_side="left")
    ds, _ = build_grpo_dataset(write_records(tmp_path_factory.mktemp("parity")), processor=processor)
    return processor, ds


def train(kind, model_dir, tmp_path, processor, train_dataset, extras=None, eval_dataset=None, peft_config=None,
          reward_funcs=(token_reward,), environment_factory=None, **kw):
    """2 steps; returns (the log history's loss values, eval_loss values, the trainable parameters after)."""
    from trl import GRPOConfig, GRPOTrainer

    from mmreason.rl.config import MMReasonGRPOConfig
    from mmreason.rl.trainer import MMReasonGRPOTrainer

    args = trl_args(tmp_path / kind, **kw)
    if kind == "stock":
        config, cls = GRPOConfig(**args), GRPOTrainer
    else:
        config = GRPOConfig(**args) if extras is None else MMReasonGRPOConfig(**args, **extras)
        cls = MMReasonGRPOTrainer
    trainer = cls(str(model_dir), list(reward_funcs) or None, config, train_dataset, eval_dataset, processor,
                  peft_config=peft_config, environment_factory=environment_factory)
    start = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    trainer.train()
    logs = trainer.state.log_history
    params = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert any(not torch.equal(start[n], params[n]) for n in params), f"{kind}: 2 steps left every weight as it was"
    return [h["loss"] for h in logs if "loss" in h], [h["eval_loss"] for h in logs if "eval_loss" in h], params


CLIP_COV = dict(policy_loss="clip_cov", clip_cov_lb=-1e9, clip_cov_ub=1e9, clip_cov_ratio=0.5)


def check(tiny_model_dir, tmp_path, processor, ds, extras_on=True, **kw):
    stock = train("stock", tiny_model_dir, tmp_path, processor, ds, **kw)
    ours = train("ours", tiny_model_dir, tmp_path, processor, ds, **kw)
    assert len(stock[0]) == 2 and stock[0] == ours[0] and stock[1] == ours[1]
    assert all(not math.isnan(v) for v in stock[0])
    assert stock[2].keys() == ours[2].keys() and all(torch.equal(stock[2][n], ours[2][n]) for n in stock[2])
    if extras_on:
        moved = train("ours_cov", tiny_model_dir, tmp_path, processor, ds, extras=CLIP_COV, **kw)
        assert any(not torch.equal(stock[2][n], moved[2][n]) for n in stock[2])
    return stock


LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo", "luspo", "cispo", "sapo", "vespo")


@pytest.mark.parametrize("loss_type", LOSS_TYPES)
def test_loss_types(loss_type, tiny_model_dir, tmp_path, data):
    check(tiny_model_dir, tmp_path, *data, extras_on=loss_type in ("dapo", "sapo"), loss_type=loss_type)


@pytest.mark.parametrize("feature", [
    dict(importance_sampling_level="sequence", loss_type="grpo"),  # GSPO
    dict(beta=0.04),  # KL to a reference model
    dict(top_entropy_quantile=0.5),  # entropy filter
    dict(entropy_coef=0.01),  # entropy bonus
    dict(use_adaptive_entropy=True, entropy_target=10.0),
    dict(num_iterations=2),  # several updates per generation
], ids=["gspo", "beta", "entropy_filter", "entropy_bonus", "adaptive_entropy", "num_iterations"])
def test_config_features(feature, tiny_model_dir, tmp_path, data):
    check(tiny_model_dir, tmp_path, *data, **feature)


def test_iterable_dataset(tiny_model_dir, tmp_path, data):
    processor, ds = data
    check(tiny_model_dir, tmp_path, processor, ds.to_iterable_dataset(), extras_on=False)


def test_peft_lora(tiny_model_dir, tmp_path, data):
    from peft import LoraConfig

    stock = check(tiny_model_dir, tmp_path, *data, extras_on=False,
                  peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    assert stock[2] and all("lora" in n for n in stock[2])


def test_text_only_prompts(tiny_model_dir, tmp_path, data):
    """The vision model on a dataset without images (plain-text prompts), beside the image datasets above."""
    from datasets import Dataset

    processor, _ = data
    text = Dataset.from_list([{"prompt": [{"role": "user", "content": f"What is {i} plus {i}?"}]} for i in range(8)])
    check(tiny_model_dir, tmp_path, processor, text, extras_on=False)


def test_evaluation(tiny_model_dir, tmp_path, data):
    processor, ds = data
    stock = check(tiny_model_dir, tmp_path, processor, ds, extras_on=False, eval_dataset=ds.select(range(4)),
                  eval_strategy="steps", eval_steps=1, per_device_eval_batch_size=4)
    assert len(stock[1]) == 2


class CountingEnv:
    """An environment that owns the reward (TRL's environment_factory): no tools, a reward from its own state (the
    rollout's place in the order of resets, mod the group size: it varies within each group, and a run of 2 steps
    makes 8 resets, so every run sees the same rewards)."""

    resets = 0

    def reset(self, **kwargs):
        self.n = CountingEnv.resets
        CountingEnv.resets += 1
        return None

    def get_reward(self):
        return float(self.n % 4)


def test_an_environment_owns_the_reward_with_reward_funcs_none(tiny_model_dir, tmp_path, data):
    """reward_funcs=None with an environment_factory whose environment defines get_reward. TRL asks for a chat
    template that renders tool calls: TRL's own Qwen3-VL template is given to the tiny model's processor."""
    import copy
    from pathlib import Path

    import trl

    processor, ds = data
    processor = copy.deepcopy(processor)
    processor.chat_template = (Path(trl.__file__).parent / "chat_templates" / "qwen3_vl.jinja").read_text()
    before = CountingEnv.resets
    check(tiny_model_dir, tmp_path, processor, ds, extras_on=False, reward_funcs=(), environment_factory=CountingEnv)
    assert CountingEnv.resets - before == 16  # 2 runs x 2 steps x 4 rollouts: the environment was used


def test_the_constructor_is_trls():
    import inspect

    from trl import GRPOTrainer

    from mmreason.rl.trainer import MMReasonGRPOTrainer

    theirs = inspect.signature(GRPOTrainer.__init__).parameters
    ours = inspect.signature(MMReasonGRPOTrainer.__init__).parameters
    head = list(ours.values())[: len(theirs)]
    assert [(p.name, p.kind, p.default) for p in head] == [(p.name, p.kind, p.default) for p in theirs.values()]
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in list(ours.values())[len(theirs):])


def test_the_config_is_decided_before_any_model_loads(tmp_path):
    """A stock GRPOConfig becomes ours (TRL's fields as set, ours at their defaults); a config that is not a
    GRPOConfig is refused before the model path is even looked at."""
    from trl import GRPOConfig
    from transformers import TrainingArguments

    from mmreason.rl.config import MMReasonGRPOConfig
    from mmreason.rl.trainer import MMReasonGRPOTrainer

    stock = GRPOConfig(**trl_args(tmp_path, loss_type="bnpo", steps_per_generation=2, epsilon_high=0.28))
    ours = MMReasonGRPOConfig.from_grpo_config(stock)
    assert (ours.loss_type, ours.steps_per_generation, ours.generation_batch_size, ours.epsilon_high) == (
        "bnpo", 2, stock.generation_batch_size, 0.28)
    assert (ours.policy_loss, ours.clip_ratio_c, ours.dynamic_sampling, ours.delta) == ("none", None, "off", None)
    with pytest.raises(TypeError, match="must be a GRPOConfig"):
        MMReasonGRPOTrainer(str(tmp_path / "no_such_model"), [token_reward],
                            TrainingArguments(str(tmp_path / "o"), use_cpu=True))
