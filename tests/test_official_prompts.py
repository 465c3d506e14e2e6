r"""The paper configs build the official prompt, character for character after the chat template, on fixture rows
in the released layouts. Expected strings come from the official code:

- RLCS: waltonfuture/RL-with-Cold-Start GRPO/verl/utils/dataset.py (EasyR1's RLHFDataset): no format_prompt in
  GRPO/examples/config.yaml or qwen2_5_vl_7b_grpo.sh, so prompt_str = row["problem"]; the text is split at
  "<image>" with {"type": "image"} between the pieces; processor.apply_chat_template(add_generation_prompt=True).
- MM-UPT: waltonfuture/MM-UPT examples/qwen2_5_vl_7b_mmr1.sh FORMAT_PROMPT="\nPlease reason step by step, and put
  your final answer within \boxed{}." reaches RLHFDataset through OmegaConf with the two characters backslash-n;
  prompt_str = problem + " " + format_prompt.strip().
"""

import io
import json

import pytest
from PIL import Image

from mmreason.formats import DataFormatArguments
from mmreason.rl.data import build_grpo_dataset

PROBLEMS = ["<image>What is the area of the triangle?", "Find x in <image> if AB = 3."]
# Qwen2.5-VL's chat template (the tiny model carries the official template text).
HEAD = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
IMG = "<|vision_start|><|image_pad|><|vision_end|>"
TAIL = "<|im_end|>\n<|im_start|>assistant\n"
MMUPT_FORMAT = " \\nPlease reason step by step, and put your final answer within \\boxed{}."
EXPECTED = {
    "grpo/qwen2_5_vl_7b": [HEAD + IMG + "What is the area of the triangle?" + TAIL,
                           HEAD + "Find x in " + IMG + " if AB = 3." + TAIL],
    "grpo/qwen2_5_vl_7b_unsupervised": [HEAD + IMG + "What is the area of the triangle?" + MMUPT_FORMAT + TAIL,
                                        HEAD + "Find x in " + IMG + " if AB = 3." + MMUPT_FORMAT + TAIL],
}


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (28, 28), "white").save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """The same two rows in EasyR1's parquet layout, in verl's and as an ms-swift query JSON."""
    import datasets

    d = tmp_path_factory.mktemp("official_prompts")
    rows = [{"problem": p, "answer": "3", "images": [{"bytes": _png(), "path": None}]} for p in PROBLEMS]
    datasets.Dataset.from_list(rows).cast_column("images", datasets.List(datasets.Image())).to_parquet(
        str(d / "easyr1.parquet"))
    verl = [{"data_source": "x", "prompt": [{"role": "user", "content": p}], "images": [{"bytes": _png(), "path": None}],
             "reward_model": {"ground_truth": "3"}} for p in PROBLEMS]
    datasets.Dataset.from_list(verl).cast_column("images", datasets.List(datasets.Image())).to_parquet(
        str(d / "verl.parquet"))
    (d / "a.png").write_bytes(_png())
    (d / "swift.json").write_text(json.dumps([{"query": p, "response": "\\boxed{3}", "images": ["a.png"]}
                                              for p in PROBLEMS]))
    return d


def _spec_of(name: str, model_dir):
    from pathlib import Path

    from mmreason.rl.run import make_parser

    repo = Path(__file__).resolve().parents[1]
    script, *_ = make_parser().parse_args_and_config(
        ["--config", str(repo / "configs" / f"{name}.yaml"), "--bf16", "false"])
    return script.prompt_spec(str(model_dir), name)


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("layout", ["easyr1.parquet", "verl.parquet", "swift.json"])
def test_paper_config_prompt_is_the_official_string(name, layout, released, tiny_model_dir):
    from transformers import AutoProcessor
    from trl.data_utils import prepare_multimodal_messages

    processor = AutoProcessor.from_pretrained(str(tiny_model_dir))
    spec = _spec_of(name, tiny_model_dir)
    ds, _ = build_grpo_dataset(str(released / layout), spec=spec, require_answer=False,
                               data_format=DataFormatArguments())
    ours = [processor.apply_chat_template(prepare_multimodal_messages(row["prompt"], images=row["images"]),
                                          add_generation_prompt=True, tokenize=False) for row in ds]
    assert ours == EXPECTED[name]


def test_the_official_strings_are_what_easyr1_builds(tiny_model_dir):
    """The expected strings above, rebuilt the way RLHFDataset.__getitem__ builds them (the split at "<image>")."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(str(tiny_model_dir))
    for name, format_prompt in (("grpo/qwen2_5_vl_7b", None),
                                ("grpo/qwen2_5_vl_7b_unsupervised",
                                 "\\nPlease reason step by step, and put your final answer within \\boxed{}.")):
        built = []
        for problem in PROBLEMS:
            prompt_str = problem + " " + format_prompt.strip() if format_prompt else problem
            content = []
            for i, piece in enumerate(prompt_str.split("<image>")):
                if i != 0:
                    content.append({"type": "image"})
                if piece:
                    content.append({"type": "text", "text": piece})
            built.append(processor.apply_chat_template([{"role": "user", "content": content}],
                                                       add_generation_prompt=True, tokenize=False))
        assert built == EXPECTED[name]
