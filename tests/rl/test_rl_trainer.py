"""The GRPO stage on the tiny Qwen2.5-VL: loss parity with stock TRL, one step per policy_loss, dynamic
sampling, vLLM config wiring (without vllm), the prompt budget, resume. Rewards are local functions."""

import json
import logging
import sys
import warnings
from pathlib import Path

import pytest
import torch
import trl_hooks
from ports import two_process_views

REPO = Path(__file__).resolve().parents[2]
NUM_GEN = 4


# ---------------------------------------------------------------- fixtures and local rewards


def varying_reward(completions, completion_ids, record_id, **kwargs):
    """Position-in-group reward: always varies within a group, deterministic."""
    return [float(i % NUM_GEN) for i in range(len(completions))]


def accuracy(completions, completion_ids, record_id, **kwargs):
    """Constant for even-numbered records (zero-variance groups), varying for odd ones."""
    return [1.0 if int(r[1:]) % 2 == 0 else float(i % NUM_GEN) for i, r in enumerate(record_id)]


@pytest.fixture(scope="module")
def records_file(tmp_path_factory):
    from PIL import Image

    d = tmp_path_factory.mktemp("grpo_data")
    (d / "images").mkdir()
    recs = []
    for i in range(8):
        size = (56, 56) if i < 7 else (112, 112)  # the last one has 4x the image tokens
        Image.new("RGB", size, (30 * i, 100, 0)).save(d / f"images/{i}.png")
        recs.append({"id": f"q{i}", "question": "How many red shapes are there?" + " Count carefully." * i,
                     "answer": str(i % 4), "answer_type": "integer", "images": [f"images/{i}.png"]})
    path = d / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return path


@pytest.fixture(scope="module")
def processor(tiny_model_dir):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(tiny_model_dir, padding_side="left")


@pytest.fixture(scope="module")
def dataset(records_file, processor):
    from mmreason.rl.data import build_grpo_dataset

    ds, _ = build_grpo_dataset(records_file, processor=processor)
    return ds


def common_args(tmp_path, **kw):
    args = dict(
        output_dir=str(tmp_path / "out"), per_device_train_batch_size=8, num_generations=NUM_GEN,
        max_completion_length=12, bf16=False, gradient_checkpointing=False, report_to="none", logging_steps=1,
        save_strategy="no", learning_rate=1e-2, seed=0, temperature=1.0,
    )
    args.update(kw)
    return args


def ours(tiny_model_dir, dataset, processor, tmp_path, reward=accuracy, **kw):
    from mmreason.rl.config import MMReasonGRPOConfig
    from mmreason.rl.trainer import MMReasonGRPOTrainer

    return MMReasonGRPOTrainer(model=str(tiny_model_dir), reward_funcs=[reward],
                               args=MMReasonGRPOConfig(**common_args(tmp_path, **kw)),
                               train_dataset=dataset, processing_class=processor)


def group_rows(dataset, ids):
    return [dataset[i] for i in ids for _ in range(NUM_GEN)]


# ---------------------------------------------------------------- loss parity


def test_loss_equals_stock_trl_and_cov_losses_on_policy(tiny_model_dir, dataset, processor, tmp_path):
    from trl import GRPOConfig, GRPOTrainer

    kw = dict(beta=0.04)
    stock = GRPOTrainer(model=str(tiny_model_dir), reward_funcs=[varying_reward],
                        args=GRPOConfig(**common_args(tmp_path, **kw)), train_dataset=dataset,
                        processing_class=processor)
    mine = ours(tiny_model_dir, dataset, processor, tmp_path, reward=varying_reward, **kw)
    for t in (stock, mine):
        t.model.train()
        t.current_gradient_accumulation_steps = 1
    torch.manual_seed(0)
    inputs = trl_hooks.generate(stock, group_rows(dataset, [1, 2]))
    assert inputs["advantages"].abs().sum() > 0 and "ref_per_token_logps" in inputs

    def loss_and_grad(trainer):
        trainer.model.zero_grad()
        loss = trainer.compute_loss(trainer.model, inputs)
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in trainer.model.parameters() if p.grad is not None]

    for loss_type in ("dapo", "grpo", "bnpo", "dr_grpo"):
        stock.loss_type = mine.loss_type = loss_type
        ref_loss, ref_grads = loss_and_grad(stock)
        mine.args.policy_loss = "none"
        loss, grads = loss_and_grad(mine)
        assert torch.equal(loss, ref_loss), loss_type
        assert all(torch.equal(a, b) for a, b in zip(grads, ref_grads))
        # On-policy (ratio 1) with no token selected, Clip-Cov is the stock loss; KL-Cov's penalty |0| adds 0.
        mine.args.policy_loss, mine.args.clip_cov_lb, mine.args.clip_cov_ub = "clip_cov", 1e8, 1e9
        assert torch.allclose(loss_and_grad(mine)[0], ref_loss, atol=1e-6), loss_type
        mine.args.policy_loss = "kl_cov"
        assert torch.allclose(loss_and_grad(mine)[0], ref_loss, atol=1e-6), loss_type
    # with tokens actually detached, Clip-Cov differs from the stock loss
    mine.loss_type = "dapo"
    mine.args.policy_loss, mine.args.clip_cov_lb, mine.args.clip_cov_ub, mine.args.clip_cov_ratio = "clip_cov", -1e9, 1e9, 0.5
    stock.loss_type = "dapo"
    assert not torch.allclose(loss_and_grad(mine)[0], loss_and_grad(stock)[0])
    assert trl_hooks.metrics(mine)["cov/frac_selected"][-1] > 0.4


def _stock(tiny_model_dir, dataset, processor, tmp_path, reward=varying_reward, **kw):
    from trl import GRPOConfig, GRPOTrainer

    return GRPOTrainer(model=str(tiny_model_dir), reward_funcs=[reward], args=GRPOConfig(**common_args(tmp_path, **kw)),
                       train_dataset=dataset, processing_class=processor)


def test_aggregation_is_pinned_to_trls_for_every_loss_type(tiny_model_dir, dataset, processor, tmp_path,
                                                           monkeypatch):
    """TRL's _compute_loss on a fake policy pass (logp = 0 -> ratio 1 -> per-token loss = -A exactly for the
    clipped surrogates, with [B, T] advantages TRL accepts) is TRL's aggregation of a chosen per-token tensor. A
    plugin loss returning that tensor goes through ours (TRL's policy term, its advantages zeroed, is 0; the plugin's
    term is added as TRL aggregates its own), and must give the same numbers. sapo aggregates as grpo, cispo and
    vespo as dapo (TRL's own grouping)."""
    from trl import GRPOTrainer

    from mmreason.rl.config import CLIPPED_LOSS_TYPES
    from mmreason.rl.losses.registry import LOSSES

    stock = _stock(tiny_model_dir, dataset, processor, tmp_path, beta=0.0, steps_per_generation=4)
    mine = ours(tiny_model_dir, dataset, processor, tmp_path, reward=varying_reward, beta=0.0, steps_per_generation=4)
    B, T = 6, 7
    g = torch.Generator().manual_seed(0)
    target = torch.randn(B, T, generator=g)
    mask = (torch.rand(B, T, generator=g) > 0.3).long()
    mask[:, 0], mask[-1] = 1, 0  # uneven lengths and one empty row (the clamps)
    inputs = {"prompt_ids": torch.ones(B, 2, dtype=torch.long), "prompt_mask": torch.ones(B, 2, dtype=torch.long),
              "completion_ids": torch.zeros(B, T, dtype=torch.long), "completion_mask": mask,
              "advantages": -target, "num_items_in_batch": mask.sum() * 3}
    # TRL's pass, under ours too (ours runs the policy loss on what it returns)
    trl_hooks.replace_token_logps(monkeypatch, GRPOTrainer,
                                  lambda *a, **k: (torch.zeros(B, T, requires_grad=True), torch.ones(B, T), None))
    monkeypatch.setitem(LOSSES, "target_test_loss", lambda logp, old, adv, mask, cfg, ctx: (target, {}))
    mine.args.policy_loss = "target_test_loss"
    for loss_type in CLIPPED_LOSS_TYPES:
        for training, accum in ((True, 1), (True, 3), (False, 3)):
            for t in (stock, mine):
                t.loss_type, t.current_gradient_accumulation_steps = loss_type, accum
                t.model.train(training)
            want = stock.compute_loss(stock.model, inputs)
            got = mine.compute_loss(mine.model, inputs)
            assert torch.equal(got.detach(), want.detach()), (loss_type, training, accum, float(got), float(want))
            for same, as_ in (("sapo", "grpo"), ("cispo", "dapo"), ("vespo", "dapo")):
                if loss_type == as_:
                    mine.loss_type = same
                    assert torch.equal(mine.compute_loss(mine.model, inputs).detach(), got.detach())


def test_every_loss_type_trl_aggregates_is_one_ours_aggregates():
    """Ours re-aggregates the plugin term per loss_type as TRL's _compute_loss does (checked number for number
    above): a loss type a TRL upgrade adds there must be added here too, or a plugin loss under it would fail."""
    import re

    from mmreason.rl.config import CLIPPED_LOSS_TYPES, UNCLIPPED_LOSS_TYPES

    source = trl_hooks.loss_source()
    trl_types = set(re.findall(r'"(\w+)"', " ".join(re.findall(r"self\.loss_type (?:==|in) ([^:]+):", source))))
    assert trl_types == set(CLIPPED_LOSS_TYPES) | set(UNCLIPPED_LOSS_TYPES), trl_types


def test_dual_clip_is_trls_delta_and_verls_formula(tiny_model_dir, dataset, processor, tmp_path):
    """clip_ratio_c sets TRL's delta: off-policy, ours with clip_ratio_c 3 equals stock TRL with delta 3 bit for bit,
    and both equal verl's dual-clip min(max(pg1, pg2), -3A) for A < 0, aggregated token-mean (dapo)."""
    from mmreason.rl.losses.registry import dual_clip

    kw = dict(beta=0.0, loss_type="dapo")
    stock = _stock(tiny_model_dir, dataset, processor, tmp_path, delta=3.0, **kw)
    mine = ours(tiny_model_dir, dataset, processor, tmp_path, reward=varying_reward, clip_ratio_c=3.0, **kw)
    assert mine.args.delta == 3.0
    for t in (stock, mine):
        t.model.train()
        t.current_gradient_accumulation_steps = 1
    torch.manual_seed(0)
    inputs = trl_hooks.generate(stock, group_rows(dataset, [1, 2]))
    assert torch.equal(mine.compute_loss(mine.model, inputs), stock.compute_loss(stock.model, inputs))
    assert trl_hooks.metrics(mine)["clip_ratio/dual_mean"][-1] == 0.0
    # off-policy by e^2 ~ 7.4 > 3 on every token: every negative-advantage token is capped, and only those
    with torch.no_grad():
        logps, _, _ = trl_hooks.token_logps(mine, inputs, pixel_values=inputs["pixel_values"],
                                            image_grid_thw=inputs["image_grid_thw"], num_images=inputs["num_images"])
    old = logps - 2.0
    off = dict(inputs, old_per_token_logps=old)
    dual = mine.compute_loss(mine.model, off)
    assert torch.equal(dual, stock.compute_loss(stock.model, off))
    mask = inputs["completion_mask"].float()
    negative = (inputs["advantages"] < 0).float().unsqueeze(1)
    dual_mean = trl_hooks.metrics(mine)["clip_ratio/dual_mean"][-1]
    assert dual_mean == pytest.approx(float((negative * mask).sum() / mask.sum())) and 0 < dual_mean < 1
    adv = inputs["advantages"].unsqueeze(1)
    r = torch.exp(logps - old)
    verl, _ = dual_clip(torch.maximum(-adv * r, -adv * torch.clamp(r, 0.8, 1.2)), inputs["advantages"], 3.0)
    assert torch.allclose(dual, (verl * mask).sum() / inputs["num_items_in_batch"], rtol=1e-6, atol=0)
    no_dual = ours(tiny_model_dir, dataset, processor, tmp_path, reward=varying_reward, **kw)
    no_dual.model.train()
    no_dual.current_gradient_accumulation_steps = 1
    assert not torch.allclose(dual, no_dual.compute_loss(no_dual.model, off))


def test_a_plugin_loss_file_selected_from_yaml_trains(tiny_model_dir, dataset, processor, tmp_path):
    """Adding a loss = one new file: registered by its own decorator, selected by `policy_loss` in the YAML,
    imported through `loss_plugins`. The toy loss is zero with a live graph, so the step must leave every weight
    as it was (the same step with policy_loss none changes most of them, see below), and its stats are logged."""
    from mmreason.rl.run import make_parser
    from mmreason.rl.trainer import MMReasonGRPOTrainer

    plugin = tmp_path / "frozen_loss.py"
    plugin.write_text(
        "from mmreason.rl.losses import register_loss\n\n\n"
        "@register_loss('frozen_test_loss')\n"
        "def frozen(logp, old_logp, advantages, mask, cfg, ctx):\n"
        "    return logp * 0.0, {'frozen/epsilon_high': ctx.epsilon_high,\n"
        "                        'frozen/scale': ctx.options.get('scale', 0.0)}\n"
    )
    cfg = tmp_path / "plugin.yaml"
    cfg.write_text(json.dumps({**common_args(tmp_path), "max_steps": 1, "beta": 0.0, "epsilon_high": 0.28,
                               "loss_options": {"scale": 0.5}, "policy_loss": "frozen_test_loss",
                               "loss_plugins": [str(plugin)]}))
    _, args, _ = make_parser().parse_args_and_config(args=["--config", str(cfg)])
    trainer = MMReasonGRPOTrainer(model=str(tiny_model_dir), reward_funcs=[varying_reward], args=args,
                                  train_dataset=dataset, processing_class=processor)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    assert all(torch.equal(p, before[n]) for n, p in trainer.model.named_parameters())
    log = next(h for h in trainer.state.log_history if "loss" in h)
    assert log["frozen/epsilon_high"] == pytest.approx(0.28) and log["frozen/scale"] == 0.5  # loss_options arrived
    assert log["entropy/token_mean"] > 0


# ---------------------------------------------------------------- one step per policy_loss


@pytest.mark.parametrize("policy_loss", ["none", "clip_cov", "kl_cov"])
def test_one_step_changes_parameters_and_logs(policy_loss, tiny_model_dir, dataset, processor, tmp_path):
    # kl_cov off-policy (two micro-batches per generation, one per optimizer step) so its penalty acts
    extra = dict(steps_per_generation=2) if policy_loss == "kl_cov" else {}
    trainer = ours(tiny_model_dir, dataset, processor, tmp_path, reward=varying_reward, policy_loss=policy_loss,
                   max_steps=2 if policy_loss == "kl_cov" else 1, clip_cov_lb=0.0, clip_cov_ratio=0.05, **extra)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    changed = [n for n, p in trainer.model.named_parameters() if not torch.equal(p, before[n])]
    assert len(changed) > len(before) // 2
    logs = [h for h in trainer.state.log_history if "loss" in h]
    for key in ("entropy/token_mean", "entropy/seq_mean", "cov/mean", "cov/max", "cov/frac_selected",
                "rewards/varying_reward/mean"):
        assert key in logs[0], key
    assert logs[0]["entropy/token_mean"] > 0
    if policy_loss != "none":
        assert logs[0]["cov/frac_selected"] > 0


def _advantage_weighted_logp(trainer, out) -> float:
    """J = sum over loss tokens of A * logp / #tokens: what a policy-gradient step must increase."""
    with torch.no_grad():
        logps, _, _ = trl_hooks.token_logps(trainer, out, pixel_values=out["pixel_values"],
                                            image_grid_thw=out["image_grid_thw"], num_images=out["num_images"])
    mask = out["completion_mask"]
    return ((out["advantages"].unsqueeze(1) * logps * mask).sum() / mask.sum()).item()


@pytest.mark.parametrize("policy_loss", ["none", "clip_cov", "kl_cov"])
def test_a_loss_step_raises_the_advantage_weighted_logp(policy_loss, tiny_model_dir, dataset, processor, tmp_path):
    """Direction check of the whole loss path (rollout batch -> our _compute_loss -> gradient): a small plain
    gradient step makes rewarded completions more likely and penalised ones less; with the advantages negated
    it does the opposite. A sign or alignment slip anywhere in the path fails this."""
    trainer = ours(tiny_model_dir, dataset, processor, tmp_path, reward=varying_reward, policy_loss=policy_loss,
                   clip_cov_lb=0.0, clip_cov_ratio=0.05, steps_per_generation=2 if policy_loss == "kl_cov" else None)
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1
    out = trl_hooks.generate(trainer, group_rows(dataset, [0, 1, 2, 3]))
    start = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    for sign in (1.0, -1.0):
        batch = dict(out, advantages=sign * out["advantages"])
        with torch.no_grad():
            for n, p in trainer.model.named_parameters():
                p.copy_(start[n])
        before = _advantage_weighted_logp(trainer, batch)
        trainer.model.zero_grad()
        trainer.compute_loss(trainer.model, batch).backward()
        with torch.no_grad():
            for p in trainer.model.parameters():
                if p.grad is not None:
                    p -= 1e-3 * p.grad
        assert _advantage_weighted_logp(trainer, batch) > before + 1e-6, (policy_loss, sign)


def test_kl_cov_on_policy_warns_loudly(tmp_path):
    from mmreason.rl.config import MMReasonGRPOConfig

    with pytest.warns(UserWarning, match="does NOTHING"):
        MMReasonGRPOConfig(**common_args(tmp_path, policy_loss="kl_cov"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        MMReasonGRPOConfig(**common_args(tmp_path, policy_loss="kl_cov", num_iterations=2))
    assert MMReasonGRPOConfig(**common_args(tmp_path, policy_loss="clip_cov", loss_type="cispo")).loss_type == "cispo"
    with pytest.raises(ValueError, match="policy_loss must be a registered loss"):
        MMReasonGRPOConfig(**common_args(tmp_path, policy_loss="clipcov"))


# ---------------------------------------------------------------- dynamic sampling


def test_dynamic_sampling_warns_where_the_loss_counts_sequences(tmp_path):
    from mmreason.rl.config import MMReasonGRPOConfig

    for loss_type in ("grpo", "dr_grpo"):
        with pytest.warns(UserWarning, match="per-sequence denominator"):
            MMReasonGRPOConfig(**common_args(tmp_path, dynamic_sampling=True, loss_type=loss_type))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        for loss_type in ("dapo", "bnpo"):
            MMReasonGRPOConfig(**common_args(tmp_path, dynamic_sampling=True, loss_type=loss_type))
        MMReasonGRPOConfig(**common_args(tmp_path, loss_type="grpo"))


def test_dynamic_sampling_modes_and_dual_clip_parse(tmp_path):
    from mmreason.rl.config import MMReasonGRPOConfig
    from mmreason.rl.run import make_parser

    cfg = tmp_path / "c.yaml"
    for yaml_value, cli, want in (("true", [], "mask"), ("false", [], "off"), ("off", [], "off"), ("mask", [], "mask"),
                                  ("refill", [], "refill"), ("true", ["--dynamic_sampling", "false"], "off"),
                                  ("false", ["--dynamic_sampling", "refill"], "refill")):
        cfg.write_text(f"dynamic_sampling: {yaml_value}\noutput_dir: {tmp_path}\nbf16: false\nloss_type: dapo\n"
                       "clip_ratio_c: 3.0\ndynamic_sampling_max_rounds: 2\n")
        _, args, _ = make_parser().parse_args_and_config(args=["--config", str(cfg), *cli])
        assert (args.dynamic_sampling, args.dynamic_sampling_max_rounds, args.clip_ratio_c) == (want, 2, 3.0), yaml_value
    assert MMReasonGRPOConfig(**common_args(tmp_path)).clip_ratio_c is None
    for bad in (dict(dynamic_sampling="sometimes"), dict(clip_ratio_c=1.0), dict(clip_ratio_c=0.5),
                dict(dynamic_sampling_max_rounds=-1)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            MMReasonGRPOConfig(**common_args(tmp_path, **bad))


def test_zero_variance_groups():
    from mmreason.rl.dynamic_sampling import zero_variance_groups

    r = torch.tensor([1.0, 1, 1, 0, 0, 0, 0, 0, 2, 2, float("nan"), 2, float("nan"), 1, float("nan"), float("nan")])
    assert zero_variance_groups(r, 4).tolist() == [False, True, True, True]


def test_dynamic_sampling_drops_exactly_zero_variance_groups(tiny_model_dir, dataset, processor, tmp_path):
    trainer = ours(tiny_model_dir, dataset, processor, tmp_path, dynamic_sampling=True, beta=0.0)
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1
    out = trl_hooks.generate(trainer, group_rows(dataset, [0, 1, 2, 3]))  # q0, q2 constant
    assert "tool_mask" not in out  # dynamic sampling has its own per-row mask
    keep = out["group_mask"].bool()
    assert keep.tolist() == [False] * 4 + [True] * 4 + [False] * 4 + [True] * 4
    assert torch.equal(out["group_mask"][keep], torch.ones_like(out["group_mask"][keep]))
    assert int(out["num_items_in_batch"]) == int(out["completion_mask"][keep].sum())
    assert trl_hooks.metrics(trainer)["dynamic_sampling/dropped_groups"][-1] == 2
    # the dropped rows no longer reach the loss: zeroing their advantages changes nothing
    loss = trainer.compute_loss(trainer.model, out)
    assert trl_hooks.metrics(trainer)["entropy/token_mean"][-1] > 0  # entropy covers every rollout token
    out2 = dict(out, advantages=out["advantages"].masked_fill(~keep, 123.0))
    assert torch.equal(trainer.compute_loss(trainer.model, out2), loss)
    with pytest.raises(ValueError, match="dynamic_sampling_reward"):
        ours(tiny_model_dir, dataset, processor, tmp_path, reward=varying_reward, dynamic_sampling=True)


def test_refill_merge_takes_whole_groups_and_repads():
    from mmreason.rl.refill import merge_groups

    PAD = 9

    def round_(r, P, C):
        # 4 rows (2 groups of 2); row i of round r is tagged 10 * r + i in every field
        tag = [10 * r + i for i in range(4)]
        return {
            "prompt_ids": torch.tensor([[t] * P for t in tag]), "prompt_mask": torch.ones(4, P, dtype=torch.long),
            "completion_ids": torch.tensor([[t] * C for t in tag]), "completion_mask": torch.ones(4, C, dtype=torch.long),
            "old_per_token_logps": torch.tensor([[float(t)] * C for t in tag]),
            "mm_token_type_ids": torch.tensor([[1] * P + [0] * C for _ in tag]),
            "advantages": torch.tensor([float(t) for t in tag]),
            "pixel_values": torch.tensor([[float(t)] for t in tag for _ in range(2)]),  # 2 patches per image
            "image_grid_thw": torch.tensor([[1, 1, 2]] * 4), "num_images": [1] * 4,
            "num_items_in_batch": torch.tensor(4 * C),
        }

    out = merge_groups([round_(0, 3, 2), round_(1, 2, 5)], [(1, 1), (0, 1)], 2, pad_token_id=PAD)
    assert out["advantages"].tolist() == [12.0, 13.0, 2.0, 3.0]
    assert out["prompt_ids"].tolist() == [[PAD, 12, 12], [PAD, 13, 13], [2, 2, 2], [3, 3, 3]]  # left-padded
    assert out["prompt_mask"].tolist() == [[0, 1, 1], [0, 1, 1], [1, 1, 1], [1, 1, 1]]
    assert out["completion_ids"].tolist() == [[12] * 5, [13] * 5, [2, 2, PAD, PAD, PAD], [3, 3, PAD, PAD, PAD]]
    assert out["completion_mask"][2].tolist() == [1, 1, 0, 0, 0]
    assert out["old_per_token_logps"][3].tolist() == [3.0, 3.0, 0.0, 0.0, 0.0]
    assert out["mm_token_type_ids"].tolist() == [[0, 1, 1] + [0] * 5] * 2 + [[1, 1, 1] + [0] * 5] * 2
    assert out["pixel_values"].view(-1).tolist() == [12.0, 12.0, 13.0, 13.0, 2.0, 2.0, 3.0, 3.0]
    assert out["image_grid_thw"].tolist() == [[1, 1, 2]] * 4 and out["num_images"] == [1] * 4
    with pytest.raises(ValueError, match="image_sizes"):
        merge_groups([dict(round_(0, 3, 2), image_sizes=torch.zeros(4, 2))], [(0, 0), (0, 1)], 2, pad_token_id=PAD)


def _group_has_signal(out) -> list[bool]:
    """A group's advantages are all zero exactly when its rewards are all equal (TRL's group normalisation)."""
    return (out["advantages"].view(-1, NUM_GEN).abs().sum(dim=1) > 0).tolist()


def test_refill_replaces_zero_variance_groups_with_fresh_ones(tiny_model_dir, dataset, processor, tmp_path):
    # accuracy(): even records are constant (no signal), odd ones vary. Off-policy (old logps kept) and a reference
    # model, so every per-token field goes through the merge.
    trainer = ours(tiny_model_dir, dataset, processor, tmp_path, dynamic_sampling="refill",
                   dynamic_sampling_max_rounds=8, beta=0.04, loss_type="dapo", steps_per_generation=2)
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1
    torch.manual_seed(0)
    out = trl_hooks.generate(trainer, group_rows(dataset, [0, 1, 2, 3]))  # q0, q2: no signal
    m = trl_hooks.metrics(trainer)
    assert m["dynamic_sampling/refill_cap_hit"] == [0.0] and m["dynamic_sampling/refilled_groups"] == [2.0]
    assert 1 <= m["dynamic_sampling/refill_rounds"][0] <= 8
    assert m["dynamic_sampling/dropped_groups"] == [0.0]
    assert _group_has_signal(out) == [True] * 4 and torch.equal(out["group_mask"], torch.ones(16))
    assert int(out["num_items_in_batch"]) == int(out["completion_mask"].sum())
    assert len(out["num_images"]) == 16 and out["image_grid_thw"].size(0) == 16
    # the merged rows still line up with their images and tokens: recomputing the log-probs of the merged batch
    # gives back the old / reference log-probs each round computed under its own padding
    with torch.no_grad():
        logps, _, _ = trl_hooks.token_logps(trainer, out, pixel_values=out["pixel_values"],
                                            image_grid_thw=out["image_grid_thw"], num_images=out["num_images"])
    # (recomputing gives ~1e-3 float noise even without a merge; a row out of place is off by ~0.1)
    mask = out["completion_mask"].bool()
    for key in ("old_per_token_logps", "ref_per_token_logps"):
        assert torch.allclose(logps[mask], out[key][mask], atol=3e-3), key
        rolled = out[key].roll(NUM_GEN, dims=0)
        both = mask & mask.roll(NUM_GEN, dims=0)
        assert (logps[both] - rolled[both]).abs().max() > 0.05
    trainer.compute_loss(trainer.model, out).backward()


def test_refill_cap_is_logged_and_the_rest_masked(tiny_model_dir, dataset, processor, tmp_path):
    def constant(completions, **kwargs):
        return [1.0] * len(completions)

    trainer = ours(tiny_model_dir, dataset, processor, tmp_path, reward=constant, dynamic_sampling="refill",
                   dynamic_sampling_max_rounds=2, dynamic_sampling_reward=None, loss_type="dapo")
    trainer.model.train()
    out = trl_hooks.generate(trainer, group_rows(dataset, [1, 3]))
    m = trl_hooks.metrics(trainer)
    assert (m["dynamic_sampling/refill_rounds"], m["dynamic_sampling/refilled_groups"],
            m["dynamic_sampling/refill_cap_hit"], m["dynamic_sampling/dropped_groups"]) == ([2.0], [0.0], [1.0], [2.0])
    assert len(m["reward"]) == 3  # TRL's rollout metrics: the batch and the two refill rounds
    assert torch.equal(out["group_mask"], torch.zeros(8)) and int(out["num_items_in_batch"]) == 0
    # no extra round at all with a cap of 0; mask mode never refills
    for kw in (dict(dynamic_sampling="refill", dynamic_sampling_max_rounds=0), dict(dynamic_sampling="mask")):
        t = ours(tiny_model_dir, dataset, processor, tmp_path, **kw)
        t.model.train()
        out = trl_hooks.generate(t, group_rows(dataset, [0, 1]))
        m = trl_hooks.metrics(t)
        assert out["group_mask"].tolist() == [0.0] * 4 + [1.0] * 4 and len(m["reward"]) == 1
        assert m["dynamic_sampling/refill_cap_hit"] == ([1.0] if kw["dynamic_sampling"] == "refill" else [])


def test_refill_in_a_training_step(tiny_model_dir, dataset, processor, tmp_path):
    trainer = ours(tiny_model_dir, dataset, processor, tmp_path, dynamic_sampling="refill", max_steps=1,
                   loss_type="dapo", steps_per_generation=2)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    log = next(h for h in trainer.state.log_history if "loss" in h)
    # seed 0 draws an even (no-signal) record into the first batch; refill replaces it
    assert log["dynamic_sampling/refill_rounds"] >= 1 and log["dynamic_sampling/refilled_groups"] >= 1
    assert log["dynamic_sampling/refill_cap_hit"] == 0 and log["dynamic_sampling/dropped_groups"] == 0
    assert any(not torch.equal(p, before[n]) for n, p in trainer.model.named_parameters())


@pytest.mark.slow
def test_refill_keeps_processes_in_step(tiny_model_dir, records_file, tmp_path):
    """2 processes (gloo): only process 0 has a group without signal; both run the same rounds and agree."""
    views = two_process_views("refill_worker.py", [tiny_model_dir, records_file], tmp_path / "view", timeout=300)
    assert views[0]["rounds"] == views[1]["rounds"] and views[0]["rounds"][0] >= 1
    assert views[0]["refilled"] == views[1]["refilled"] == [1.0] and views[0]["cap_hit"] == views[1]["cap_hit"] == [0.0]
    for v in views:
        assert v["alive"] == [True, True] and v["group_mask"] == [1.0] * 8
    assert views[0]["num_items"] == views[1]["num_items"] == views[0]["local_items"] + views[1]["local_items"]
    assert views[0]["stats"] == views[1]["stats"]  # every process logs the same combined values
    assert views[0]["stats"]["cov/frac_selected"] > 0 and views[0]["stats"]["entropy/token_mean"] > 0


def test_rewards_are_logged_per_source(tiny_model_dir, dataset, processor, tmp_path):
    trainer = ours(tiny_model_dir, dataset, processor, tmp_path)
    trainer.model.train()
    rows = group_rows(dataset, [0, 1, 2, 3])
    sources = {"q0": "synth/a", "q1": "synth/b", "q2": "synth/b", "q3": "synth/b"}
    rows = [dict(r, source=sources[r["record_id"]]) for r in rows]
    trl_hooks.generate(trainer, rows)
    logged = trl_hooks.metrics(trainer)
    # accuracy(): q0 and q2 score 1 on every completion, q1 and q3 score 0, 1, 2, 3 within the group
    assert logged["rewards_by_source/accuracy/synth/a"] == [1.0] * NUM_GEN
    assert sorted(logged["rewards_by_source/accuracy/synth/b"]) == sorted([1.0] * 4 + [0.0, 1.0, 2.0, 3.0] * 2)
    # a second, smaller batch: the logged value is the mean over rollouts, not of the two batch means
    trl_hooks.generate(trainer, [dict(r, source="synth/b") for r in group_rows(dataset, [5])])
    trainer.log({})
    entry = trainer.state.log_history[-1]
    assert entry["rewards_by_source/accuracy/synth/b"] == pytest.approx((16 + 6) / 16)
    assert entry["rewards_by_source/accuracy/synth/a"] == 1.0
    assert "source" in dataset.column_names


def test_per_source_rewards_skip_unscored_and_follow_the_gathered_order(tiny_model_dir, dataset, processor,
                                                                        tmp_path, monkeypatch):
    import mmreason.rl.trainer as T

    trainer = ours(tiny_model_dir, dataset, processor, tmp_path)
    nan = float("nan")
    # rows in gather order: this process's two rollouts, then the other process's two
    rewards = torch.tensor([[1.0], [nan], [0.0], [nan]])
    remote = ["synth/b", "synth/none"]
    monkeypatch.setattr(T, "gather_object", lambda local: list(local) + remote)
    monkeypatch.setattr(type(trainer.accelerator), "num_processes", property(lambda self: 2))
    trainer.log_rewards_by_source("eval", ["synth/a", "synth/none"], rewards)
    logged = trl_hooks.metrics(trainer, "eval")
    assert logged["rewards_by_source/accuracy/synth/a"] == [1.0]
    assert logged["rewards_by_source/accuracy/synth/b"] == [0.0]
    assert "rewards_by_source/accuracy/synth/none" not in logged  # never scored: no key, no 0
    assert not trl_hooks.metrics(trainer)
    trainer.model.eval()
    trainer.log({})
    assert trainer.state.log_history[-1]["eval_rewards_by_source/accuracy/synth/a"] == 1.0


# ---------------------------------------------------------------- prompt budget and unlabeled data


def test_prompt_budget_drops_long_prompts_with_count(records_file, processor, tiny_model_dir, dataset, tmp_path):
    from trl.data_utils import prepare_multimodal_messages

    from mmreason.rl.data import build_grpo_dataset, prompt_length

    lengths = [prompt_length(processor, row["prompt"], row["images"]) for row in dataset]
    # the count is the one TRL's own prompt tokenization produces
    trainer = ours(tiny_model_dir, dataset, processor, tmp_path)
    row = dataset[7]
    ids, _, _ = trl_hooks.tokenize_prompts(trainer, [prepare_multimodal_messages(row["prompt"], images=row["images"])])
    assert len(ids[0]) == lengths[7]
    assert lengths[7] - lengths[6] > 20  # the larger image costs many image tokens
    budget = sorted(lengths)[4]
    ds, report = build_grpo_dataset(records_file, processor=processor, max_prompt_length=budget)
    want = [f"q{i}" for i, n in enumerate(lengths) if n <= budget]
    assert ds["record_id"] == want and report.dropped_long == 8 - len(want) > 0
    assert report.longest_kept == budget and f"{report.dropped_long} prompts dropped" in report.summary()
    with pytest.raises(ValueError, match="every prompt"):
        build_grpo_dataset(records_file, processor=processor, max_prompt_length=min(lengths) - 1)


def test_a_1mb_question_is_dropped_by_characters_before_any_tokenizer_sees_it(tiny_model_dir, records_file,
                                                                              tmp_path, monkeypatch, caplog):
    """Issue 16 finding 3: a 1 MB question among good records reaches GRPO's one training step as a counted drop
    naming its id and max_prompt_chars, and no tokenizer call ever gets its text."""
    from transformers.tokenization_utils_base import PreTrainedTokenizerBase

    from mmreason.rl.run import main

    rows = [json.loads(line) for line in records_file.read_text().splitlines()]
    for r in rows:
        r["images"] = [str(records_file.parent / p) for p in r["images"]]
    huge = {**rows[3], "id": "huge", "question": "How many? " + "x" * 1_000_000}
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in [*rows[:4], huge, *rows[4:]]))
    (tmp_path / "huge_question_rewards.py").write_text(
        "def reward(completions, **kw):\n    return [float(i % 4) for i in range(len(completions))]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    longest = [0]
    orig_call = PreTrainedTokenizerBase.__call__

    def call(self, text=None, *a, **kw):
        texts = [text] if isinstance(text, str) else text if isinstance(text, (list, tuple)) else []
        longest[0] = max([longest[0], *(len(t) for t in texts if isinstance(t, str))])
        return orig_call(self, text, *a, **kw)

    monkeypatch.setattr(PreTrainedTokenizerBase, "__call__", call)
    out = tmp_path / "out"
    argv = ["--model_name_or_path", str(tiny_model_dir), "--train_files", str(data), "--output_dir", str(out),
            "--reward_funcs", "huge_question_rewards.reward", "--per_device_train_batch_size", "4",
            "--num_generations", "4", "--max_completion_length", "4", "--max_steps", "1", "--max_prompt_length",
            "300", "--bf16", "false", "--gradient_checkpointing", "false", "--report_to", "none", "--save_strategy",
            "no"]
    with caplog.at_level(logging.WARNING):
        assert main(argv) == 0
    assert (out / "model.safetensors").is_file()
    summary = [r.getMessage() for r in caplog.records if "records loaded" in r.getMessage()]
    assert summary and "1 prompts dropped over max_prompt_chars=65536 before tokenisation (huge: 100" in summary[0]
    assert "0 prompts dropped over the prompt budget, 8 kept" in summary[0]  # not left to the token count
    assert 0 < longest[0] < 65536  # the tokenizer ran (prompt budget, training) but never on the huge text


def test_max_samples_is_a_seeded_subset_with_count(records_file):
    from mmreason.rl.data import build_grpo_dataset

    a, report = build_grpo_dataset(records_file, max_samples=3, seed=1)
    b, _ = build_grpo_dataset(records_file, max_samples=3, seed=1)
    c, _ = build_grpo_dataset(records_file, max_samples=3, seed=2)
    assert a["record_id"] == b["record_id"] != c["record_id"]
    assert len(set(a["record_id"])) == 3 and set(a["record_id"]) <= {f"q{i}" for i in range(8)}
    assert report.kept == 3 and "a random 3 of 8 used" in report.summary()
    full, full_report = build_grpo_dataset(records_file, max_samples=100)
    assert len(full) == 8 and full_report.subsampled_from is None
    with pytest.raises(ValueError, match="max_samples"):
        build_grpo_dataset(records_file, max_samples=0)


def test_unlabeled_records_load_when_answers_not_required(tmp_path, records_file):
    from mmreason.errors import RecordError
    from mmreason.rl.data import build_grpo_dataset

    lines = records_file.read_text().splitlines()
    rows = [json.loads(l) for l in lines]
    for r in rows:
        r["answer"] = None
        r["images"] = [str(records_file.parent / p) for p in r["images"]]
    path = tmp_path / "unlabeled.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "{not json\n")
    with pytest.raises(RecordError):
        build_grpo_dataset(path, require_answer=False)
    ds, report = build_grpo_dataset(path, require_answer=False, lenient=True)
    assert len(ds) == 8 and ds["answer"] == [None] * 8 and report.skipped_bad == 1
    assert set(ds.column_names) >= {"prompt", "images", "answer", "answer_type", "choices", "record_id"}


# ---------------------------------------------------------------- config wiring (vLLM without vllm)


def test_paper_configs_reach_trl_intact(tiny_model_dir, dataset, processor, tmp_path, monkeypatch):
    import trl.trainer.grpo_trainer as grpo_mod

    from mmreason.records import BOXED_SUFFIX
    from mmreason.rl.run import make_parser
    from mmreason.rl.trainer import MMReasonGRPOTrainer

    for size, mem, tp, variant in ((s, m, t, v) for s, m, t in (("3b", 0.5, 1), ("7b", 0.4, 2)) for v in ("", "_strict")):
        script, args, model = make_parser().parse_args_and_config(
            args=["--config", str(REPO / f"configs/grpo/qwen2_5_vl_{size}{variant}.yaml"), "--bf16", "false",
                  "--output_dir", str(tmp_path / size)]
        )
        assert (args.use_vllm, args.vllm_mode, args.vllm_gpu_memory_utilization, args.vllm_tensor_parallel_size) == (
            True, "colocate", mem, tp)
        assert (args.num_generations, args.temperature, args.top_p, args.max_completion_length) == (10, 0.7, 0.99, 2048)
        assert (args.learning_rate, str(args.lr_scheduler_type), args.beta, args.epsilon, args.epsilon_high) == (
            1e-6, "SchedulerType.CONSTANT", 0.01, 0.2, 0.3)
        assert (args.weight_decay, args.max_grad_norm, args.policy_loss) == (0.01, 1.0, "none")
        assert script.max_pixels == 1204224
        assert script.system_prompt == ""  # none of our own: not inherited from the SFT checkpoint
        if variant == "_strict":  # ours: single-box accuracy + 0.1 format, the boxed instruction appended
            assert script.reward_funcs == ["accuracy", "format"] and args.reward_weights == [1.0, 0.1]
            assert script.reward_options is None and script.instruction == BOXED_SUFFIX
        else:  # the paper's: mathruler accuracy, the problem as is (tests/test_paper_configs.py checks every field)
            assert script.reward_funcs == ["accuracy"] and args.reward_weights == [1.0]
            assert script.reward_options == {"accuracy": {"mode": "official"}} and script.instruction == ""
        assert model.model_name_or_path == f"runs/qwen2_5_vl_{size}/sft" and model.dtype == "bfloat16"
    # CLI overrides win over the YAML
    _, args, _ = make_parser().parse_args_and_config(
        args=["--config", str(REPO / "configs/grpo/qwen2_5_vl_3b.yaml"), "--bf16", "false",
              "--vllm_gpu_memory_utilization", "0.3", "--policy_loss", "clip_cov", "--output_dir", str(tmp_path / "o")]
    )
    assert args.vllm_gpu_memory_utilization == 0.3 and args.policy_loss == "clip_cov"

    seen = {}

    class FakeVLLMGeneration:
        def __init__(self, **kwargs):
            seen.update(kwargs)

    monkeypatch.setattr(grpo_mod, "VLLMGeneration", FakeVLLMGeneration)
    args.gradient_checkpointing = False
    args.reward_weights = args7_weights = [1.0, 1.0]  # this test's two reward functions (the paper config has one)
    MMReasonGRPOTrainer(model=str(tiny_model_dir), reward_funcs=[accuracy, varying_reward], args=args, train_dataset=dataset,
                        processing_class=processor)
    assert (seen["mode"], seen["gpu_memory_utilization"], seen["tensor_parallel_size"]) == ("colocate", 0.3, 1)
    _, args7, _ = make_parser().parse_args_and_config(
        args=["--config", str(REPO / "configs/grpo/qwen2_5_vl_7b.yaml"), "--bf16", "false",
              "--output_dir", str(tmp_path / "o7"), "--gradient_checkpointing", "false"])
    args7.reward_weights = args7_weights
    MMReasonGRPOTrainer(model=str(tiny_model_dir), reward_funcs=[accuracy, varying_reward], args=args7, train_dataset=dataset,
                        processing_class=processor)
    assert (seen["gpu_memory_utilization"], seen["tensor_parallel_size"]) == (0.4, 2)
    assert (seen["temperature"], seen["top_p"], seen["max_completion_length"], seen["max_model_length"]) == (
        0.7, 0.99, 2048, 4096)
    for name, policy_loss in (("clip_cov", "clip_cov"), ("kl_cov", "kl_cov")):  # the Entropy-Mechanism settings build too
        _, args_em, _ = make_parser().parse_args_and_config(
            args=["--config", str(REPO / f"configs/grpo/qwen2_5_vl_7b_{name}.yaml"), "--bf16", "false",
                  "--output_dir", str(tmp_path / name), "--gradient_checkpointing", "false"])
        args_em.reward_weights = args7_weights
        trainer = MMReasonGRPOTrainer(model=str(tiny_model_dir), reward_funcs=[accuracy, varying_reward], args=args_em,
                                      train_dataset=dataset, processing_class=processor)
        assert (trainer.args.policy_loss, trainer.args.dynamic_sampling, trainer.args.is_on_policy()) == (
            policy_loss, "refill", False)
        assert (seen["temperature"], seen["max_completion_length"], seen["max_model_length"]) == (1.0, 8192, 10240)
    assert "vllm" not in sys.modules


def test_tiny_demo_config_parses():
    from mmreason.rl.run import make_parser

    script, args, model = make_parser().parse_args_and_config(args=["--config", str(REPO / "configs/grpo/tiny_demo.yaml")])
    assert model.model_name_or_path == "runs/demo/sft" and args.output_dir == "runs/demo/grpo"
    assert script.train_files == ["runs/demo/data/train.jsonl"]
    assert (script.eval_file, script.eval_max_samples, args.eval_strategy, args.eval_steps, args.eval_on_start,
            args.num_generations_eval) == ("runs/demo/data/test.jsonl", 64, "steps", 20, True, 8)
    assert (args.bf16, args.gradient_checkpointing, args.report_to, args.logging_steps, args.log_completions) == (
        False, False, [], 1, False)
    assert args.use_vllm is False


# ---------------------------------------------------------------- stage script: train, save, resume


def test_run_main_trains_saves_and_resumes(tiny_model_dir, records_file, tmp_path, monkeypatch):
    from mmreason.rl.plot import main as plot_main
    from mmreason.rl.run import main

    (tmp_path / "my_rewards.py").write_text(
        "def accuracy(completions, record_id, **kw):\n    return [float(i % 4) for i in range(len(completions))]\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "grpo"
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        f"model_name_or_path: {tiny_model_dir}\ntrain_files: [{records_file}]\noutput_dir: {out}\n"
        "reward_funcs: [my_rewards.accuracy]\nper_device_train_batch_size: 8\nnum_generations: 4\n"
        "max_completion_length: 8\nbf16: false\ngradient_checkpointing: false\nreport_to: none\nlogging_steps: 1\n"
        "save_strategy: steps\nsave_steps: 1\nmax_steps: 2\npolicy_loss: clip_cov\nresume_from_checkpoint: auto\n"
        "max_prompt_length: 300\nlearning_rate: 1.0e-3\n"
    )
    assert main(["--config", str(cfg)]) == 0
    assert (out / "checkpoint-2").is_dir() and (out / "model.safetensors").is_file()
    first = [h for h in json.loads((out / "checkpoint-2/trainer_state.json").read_text())["log_history"] if "loss" in h]
    assert main(["--config", str(cfg), "--max_steps", "3"]) == 0  # resumes from checkpoint-2
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 3
    logged = [h for h in state["log_history"] if "loss" in h]
    assert [h["step"] for h in logged] == [1, 2, 3]
    assert logged[:2] == first  # steps 1-2 come from the checkpoint (a fresh run would re-time them), not re-run
    assert plot_main(["--run", str(out)]) == 0
    assert (out / "entropy_law.png").is_file() and (out / "entropy.png").is_file()
    law = json.loads((out / "entropy_law.json").read_text())
    # the reward is 0, 1, 2, 3 in every group: a mean of 1.5 at every step, so the law is flat at b = 1.5
    assert law["points"] == 3 and law["b"] == pytest.approx(1.5) and law["a"] == pytest.approx(0.0, abs=1e-6)
    assert law["ceiling"] == pytest.approx(law["b"] - law["a"])


def test_run_main_bad_record_is_one_clear_error(tiny_model_dir, records_file, tmp_path, capsys):
    from mmreason.rl.run import main

    bad = records_file.parent / "bad_train.jsonl"  # images resolve relative to the JSONL
    lines = records_file.read_text().splitlines()
    lines[2] = json.dumps({"id": "q2", "question": "?", "answer": "3", "answer_type": "integer", "images": ["nope.png"]})
    bad.write_text("\n".join(lines) + "\n")
    argv = ["--model_name_or_path", str(tiny_model_dir), "--train_files", str(bad), "--output_dir", str(tmp_path / "o"),
            "--report_to", "none", "--bf16", "false"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"{bad}:3" in err and "nope.png" in err and "Traceback" not in err
    assert main(argv[:-4] + ["--resume_from_checkpoint", str(tmp_path / "missing"), "--train_files", str(records_file),
                             "--report_to", "none", "--bf16", "false"]) == 2
    assert "missing" in capsys.readouterr().err


def test_fit_images_makes_token_counts_independent_of_the_processor_bounds(tiny_model_dir):
    """vLLM loads the checkpoint's processor (wider bounds); pre-fitting images to ours keeps the counts equal."""
    from PIL import Image
    from transformers import AutoProcessor

    from mmreason.modeling import apply_image_bounds
    from mmreason.rl.data import fit_images

    ours_proc = apply_image_bounds(AutoProcessor.from_pretrained(tiny_model_dir), max_pixels=56 * 112)
    wide = AutoProcessor.from_pretrained(tiny_model_dir)  # max 112*112 pixels
    im = Image.new("RGB", (200, 150), (10, 20, 30))

    def tokens(proc, image):
        return int(proc.image_processor(images=[image], return_tensors="pt")["image_grid_thw"].prod()) // 4

    assert tokens(wide, im) != tokens(ours_proc, im)  # the mismatch fitting prevents
    fitted = fit_images([im], ours_proc)[0]
    assert fitted.size != im.size
    assert tokens(wide, fitted) == tokens(ours_proc, fitted) == tokens(ours_proc, im)
    assert fit_images([fitted], ours_proc)[0] is fitted  # idempotent: already at the target size


def test_reward_names_resolve_through_the_registry_and_dotted_paths(tmp_path, monkeypatch):
    from mmreason.rl.run import resolve_reward_funcs

    (tmp_path / "extra_rewards.py").write_text("def bonus(completions, **kw):\n    return [0.0] * len(completions)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    funcs = resolve_reward_funcs(["accuracy", "extra_rewards.bonus", "majority_vote"], 4, stop_token_ids=[1])
    assert [f.__name__ for f in funcs] == ["accuracy", "bonus", "majority_vote"]
    with pytest.raises(ValueError):
        resolve_reward_funcs(["no_such_reward"], 4)


def test_reward_options_from_yaml_and_cli_reach_the_reward(tmp_path):
    from mmreason.rl.run import make_parser, resolve_reward_funcs

    cfg = tmp_path / "c.yaml"
    cfg.write_text("reward_funcs: [accuracy, format]\nreward_options:\n  accuracy: {single_box: false}\n"
                   f"output_dir: {tmp_path}\nbf16: false\n")
    script, args, _ = make_parser().parse_args_and_config(args=["--config", str(cfg)])
    assert script.reward_options == {"accuracy": {"single_box": False}}
    acc = resolve_reward_funcs(script.reward_funcs, 4, options=script.reward_options)[0]
    two_boxes = [[{"role": "assistant", "content": r"\boxed{2} or \boxed{3}"}]]
    kw = dict(answer=["3"], answer_type=["integer"])
    assert acc(completions=two_boxes, **kw) == [1.0]  # last box scored
    default = resolve_reward_funcs(["accuracy"], 4)[0]
    assert default(completions=two_boxes, **kw) == [0.0]  # single_box: two boxes get 0
    script, _, _ = make_parser().parse_args_and_config(
        args=["--config", str(cfg), "--reward_options", '{"format": {"nope": 1}}'])
    with pytest.raises(ValueError, match="nope"):
        resolve_reward_funcs(script.reward_funcs, 4, options=script.reward_options)
    for bad, match in (('{"mcq_letter": {}}', "not in reward_funcs"), ("{oops", "not JSON"), ('{"format": 1}', "option dicts")):
        with pytest.raises(ValueError, match=match):
            make_parser().parse_args_and_config(args=["--config", str(cfg), "--reward_options", bad])


def test_reward_options_reach_an_external_reward_selected_from_yaml(tmp_path, monkeypatch):
    """A reward outside the registry (a dotted path in reward_funcs) gets its reward_options from the YAML on every
    call, is logged under its own name, and an option it does not take is an error."""
    from mmreason.rl.run import make_parser, resolve_reward_funcs

    (tmp_path / "opt_rewards_external.py").write_text(
        "def near_length(completions, target=10, **kw):\n"
        "    return [-abs(len(c[0]['content']) - target) for c in completions]\n"
        "def strict(completions, scale=1.0):\n"
        "    return [scale] * len(completions)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = tmp_path / "c.yaml"
    cfg.write_text("reward_funcs: [opt_rewards_external.near_length, accuracy]\n"
                   "reward_options:\n  opt_rewards_external.near_length: {target: 3}\n  accuracy: {single_box: false}\n"
                   f"output_dir: {tmp_path}\nbf16: false\n")
    script, _, _ = make_parser().parse_args_and_config(args=["--config", str(cfg)])
    near, acc = resolve_reward_funcs(script.reward_funcs, 4, options=script.reward_options)
    assert near.__name__ == "near_length" and acc.__name__ == "accuracy"
    assert near(completions=[[{"role": "assistant", "content": "abcde"}]]) == [-2]  # target 3 arrived (default 10: -5)
    with pytest.raises(ValueError, match="no option"):
        resolve_reward_funcs(["opt_rewards_external.strict"], 4, options={"opt_rewards_external.strict": {"target": 1}})
    assert resolve_reward_funcs(["opt_rewards_external.strict"], 4, options={"opt_rewards_external.strict": {"scale": 2.0}})[0](
        completions=[[{}]]) == [2.0]
