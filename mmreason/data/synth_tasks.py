"""Task families of the synthetic verifiable visual tasks.

Each family is three pure functions:

* ``sample(rng, difficulty) -> scene``: draw a scene. A scene is a JSON-serialisable dict of
  discrete parameters (grid cells, colour names, integer sizes); the image is a function of
  the scene and the image size only, so the scene is its canonical identity.
* ``render(scene, size) -> PIL.Image``: draw it (no anti-aliasing on shapes, exact palette
  colours, so pixels can be checked).
* ``qa(scene) -> QA``: question, gold answer and a short templated chain-of-thought that
  reads what is in the picture and ends in ``\\boxed{answer}``.

Shapes sit in the cells of a ``GRID`` x ``GRID`` grid: at 112 px one cell is 28 px, exactly
one Qwen2.5-VL LLM token (14 px patches merged 2x2), which keeps every object legible.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Callable

from PIL import Image, ImageDraw, ImageFont

DIFFICULTIES = ("easy", "medium", "hard")
GRID = 4
COLORS = {
    "red": (220, 30, 30),
    "green": (20, 160, 40),
    "blue": (30, 60, 220),
    "yellow": (235, 200, 0),
    "purple": (140, 40, 180),
    "orange": (245, 120, 0),
}
KINDS = ("circle", "square", "triangle", "diamond")
# Area of a shape drawn in an s x s box, in units of s^2 (used for "which is larger").
AREA_FACTOR = {"circle": 0.7854, "square": 1.0, "triangle": 0.5, "diamond": 0.5}
BACKGROUND = (255, 255, 255)
INK = (0, 0, 0)


@dataclass
class QA:
    question: str
    answer: str
    answer_type: str
    solution: str
    choices: list[str] | None = None


@dataclass(frozen=True)
class Task:
    name: str
    sample: Callable[[random.Random, str], dict[str, Any]]
    render: Callable[[dict[str, Any], int], Image.Image]
    qa: Callable[[dict[str, Any]], QA]
    doc: str


def _level(difficulty: str, easy, medium, hard):
    return {"easy": easy, "medium": medium, "hard": hard}[difficulty]


def _cell_box(cell: int, size: int, frac: float = 0.72) -> tuple[int, int, int, int]:
    """Pixel box of a shape centred in grid cell `cell` (row-major), `frac` of the cell wide."""
    cs = size / GRID
    r, c = divmod(cell, GRID)
    half = cs * frac / 2
    cx, cy = (c + 0.5) * cs, (r + 0.5) * cs
    return round(cx - half), round(cy - half), round(cx + half) - 1, round(cy + half) - 1


def draw_shape(draw: ImageDraw.ImageDraw, kind: str, box: tuple[int, int, int, int], fill) -> None:
    x0, y0, x1, y1 = box
    xm, ym = (x0 + x1) / 2, (y0 + y1) / 2
    if kind == "circle":
        draw.ellipse(box, fill=fill)
    elif kind == "square":
        draw.rectangle(box, fill=fill)
    elif kind == "triangle":
        draw.polygon([(xm, y0), (x1, y1), (x0, y1)], fill=fill)
    elif kind == "diamond":
        draw.polygon([(xm, y0), (x1, ym), (xm, y1), (x0, ym)], fill=fill)
    else:
        raise ValueError(f"unknown shape kind {kind!r}")


def _font(px: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=max(8, px))


def _draw_text_centred(draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, px: int) -> None:
    draw.text(xy, text, fill=INK, font=_font(px), anchor="mm")


def _render_objects(scene: dict, size: int) -> Image.Image:
    im = Image.new("RGB", (size, size), BACKGROUND)
    d = ImageDraw.Draw(im)
    for o in scene["objects"]:
        draw_shape(d, o["kind"], _cell_box(o["cell"], size), COLORS[o["color"]])
    return im


def _objects(rng: random.Random, cells: list[int], picks: list[tuple[str, str]]) -> list[dict]:
    """Place (kind, colour) picks in the given cells, sorted by cell (reading order)."""
    return sorted(({"cell": c, "kind": k, "color": col} for c, (k, col) in zip(cells, picks)), key=lambda o: o["cell"])


# ---------------------------------------------------------------- count: integer


def sample_count(rng: random.Random, difficulty: str) -> dict:
    lo, hi, dlo, dhi = _level(difficulty, (1, 3, 0, 2), (1, 5, 1, 4), (2, 7, 3, 6))
    target = rng.choice(sorted(COLORS))
    n, nd = rng.randint(lo, hi), rng.randint(dlo, dhi)
    others = [c for c in sorted(COLORS) if c != target]
    picks = [(rng.choice(KINDS), target) for _ in range(n)] + [(rng.choice(KINDS), rng.choice(others)) for _ in range(nd)]
    return {"target_color": target, "objects": _objects(rng, rng.sample(range(GRID * GRID), n + nd), picks)}


def qa_count(scene: dict) -> QA:
    col = scene["target_color"]
    kinds = [o["kind"] for o in scene["objects"] if o["color"] == col]
    return QA(
        question=f"How many {col} shapes are in the image?",
        answer=str(len(kinds)),
        answer_type="integer",
        solution=f"The {col} shapes are: {', '.join(kinds)}. Counting them gives {len(kinds)}. \\boxed{{{len(kinds)}}}",
    )


# ---------------------------------------------------------------- color: text


def sample_color(rng: random.Random, difficulty: str) -> dict:
    nd, repeat = _level(difficulty, (1, False), (2, False), (3, True))
    kinds = rng.sample(KINDS, 1 + nd)  # distinct kinds, so "the <kind>" names one shape
    palette = sorted(COLORS)
    colors = [rng.choice(palette) for _ in kinds] if repeat else rng.sample(palette, len(kinds))
    objs = _objects(rng, rng.sample(range(GRID * GRID), len(kinds)), list(zip(kinds, colors)))
    return {"target_kind": kinds[0], "objects": objs}


def qa_color(scene: dict) -> QA:
    kind = scene["target_kind"]
    col = next(o["color"] for o in scene["objects"] if o["kind"] == kind)
    return QA(
        question=f"What color is the {kind}?",
        answer=col,
        answer_type="text",
        solution=f"I find the {kind} in the image. It is {col}. \\boxed{{{col}}}",
    )


# ---------------------------------------------------------------- bars: choice

BAR_UNITS = 10  # heights are integers 1..BAR_UNITS


def sample_bars(rng: random.Random, difficulty: str) -> dict:
    n, gap = _level(difficulty, (3, 3), (4, 2), (5, 1))
    ask = "tallest" if difficulty == "easy" else rng.choice(["tallest", "shortest"])
    while True:
        heights = [rng.randint(1, BAR_UNITS) for _ in range(n)]
        s = sorted(heights, reverse=(ask == "tallest"))
        if abs(s[0] - s[1]) >= gap:
            break
    return {"ask": ask, "colors": rng.sample(sorted(COLORS), n), "heights": heights}


def bar_geometry(scene: dict, size: int) -> list[tuple[int, int, int, int]]:
    """Pixel boxes (x0, y0, x1, y1) of the bars; the baseline is at 90% of the height."""
    n = len(scene["heights"])
    base, top = round(size * 0.9), round(size * 0.08)
    unit = (base - top) / BAR_UNITS
    slot = size * 0.9 / n
    w = max(3, round(slot * 0.6))
    boxes = []
    for i, h in enumerate(scene["heights"]):
        x0 = round(size * 0.05 + i * slot + (slot - w) / 2)
        boxes.append((x0, base - round(h * unit), x0 + w - 1, base - 1))
    return boxes


def render_bars(scene: dict, size: int) -> Image.Image:
    im = Image.new("RGB", (size, size), BACKGROUND)
    d = ImageDraw.Draw(im)
    for box, col in zip(bar_geometry(scene, size), scene["colors"]):
        d.rectangle(box, fill=COLORS[col])
    base = round(size * 0.9)
    d.line([(round(size * 0.03), base), (round(size * 0.97), base)], fill=INK, width=1)
    return im


def qa_bars(scene: dict) -> QA:
    ask, cols, hs = scene["ask"], scene["colors"], scene["heights"]
    pick = (max if ask == "tallest" else min)(range(len(hs)), key=lambda i: hs[i])
    letter = "ABCDEFGH"[pick]
    listing = ", ".join(f"{c} {h}" for c, h in zip(cols, hs))
    return QA(
        question=f"Which bar is the {ask}?",
        answer=letter,
        answer_type="choice",
        choices=list(cols),
        solution=f"Bar heights: {listing}. The {ask} is {cols[pick]}, option {letter}. \\boxed{{{letter}}}",
    )


# ---------------------------------------------------------------- digit_sum: integer


def sample_digit_sum(rng: random.Random, difficulty: str) -> dict:
    n, lo = _level(difficulty, (2, 1), (3, 0), (4, 0))
    cells = sorted(rng.sample(range(GRID * GRID), n))
    return {"digits": [{"cell": c, "digit": rng.randint(lo, 9)} for c in cells]}


def render_digit_sum(scene: dict, size: int) -> Image.Image:
    im = Image.new("RGB", (size, size), BACKGROUND)
    d = ImageDraw.Draw(im)
    cs = size / GRID
    for o in scene["digits"]:
        r, c = divmod(o["cell"], GRID)
        _draw_text_centred(d, ((c + 0.5) * cs, (r + 0.5) * cs), str(o["digit"]), round(cs * 0.8))
    return im


def qa_digit_sum(scene: dict) -> QA:
    ds = [o["digit"] for o in scene["digits"]]
    steps, acc = [], ds[0]
    for x in ds[1:]:
        steps.append(f"{acc} + {x} = {acc + x}")
        acc += x
    return QA(
        question="What is the sum of the digits in the image?",
        answer=str(acc),
        answer_type="integer",
        solution=f"The digits are {', '.join(map(str, ds))}. {', '.join(steps)}. \\boxed{{{acc}}}",
    )


# ---------------------------------------------------------------- compare: text

COMPARE_SIZES = tuple(range(8, 27))  # bounding-box side in px at 112 px (scaled with the image)


def sample_compare(rng: random.Random, difficulty: str) -> dict:
    ratio = _level(difficulty, 2.0, 1.5, 1.2)
    kinds = rng.sample(KINDS, 2)
    while True:
        sizes = [rng.choice(COMPARE_SIZES) for _ in kinds]
        a = [AREA_FACTOR[k] * s * s for k, s in zip(kinds, sizes)]
        if max(a) >= ratio * min(a):
            break
    cols = rng.sample(sorted(COLORS), 2)
    rows = [rng.randrange(GRID), rng.randrange(GRID)]
    return {
        "shapes": [
            {"kind": k, "size": s, "color": c, "side": side, "row": r}
            for k, s, c, side, r in zip(kinds, sizes, cols, ("left", "right"), rows)
        ],
        "order": rng.sample([0, 1], 2),  # which shape the question names first
    }


def compare_box(shape: dict, size: int) -> tuple[int, int, int, int]:
    s = shape["size"] * size / 112
    cx = size * (0.27 if shape["side"] == "left" else 0.73)
    cy = (shape["row"] + 0.5) * size / GRID
    return round(cx - s / 2), round(cy - s / 2), round(cx + s / 2) - 1, round(cy + s / 2) - 1


def render_compare(scene: dict, size: int) -> Image.Image:
    im = Image.new("RGB", (size, size), BACKGROUND)
    d = ImageDraw.Draw(im)
    for sh in scene["shapes"]:
        draw_shape(d, sh["kind"], compare_box(sh, size), COLORS[sh["color"]])
    return im


def qa_compare(scene: dict) -> QA:
    a, b = (scene["shapes"][i] for i in scene["order"])
    big = max(scene["shapes"], key=lambda s: AREA_FACTOR[s["kind"]] * s["size"] ** 2)
    small = a if big is b else b
    return QA(
        question=f"Which shape is larger, the {a['kind']} or the {b['kind']}?",
        answer=big["kind"],
        answer_type="text",
        solution=f"The {big['kind']} covers more area than the {small['kind']}. \\boxed{{{big['kind']}}}",
    )


# ---------------------------------------------------------------- rect: integer


def sample_rect(rng: random.Random, difficulty: str) -> dict:
    lo, hi, asks = _level(difficulty, (1, 5, ["area"]), (2, 9, ["area", "perimeter"]), (3, 12, ["perimeter", "area"]))
    return {
        "width": rng.randint(lo, hi),
        "height": rng.randint(lo, hi),
        "ask": rng.choice(asks),
        "x": rng.randrange(RECT_SHIFTS),  # position shift (see rect_box)
        "y": rng.randrange(RECT_SHIFTS),
        "width_label": rng.choice(["below", "above"]),
        "height_label": rng.choice(["left", "right"]),
    }


RECT_SHIFTS = 4


def rect_box(scene: dict, size: int) -> tuple[int, int, int, int]:
    """The rectangle is drawn to scale (longest side 45% of the image) inside a margin for its labels."""
    w, h = scene["width"], scene["height"]
    unit = size * 0.45 / max(w, h)
    x0 = round(size * (0.22 + 0.04 * scene["x"]))
    y1 = round(size * (0.8 - 0.05 * scene["y"]))
    return x0, y1 - max(2, round(h * unit)), x0 + max(2, round(w * unit)), y1


def render_rect(scene: dict, size: int) -> Image.Image:
    im = Image.new("RGB", (size, size), BACKGROUND)
    d = ImageDraw.Draw(im)
    x0, y0, x1, y1 = rect_box(scene, size)
    d.rectangle((x0, y0, x1, y1), outline=COLORS["blue"], width=2)
    px = round(size * 0.14)
    wy = y1 + px * 0.7 if scene["width_label"] == "below" else y0 - px * 0.7
    hx = x0 - px * 0.75 if scene["height_label"] == "left" else x1 + px * 0.75
    _draw_text_centred(d, ((x0 + x1) / 2, wy), str(scene["width"]), px)
    _draw_text_centred(d, (hx, (y0 + y1) / 2), str(scene["height"]), px)
    return im


def qa_rect(scene: dict) -> QA:
    w, h, ask = scene["width"], scene["height"], scene["ask"]
    if ask == "area":
        ans, work = w * h, f"Area = {w} * {h} = {w * h}"
    else:
        ans, work = 2 * (w + h), f"Perimeter = 2 * ({w} + {h}) = {2 * (w + h)}"
    return QA(
        question=f"What is the {ask} of the rectangle?",
        answer=str(ans),
        answer_type="integer",
        solution=f"The width is {w} and the height is {h}. {work}. \\boxed{{{ans}}}",
    )


TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task("count", sample_count, _render_objects, qa_count, "count the shapes of one colour (integer)"),
        Task("color", sample_color, _render_objects, qa_color, "colour of the named shape (text)"),
        Task("bars", sample_bars, render_bars, qa_bars, "tallest / shortest bar (choice of bar colours)"),
        Task("digit_sum", sample_digit_sum, render_digit_sum, qa_digit_sum, "sum of the drawn digits (integer)"),
        Task("compare", sample_compare, render_compare, qa_compare, "which of two shapes is larger (text)"),
        Task("rect", sample_rect, render_rect, qa_rect, "area / perimeter of a labelled rectangle (integer)"),
    )
}
