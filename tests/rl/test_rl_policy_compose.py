"""Clip-Cov, KL-Cov and dual-clip composed with each TRL 1.16 GRPO loss option (every loss_type, sequence-level
importance sampling, delta, the off-policy mask, the entropy mask, the entropy bonus static and adaptive, the MoE
aux loss): with the covariance term off, our loss and gradients are stock TRL's bit for bit; with it on the
selection / penalty acts (frac_selected > 0, the loss moves); and a hand-checked case: Clip-Cov selecting every
token on-policy is TRL's loss with all advantages 0. The combinations that are refused say why."""

from contextlib import contextmanager

import pytest
import torch
import trl_hooks

from grpo_fixtures import NUM_GEN, trl_args, varying_reward, write_records

ALL_LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo", "luspo", "cispo", "sapo", "vespo")
OPTIONS = [("loss_type", t) for t in ALL_LOSS_TYPES] + [
    ("importance_sampling_level", "sequence"),
    ("delta", 1.5),
    ("off_policy_mask_threshold", 0.01),
    ("top_entropy_quantile", 0.5),
    ("entropy_coef", 0.1),
    ("use_adaptive_entropy", True),
    ("router_aux_loss_coef", 0.01),
]


@pytest.fixture(scope="module")
def pair(tiny_model_dir, tmp_path_factory):
    """Stock TRL and ours on the same model, data and a stock GRPOConfig, and one rollout batch (on-policy) plus
    an off-policy copy (old log-probs shifted by seeded noise, so ratios move off 1 and the clips act)."""
    from transformers import AutoProcessor
    from trl import GRPOConfig, GRPOTrainer

    from mmreason.rl.data import build_grpo_dataset
    from mmreason.rl.trainer import MMReasonGRPOTrainer

    tmp = tmp_path_factory.mktemp("compose")
    processor = AutoProcessor.from_pretrained(tiny_model_dir, padding_side="left")
    ds, _ = build_grpo_dataset(write_records(tmp), processor=processor)
    kw = trl_args(tmp, per_device_train_batch_size=8, beta=0.04, max_completion_length=10)
    stock = GRPOTrainer(str(tiny_model_dir), [varying_reward], GRPOConfig(**kw), ds, processing_class=processor)
    mine = MMReasonGRPOTrainer(str(tiny_model_dir), [varying_reward], GRPOConfig(**kw), ds,
                               processing_class=processor)
    for t in (stock, mine):
        t.model.train()
        t.current_gradient_accumulation_steps = 1
    torch.manual_seed(0)
    on = trl_hooks.generate(stock, [ds[i] for i in (1, 2) for _ in range(NUM_GEN)])
    with torch.no_grad():
        logps, _, _ = trl_hooks.token_logps(stock, on, pixel_values=on["pixel_values"],
                                            image_grid_thw=on["image_grid_thw"], num_images=on["num_images"])
    noise = torch.randn(logps.shape, generator=torch.Generator().manual_seed(1)) * 0.3
    off = dict(on, old_per_token_logps=logps + noise)
    return stock, mine, on, off


def _set(t, name, value):
    setattr(t, name, value)
    if hasattr(t.args, name):
        setattr(t.args, name, value)


@contextmanager
def option(stock, mine, name, value):
    saved = [(t, {k: getattr(t, k, None) for k in ("loss_type", "importance_sampling_level", "off_policy_mask_threshold",
                                                   "top_entropy_quantile", "entropy_coef", "use_adaptive_entropy",
                                                   "aux_loss_enabled", "router_aux_loss_coef")},
              {k: getattr(t.args, k) for k in ("loss_type", "importance_sampling_level", "delta", "entropy_target")},
              trl_hooks.entropy_bonus_enabled(t))
             for t in (stock, mine)]
    forwards = [t.model.forward for t in (stock, mine)]
    for t in (stock, mine):
        if name == "router_aux_loss_coef":
            _with_fake_aux_loss(t.model)
            t.aux_loss_enabled, t.router_aux_loss_coef = True, value
        elif name in ("entropy_coef", "use_adaptive_entropy"):
            _set(t, name, value)
            trl_hooks.set_entropy_bonus(t, True)
            t.args.entropy_target = 1e9  # adaptive: the bonus applies
        else:
            _set(t, name, value)
    try:
        yield
    finally:
        for (t, attrs, args, bonus), forward in zip(saved, forwards):
            for k, v in attrs.items():
                setattr(t, k, v)
            for k, v in args.items():
                setattr(t.args, k, v)
            trl_hooks.set_entropy_bonus(t, bonus)
            t.model.forward = forward
        mine.args.policy_loss = "none"


def _with_fake_aux_loss(model):
    """A stand-in MoE load-balancing loss on the dense tiny model: output_router_logits=True adds a differentiable
    aux_loss (the mean squared lm_head weight) to the forward's output, as a MoE model returns one."""
    forward = model.forward

    def fwd(*a, output_router_logits=False, **k):
        out = forward(*a, **k)
        if output_router_logits:
            out.aux_loss = (model.lm_head.weight ** 2).mean()
        return out

    model.forward = fwd


def run(t, inputs):
    """(loss, grads) of one compute_loss; the adaptive-entropy controller restarted so calls are comparable."""
    t.entropy_coef = 0.1 if trl_hooks.entropy_bonus_enabled(t) else t.entropy_coef
    trl_hooks.restart_adaptive_entropy(t, last_world_entropy=0.0)
    t.model.zero_grad()
    loss = t.compute_loss(t.model, inputs)
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in t.model.parameters() if p.grad is not None]


def same(a, b) -> bool:
    return torch.equal(a[0], b[0]) and len(a[1]) == len(b[1]) and all(torch.equal(x, y) for x, y in zip(a[1], b[1]))


def frac_selected(t) -> float:
    return trl_hooks.metrics(t)["cov/frac_selected"][-1]


@pytest.mark.parametrize("name,value", OPTIONS, ids=[f"{n}={v}" for n, v in OPTIONS])
def test_policy_losses_compose_with_every_trl_option(name, value, pair):
    stock, mine, on, off = pair
    with option(stock, mine, name, value):
        paper_kl_cov = mine.args.uses_paper_kl_cov()
        for inputs in (on, off):
            ref = run(stock, inputs)
            # the covariance term off: TRL's loss and gradients, bit for bit
            mine.args.policy_loss = "none"
            assert same(run(mine, inputs), ref)
            mine.args.policy_loss, mine.args.clip_cov_lb, mine.args.clip_cov_ub = "clip_cov", 1e8, 1e9
            assert same(run(mine, inputs), ref) and frac_selected(mine) == 0
            mine.args.policy_loss, mine.args.kl_cov_ratio, mine.args.ppo_kl_coef = "kl_cov", 0.5, 0.0
            if paper_kl_cov:  # the paper's KL-Cov drops the ratio clip: TRL's loss only where nothing is clipped
                if inputs is on:
                    assert torch.allclose(run(mine, inputs)[0], ref[0], atol=1e-6)
            else:
                assert same(run(mine, inputs), ref)
        # the covariance term on: tokens selected, the loss moves
        ref = run(stock, off)
        mine.args.policy_loss, mine.args.clip_cov_lb, mine.args.clip_cov_ub = "clip_cov", -1e9, 1e9
        mine.args.clip_cov_ratio = 0.5
        got = run(mine, off)
        assert frac_selected(mine) > 0.3 and not torch.equal(got[0], ref[0])
        mine.args.policy_loss, mine.args.ppo_kl_coef = "kl_cov", 1.0
        got = run(mine, off)
        assert frac_selected(mine) == pytest.approx(0.5, abs=0.1) and not torch.equal(got[0], ref[0])
        # by hand: on-policy nothing is clipped, so Clip-Cov with every token a candidate and ratio 1 selects all,
        # and the loss is TRL's with every advantage 0 (what remains: KL, entropy bonus, aux loss)
        mine.args.policy_loss, mine.args.clip_cov_ratio = "clip_cov", 1.0
        got = run(mine, on)
        assert frac_selected(mine) == 1.0
        want = run(stock, dict(on, advantages=torch.zeros_like(on["advantages"])))
        assert torch.allclose(got[0], want[0], atol=1e-7, rtol=0)
        assert all(torch.allclose(a, b, atol=1e-7) for a, b in zip(got[1], want[1]))


def test_kl_cov_by_hand_on_the_papers_options_and_on_gspo(pair):
    """KL-Cov with every token selected: on dapo at token level the paper's objective, -A*r + |log r| token-mean,
    plus TRL's remaining terms (beta KL); on GSPO, TRL's own objective plus the penalty, token-mean."""
    stock, mine, on, off = pair
    mask = off["completion_mask"].float()
    zero_adv = dict(off, advantages=torch.zeros_like(off["advantages"]))
    with option(stock, mine, "loss_type", "dapo"):
        mine.args.policy_loss, mine.args.kl_cov_ratio, mine.args.ppo_kl_coef = "kl_cov", 1.0, 0.7
        got = run(mine, off)[0]
        lp = trl_hooks.token_logps(  # the loss pass's call, with entropies and a graph
            stock, off, compute_entropy=True, pixel_values=off["pixel_values"], image_grid_thw=off["image_grid_thw"],
            num_images=off["num_images"], mm_token_type_ids=off.get("mm_token_type_ids"))[0].detach()
        log_r = lp - off["old_per_token_logps"]
        paper = -off["advantages"].unsqueeze(1) * torch.exp(log_r) + 0.7 * log_r.abs()
        want = run(stock, zero_adv)[0] + (paper * mask).sum() / off["num_items_in_batch"]
        assert torch.allclose(got, want, rtol=1e-5, atol=1e-7), (float(got), float(want), float(got - want))
    with option(stock, mine, "importance_sampling_level", "sequence"):
        _set(stock, "loss_type", "dapo"), _set(mine, "loss_type", "dapo")
        mine.args.policy_loss, mine.args.kl_cov_ratio, mine.args.ppo_kl_coef = "kl_cov", 1.0, 0.7
        got = run(mine, off)[0]
        want = run(stock, off)[0] + (0.7 * log_r.abs() * mask).sum() / off["num_items_in_batch"]
        assert torch.allclose(got, want, rtol=1e-5, atol=1e-7)


def test_clip_cov_in_the_trainer_is_the_official_kernel_on_the_papers_options(pair):
    """On the paper's options (dapo, token level, no delta) the trainer's Clip-Cov (TRL's loss with the selected
    advantages 0) is the kernel that equals the official code (tests/rl/test_rl_losses.py), token-mean aggregated,
    plus TRL's beta KL: the same tokens selected (same generator and candidate rule), the same loss."""
    from mmreason.rl.losses.clip_cov import clip_cov_loss

    stock, mine, on, off = pair
    mask = off["completion_mask"].float()
    with option(stock, mine, "loss_type", "dapo"):
        mine.args.policy_loss, mine.args.clip_cov_lb, mine.args.clip_cov_ub = "clip_cov", -0.5, 0.5
        mine.args.clip_cov_ratio = 0.2
        got = run(mine, off)[0]
        assert 0 < frac_selected(mine) <= 0.2
        lp = trl_hooks.token_logps(
            stock, off, compute_entropy=True, pixel_values=off["pixel_values"], image_grid_thw=off["image_grid_thw"],
            num_images=off["num_images"], mm_token_type_ids=off.get("mm_token_type_ids"))[0].detach()
        kernel = clip_cov_loss(lp, off["old_per_token_logps"], off["advantages"], mask, mine.epsilon_low,
                               mine.epsilon_high, clip_cov_ratio=0.2, clip_cov_lb=-0.5, clip_cov_ub=0.5,
                               generator=mine.cov_generator())
        kl_only = run(stock, dict(off, advantages=torch.zeros_like(off["advantages"])))[0]
        assert torch.allclose(got, kl_only + (kernel * mask).sum() / off["num_items_in_batch"], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("loss_type", ["cispo", "sapo", "vespo"])
def test_dual_clip_is_refused_where_there_is_no_ratio_branch_to_cap(loss_type, tmp_path):
    from mmreason.rl.config import MMReasonGRPOConfig

    with pytest.raises(ValueError, match="no -ratio\\*A branch"):
        MMReasonGRPOConfig(**trl_args(tmp_path, loss_type=loss_type, clip_ratio_c=3.0))
    help_text = next(f for f in MMReasonGRPOConfig.__dataclass_fields__.values() if f.name == "clip_ratio_c")
    assert loss_type in help_text.metadata["help"]


def test_dual_clip_and_options_refusals_name_their_reason(tmp_path):
    from mmreason.rl.config import MMReasonGRPOConfig

    with pytest.raises(ValueError, match="same cap"):
        MMReasonGRPOConfig(**trl_args(tmp_path, clip_ratio_c=3.0, delta=4.0))
    with pytest.raises(ValueError, match="1 \\+ epsilon_high"):
        MMReasonGRPOConfig(**trl_args(tmp_path, clip_ratio_c=1.1, epsilon_high=0.28))
    with pytest.raises(ValueError, match="loss_options are for plugin losses"):
        MMReasonGRPOConfig(**trl_args(tmp_path, policy_loss="clip_cov", loss_options={"x": 1}))
    assert MMReasonGRPOConfig(**trl_args(tmp_path, clip_ratio_c=3.0, delta=3.0)).delta == 3.0


def test_cov_mode_is_an_alias_that_warns(tmp_path):
    from mmreason.rl.config import MMReasonGRPOConfig

    with pytest.warns(FutureWarning, match="renamed policy_loss"):
        args = MMReasonGRPOConfig(**trl_args(tmp_path, cov_mode="clip_cov"))
    assert args.policy_loss == "clip_cov" and args.cov_mode is None
