"""Readers of outside data layouts (EasyR1, ms-swift, LLaMA-Factory, verl, NEP) and of our records: one entry
point, `read_source`, used by every stage that takes data. See docs/data.md, "Outside data layouts"."""

from mmreason.formats.options import LAYOUT_NAMES, DataFormatArguments
from mmreason.formats.reader import LAYOUTS, UnknownLayout, detect_layout, iter_rows, open_source, read_source

__all__ = ["LAYOUTS", "LAYOUT_NAMES", "DataFormatArguments", "UnknownLayout", "detect_layout", "iter_rows", "open_source",
           "read_source"]
