"""`mmreason plot --run DIR`: entropy, reward and covariance curves of a GRPO run, and the fitted
entropy-performance law R = -a * exp(H) + b with its predicted ceiling b - a.

The law is fitted as the paper fits it, on validation performance: the evaluation reward (`eval_*`, the
same held-out questions at every eval step) paired with the training entropy logged at that step. A run
without evaluations (or with fewer than two that pair with an entropy) falls back to the training-rollout
reward, with a warning: that mean moves with each batch's question mix. The ceiling b - a is the law's
prediction only when a > 0 (reward falling as entropy rises); with a <= 0 none is drawn.

Reads DIR/trainer_state.json (or the newest DIR/checkpoint-*/trainer_state.json), writes PNGs and
entropy_law.json into DIR (or --out)."""

from __future__ import annotations

import argparse
import json
import logging
import math
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt

from mmreason.rl import metrics as M
from mmreason.rl.entropy_law import EntropyLawFit, fit_entropy_law

logger = logging.getLogger(__name__)


def find_trainer_state(run: Path) -> Path:
    direct = run / "trainer_state.json"
    if direct.is_file():
        return direct
    ckpts = sorted(run.glob("checkpoint-*/trainer_state.json"), key=lambda p: int(p.parent.name.split("-")[-1]))
    if not ckpts:
        raise FileNotFoundError(f"no trainer_state.json in {run} or its checkpoint-* folders")
    return ckpts[-1]


def load_history(run: Path) -> list[dict]:
    state = json.loads(find_trainer_state(run).read_text())
    return [h for h in state.get("log_history", []) if "step" in h]


def series(history: list[dict], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of one logged metric, one point per step: a step logged twice (an eval repeated by
    `eval_on_start` after a resume) keeps its last value."""
    pts = {h["step"]: h[key] for h in history if isinstance(h.get(key), (int, float)) and math.isfinite(h[key])}
    return list(pts), list(pts.values())


def source_series(history: list[dict], func: str = "accuracy", mode: str = "") -> dict[str, tuple[list[int], list[float]]]:
    """Per-source reward curves of one reward function: {source: (steps, values)}; mode "eval_" for the
    evaluations during training."""
    prefix = mode + M.source_reward_prefix(func)
    keys = sorted({k for h in history for k in h if k.startswith(prefix)})
    return {k[len(prefix):]: series(history, k) for k in keys}


def eval_rewards(history: list[dict], func: str = "accuracy") -> dict:
    """The reward of each evaluation during training (TRL's eval_strategy; same questions every time):
    {"batch": (steps, values), "sources": {source: (steps, values)}}."""
    return {"batch": series(history, "eval_" + M.reward_key(func)), "sources": source_series(history, func, "eval_")}


def pass_windows(history: list[dict], key: str) -> tuple[set[int], set[int], int] | None:
    """Steps of the first and of the last complete pass over the prompt pool among the log entries that
    hold `key`, and the number of complete passes; None if the run made fewer than two. Passes are read
    from each entry's `epoch` (TRL counts one epoch per pass over the prompts whatever `num_iterations`
    or `steps_per_generation` are); an entry whose logging window straddles a boundary counts where it
    was logged."""
    eps = 1e-6
    epochs = {h["step"]: h["epoch"] for h in history if key in h and isinstance(h.get("epoch"), (int, float))}
    if not epochs or max(epochs.values()) < 2 - eps:
        return None
    passes = math.floor(max(epochs.values()) + eps)
    first = {s for s, e in epochs.items() if e <= 1 + eps}
    last = {s for s, e in epochs.items() if passes - 1 + eps < e <= passes + eps}
    return (first, last, passes) if first and last else None


def reward_trend(history: list[dict], func: str = "accuracy", fraction: float = 0.25) -> dict:
    """Mean reward in the first vs the last window of a run: the batch mean, each source's mean and their
    macro average over sources. A window is one pass over the prompt pool when the run made two or more
    (the first and the last complete pass: both hold the same questions), else `fraction` of the logged
    steps. Between windows of fresh questions the batch mean also moves with how many questions of each
    source the batches drew and how hard they were; the per-source means remove the first effect."""
    key = M.reward_key(func)
    steps, batch = series(history, key)
    out = {"unit": "steps", "window": 0, "steps": len(steps), "batch": None, "sources": {}}
    if not steps:
        return out
    if windows := pass_windows(history, key):
        first, last, out["passes"] = windows
        out["unit"], out["window"] = "pass", len(first)
    else:
        k = max(1, int(len(steps) * fraction))
        first, last = set(steps[:k]), set(steps[-k:])
        out["window"] = k

    def means(xs, ys):
        a = [y for x, y in zip(xs, ys) if x in first]
        b = [y for x, y in zip(xs, ys) if x in last]
        return (sum(a) / len(a), sum(b) / len(b)) if a and b else None

    out["batch"] = means(steps, batch)
    for src, (xs, ys) in source_series(history, func).items():
        if (w := means(xs, ys)) is not None:
            out["sources"][src] = w
    if out["sources"]:
        n = len(out["sources"])
        out["macro"] = tuple(sum(w[i] for w in out["sources"].values()) / n for i in (0, 1))
    return out


def performance_key(history: list[dict], preferred: str | None = None) -> str:
    """The reward plotted against entropy: `preferred`, else the accuracy reward, else TRL's total reward."""
    keys = {k for h in history for k in h}
    for k in ([preferred] if preferred else []) + [M.reward_key("accuracy"), M.REWARD]:
        if k in keys:
            return k
    raise KeyError(f"no reward metric in the log history (keys: {sorted(keys)})")


def law_points(history: list[dict], reward: str | None = None) -> dict:
    """The (entropy, reward) points the law is fitted on: {"basis": "validation" | "training", "reward_key",
    "pairs", "warning" (fallback only)}. Validation: each `eval_<reward key>` value with the training token
    entropy logged at that step (or the last one before it); an evaluation before any training step (e.g.
    eval_on_start) has no entropy and is left out."""
    train_key = performance_key(history, reward)
    ent_steps, ent_vals = series(history, M.ENTROPY_TOKEN_MEAN)
    ent = dict(zip(ent_steps, ent_vals))
    eval_key = "eval_" + train_key
    eval_steps, eval_vals = series(history, eval_key)
    if eval_steps:
        pairs = []
        for step, value in zip(eval_steps, eval_vals):
            before = [s for s in ent_steps if s <= step]
            if before:
                pairs.append((ent[max(before)], value))
        if len(pairs) >= 2:
            return {"basis": "validation", "reward_key": eval_key, "pairs": pairs}
        warning = (f"only {len(pairs)} of {len(eval_steps)} evaluation(s) pair with a training entropy: fitting the "
                   f"training-rollout reward {train_key} instead")
    else:
        warning = (f"the run has no evaluations ({eval_key}): fitting the training-rollout reward {train_key}, "
                   "which moves with each batch's question mix; set eval_file and eval_strategy to fit on "
                   "validation as the paper does")
    pairs = [(ent[s], r) for s, r in zip(*series(history, train_key)) if s in ent]
    return {"basis": "training", "reward_key": train_key, "pairs": pairs, "warning": warning}


def _running_mean(values: list[float], k: int) -> list[float]:
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v - (values[i - k] if i >= k else 0.0)
        out.append(total / min(i + 1, k))
    return out


def plot_run(run: str | Path, out: str | Path | None = None, reward: str | None = None) -> dict:
    matplotlib.use("Agg")

    run = Path(run)
    out = Path(out) if out else run
    out.mkdir(parents=True, exist_ok=True)
    history = load_history(run)
    rkey = performance_key(history, reward)
    written = []

    def save(fig, name):
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        written.append(str(out / name))

    def lines(series_labels, ylabel, title):
        """One figure with a line per logged metric that has values; returns (fig, ax)."""
        fig, ax = plt.subplots(figsize=(6, 4))
        for key, label in series_labels:
            x, y = series(history, key)
            if x:
                ax.plot(x, y, label=label)
        ax.set(xlabel="step", ylabel=ylabel, title=title)
        return fig, ax

    fig, ax = lines([(M.ENTROPY_TOKEN_MEAN, "token mean"), (M.ENTROPY_SEQ_MEAN, "sequence mean")],
                    "policy entropy (nats)", "Entropy on the rollouts")
    ax.legend()
    save(fig, "entropy.png")

    evals = eval_rewards(history)
    panels = 2 if evals["batch"][0] else 1
    fig, axes = plt.subplots(panels, 1, figsize=(6, 4 * panels), squeeze=False)
    ax = axes[0][0]
    for key in dict.fromkeys([rkey, M.REWARD]):
        ax.plot(*series(history, key), lw=0.8, alpha=0.6, label=key)
    for src, (x, y) in source_series(history).items():
        ax.plot(x, _running_mean(y, 10), lw=1.5, label=f"accuracy, {src} (10-step mean)")
    ax.set(xlabel="step", ylabel="reward", title="Training rollouts (new questions every step)")
    ax.legend(fontsize=7)
    if panels == 2:
        ax = axes[1][0]
        ax.plot(*evals["batch"], "ko-", lw=2, label="all")
        for src, (x, y) in evals["sources"].items():
            ax.plot(x, y, "o--", label=src)
        ax.set(xlabel="step", ylabel="accuracy reward", title="The same held-out questions at every evaluation")
        ax.legend(fontsize=7)
    save(fig, "reward.png")

    fig, ax = lines([(k, k) for k in (M.COV_MEAN, M.COV_MAX)], "cov(logp, A)", "Token covariance")
    ax2 = ax.twinx()
    x, y = series(history, M.COV_FRAC_SELECTED)
    if x:
        ax2.plot(x, y, "k:", label=M.COV_FRAC_SELECTED)
        ax2.set_ylabel("fraction of tokens clipped / penalised")
    ax.legend(loc="upper left")
    save(fig, "covariance.png")

    law = law_points(history, reward)
    pairs = law["pairs"]
    result = {"basis": law["basis"], "reward_key": law["reward_key"], "points": len(pairs), "files": written}
    if "warning" in law:
        result["warning"] = law["warning"]
        logger.warning("entropy law: %s", law["warning"])
    fit: EntropyLawFit | None = None
    try:
        fit = fit_entropy_law([p[0] for p in pairs], [p[1] for p in pairs])
    except ValueError as e:
        result["fit_error"] = str(e)
        logger.warning("entropy law not fitted: %s", e)
    fig, ax = plt.subplots(figsize=(6, 4))
    if pairs:
        label = "evaluations (training entropy at that step)" if law["basis"] == "validation" else "training steps"
        ax.scatter([p[0] for p in pairs], [p[1] for p in pairs], s=12, label=label)
    if fit is not None:
        lo, hi = min(p[0] for p in pairs), max(p[0] for p in pairs)
        hs = [lo * (1 - t) + hi * t for t in [i / 50 for i in range(51)]] if hi > lo else [lo]
        ax.plot(hs, [fit.predict(h) for h in hs], "r-",
                label=f"R = {-fit.a:.3g}·e^H {fit.b:+.3g}  (a = {fit.a:.3g}, R^2 = {fit.r2:.2f}, {fit.n} points)")
        ys = [p[1] for p in pairs]
        span = max(max(ys) - min(ys), 1e-6)
        if fit.a <= 0:  # reward rising with entropy: not the law's regime, b - a predicts nothing
            ax.plot([], [], " ", label="a <= 0: outside the law's regime, no ceiling")
        elif min(ys) - span <= fit.ceiling <= max(ys) + span:
            ax.axhline(fit.ceiling, color="gray", ls="--", label=f"ceiling b - a = {fit.ceiling:.3g}")
        else:  # far off the data (a poor fit): state it rather than squash the plot
            ax.plot([], [], " ", label=f"ceiling b - a = {fit.ceiling:.3g} (off scale)")
        result.update(a=fit.a, b=fit.b, ceiling=fit.ceiling, r2=fit.r2, ceiling_drawn=fit.a > 0)
    ax.set(xlabel="entropy H (token mean, training rollouts)", ylabel=law["reward_key"],
           title=f"Entropy-performance law ({law['basis']} reward)")
    ax.legend()
    save(fig, "entropy_law.png")
    result["files"] = written
    (out / "entropy_law.json").write_text(json.dumps(result, indent=2))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mmreason plot", description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, help="GRPO output dir (holds trainer_state.json or checkpoints)")
    parser.add_argument("--out", default=None, help="where to write the PNGs (default: the run dir)")
    parser.add_argument("--reward", default=None, help="metric to fit against entropy (default: accuracy reward)")
    args = parser.parse_args(argv)
    try:
        result = plot_run(args.run, args.out, args.reward)
    except (FileNotFoundError, KeyError) as e:
        print(f"mmreason plot: {e}")
        return 1
    for f in result["files"]:
        print(f"wrote {f}")
    if "warning" in result:
        print(f"warning: {result['warning']}")
    print(law_summary(result))
    return 0


def law_summary(result: dict) -> str:
    """One line: the fit, what it was fitted on, R^2 and the number of points; the ceiling only when a > 0."""
    if "a" not in result:
        return f"entropy law not fitted ({result.get('basis')} reward): {result.get('fit_error')}"
    unit = "evaluations" if result["basis"] == "validation" else "training steps"
    line = (f"entropy law R = -a*exp(H) + b on the {result['basis']} reward ({result['reward_key']}) over "
            f"{result['points']} {unit}: a = {result['a']:.4g}, b = {result['b']:.4g}, R^2 = {result['r2']:.3f}, ")
    if result["a"] > 0:
        return line + f"predicted ceiling b - a = {result['ceiling']:.4g}"
    return line + "a <= 0: outside the law's regime (no ceiling)"
