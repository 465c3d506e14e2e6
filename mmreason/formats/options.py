"""How a training or eval source is read: its layout (detected from the columns, or forced) and its column names.

Shared by every stage that takes data (`train_files` of SFT and GRPO, `eval run`, the data builder's `source`,
`nep build`, `data convert`): a YAML key and a command-line flag of the same name in each."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field, fields

LAYOUT_NAMES = ("records", "easyr1", "swift", "messages", "sharegpt", "verl", "nep_video")


@dataclass
class DataFormatArguments:
    """The layout of the data files and the columns it reads."""

    data_format: str = field(default="auto", metadata={
        "help": "Layout of the data: auto (detected from the columns), records (mmreason records JSONL), easyr1 "
                "(prompt_key/answer_key/image_key/video_key columns, `<image>`/`<video>` placeholders: "
                "WaltonFuture/Multimodal-Cold-Start and Multimodal-RL-Data, MM-UPT), swift (ms-swift "
                "query/response/images), messages (ms-swift or LLaMA-Factory role/content `messages` + "
                "images/videos), sharegpt (LLaMA-Factory `conversations` with from/value + images/videos), verl "
                "(`prompt` chat list, reward_model.ground_truth, images) or nep_video (video_path + qa, the NEP "
                "EasyR1 GRPO JSON). Docs: docs/data.md, 'Outside data layouts'."})
    prompt_key: str = field(default="problem", metadata={
        "help": "easyr1 layout: the question column (EasyR1's data.prompt_key)."})
    answer_key: str = field(default="answer", metadata={
        "help": "easyr1 layout: the answer column (EasyR1's data.answer_key). A value with a \\boxed{} is a "
                "released chain of thought: it is the SFT target verbatim and its last \\boxed{} the answer."})
    image_key: str = field(default="images", metadata={
        "help": "easyr1, swift, messages, sharegpt and verl layouts: the image column (EasyR1's data.image_key)."})
    video_key: str = field(default="videos", metadata={
        "help": "easyr1, messages and sharegpt layouts: the video column (EasyR1's data.video_key)."})
    media_dir: str | None = field(default=None, metadata={
        "help": "Folder that relative image/video paths of the data resolve against (EasyR1's image_dir, "
                "LLaMA-Factory's media_dir). Default: the data file's folder (the working directory for a Hub id)."})

    def __post_init__(self):
        if self.data_format not in ("auto", *LAYOUT_NAMES):
            raise ValueError(f"data_format {self.data_format!r}: choose auto or one of {list(LAYOUT_NAMES)}")

    def format_options(self) -> "DataFormatArguments":
        return DataFormatArguments(**{k: getattr(self, k) for k in
                                      ("data_format", "prompt_key", "answer_key", "image_key", "video_key",
                                       "media_dir")})


def add_format_flags(parser: argparse.ArgumentParser) -> None:
    """`--data-format`, `--prompt-key`, ... on an argparse command, with DataFormatArguments' help (unset: None)."""
    for f in fields(DataFormatArguments):
        extra = {"choices": ["auto", *LAYOUT_NAMES]} if f.name == "data_format" else {}
        flags = ["--" + f.name.replace("_", "-"), "--" + f.name]  # eval's hyphens; the stages' underscores too
        parser.add_argument(*flags, dest=f.name, default=None, help=f.metadata["help"], **extra)


def format_flags_given(args: argparse.Namespace) -> dict[str, str]:
    """The layout options set on the command line (an empty dict when none: the layout is detected)."""
    return {f.name: getattr(args, f.name) for f in fields(DataFormatArguments) if getattr(args, f.name, None) is not None}


def format_options_from(options: dict, where: str) -> DataFormatArguments:
    """DataFormatArguments from a spec's `data_format` mapping; an unknown key or layout is one error naming `where`."""
    known = {f.name for f in fields(DataFormatArguments)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"{where}: data_format: unknown key(s) {unknown}; known: {sorted(known)}")
    try:
        return DataFormatArguments(**options)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None
