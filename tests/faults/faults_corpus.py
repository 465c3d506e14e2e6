"""The bad-input corpus, generated at test time (no committed binaries): one bad line among good records, per case,
and bad prediction files. Each case says what every entry point must do with it."""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

N_GOOD = 3
GOOD_ANSWER = "1"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png(w: int, h: int, depth: int, raw: bytes) -> bytes:
    ihdr = struct.pack(">IIBBBBB", w, h, depth, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b"")


def make_images(root: Path) -> Path:
    """images/: a good 8-bit PNG and every awkward kind of file the corpus points at."""
    d = root / "images"
    d.mkdir(parents=True, exist_ok=True)
    grad = (np.arange(56 * 56).reshape(56, 56) % 256).astype(np.uint8)
    rgb = np.stack([grad, grad[::-1], 255 - grad], axis=2)
    Image.fromarray(rgb).save(d / "ok.png")
    rgb16 = rgb.astype(np.uint16) * 257  # 16 bit per channel: PIL cannot write it, so by hand
    (d / "deep16.png").write_bytes(_png(56, 56, 16, b"".join(b"\x00" + rgb16[y].astype(">u2").tobytes() for y in range(56))))
    Image.fromarray(rgb).save(d / "tiff.tif")
    Image.fromarray(rgb).save(d / "bmp.bmp")
    Image.fromarray(rgb).convert("CMYK").save(d / "cmyk.jpg")
    Image.fromarray(rgb).save(d / "cut.png")
    (d / "cut.png").write_bytes((d / "cut.png").read_bytes()[:80])
    (d / "text.png").write_text("this is not an image\n")
    (d / "bomb.png").write_bytes(_png(20000, 20000, 8, b"\x00" * 64))
    Image.new("RGB", (1000, 2)).save(d / "thin.png")
    (d / "folder.png").mkdir(exist_ok=True)
    return d


def good(i: int, **over) -> dict:
    rec = {"id": f"g{i}", "question": f"Item {i}: how many red dots are in the image?", "answer": GOOD_ANSWER,
           "answer_type": "integer", "images": ["images/ok.png"], "solution": "I count one dot. \\boxed{1}",
           "source": "faults"}
    rec.update(over)
    return rec


def _bad(**over) -> bytes:
    return json.dumps(good(99, id="bad", **over)).encode()


@dataclass(frozen=True)
class Case:
    """`line`: the bytes of the line put among the good ones. `reason`: the text a strict loader's error must hold
    (None: the line is usable). `converted`: the image gate substitutes an 8-bit RGB copy. `long`: usable but over
    every stage's text limit (dropped and counted by SFT and eval, over GRPO's token budget)."""

    name: str
    line: bytes
    reason: str | None = None
    converted: bool = False
    long: bool = False
    build_reason: str | None = None  # the data builder's ledger reason for a dropped line


CASES = [
    Case("invalid_utf8", b'{"id": "bad", "question": "caf\xe9 \xff?", "answer": "1", "answer_type": "integer"}',
         "invalid UTF-8", build_reason="invalid_record"),
    Case("invalid_json", b'{"id": "bad", "question": ', "invalid JSON", build_reason="invalid_record"),
    Case("json_array", b'[1, 2, 3]', "expected a JSON object", build_reason="invalid_record"),
    Case("missing_field", json.dumps({"id": "bad", "question": "q", "answer": "1"}).encode(),
         "missing required field 'answer_type'", build_reason="invalid_record"),
    Case("unknown_field", _bad(colour="red"), "unknown field(s) ['colour']", build_reason="invalid_record"),
    Case("wrong_type", _bad(question=5), "field 'question' must be str", build_reason="invalid_record"),
    Case("empty_answer", _bad(answer=" "), "field 'answer' is empty", build_reason="invalid_record"),
    Case("bad_integer", _bad(answer="many"), "is not an integer", build_reason="invalid_record"),
    Case("bad_choice", _bad(answer_type="choice", choices=["a", "b"], answer="C"), "must be one of the option letters",
         build_reason="invalid_record"),
    Case("duplicate_id", json.dumps(good(0, question="another question")).encode(), "duplicate id 'g0'",
         build_reason="duplicate_id"),
    Case("missing_image", _bad(images=["images/nope.png"]), "image file not found", build_reason="bad_image"),
    Case("image_is_folder", _bad(images=["images/folder.png"]), "image path is not a file", build_reason="bad_image"),
    Case("truncated_image", _bad(images=["images/cut.png"]), "corrupt or unreadable image", build_reason="bad_image"),
    Case("text_as_image", _bad(images=["images/text.png"]), "corrupt or unreadable image", build_reason="bad_image"),
    Case("decompression_bomb", _bad(images=["images/bomb.png"]), "over the limit", build_reason="bad_image"),
    Case("extreme_aspect", _bad(images=["images/thin.png"]), "aspect ratio over", build_reason="bad_image"),
    Case("image_url", _bad(images=["http://127.0.0.1:9/dots.png"]), "URLs are not fetched", build_reason="invalid_record"),
    Case("png_16bit", _bad(images=["images/deep16.png"]), converted=True),
    Case("tiff", _bad(images=["images/tiff.tif"]), converted=True),
    Case("bmp", _bad(images=["images/bmp.bmp"]), converted=True),
    Case("cmyk_jpeg", _bad(images=["images/cmyk.jpg"]), converted=True),
    Case("question_1mb", _bad(question="How many? " + "x" * 1_000_000), long=True),
]
BAD_LINE = 2  # the bad line sits between good records 0 and 1


def write_case(root: Path, case: Case) -> Path:
    """root/<case>.jsonl: good record 0, the case's line (line 2), good records 1.. (images in root/images)."""
    if not (root / "images" / "ok.png").is_file():
        make_images(root)
    lines = [json.dumps(good(0)).encode(), case.line] + [json.dumps(good(i)).encode() for i in range(1, N_GOOD)]
    path = root / f"{case.name}.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def write_all(root: Path, cases=CASES) -> tuple[Path, dict[str, int]]:
    """One file with every case (line numbers returned per case) among the good records, for the lenient paths."""
    if not (root / "images" / "ok.png").is_file():
        make_images(root)
    lines = [json.dumps(good(i)).encode() for i in range(N_GOOD)]
    where = {}
    for c in cases:
        line = c.line.replace(b'"bad"', f'"bad_{c.name}"'.encode())
        lines.append(line)
        where[c.name] = len(lines)
    path = root / "all_cases.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path, where


# ---------------------------------------------------------------- predictions


@dataclass(frozen=True)
class PredCase:
    """A predictions file for `eval score` on the good records: `error` is the text of the error (strict), None when
    it scores; `lenient_error` the same with --lenient (None: scores, with `reported` in scores.json)."""

    name: str
    lines: list
    error: str | None
    lenient_error: str | None = None
    reported: str | None = None


def _p(i, r="\\boxed{1}"):
    return {"id": f"g{i}", "response": r}


PRED_CASES = [
    PredCase("good", [_p(0), _p(1), _p(2)], None),
    PredCase("empty_file", [], "no predictions", "no predictions"),
    PredCase("blank_lines", ["", "  "], "no predictions", "no predictions"),
    PredCase("wrong_benchmark_ids", [{"id": "1", "response": "3"}, {"id": "2", "response": "4"}],
             "none of its 2 prediction ids", "none of its 2 prediction ids"),
    PredCase("invalid_json_line", [_p(0), '{"id": "g1", "resp', _p(2)], ":2: not a JSON line", ":2: not a JSON line"),
    PredCase("invalid_utf8_line", [_p(0), b'{"id": "g1", "response": "\xff"}', _p(2)], ":2: invalid UTF-8",
             ":2: invalid UTF-8"),
    PredCase("non_object_line", [_p(0), "[1, 2]", _p(2)], ":2: a prediction needs an 'id'", ":2: a prediction needs"),
    PredCase("missing_id", [_p(0), {"response": "x"}, _p(2)], ":2: a prediction needs an 'id'",
             ":2: a prediction needs"),
    PredCase("conflicting_duplicate", [_p(0), _p(1), _p(0, "\\boxed{7}")], ":3: id 'g0' was already predicted differently",
             None, reported="conflicting"),
    PredCase("identical_duplicate", [_p(0), _p(1), _p(0)], None, None, reported="identical_repeats"),
    PredCase("u2028_in_response", [_p(0, "a\u2028b \\boxed{1}"), _p(1), _p(2)], None),
]


def write_predictions(root: Path, case: PredCase) -> Path:
    path = root / f"pred_{case.name}.jsonl"
    out = []
    for x in case.lines:
        if isinstance(x, bytes):
            out.append(x)
        elif isinstance(x, str):
            out.append(x.encode())
        else:
            out.append(json.dumps(x, ensure_ascii=False).encode())
    path.write_bytes(b"".join(line + b"\n" for line in out))
    return path


def write_good_records(root: Path) -> Path:
    if not (root / "images" / "ok.png").is_file():
        make_images(root)
    path = root / "good.jsonl"
    path.write_text("".join(json.dumps(good(i)) + "\n" for i in range(N_GOOD)))
    return path
