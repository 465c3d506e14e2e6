"""The recipe test: every paper config, loaded through our real parsers, against the values its paper's official
code fixes - including the batch schedule derived for the stated GPU count. A config edit that silently changes a
paper's run fails here. Each expected value is annotated with the official file and key it comes from:

- RLCS  = github.com/waltonfuture/RL-with-Cold-Start  GRPO/examples/config.yaml, GRPO/examples/qwen2_5_vl_7b_grpo.sh
          (its overrides win), GRPO/examples/score_function/math.py, GRPO/verl/workers/actor/config.py (defaults)
- SWIFT = github.com/waltonfuture/RL-with-Cold-Start  SFT/qwen2.5vl_sft.sh, SFT/sys_prompt.txt and ms-swift 3.5's
          defaults (SFT/swift/trainers/arguments.py, SFT/swift/llm/argument/base_args/data_args.py, tuner_args.py)
- EM    = github.com/PRIME-RL/Entropy-Mechanism-of-RL  recipe/dapo/7b_clip_cov.sh, recipe/dapo/7b_kl_cov.sh
          (+ verl/trainer/main_ppo.py create_rl_sampler: data seed 1)
- UPT   = github.com/waltonfuture/MM-UPT  examples/config.yaml, examples/qwen2_5_vl_7b_mmr1.sh,
          verl/workers/reward/function.py, verl/workers/actor/config.py (defaults)
"""

from __future__ import annotations

from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BOXED = "Please reason step by step, and put your final answer within \\boxed{}."


@dataclass
class Paper:
    stage: str  # grpo | sft
    sources: tuple[str, ...]  # official files the config's header must name
    gpus: int  # the GPU count the per-device numbers are for
    fields: dict  # field -> (expected, "official key")
    derived: dict  # derived batch quantity -> expected


# ---------------------------------------------------------------- RL with Cold Start (RLCS), GRPO stage

def _rlcs(size: str) -> Paper:
    return Paper(
        "grpo",
        ("GRPO/examples/config.yaml", "GRPO/examples/qwen2_5_vl_7b_grpo.sh", "GRPO/examples/score_function/math.py"),
        8,  # trainer.n_gpus_per_node 8, nnodes 1
        {
            "model_name_or_path": (f"runs/qwen2_5_vl_{size}/sft", "RLCS README: MODEL_PATH = the model after the cold start"),
            "reward_funcs": (["accuracy"], "math.py compute_score: overall = accuracy, format 0"),
            "reward_weights": ([1.0], "math.py: overall = accuracy_score"),
            "reward_options": ({"accuracy": {"mode": "official"}},
                               "math.py: mathruler extract_boxed_content + grade_answer (mode official)"),
            "instruction": ("", "config.yaml / qwen2_5_vl_7b_grpo.sh: no data.format_prompt (the problem as is)"),
            "train_files": (["WaltonFuture/Multimodal-RL-Data@train"], "qwen2_5_vl_7b_grpo.sh data.train_files"),
            "system_prompt": ("", "config.yaml: no system message (Qwen's template adds its default; '' = none of ours, not the SFT checkpoint's)"),
            "min_pixels": (262144, "config.yaml data.min_pixels"),
            "max_pixels": (1204224, "config.yaml / qwen2_5_vl_7b_grpo.sh data.max_pixels"),
            "max_prompt_length": (2048, "config.yaml data.max_prompt_length"),
            "max_completion_length": (2048, "config.yaml data.max_response_length"),
            "seed": (1, "config.yaml data.seed"),
            "data_seed": (1, "config.yaml data.seed (RandomSampler generator)"),
            "num_generations": (10, "config.yaml worker.rollout.n"),
            "temperature": (0.7, "config.yaml worker.rollout.temperature"),
            "top_p": (0.99, "config.yaml worker.rollout.top_p"),
            "top_k": (0, "rollout config default top_k -1 (off)"),
            "num_generations_eval": (1, "config.yaml val_override_config.n"),
            "use_vllm": (True, "rollout name vllm"),
            "beta": (0.01, "config.yaml algorithm.kl_coef with use_kl_loss, low_var_kl"),
            "epsilon": (0.2, "actor/config.py clip_ratio_low"),
            "epsilon_high": (0.3, "actor/config.py clip_ratio_high"),
            "clip_ratio_c": (3.0, "actor/config.py clip_ratio_dual"),
            "loss_type": ("bnpo", "dp_actor.py: masked_mean per micro-batch / gradient_accumulation"),
            "num_iterations": (1, "actor/config.py ppo_epochs"),
            "scale_rewards": ("group", "adv_estimator grpo: (r - group mean) / group std"),
            "mask_truncated_completions": (False, "EasyR1 keeps truncated responses in the loss"),
            "policy_loss": ("none", "core_algos.compute_policy_loss: clipped surrogate"),
            "dynamic_sampling": ("off", "no online filtering in this recipe"),
            "learning_rate": (1e-6, "config.yaml worker.actor.optim.lr"),
            "lr_scheduler_type": ("constant", "actor/config.py warmup_style constant"),
            "warmup_steps": (0, "config.yaml optim.lr_warmup_ratio 0.0"),
            "weight_decay": (0.01, "config.yaml optim.weight_decay"),
            "adam_beta1": (0.9, "actor/config.py betas (0.9, 0.999)"),
            "adam_beta2": (0.999, "actor/config.py betas (0.9, 0.999)"),
            "max_grad_norm": (1.0, "config.yaml worker.actor.max_grad_norm"),
            "num_train_epochs": (2, "qwen2_5_vl_7b_grpo.sh trainer.total_episodes=2"),
            "max_steps": (-1, "trainer.max_steps unset: the episodes decide"),
        },
        # rollout_batch_size 512 x n 10; global_batch_size 128; micro_batch_size_per_device_for_update 4 on 8 GPUs
        {"prompts_per_round": 512, "prompts_per_update": 128, "updates_per_round": 4,
         "completions_per_gpu_per_round": 640, "completions_per_gpu_per_update": 160, "on_policy": False,
         "vllm_context_fits": True},
    )


def _entropy(mode: str) -> Paper:
    script = f"recipe/dapo/7b_{mode}.sh"
    common = {
        "model_name_or_path": ("runs/qwen2_5_vl_7b/sft", "MODEL_PATH placeholder; our cold-start checkpoint"),
        "reward_funcs": (["accuracy"], "reward_manager dapo: accuracy only, no overlong penalty"),
        "reward_weights": ([1.0], "reward_manager dapo"),
        "reward_options": ({"accuracy": {"single_box": False}}, "math_dapo: the last answer counts"),
        "max_prompt_length": (2048, f"{script} max_prompt_length=1024*2"),
        "max_completion_length": (8192, f"{script} max_response_length=1024*8"),
        "num_generations": (8, f"{script} n_resp_per_prompt=8"),
        "temperature": (1.0, f"{script} temperature=1.0"),
        "top_p": (1.0, f"{script} top_p=1.0"),
        "top_k": (0, f"{script} top_k=-1 (off)"),
        "num_generations_eval": (1, f"{script} val_kwargs.n=1"),
        "eval_steps": (32, f"{script} test_freq=4 rounds x 8 updates"),
        "use_vllm": (True, f"{script} rollout vLLM"),
        "beta": (0.0, f"{script} use_kl_loss=False kl_loss_coef=0.0 use_kl_in_reward=False"),
        "clip_ratio_c": (None, f"{script} clip_ratio_c=10.0, but dual-clip is commented out in core_algos.py"),
        "loss_type": ("dapo", f"{script} loss_agg_mode=token-mean"),
        "num_iterations": (1, "ppo_epochs default 1"),
        "scale_rewards": ("group", "adv_estimator=grpo, norm_adv_by_std_in_grpo default True"),
        "entropy_coef": (0.0, f"{script} entropy_coeff=0"),
        "dynamic_sampling": ("refill", f"{script} enable_filter_groups=True"),
        "dynamic_sampling_reward": ("accuracy", f"{script} filter_groups_metric=acc"),
        "dynamic_sampling_max_rounds": (9, f"{script} max_num_gen_batches=10 (the first + 9 more)"),
        "mask_truncated_completions": (False, f"{script} enable_overlong_buffer=False"),
        "learning_rate": (5e-7, f"{script} optim.lr=5e-7"),
        "lr_scheduler_type": ("constant", f"{script} warmup_style=constant"),
        "warmup_steps": (0, "verl optim lr_warmup_steps_ratio default 0"),
        "weight_decay": (0.0, f"{script} optim.weight_decay=0"),
        "adam_beta1": (0.9, "verl optim betas default"),
        "adam_beta2": (0.999, "verl optim betas default"),
        "max_grad_norm": (1.0, f"{script} grad_clip=1.0"),
        "seed": (1, "main_ppo.create_rl_sampler data.seed default 1"),
        "data_seed": (1, "main_ppo.create_rl_sampler data.seed default 1"),
        "max_steps": (-1, "total_epochs decides"),
    }
    if mode == "clip_cov":
        specific = {
            "epsilon": (1.0, f"{script} clip_ratio_low=1"),
            "epsilon_high": (1.0, f"{script} clip_ratio_high=1"),
            "policy_loss": ("clip_cov", f"{script} loss_mode=clip_cov"),
            "clip_cov_ratio": (2e-4, f"{script} clip_cov_ratio=0.0002"),
            "clip_cov_lb": (1.0, f"{script} clip_cov_lb=1.0"),
            "clip_cov_ub": (5.0, f"{script} clip_cov_ub=5.0"),
            "num_train_epochs": (1000, f"{script} total_epochs=1000"),
        }
    else:
        specific = {
            "epsilon": (0.2, f"{script} clip_ratio_low=0.2"),
            "epsilon_high": (0.2, f"{script} clip_ratio_high=0.2"),
            "policy_loss": ("kl_cov", f"{script} loss_mode=kl_cov"),
            "kl_cov_ratio": (2e-3, f"{script} k_percent=0.2 (percent: core_algos takes k / 100)"),
            "ppo_kl_coef": (1.0, f"{script} ppo_kl_coef=1"),
            "num_train_epochs": (15, f"{script} total_epochs=15"),
        }
    return Paper(
        "grpo", (script, "verl/trainer/ppo/core_algos.py", "recipe/dapo/dapo_ray_trainer.py"), 8,
        {**common, **specific},
        # train_prompt_bsz 256 = gen_prompt_bsz, train_prompt_mini_bsz 32, n 8 (the official 32 GPUs: GA 1, 8 steps)
        {"prompts_per_round": 256, "prompts_per_update": 32, "updates_per_round": 8,
         "completions_per_gpu_per_round": 256, "completions_per_gpu_per_update": 32, "on_policy": False,
         "vllm_context_fits": True},
    )


def _mmupt() -> Paper:
    paper = _rlcs("7b")
    f = dict(paper.fields)
    f.update({
        "model_name_or_path": ("Qwen/Qwen2.5-VL-7B-Instruct", "qwen2_5_vl_7b_mmr1.sh MODEL_PATH"),
        "reward_funcs": (["majority_vote"], "reward/function.py FunctionRewardManager (majority vote)"),
        "reward_options": ({"majority_vote": {"vote_rule": "official", "grader": "mathruler"}},
                           "reward/function.py: Counter of box strings, grade_answer(answer, majority)"),
        "instruction": ("\\nPlease reason step by step, and put your final answer within \\boxed{}.",
                        "qwen2_5_vl_7b_mmr1.sh FORMAT_PROMPT through OmegaConf: a literal backslash-n"),
        "prompt_template": ("{{ question }} {{ instruction }}",
                            "EasyR1 dataset.py: prompt_str + ' ' + format_prompt.strip()"),
        "train_files": (["MMR1/MMR1-Math-RL-Data-v0@train"], "qwen2_5_vl_7b_mmr1.sh data.train_files"),
        "require_answer": (False, "the labels are never read by the reward"),
        "num_train_epochs": (15, "qwen2_5_vl_7b_mmr1.sh trainer.total_episodes=15"),
    })
    return Paper("grpo", ("examples/config.yaml", "examples/qwen2_5_vl_7b_mmr1.sh", "verl/workers/reward/function.py"),
                 8, f, paper.derived)


def _sft(size: str) -> Paper:
    return Paper(
        "sft", ("SFT/qwen2.5vl_sft.sh", "SFT/sys_prompt.txt"),
        4,  # CUDA_VISIBLE_DEVICES=0,1,2,3 NPROC_PER_NODE=4
        {
            "model_name_or_path": (f"Qwen/Qwen2.5-VL-{size.upper()}-Instruct", "qwen2.5vl_sft.sh --model"),
            "use_peft": (False, "--train_type full"),
            "system_prompt": (BOXED, "--system sys_prompt.txt (read as the file's text)"),
            "train_files": (["WaltonFuture/Multimodal-Cold-Start"],
                            "convert_data.py: load_dataset('WaltonFuture/Multimodal-Cold-Start', split='train')"),
            "instruction": ("", "the instruction is the system message only"),
            "freeze_vision_tower": (True, "tuner_args.py freeze_vit default True"),
            "freeze_merger": (False, "--freeze_aligner false"),
            "max_pixels": (1204224, "MAX_PIXELS=1204224"),
            "min_pixels": (None, "the processor's default"),
            "num_train_epochs": (3, "--num_train_epochs 3"),
            "learning_rate": (1e-5, "train_args.py: learning_rate None -> 1e-5 for full training"),
            "lr_scheduler_type": ("cosine", "trainers/arguments.py lr_scheduler_type 'cosine'"),
            "warmup_steps": (0, "no warmup set (transformers default 0)"),
            "weight_decay": (0.1, "trainers/arguments.py weight_decay 0.1"),
            "adam_beta1": (0.9, "transformers default"),
            "adam_beta2": (0.95, "trainers/arguments.py adam_beta2 0.95"),
            "max_grad_norm": (1.0, "transformers default"),
            "eval_split_ratio": (0.01, "data_args.py split_dataset_ratio 0.01"),
            "eval_strategy": ("steps", "train_args.py: eval_strategy = save_strategy (steps)"),
            "eval_steps": (20, "--eval_steps 20"),
            "max_length": (None, "template max_length None: no truncation below the model's context"),
            "assistant_only_loss": (True, "ms-swift trains on the response tokens"),
            "gradient_checkpointing": (True, "--gradient_checkpointing_kwargs (checkpointing on)"),
            "seed": (42, "transformers default seed 42"),
            "data_seed": (42, "data_args.py: data_seed None -> seed"),
            "max_steps": (-1, "epochs decide"),
        },
        {"effective_batch": 64},  # per_device_train_batch_size 1 (default) x --gradient_accumulation_steps 16 x 4
    )


PAPERS = {
    "grpo/qwen2_5_vl_7b": _rlcs("7b"),
    "grpo/qwen2_5_vl_3b": _rlcs("3b"),
    "grpo/qwen2_5_vl_7b_clip_cov": _entropy("clip_cov"),
    "grpo/qwen2_5_vl_7b_kl_cov": _entropy("kl_cov"),
    "grpo/qwen2_5_vl_7b_unsupervised": _mmupt(),
    "sft/qwen2_5_vl_7b": _sft("7b"),
    "sft/qwen2_5_vl_3b": _sft("3b"),
}
# bf16 is rejected on a CPU-only machine: parse with it off, and check the YAML says true
YAML_FIELDS = {"bf16": True, "dtype": "bfloat16"}


def parse(name: str, *overrides: str):
    stage = name.split("/")[0]
    if stage == "grpo":
        from mmreason.rl.run import make_parser
    else:
        from mmreason.sft.run import make_parser
    return make_parser().parse_args_and_config(
        args=["--config", str(REPO / "configs" / f"{name}.yaml"), "--bf16", "false", *overrides])


def _plain(v):
    return v.value if hasattr(v, "value") and not isinstance(v, (int, float, str)) else v


def lookup(parsed, field_name):
    for part in parsed:
        if hasattr(part, field_name):
            return _plain(getattr(part, field_name))
    raise AttributeError(f"no parsed config has a field {field_name!r}")


def derived(parsed, stage: str, gpus: int) -> dict:
    """The batch schedule on `gpus` processes, from the per-device fields (TRL resolves steps_per_generation /
    generation_batch_size for the world size it runs in; here that is 1, so we scale by hand)."""
    args = parsed[1]
    per_dev, ga = args.per_device_train_batch_size, args.gradient_accumulation_steps
    if stage == "sft":
        return {"effective_batch": per_dev * ga * gpus}
    G, spg = args.num_generations, args.steps_per_generation
    per_update, per_round = per_dev * ga * gpus, per_dev * spg * gpus
    return {
        "prompts_per_round": per_round / G,
        "prompts_per_update": per_update / G,
        "updates_per_round": spg / ga * args.num_iterations,
        "completions_per_gpu_per_round": per_dev * spg,
        "completions_per_gpu_per_update": per_dev * ga,
        "on_policy": args.is_on_policy(),
        # vLLM's context holds the longest prompt plus the longest completion
        "vllm_context_fits": args.vllm_max_model_length >= args.max_prompt_length + args.max_completion_length,
    }


def mismatches(name: str, paper: Paper, parsed) -> list[str]:
    bad = []
    for key, (want, source) in paper.fields.items():
        got = lookup(parsed, key)
        if got != want:
            bad.append(f"{name}: {key} = {got!r}, the paper's run has {want!r} ({source})")
    got_derived = derived(parsed, paper.stage, paper.gpus)
    for key, want in paper.derived.items():
        if got_derived[key] != want:
            bad.append(f"{name}: {key} on {paper.gpus} GPUs = {got_derived[key]!r}, the paper's run has {want!r}")
    return bad


@pytest.mark.parametrize("name", sorted(PAPERS))
def test_paper_config_matches_the_official_run(name):
    import yaml

    paper = PAPERS[name]
    text = (REPO / "configs" / f"{name}.yaml").read_text()
    header = text[: text.index("\nmodel_name_or_path:")]
    assert "Official source:" in header and "Not matched, and why:" in header, name
    for src in paper.sources:
        assert src in header, f"{name}: the header does not name {src}"
    raw = yaml.safe_load(text)
    assert {k: raw.get(k) for k in YAML_FIELDS} == YAML_FIELDS, name
    bad = mismatches(name, paper, parse(name))
    assert not bad, "\n".join(["config differs from the paper's run:", *bad])


@pytest.mark.parametrize("size", ["3b", "7b"])
def test_strict_variant_differs_only_in_the_reward(size):
    paper, strict = parse(f"grpo/qwen2_5_vl_{size}"), parse(f"grpo/qwen2_5_vl_{size}_strict")
    # the strict variant is ours: its reward, and its prompt (the boxed instruction the paper's run does not add)
    allowed = {"reward_funcs", "reward_weights", "reward_options", "output_dir", "logging_dir", "instruction"}
    diff = []
    for a, b in zip(paper, strict):
        for f in fields(a):
            va, vb = getattr(a, f.name), getattr(b, f.name)
            if f.name not in allowed and not is_dataclass(va) and va != vb:
                diff.append(f.name)
    assert diff == []
    assert (strict[0].reward_funcs, strict[1].reward_weights, strict[0].reward_options) == (
        ["accuracy", "format"], [1.0, 0.1], None)  # single-box accuracy (the default) + 0.1 format


@pytest.mark.parametrize("name,override,named", [
    ("grpo/qwen2_5_vl_7b", ["--steps_per_generation", "120"],
     ["prompts_per_round", "updates_per_round", "completions_per_gpu_per_round"]),
    ("grpo/qwen2_5_vl_7b", ["--gradient_accumulation_steps", "20"],
     ["prompts_per_update", "updates_per_round", "completions_per_gpu_per_update"]),
    ("grpo/qwen2_5_vl_7b", ["--clip_ratio_c", "10.0"], ["clip_ratio_c"]),
    ("grpo/qwen2_5_vl_7b", ["--vllm_max_model_length", "3000"], ["vllm_context_fits"]),
    ("grpo/qwen2_5_vl_7b_kl_cov", ["--steps_per_generation", "4"],
     ["prompts_per_round", "updates_per_round", "completions_per_gpu_per_round", "on_policy"]),
    ("grpo/qwen2_5_vl_7b_unsupervised", ["--reward_options", '{"majority_vote": {"vote_rule": "equivalence"}}'],
     ["reward_options"]),
    ("sft/qwen2_5_vl_7b", ["--warmup_steps", "0.03"], ["warmup_steps"]),
    ("sft/qwen2_5_vl_7b", ["--gradient_accumulation_steps", "4"], ["effective_batch"]),
])
def test_a_changed_field_or_batch_quantity_is_caught(name, override, named):
    """The checker itself: one paper-fixed field or derived batch quantity changed -> named in the failure."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # kl_cov on-policy warns, as it should
        bad = mismatches(name, PAPERS[name], parse(name, *override))
    assert sorted(b.split(":")[1].split(" ")[1] for b in bad) == sorted(named), bad


def test_reproducing_page_has_one_command_per_paper_setting():
    import re

    page = (REPO / "docs" / "reproducing.md").read_text()
    section = page[page.index("## Commands"):]
    section = section[: section.index("\n## ", 1)]
    commands = re.findall(r"^accelerate launch (.*) -m mmreason (sft|grpo) --config configs/(\S+)\.yaml$", section, re.M)
    assert sorted(f"{stage}/{Path(cfg).name}" for _, stage, cfg in commands) == sorted(PAPERS)
    for launch, stage, cfg in commands:  # the launcher's GPU count is the one the config's batch numbers are for
        gpus = int(m.group(1)) if (m := re.search(r"--num_processes (\d+)", launch)) else 8  # deepspeed_zero2: 8
        assert gpus == PAPERS[f"{stage}/{Path(cfg).name}"].gpus, cfg
