"""Clip-Cov / KL-Cov against the definition (a plain per-token reference), hand examples and boundaries;
the entropy-performance fit; the plot command on a synthetic trainer_state.json."""

import json
import math

import pytest
import torch

from mmreason.rl.entropy_law import fit_entropy_law
from mmreason.rl.losses import LossContext, builtin_losses, get_loss, load_loss_plugins, policy_loss
from mmreason.rl.losses.clip_cov import clip_cov_loss
from mmreason.rl.losses.covariance import covariance_stats
from mmreason.rl.losses.kl_cov import kl_cov_loss
from mmreason.rl.losses.registry import LOSSES


def _batch(seed, B=6, T=9, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    logp = -torch.rand(B, T, generator=g, dtype=torch.float64) * 3 * scale
    old = logp + torch.randn(B, T, generator=g, dtype=torch.float64) * 0.3
    adv = torch.randn(B, generator=g, dtype=torch.float64) * 2
    mask = (torch.rand(B, T, generator=g) > 0.25).to(torch.float64)
    mask[0, 0] = 1
    return logp, old, adv, mask


def _reference_cov(logp, adv, mask):
    """cov per valid token, computed with python loops from the written definition."""
    B, T = logp.shape
    vals = [(b, t) for b in range(B) for t in range(T) if mask[b, t] > 0]
    a_mean = sum(float(adv[b]) for b, _ in vals) / len(vals)
    l_mean = sum(float(logp[b, t]) for b, t in vals) / len(vals)
    return {(b, t): (float(adv[b]) - a_mean) * (float(logp[b, t]) - l_mean) for b, t in vals}


def _cfg(**kw):
    from types import SimpleNamespace

    base = dict(policy_loss="none", clip_ratio_c=None, kl_cov_ratio=2e-3, ppo_kl_coef=1.0, clip_cov_ratio=2e-4,
                clip_cov_lb=1.0, clip_cov_ub=5.0)
    return SimpleNamespace(**{**base, **kw})


CTX = LossContext(epsilon_low=0.2, epsilon_high=0.2)


def test_registry_one_signature():
    import inspect

    assert set(builtin_losses()) == {"none", "kl_cov", "clip_cov"} <= set(LOSSES)
    logp, old, adv, mask = _batch(2)
    for name, fn in LOSSES.items():
        assert list(inspect.signature(fn).parameters)[:6] == ["logp", "old_logp", "advantages", "mask", "cfg", "ctx"]
        loss, stats = fn(logp, old, adv, mask, _cfg(policy_loss=name), CTX)
        assert loss.shape == logp.shape and all(isinstance(v, float) for v in stats.values()), name
    # the registered covariance losses are the kernels with their hyper-parameters read from cfg / ctx
    cfg = _cfg(kl_cov_ratio=0.1, ppo_kl_coef=0.7, clip_cov_ratio=0.1, clip_cov_lb=-1.0)
    loss, stats = get_loss("kl_cov")(logp, old, adv, mask, cfg, CTX)
    want, st = kl_cov_loss(logp, old, adv, mask, kl_cov_ratio=0.1, ppo_kl_coef=0.7, return_stats=True)
    assert torch.equal(loss, want) and stats["cov/frac_selected"] == st.frac_selected
    ctx = LossContext(epsilon_low=0.2, epsilon_high=0.3, generator=torch.Generator().manual_seed(5))
    loss, stats = get_loss("clip_cov")(logp, old, adv, mask, cfg, ctx)
    want = clip_cov_loss(logp, old, adv, mask, 0.2, 0.3, clip_cov_ratio=0.1, clip_cov_lb=-1.0,
                         generator=torch.Generator().manual_seed(5))
    assert torch.equal(loss, want) and stats["cov/frac_selected"] > 0
    # 'none' is TRL's clipped surrogate
    loss, stats = get_loss("none")(logp, old, adv, mask, cfg, ctx)
    r = torch.exp(logp - old)
    a = adv[:, None]
    assert torch.equal(loss, -torch.min(r * a, torch.clamp(r, 0.8, 1.3) * a))
    assert stats["clip_ratio/high_mean"] == pytest.approx(float((((r > 1.3) & (a > 0)) * mask).sum() / mask.sum()))
    with pytest.raises(KeyError):
        get_loss("nope")


def test_builtin_losses_are_the_files_of_the_package():
    """Each built-in is one module of mmreason/rl/losses/ with `@register_loss("name")`, and the package scan finds
    exactly those: the names read from the folder's source files (not a list kept here) are `builtin_losses()`,
    each registered by its own file."""
    import ast
    from pathlib import Path

    import mmreason.rl.losses as package

    in_files = {}
    for path in sorted(Path(package.__file__).parent.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = [d.args[0].value for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)
                 for d in node.decorator_list
                 if isinstance(d, ast.Call) and getattr(d.func, "id", None) == "register_loss"]
        assert len(names) <= 1, f"{path.name} registers {names}: one built-in loss per file"
        in_files.update({name: path.stem for name in names})
    assert {"none", "clip_cov", "kl_cov"} <= set(in_files)
    assert builtin_losses() == tuple(sorted(in_files))
    assert {name: get_loss(name).__module__ for name in builtin_losses()} == {
        name: f"mmreason.rl.losses.{stem}" for name, stem in in_files.items()}


def test_loss_plugins_register_once_and_clash_loudly(tmp_path):
    plugin = tmp_path / "toy_loss.py"
    plugin.write_text(
        "from mmreason.rl.losses import register_loss\n"
        "@register_loss('toy_plugin_loss')\n"
        "def toy(logp, old_logp, advantages, mask, cfg, ctx):\n"
        "    return -logp * cfg.toy_scale, {'toy/scale': float(cfg.toy_scale)}\n"
    )
    load_loss_plugins([str(plugin)])
    load_loss_plugins([str(plugin)])  # the same file again: imported once, no "registered twice"
    logp, old, adv, mask = _batch(0)
    loss, stats = policy_loss(logp, old, adv, mask, _cfg(policy_loss="toy_plugin_loss", toy_scale=2.0), CTX)
    assert torch.equal(loss, -logp * 2.0) and stats == {"toy/scale": 2.0}
    clash = tmp_path / "clash.py"
    clash.write_text(plugin.read_text())
    with pytest.raises(ValueError, match="registered twice"):
        load_loss_plugins([str(clash)])
    with pytest.raises(FileNotFoundError, match="missing.py"):
        load_loss_plugins([str(tmp_path / "missing.py")])


# ---------------------------------------------------------------- dual-clip, by hand

# Two rows, A = -1 and +1; ratios r = 0.5, 1, 2, 4 in both rows (old = logp - log r); eps 0.2 / 0.2.
# logp row 0 = -2, -2, -2, -4, row 1 = -2, -2, -2, -1: mean logp -17/8, mean A 0, so
# cov row 0 = -(logp + 2.125) = -.125, -.125, -.125, 1.875 and row 1 = .125, .125, .125, 1.125.
_R = [0.5, 1.0, 2.0, 4.0]
_LOGP = torch.tensor([[-2.0, -2.0, -2.0, -4.0], [-2.0, -2.0, -2.0, -1.0]], dtype=torch.float64)
_OLD = _LOGP - torch.log(torch.tensor([_R, _R], dtype=torch.float64))
_ADV = torch.tensor([-1.0, 1.0], dtype=torch.float64)
_L4 = math.log(4.0)
# Per-token loss by hand, without and with the dual-clip c = 1.5 (caps A < 0 tokens at -A * c = 1.5):
# none: A = -1: max(r, clip(r)) = .8, 1, 2, 4; A = +1: max(-r, -clip(r)) = -.5, -1, -1.2, -1.2.
# clip_cov (lb 1, ub 5): candidates are cov in (1, 5) and not PPO-clipped: (0, 3) (cov 1.875; pg1 4 > pg2 1.2);
#   (1, 3) (cov 1.125) is PPO-clipped (pg2 -1.2 > pg1 -4). k = min(max(1, int(8 * .1)), 1) = 1: (0, 3) -> 0.
# kl_cov (ratio .125 -> k = 1): -A * r everywhere, + |log r| = log 4 on the top-covariance token (0, 3).
_HAND = {
    "none": ([[0.8, 1.0, 2.0, 4.0], [-0.5, -1.0, -1.2, -1.2]], [[0.8, 1.0, 1.5, 1.5], [-0.5, -1.0, -1.2, -1.2]]),
    "clip_cov": ([[0.8, 1.0, 2.0, 0.0], [-0.5, -1.0, -1.2, -1.2]], [[0.8, 1.0, 1.5, 0.0], [-0.5, -1.0, -1.2, -1.2]]),
    "kl_cov": ([[0.5, 1.0, 2.0, 4.0 + _L4], [-0.5, -1.0, -2.0, -4.0]], [[0.5, 1.0, 1.5, 1.5], [-0.5, -1.0, -2.0, -4.0]]),
}
_CAPPED = {"none": 2, "clip_cov": 1, "kl_cov": 2}  # tokens the dual-clip changes, of 8


@pytest.mark.parametrize("name", sorted(_HAND))
def test_dual_clip_hand_example_every_policy_loss(name):
    mask = torch.ones_like(_LOGP)
    cfg = dict(policy_loss=name, clip_cov_ratio=0.1, kl_cov_ratio=0.125, ppo_kl_coef=1.0)
    off, on = _HAND[name]
    loss, stats = policy_loss(_LOGP, _OLD, _ADV, mask, _cfg(**cfg), CTX)
    assert torch.allclose(loss, torch.tensor(off, dtype=torch.float64), atol=1e-12) and "clip_ratio/dual_mean" not in stats
    logp = _LOGP.clone().requires_grad_(True)
    loss, stats = policy_loss(logp, _OLD, _ADV, mask, _cfg(clip_ratio_c=1.5, **cfg), CTX)
    assert torch.allclose(loss, torch.tensor(on, dtype=torch.float64), atol=1e-12)
    assert stats["clip_ratio/dual_mean"] == _CAPPED[name] / 8
    loss.sum().backward()
    capped = torch.tensor(on, dtype=torch.float64) == 1.5
    assert torch.all(logp.grad[capped] == 0)  # a capped token no longer pushes
    assert torch.all(logp.grad[0, 1] != 0)  # an uncapped, unclipped token does
    # positive advantages are never dual-clipped, whatever c
    pos = (_LOGP[1:], _OLD[1:], _ADV[1:], mask[1:])
    assert torch.equal(policy_loss(*pos, _cfg(clip_ratio_c=1.01, **cfg), CTX)[0], policy_loss(*pos, _cfg(**cfg), CTX)[0])


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("ratio", [2e-3, 0.05, 0.3])
def test_kl_cov_matches_definition(seed, ratio):
    logp, old, adv, mask = _batch(seed)
    coef = 0.7
    out = kl_cov_loss(logp, old, adv, mask, kl_cov_ratio=ratio, ppo_kl_coef=coef)
    cov = _reference_cov(logp, adv, mask)
    k = max(1, int(len(cov) * ratio))
    top = set(sorted(cov, key=cov.get, reverse=True)[:k])
    for (b, t) in cov:
        pg1 = -float(adv[b]) * math.exp(float(logp[b, t] - old[b, t]))
        want = pg1 + (coef * abs(float(logp[b, t] - old[b, t])) if (b, t) in top else 0.0)
        assert abs(float(out[b, t]) - want) < 1e-6
    assert torch.all(out[mask == 0] == 0)


def test_advantage_shapes_agree():
    logp, old, adv, mask = _batch(3)
    for adv_ in (adv[:, None], adv[:, None].expand_as(logp)):
        assert torch.equal(kl_cov_loss(logp, old, adv, mask, kl_cov_ratio=0.1),
                           kl_cov_loss(logp, old, adv_, mask, kl_cov_ratio=0.1))
        same = [clip_cov_loss(logp, old, a, mask, clip_cov_ratio=0.1, clip_cov_lb=-1.0,
                              generator=torch.Generator().manual_seed(0)) for a in (adv, adv_)]
        assert torch.equal(*same)


def test_kl_cov_topk_boundary():
    # N = 10 valid tokens: ratio 0.1999 -> int(1.999) = 1 token; 0.2 -> 2 tokens; tiny ratio -> still 1.
    logp = torch.tensor([[-0.1, -0.25, -0.45, -0.7, -1.0], [-0.6, -0.65, -0.7, -0.75, -0.8]], dtype=torch.float64)
    old = logp - 0.5  # |logp - old| = 0.5 everywhere
    adv = torch.tensor([1.0, -1.0], dtype=torch.float64)
    mask = torch.ones_like(logp)
    for ratio, k in ((1e-9, 1), (0.1999, 1), (0.2, 2), (0.35, 3)):
        loss, st = kl_cov_loss(logp, old, adv, mask, kl_cov_ratio=ratio, ppo_kl_coef=2.0, return_stats=True)
        pg1 = -adv[:, None] * torch.exp(logp - old)
        penalised = ~torch.isclose(loss, pg1)
        assert int(penalised.sum()) == k == st.num_selected
        assert torch.allclose(loss[penalised], pg1[penalised] + 1.0)
    # mean A = 0, mean logp = -0.6: cov row0 = .5 .35 .15 -.1 -.4, row1 = 0 .05 .1 .15 .2 (no ties)
    pg1 = -adv[:, None] * torch.exp(logp - old)
    for ratio, want in ((0.2, [[0, 0], [0, 1]]), (0.3, [[0, 0], [0, 1], [1, 4]])):
        loss = kl_cov_loss(logp, old, adv, mask, kl_cov_ratio=ratio)
        assert (~torch.isclose(loss, pg1)).nonzero().tolist() == want


def test_kl_cov_hand_example():
    logp = torch.tensor([[-1.0, -2.0]], dtype=torch.float64)
    old = torch.tensor([[-1.5, -2.0]], dtype=torch.float64)
    adv = torch.tensor([2.0], dtype=torch.float64)
    mask = torch.tensor([[1.0, 1.0]], dtype=torch.float64)
    # single advantage: cov = 0 everywhere -> topk picks one of the tied tokens; make it unambiguous with 2 rows
    logp2 = torch.cat([logp, logp]); old2 = torch.cat([old, old]); mask2 = torch.cat([mask, mask])
    adv2 = torch.tensor([2.0, 0.0], dtype=torch.float64)
    # mean A = 1, mean logp = -1.5: cov row0 = (1)(0.5), (1)(-0.5); row1 = (-1)(0.5), (-1)(-0.5)
    # N = 4, ratio 0.25 -> k = 1 -> tie between (0,0) and (1,1), both 0.5; use ratio 0.5 -> both.
    out = kl_cov_loss(logp2, old2, adv2, mask2, kl_cov_ratio=0.5, ppo_kl_coef=1.0)
    e = math.exp(0.5)
    want = torch.tensor([[-2 * e + 0.5, -2.0], [0.0, 0.0]], dtype=torch.float64)
    assert torch.allclose(out, want, atol=1e-12)


def _clip_reference(logp, old, adv, mask, el, eh, lb, ub):
    cov = _reference_cov(logp, adv, mask)
    base, cands = {}, []
    for (b, t), c in cov.items():
        r = math.exp(float(logp[b, t] - old[b, t]))
        pg1 = -float(adv[b]) * r
        pg2 = -float(adv[b]) * min(max(r, 1 - el), 1 + eh)
        base[(b, t)] = max(pg1, pg2)
        if not pg2 > pg1 and lb < c < ub:
            cands.append((b, t))
    return base, cands


@pytest.mark.parametrize("seed", range(8))
def test_clip_cov_all_candidates_chosen_exact(seed):
    logp, old, adv, mask = _batch(seed, scale=2.0)
    lb, ub = 0.05, 3.0
    base, cands = _clip_reference(logp, old, adv, mask, 0.2, 0.3, lb, ub)
    # ratio 1.0 -> k = N >= #candidates: every candidate is detached
    out, st = clip_cov_loss(logp, old, adv, mask, 0.2, 0.3, clip_cov_ratio=1.0, clip_cov_lb=lb, clip_cov_ub=ub,
                            return_stats=True)
    assert st.num_candidates == len(cands) and st.num_selected == len(cands)
    for key, v in base.items():
        want = 0.0 if key in cands else v
        assert float(out[key]) == pytest.approx(want, abs=1e-12)
    assert torch.all(out[mask == 0] == 0)


@pytest.mark.parametrize("seed", range(6))
def test_clip_cov_random_subset_count_and_candidates(seed):
    logp, old, adv, mask = _batch(seed, B=12, T=20, scale=2.0)
    lb, ub = 0.05, 3.0
    base, cands = _clip_reference(logp, old, adv, mask, 0.2, 0.2, lb, ub)
    n = int(mask.sum())
    ratio = 0.04
    k = min(max(1, int(n * ratio)), len(cands))
    assert 0 < k < len(cands)  # the test is only meaningful with a real choice to make
    g = torch.Generator().manual_seed(seed)
    out = clip_cov_loss(logp, old, adv, mask, clip_cov_ratio=ratio, clip_cov_lb=lb, clip_cov_ub=ub, generator=g)
    zeroed = {key for key, v in base.items() if float(out[key]) == 0.0 and v != 0.0}
    assert len(zeroed) == k and zeroed <= set(cands)
    for key, v in base.items():
        if key not in zeroed:
            assert float(out[key]) == pytest.approx(v, abs=1e-12)
    # reproducible with the same generator seed, different with another
    again = clip_cov_loss(logp, old, adv, mask, clip_cov_ratio=ratio, clip_cov_lb=lb, clip_cov_ub=ub,
                          generator=torch.Generator().manual_seed(seed))
    assert torch.equal(out, again)


def test_clip_cov_candidate_rule_boundaries():
    # Two rows, A = +1 / -1 so mean A = 0; cov = A * (logp - mean logp).
    logp = torch.tensor([[0.0, -1.0, -2.0, -3.0], [0.0, -1.0, -2.0, -3.0]], dtype=torch.float64)
    adv = torch.tensor([1.0, -1.0], dtype=torch.float64)
    mask = torch.ones_like(logp)
    # mean logp = -1.5: row0 cov = 1.5, 0.5, -0.5, -1.5 ; row1 cov = -1.5, -0.5, 0.5, 1.5
    old = logp.clone()  # ratio 1: nothing PPO-clipped
    cov = covariance_stats(logp, adv, mask)
    assert cov.cov_max == pytest.approx(1.5)
    # strict bounds: lb = 0.5 excludes the 0.5 tokens, ub = 1.5 excludes the 1.5 tokens -> no candidate
    _, st = clip_cov_loss(logp, old, adv, mask, clip_cov_ratio=1.0, clip_cov_lb=0.5, clip_cov_ub=1.5, return_stats=True)
    assert st.num_candidates == 0 and st.num_selected == 0
    _, st = clip_cov_loss(logp, old, adv, mask, clip_cov_ratio=1.0, clip_cov_lb=0.49, clip_cov_ub=1.51, return_stats=True)
    assert st.num_candidates == 4
    # PPO-clipped tokens are never candidates: push (0, 0) (cov 1.5, A > 0) above 1 + eps_high
    old2 = old.clone()
    old2[0, 0] = -0.5  # ratio e^0.5 = 1.65 > 1.2 with A > 0: pg2 > pg1, clipped
    loss, st = clip_cov_loss(logp, old2, adv, mask, clip_cov_ratio=1.0, clip_cov_lb=0.49, clip_cov_ub=1.51,
                             return_stats=True)
    assert st.num_candidates == 3
    assert float(loss[0, 0]) == pytest.approx(-1.2)  # kept, with the clipped value
    # count: N = 8, ratio 0.25 -> 2 of the 4 candidates; tiny ratio -> at least 1
    for ratio, k in ((0.25, 2), (1e-6, 1), (0.2499, 1)):
        _, st = clip_cov_loss(logp, old, adv, mask, clip_cov_ratio=ratio, clip_cov_lb=0.49, clip_cov_ub=1.51,
                              return_stats=True, generator=torch.Generator().manual_seed(0))
        assert st.num_selected == k


def test_losses_gradients_flow_and_detach():
    logp, old, adv, mask = _batch(1, scale=2.0)
    logp = logp.clone().requires_grad_(True)
    out = clip_cov_loss(logp, old, adv, mask, clip_cov_ratio=1.0, clip_cov_lb=0.05, clip_cov_ub=3.0)
    (out * mask).sum().backward()
    detached = (out == 0) & (mask > 0)
    assert detached.any()
    assert torch.all(logp.grad[detached] == 0)
    assert logp.grad[~detached & (mask > 0)].abs().sum() > 0


def test_fit_entropy_law_recovers_parameters():
    a, b = 0.35, 1.2
    hs = [0.1 + 0.05 * i for i in range(20)]
    rs = [-a * math.exp(h) + b for h in hs]
    fit = fit_entropy_law(hs, rs)
    assert fit.a == pytest.approx(a, rel=1e-9) and fit.b == pytest.approx(b, rel=1e-9)
    assert fit.ceiling == pytest.approx(b - a) and fit.r2 == pytest.approx(1.0)
    fa, fb = fit  # unpacks as (a, b)
    assert (fa, fb) == (fit.a, fit.b)
    # noisy points: least-squares in x = e^H matches numpy's polyfit
    import numpy as np

    rng = np.random.default_rng(0)
    noisy = [r + float(rng.normal(0, 0.02)) for r in rs]
    fit = fit_entropy_law(hs, noisy)
    slope, intercept = np.polyfit(np.exp(hs), noisy, 1)
    assert fit.a == pytest.approx(-slope, rel=1e-9) and fit.b == pytest.approx(intercept, rel=1e-9)
    with pytest.raises(ValueError):
        fit_entropy_law([0.5, 0.5], [0.1, 0.2])
    with pytest.raises(ValueError):
        fit_entropy_law([0.5], [0.1])


def test_plot_writes_pngs_and_fit(tmp_path, capsys):
    from mmreason.rl.plot import main

    a, b = 0.2, 0.9
    hist = []
    for step in range(1, 16):
        h = 1.5 - 0.08 * step
        hist.append({"step": step, "entropy/token_mean": h, "entropy/seq_mean": h + 0.01,
                     "rewards/accuracy/mean": -a * math.exp(h) + b, "reward": 0.5, "cov/mean": 0.01,
                     "cov/max": 0.5, "cov/frac_selected": 0.001, "rewards_by_source/accuracy/synth/x": 0.1})
    hist.append({"step": 15, "train_runtime": 3.0})
    hist += [{"step": s, "eval_rewards/accuracy/mean": 0.4 + s / 100, "eval_rewards_by_source/accuracy/synth/x": 0.3}
             for s in (0, 15)]
    ck = tmp_path / "run" / "checkpoint-15"
    ck.mkdir(parents=True)
    (ck / "trainer_state.json").write_text(json.dumps({"log_history": hist}))
    assert main(["--run", str(tmp_path / "run")]) == 0
    for name in ("entropy.png", "reward.png", "covariance.png", "entropy_law.png"):
        assert (tmp_path / "run" / name).stat().st_size > 1000
    from mmreason.rl.plot import eval_rewards, load_history

    evals = eval_rewards(load_history(tmp_path / "run"))
    assert evals["batch"] == ([0, 15], [0.4, 0.55]) and evals["sources"] == {"synth/x": ([0, 15], [0.3, 0.3])}
    res = json.loads((tmp_path / "run" / "entropy_law.json").read_text())
    assert res["a"] == pytest.approx(a) and res["b"] == pytest.approx(b) and res["points"] == 15
    assert "a = 0.2" in capsys.readouterr().out
    assert main(["--run", str(tmp_path / "missing")]) == 1


def test_reward_trend_separates_sources_from_the_batch_mix():
    from mmreason.rl.plot import reward_trend

    # Two sources that both improve by 0.1, drawn in a mix that shifts from the easy one to the hard one:
    # the batch mean falls, each source and their macro mean rise.
    hist = []
    for step in range(1, 9):
        easy, hard, w_easy = 0.8 + 0.1 * (step > 4), 0.2 + 0.1 * (step > 4), 0.9 if step <= 4 else 0.2
        hist.append({"step": step, "rewards/accuracy/mean": w_easy * easy + (1 - w_easy) * hard,
                     "rewards_by_source/accuracy/easy": easy, "rewards_by_source/accuracy/hard": hard})
    hist[0].pop("rewards_by_source/accuracy/hard")  # a source absent from a step is simply not logged there
    t = reward_trend(hist)
    assert t["window"] == 2 and t["steps"] == 8 and t["unit"] == "steps"
    assert t["batch"][1] < t["batch"][0]
    assert t["sources"]["easy"] == pytest.approx((0.8, 0.9))
    assert t["sources"]["hard"] == pytest.approx((0.2, 0.3))  # its first window holds step 2 only
    assert t["macro"] == pytest.approx((0.5, 0.6))
    assert reward_trend([])["batch"] is None
    # two passes over the pool (4 steps each): the windows are the first and the last pass
    for h in hist:
        h.update(loss=0.0, epoch=h["step"] / 4)
    t = reward_trend(hist)
    assert t["unit"] == "pass" and t["window"] == 4 and t["sources"]["easy"] == pytest.approx((0.8, 0.9))
    for h in hist:
        h.update(epoch=h["step"] / 5)  # 1.6 passes: back to quarters
    assert reward_trend(hist)["unit"] == "steps"


def test_reward_trend_passes_follow_epochs_not_log_entries():
    from mmreason.rl.plot import reward_trend, series

    # num_iterations=2: a reward is logged at every other optimizer step (the ones that generated); 2.5
    # passes of 8 steps, cut mid-pass. The rollout reward is the pass number, so each window is exact.
    hist = [{"step": s, "loss": 0.0, "epoch": s / 8} for s in range(1, 21)]
    for h in hist:
        if h["step"] % 2:
            p = math.ceil(h["epoch"])
            h.update({"rewards/accuracy/mean": float(p), "rewards_by_source/accuracy/x": 10.0 * p})
    t = reward_trend(hist)
    assert t["unit"] == "pass" and t["passes"] == 2 and t["window"] == 4 and t["steps"] == 10
    assert t["batch"] == (1.0, 2.0) and t["sources"]["x"] == (10.0, 20.0)
    # an eval repeated at a step after a resume (eval_on_start) is one point: the last one logged
    evals = [{"step": 0, "eval_reward": 0.1}, {"step": 20, "eval_reward": 0.2}, {"step": 20, "eval_reward": 0.3}]
    assert series(evals, "eval_reward") == ([0, 20], [0.1, 0.3])


def _law_run(tmp_path, name, eval_fn=None, eval_steps=(0, 4, 8, 12, 16, 20)):
    """A synthetic run: entropy falling over 20 steps, a training reward that moves with the batch mix
    (not with entropy), and optional evaluations eval_fn(H) at eval_steps."""
    hist = []
    for step in range(1, 21):
        h = 1.6 - 0.05 * step
        hist.append({"step": step, "entropy/token_mean": h, "rewards/accuracy/mean": 0.3 + 0.2 * (step % 3)})
    if eval_fn is not None:
        ent = {x["step"]: x["entropy/token_mean"] for x in hist}
        hist += [{"step": s, "eval_rewards/accuracy/mean": eval_fn(ent[s]) if s in ent else 0.123} for s in eval_steps]
    run = tmp_path / name
    run.mkdir()
    (run / "trainer_state.json").write_text(json.dumps({"log_history": hist}))
    return run


def _count_axhline(monkeypatch):
    import matplotlib.axes

    calls = []
    orig = matplotlib.axes.Axes.axhline
    monkeypatch.setattr(matplotlib.axes.Axes, "axhline", lambda self, *a, **k: calls.append(a) or orig(self, *a, **k))
    return calls


def test_entropy_law_is_fitted_on_the_validation_reward(tmp_path, capsys, monkeypatch):
    from mmreason.rl.plot import main

    a, b = 0.25, 1.1
    run = _law_run(tmp_path, "val", lambda h: -a * math.exp(h) + b)
    calls = _count_axhline(monkeypatch)
    assert main(["--run", str(run)]) == 0
    res = json.loads((run / "entropy_law.json").read_text())
    # step 0 (eval_on_start) has no training entropy yet: 5 of the 6 evaluations are points
    assert (res["basis"], res["reward_key"], res["points"]) == ("validation", "eval_rewards/accuracy/mean", 5)
    assert res["a"] == pytest.approx(a) and res["b"] == pytest.approx(b) and res["r2"] == pytest.approx(1.0)
    assert res["ceiling_drawn"] is True and calls == [(pytest.approx(b - a),)] and "warning" not in res
    out = capsys.readouterr().out
    assert "on the validation reward (eval_rewards/accuracy/mean) over 5 evaluations" in out
    assert "R^2 = 1.000" in out and "predicted ceiling b - a = 0.85" in out and "warning" not in out


def test_entropy_law_falls_back_to_the_training_reward_with_a_warning(tmp_path, capsys, monkeypatch):
    from mmreason.rl.plot import main

    for name, eval_fn, steps in (("none", None, ()), ("too_few", lambda h: 0.5, (0, 20))):
        run = _law_run(tmp_path, name, eval_fn, steps)
        assert main(["--run", str(run)]) == 0
        res = json.loads((run / "entropy_law.json").read_text())
        assert (res["basis"], res["reward_key"], res["points"]) == ("training", "rewards/accuracy/mean", 20), name
        out = capsys.readouterr().out
        assert "warning:" in out and "training-rollout reward" in res["warning"], name
        assert "on the training reward (rewards/accuracy/mean) over 20 training steps" in out and "R^2 = " in out


def test_entropy_law_with_a_le_0_draws_no_ceiling(tmp_path, capsys, monkeypatch):
    from mmreason.rl.plot import main

    run = _law_run(tmp_path, "rising", lambda h: 0.2 * math.exp(h) + 0.1)  # reward rises with entropy: a = -0.2
    calls = _count_axhline(monkeypatch)
    assert main(["--run", str(run)]) == 0
    res = json.loads((run / "entropy_law.json").read_text())
    assert res["basis"] == "validation" and res["a"] == pytest.approx(-0.2) and res["ceiling_drawn"] is False
    assert calls == []
    out = capsys.readouterr().out
    assert "a <= 0: outside the law's regime (no ceiling)" in out and "predicted ceiling" not in out
