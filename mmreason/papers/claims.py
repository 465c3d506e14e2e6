"""The three miniatures. Each runs real stages through the image demo's stages (`demo.run_sft`,
`demo.run_grpo`, `demo.evaluate`, on `mmreason.demos.runner`: finished stages are reused on rerun) from one shared base model, data set
and SFT checkpoint, and returns a `ClaimResult` whose verdicts come from paired statistics."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import yaml

from mmreason.demos import image as demo
from mmreason.eval.paired import ALL, compare_items, describe, item_scores, pct
from mmreason.eval.records_eval import check_answers
from mmreason.eval.stats import binomial_se, paired_compare, unpaired_compare
from mmreason.generation import GenerationSettings
from mmreason.generation.backends import HFBackend
from mmreason.papers.probes import PREFIX
from mmreason.papers.summary import ClaimResult, Line, plot_accuracy_bars, plot_curves
from mmreason.papers.verdict import decide, decide_paired
from mmreason.chat import prompt_messages
from mmreason.records import BOXED_SUFFIX, load_records
from mmreason.rewards.vote import majority_vote
from mmreason.rl import metrics as M
from mmreason.rl.callbacks import CLUSTER_ENTROPY, PSEUDO_LABEL_ACCURACY, CollapseWarningCallback
from mmreason.rl.plot import load_history, plot_run, series
from mmreason.verify import extract_boxed

REPO = demo.REPO
UNSUPERVISED_CONFIG = REPO / "configs" / "grpo" / "tiny_unsupervised.yaml"
PROBE = "mmreason.papers.probes:pseudo_label_by_source"


class Context:
    """The shared part: demo arguments, base model, data, SFT checkpoint, and the held-out records."""

    def __init__(self, dargs: argparse.Namespace, out: Path):
        self.args, self.out = dargs, out
        self.base, self.data = demo.prepare(dargs, out)
        self.sft = demo.run_sft(dargs, self.base, self.data, out)
        recs, _ = load_records(self.data / "test.jsonl", strict=False)
        self.records = {r.id: r for r in recs}
        self._evals: dict[str, dict] = {}

    def evaluate(self, model: Path, name: str) -> dict:
        if name not in self._evals:
            self._evals[name] = demo.evaluate(self.args, model, self.data, self.out, name)
        return self._evals[name]

    def grpo(self, start: Path, dst: Path, steps: int | None, extra: list[str], config: Path | None = None) -> Path:
        # the miniature's overrides first, so that the user's --grpo-arg (applied to every run) can override them
        gargs = argparse.Namespace(**{**vars(self.args), "grpo_steps": steps,
                                      "grpo_arg": list(extra) + list(self.args.grpo_arg)})
        return demo.run_grpo(gargs, start, self.data, dst, config=config or demo.GRPO_CONFIG)

    def source(self, rid: str) -> str:
        r = self.records.get(rid)
        return (r.source if r is not None else None) or "unknown"


# ---------------------------------------------------------------- shared helpers


def compare_models(ctx: Context, sa: dict, sb: dict, label_a: str, label_b: str, what: str, seed: int,
                   expect: str = "increase", headline: bool = True) -> list[Line]:
    """One headline line over all held-out items and one detail line per source, each paired."""
    rows = compare_items(item_scores(sa, label_a), item_scores(sb, label_b),
                         {i: ctx.source(i) for i in sa["per_item"]}, seed, (label_a, label_b))
    return [Line(what if g == ALL else f"{what} — {g}", describe(r, label_a, label_b), decide_paired(r, expect),
                 headline and g == ALL) for g, r in rows]


def windows(values: list[float], fraction: float = 0.25) -> tuple[list[float], list[float]]:
    k = max(2, int(len(values) * fraction))
    return values[:k], values[-k:]


def history_series(run: Path, key: str) -> tuple[list[int], list[float]]:
    try:
        return series(load_history(run), key)
    except FileNotFoundError:
        return [], []


def window_line(what: str, values: list[float], expect: str, seed: int, headline: bool = True) -> Line | None:
    """First vs last window of a logged curve (unpaired bootstrap over the logged steps)."""
    if len(values) < 4:
        return None
    first, last = windows(values)
    r = unpaired_compare(first, last, seed=seed)
    text = (f"first {len(first)} steps {r.mean_a:.3f} → last {len(last)} steps {r.mean_b:.3f}: "
            f"{r.diff:+.3f} [95% CI {r.ci_low:+.3f}, {r.ci_high:+.3f}]")
    return Line(what, text, decide(r.diff, r.ci_low, r.ci_high, expect), headline)


def config_steps(config: Path) -> int | None:
    return (yaml.safe_load(config.read_text()) or {}).get("max_steps")


def running_mean(values: list[float], k: int) -> list[float]:
    return [sum(values[max(0, i - k + 1):i + 1]) / (i + 1 - max(0, i - k + 1)) for i in range(len(values))]


def accuracy_rows(rows: list[tuple[str, dict]]) -> list[tuple[str, float, float]]:
    return [(n, 100 * s["accuracy"], 100 * binomial_se(s["accuracy"], s["total"])) for n, s in rows]


# ---------------------------------------------------------------- RLCS (arXiv 2505.22334)


def rlcs(ctx: Context, steps: int, seed: int) -> ClaimResult:
    t0 = time.time()
    out = ctx.out / "rlcs"
    out.mkdir(parents=True, exist_ok=True)
    base = ctx.evaluate(ctx.base, "base")
    sft = ctx.evaluate(ctx.sft, "sft")
    grpo = ctx.grpo(ctx.sft, out / "grpo", steps, [])
    sft_grpo = ctx.evaluate(grpo, "rlcs_sft_grpo")
    rl = ctx.grpo(ctx.base, out / "grpo_from_base", steps, [])
    rl_only = ctx.evaluate(rl, "rlcs_grpo_only")
    rows = [("base", base), ("SFT (cold start)", sft), ("SFT + GRPO", sft_grpo), ("GRPO only (no cold start)", rl_only)]
    c = ClaimResult("rlcs", "Cold start + RL beats SFT alone and RL alone",
                    "arXiv 2505.22334: SFT then GRPO beats SFT-only and RL-only; Qwen2.5-VL-7B MathVista 66.3% → "
                    "73.4%, We-Math 62.9% → 70.4%")
    c.tables.append("Held-out accuracy (greedy):\n\n" + demo.table(rows))
    c.lines += compare_models(ctx, sft, sft_grpo, "SFT", "SFT+GRPO", "SFT + GRPO vs SFT", seed)
    c.lines += compare_models(ctx, rl_only, sft_grpo, "GRPO only", "SFT+GRPO", "SFT + GRPO vs GRPO only", seed)
    c.pngs.append(plot_accuracy_bars(out / "rlcs.png", accuracy_rows(rows), "RLCS miniature: held-out accuracy ± s.e."))
    c.notes.append(f"GRPO: {demo.GRPO_CONFIG.relative_to(REPO)} for {steps} steps, seed {seed}, from SFT and from base.")
    c.seconds = time.time() - t0
    return c


# ---------------------------------------------------------------- entropy mechanism (arXiv 2505.22617)

ENTROPY_METHODS = {"GRPO": "none", "Clip-Cov": "clip_cov", "KL-Cov": "kl_cov"}


def entropy_mechanism(ctx: Context, steps: int, seed: int, steps_per_generation: int = 2) -> ClaimResult:
    t0 = time.time()
    out = ctx.out / "entropy"
    out.mkdir(parents=True, exist_ok=True)
    runs, scores, ent, fits, frac = {}, {}, {}, {}, {}
    for name, mode in ENTROPY_METHODS.items():
        # steps_per_generation > gradient_accumulation_steps (1): updates after the first of each generation are
        # off-policy, so |logp - old_logp| > 0 and KL-Cov's penalty acts.
        extra = ["--policy_loss", mode, "--steps_per_generation", str(steps_per_generation),
                 "--gradient_accumulation_steps", "1"]
        runs[name] = ctx.grpo(ctx.sft, out / mode, steps, extra)
        scores[name] = ctx.evaluate(runs[name], f"entropy_{mode}")
        ent[name] = history_series(runs[name], M.ENTROPY_TOKEN_MEAN)
        frac[name] = history_series(runs[name], M.COV_FRAC_SELECTED)[1]
        try:
            fits[name] = plot_run(runs[name])
        except (FileNotFoundError, KeyError) as e:
            fits[name] = {"fit_error": str(e)}
    c = ClaimResult("entropy", "Entropy collapses under GRPO; Clip-Cov / KL-Cov keep it higher and end better",
                    "arXiv 2505.22617: entropy falls sharply under GRPO; Clip-Cov and KL-Cov keep it higher and "
                    "score higher than GRPO (+2.0 pts on average at 7B, +6.4 at 32B)")
    rows = [(n, scores[n]) for n in ENTROPY_METHODS]
    c.tables.append("Held-out accuracy (greedy) after the same steps from the same SFT checkpoint:\n\n" + demo.table(rows))
    fit_rows = ["| method | entropy first → last step | mean cov/frac_selected | law a | law b | ceiling b − a | R² | points |",
                "|---|---|---|---|---|---|---|---|"]
    for n in ENTROPY_METHODS:
        ys, f = ent[n][1], fits[n]
        e = f"{ys[0]:.3f} → {ys[-1]:.3f}" if ys else "-"
        fs = f"{sum(frac[n]) / len(frac[n]):.2g}" if frac[n] else "-"
        law = (" | ".join(f"{f[k]:.3g}" for k in ("a", "b", "ceiling", "r2")) if "a" in f
               else "not fitted | - | - | -")
        fit_rows.append(f"| {n} | {e} | {fs} | {law} | {f.get('points', 0)} |")
    c.tables.append("Entropy and the entropy–performance law R = −a·e^H + b (fitted by `mmreason plot` on each run's "
                    "logged steps):\n\n" + "\n".join(fit_rows))
    if line := window_line("GRPO token entropy falls", ent["GRPO"][1], "decrease", seed):
        c.lines.append(line)
    for n in ("Clip-Cov", "KL-Cov"):
        a, b = ent["GRPO"][1], ent[n][1]
        if len(a) >= 4 and len(b) >= 4:
            la, lb = windows(a)[1], windows(b)[1]
            r = unpaired_compare(la, lb, seed=seed)
            c.lines.append(Line(f"{n} keeps entropy above GRPO (last {len(la)} steps)",
                                f"GRPO {r.mean_a:.3f} vs {n} {r.mean_b:.3f}: {r.diff:+.3f} "
                                f"[95% CI {r.ci_low:+.3f}, {r.ci_high:+.3f}]",
                                decide(r.diff, r.ci_low, r.ci_high, "increase")))
        c.lines += compare_models(ctx, scores["GRPO"], scores[n], "GRPO", n, f"{n} vs GRPO, held-out accuracy", seed)
    curves = {n: ent[n] for n in ENTROPY_METHODS}
    evals = {n: history_series(runs[n], "eval_" + M.reward_key("accuracy")) for n in ENTROPY_METHODS}
    c.pngs.append(plot_curves(out / "entropy.png", [("token entropy (nats)", curves),
                                                     ("accuracy reward, fixed held-out questions", evals)],
                              "Entropy mechanism miniature: GRPO vs Clip-Cov vs KL-Cov"))
    c.pngs += [f for n in ENTROPY_METHODS for f in fits[n].get("files", []) if f.endswith("entropy_law.png")]
    c.notes.append(f"{demo.GRPO_CONFIG.relative_to(REPO)} with policy_loss none / clip_cov / kl_cov, {steps} steps, seed "
                   f"{seed}, steps_per_generation {steps_per_generation} (off-policy updates, so KL-Cov acts).")
    c.seconds = time.time() - t0
    return c


# ---------------------------------------------------------------- MM-UPT (arXiv 2505.22453)


def sample_answers(ctx: Context, ids: list[str], g: int, temperature: float, top_p: float, seed: int,
                   cache: Path) -> dict[str, list[str]]:
    """G sampled responses per held-out question from the SFT checkpoint (cached in `cache` by settings)."""
    key = {"model": str(ctx.sft), "ids": ids, "g": g, "temperature": temperature, "top_p": top_p, "seed": seed,
           "max_new_tokens": ctx.args.max_new_tokens}
    if cache.is_file():
        old = json.loads(cache.read_text())
        if old.get("key") == key:
            return old["samples"]
    settings = GenerationSettings(max_new_tokens=ctx.args.max_new_tokens, temperature=temperature, top_p=top_p,
                                  batch_size=ctx.args.eval_batch_size, seed=seed)
    backend = HFBackend(str(ctx.sft), settings)
    items = []
    for i in ids:
        r = ctx.records[i]
        items += [(prompt_messages(r, None, BOXED_SUFFIX), [str(p) for p in r.image_paths()])] * g
    texts = backend.generate(items, progress=False, desc="maj@G samples")
    samples = {i: texts[k * g:(k + 1) * g] for k, i in enumerate(ids)}
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"key": key, "samples": samples}))
    return samples


def premise(ctx: Context, samples: dict[str, list[str]], g: int) -> dict[str, dict]:
    """Per question: share of the G samples correct, and whether the majority vote's answer is correct."""
    ids = list(samples)
    items, where = [], []
    for i in ids:
        r = ctx.records[i]
        for j, t in enumerate(samples[i]):
            pred = extract_boxed(t)
            if pred is not None:
                items.append((pred, r.answer, r.answer_type, r.choices, r.precision))
                where.append((i, j))
    ok = {(i, j): False for i in ids for j in range(g)}
    for w, c in zip(where, check_answers(items)[0] if items else []):
        ok[w] = c
    out = {}
    for i in ids:
        r = ctx.records[i]
        # the vote sees no labels; it is the reward function GRPO trains with
        rewards = majority_vote(completions=samples[i], num_generations=g, answer_type=[r.answer_type] * g,
                                choices=[r.choices] * g, precision=[r.precision] * g, record_id=[i] * g)
        winner = next((j for j, v in enumerate(rewards) if v == 1.0), None)
        out[i] = {"sampled": sum(ok[(i, j)] for j in range(g)) / g,
                  "maj": float(winner is not None and ok[(i, winner)]), "no_majority": winner is None}
    return out


def mmupt(ctx: Context, steps: int | None, seed: int, n_questions: int, g: int, temperature: float = 0.7,
          top_p: float = 0.99) -> ClaimResult:
    t0 = time.time()
    out = ctx.out / "mmupt"
    out.mkdir(parents=True, exist_ok=True)
    sft = ctx.evaluate(ctx.sft, "sft")
    ids = list(ctx.records)[:n_questions]
    per_q = premise(ctx, sample_answers(ctx, ids, g, temperature, top_p, seed, out / "premise_samples.json"), g)
    c = ClaimResult("mmupt", "Label-free GRPO (majority-vote reward) improves the model",
                    "arXiv 2505.22453: majority vote over G samples as the reward; Qwen2.5-VL-7B MathVista 66.3% → "
                    "72.9%, We-Math 62.9% → 68.7%")
    # the premise: is the majority vote a better answer than one sample (and than greedy)?
    greedy = {i: float(sft["per_item"][i]["correct"]) for i in ids}
    by_src: dict[str, list[str]] = {}
    for i in ids:
        by_src.setdefault(ctx.source(i), []).append(i)
    prem = [f"The premise on {len(ids)} held-out questions, SFT checkpoint, G = {g} samples at temperature "
            f"{temperature}, top_p {top_p}:", "",
            "| questions | greedy | one sample (mean over G) | maj@G | no majority |", "|---|---|---|---|---|"]
    for src, sids in [("all", ids), *sorted(by_src.items())]:
        m = lambda k: sum(per_q[i][k] for i in sids) / len(sids)  # noqa: E731
        prem.append(f"| {src} (n = {len(sids)}) | {pct(sum(greedy[i] for i in sids) / len(sids))} | {pct(m('sampled'))} "
                    f"| {pct(m('maj'))} | {pct(m('no_majority'))} |")
    c.tables.append("\n".join(prem))
    for src, sids in [("all", ids), *sorted(by_src.items())]:
        head = src == "all"
        tag = "" if head else f" — {src}"
        r = paired_compare([per_q[i]["sampled"] for i in sids], [per_q[i]["maj"] for i in sids], seed=seed)
        c.lines.append(Line(f"premise: maj@{g} beats one sample{tag}", describe(r, "sample", f"maj@{g}"),
                            decide_paired(r), head))
        r = paired_compare([greedy[i] for i in sids], [per_q[i]["maj"] for i in sids], seed=seed)
        c.lines.append(Line(f"premise: maj@{g} beats greedy{tag}", describe(r, "greedy", f"maj@{g}"),
                            decide_paired(r), False))
    # label-free GRPO from the SFT checkpoint
    run = ctx.grpo(ctx.sft, out / "grpo", steps,
                   ["--reward_funcs", "majority_vote", PROBE, "--reward_weights", "1.0", "0.0"],
                   config=UNSUPERVISED_CONFIG)
    after = ctx.evaluate(run, "mmupt_grpo")
    c.tables.append("Held-out accuracy (greedy):\n\n" + demo.table([("SFT (start)", sft), ("SFT + label-free GRPO", after)]))
    c.lines += compare_models(ctx, sft, after, "SFT", "MM-UPT", "label-free GRPO vs its SFT start", seed)
    # collapse signals over training
    signals = {"pseudo-label accuracy (all)": PSEUDO_LABEL_ACCURACY, "majority-vote reward": M.reward_key("majority_vote"),
               "cluster entropy": CLUSTER_ENTROPY, "policy token entropy": M.ENTROPY_TOKEN_MEAN}
    try:
        history = load_history(run)
    except FileNotFoundError:
        history = []
    src_keys = sorted({k for h in history for k in h if k.startswith(PREFIX)})
    signals.update({f"pseudo-label accuracy, {k[len(PREFIX):]}": k for k in src_keys})
    trows = ["| signal | first 25% of steps | last 25% of steps | change |", "|---|---|---|---|"]
    curves = {}
    for label, key in signals.items():
        xs, ys = series(history, key)
        curves[label] = (xs, ys)
        if len(ys) >= 4:
            a, b = windows(ys)
            trows.append(f"| {label} | {sum(a) / len(a):.3f} | {sum(b) / len(b):.3f} | {sum(b) / len(b) - sum(a) / len(a):+.3f} |")
        else:
            trows.append(f"| {label} | - | - | ({len(ys)} logged steps) |")
    c.tables.append("Training signals (label-free run; labels used only for the pseudo-label accuracy log):\n\n"
                    + "\n".join(trows))
    cb = CollapseWarningCallback()
    max_steps = max((h["step"] for h in history), default=0)
    for h in history:  # replay the log through the trainer callback
        cb.on_log(None, argparse.Namespace(global_step=h["step"], max_steps=max_steps), None, logs=h)
    c.notes += [f"collapse warning at step {s}: {m}" for s, m in cb.warnings] or ["no collapse warning fired"]
    c.notes.append(f"{UNSUPERVISED_CONFIG.relative_to(REPO)} for {steps or config_steps(UNSUPERVISED_CONFIG)} steps, "
                   f"seed {seed}, plus the zero-weight probe {PROBE} (pseudo-label accuracy of the plain vote per "
                   "source, without the reward's min_support).")
    smooth = {k: (xs, running_mean(ys, 5)) for k, (xs, ys) in curves.items() if k.startswith("pseudo")}
    c.pngs.append(plot_curves(out / "mmupt.png", [
        ("pseudo-label accuracy (5-step mean)", smooth),
        ("entropy", {k: curves[k] for k in ("cluster entropy", "policy token entropy")}),
    ], "MM-UPT miniature: pseudo-labels and collapse signals"))
    c.seconds = time.time() - t0
    return c
