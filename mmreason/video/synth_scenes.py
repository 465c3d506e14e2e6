"""Synthetic video scenes with a known future, rendered with PIL (canonical 56x56 coordinates, scaled).

ball      a ball rolls toward a wall; the wall's colour decides what happens at contact (the rule the
          model has to learn from training clips): red -> it bounces back, green -> it passes through,
          blue -> it stops, yellow -> it jumps over. One event after the cut: hop1.
sequence  a repeating pattern of coloured shapes, one shape every `FRAMES_PER_ITEM` frames; the
          question asks for the shape h = 1, 2, 3 steps after the last one shown (hop1..hop3), and
          the future part of the clip shows those h shapes.

A scene is a dict of discrete parameters that fully determines its frames, question and answer.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from PIL import Image, ImageDraw

CANON = 56
FPS = 4
FRAMES_PER_ITEM = 2
BALL_FUTURE_FRAMES = 6
BACKGROUND = (24, 24, 32)

WALL_RULES = {"red": "bounce", "green": "pass", "blue": "stop", "yellow": "jump"}
WALL_RGB = {"red": (220, 40, 40), "green": (40, 190, 70), "blue": (50, 90, 230), "yellow": (235, 210, 40)}
OUTCOME_TEXT = {
    "bounce": "the ball hits the wall and bounces back to the left",
    "pass": "the ball passes through the wall and keeps rolling to the right",
    "stop": "the ball stops at the wall and stays there",
    "jump": "the ball jumps over the wall and lands on the other side",
}
BALL_RGB = {"white": (240, 240, 240), "orange": (250, 150, 30), "magenta": (220, 60, 200)}
SHAPE_RGB = {"red": (220, 40, 40), "green": (40, 190, 70), "blue": (50, 90, 230), "yellow": (235, 210, 40)}
SHAPES = ("circle", "square", "triangle")
ORDINAL = {1: "next", 2: "second", 3: "third"}

WALL_X, WALL_W, BALL_R = 42, 4, 4
LANES = (18, 28, 38)


@dataclass
class Rendered:
    frames: list  # PIL images: past then future
    n_past: int  # the first n_past frames are the past clip
    question: str
    answer_text: str  # the correct option text
    distractors: list[str]  # three wrong option texts
    future_caption: str  # what the future part shows
    reasoning: str  # a correct reasoning from the past part
    wrong_prediction: str  # a plausible wrong prediction (for CFT)
    wrong_reasoning: str
    hop: str


def _canvas(size: int) -> tuple[Image.Image, ImageDraw.ImageDraw, float]:
    im = Image.new("RGB", (size, size), BACKGROUND)
    return im, ImageDraw.Draw(im), size / CANON


# ------------------------------------------------------------------ ball


def sample_ball(rng: random.Random) -> dict:
    return {
        "wall": rng.choice(sorted(WALL_RULES)),
        "ball": rng.choice(sorted(BALL_RGB)),
        "lane": rng.randrange(len(LANES)),
        "x0": rng.choice((4, 8, 12)),
        "speed": rng.choice((3, 4, 5)),
    }


def _ball_frame(size: int, wall: str, ball: str, x: float, y: float) -> Image.Image:
    im, d, s = _canvas(size)
    d.rectangle([WALL_X * s, 4 * s, (WALL_X + WALL_W) * s - 1, (CANON - 4) * s - 1], fill=WALL_RGB[wall])
    d.ellipse([(x - BALL_R) * s, (y - BALL_R) * s, (x + BALL_R) * s, (y + BALL_R) * s], fill=BALL_RGB[ball])
    return im


def render_ball(scene: dict, size: int) -> Rendered:
    y0, v, outcome = LANES[scene["lane"]], scene["speed"], WALL_RULES[scene["wall"]]
    xs = []
    x = scene["x0"]
    while x + BALL_R <= WALL_X - 1:  # approach until just before contact
        xs.append(x)
        x += v
    past = [(x, y0) for x in xs]
    xc = xs[-1]
    fut = []
    for k in range(1, BALL_FUTURE_FRAMES + 1):
        if outcome == "bounce":
            fut.append((max(BALL_R, WALL_X - BALL_R - v * k), y0))
        elif outcome == "pass":
            fut.append((min(CANON - BALL_R, xc + v * k), y0))
        elif outcome == "stop":
            fut.append((WALL_X - BALL_R, y0))
        else:
            t = k / BALL_FUTURE_FRAMES
            x_end = WALL_X + WALL_W + BALL_R + 3
            fut.append((xc + (x_end - xc) * t, y0 - 14 * math.sin(math.pi * t)))
    frames = [_ball_frame(size, scene["wall"], scene["ball"], x, y) for x, y in past + fut]
    wrong = sorted(o for o in OUTCOME_TEXT if o != outcome)
    wrong_outcome = wrong[(scene["x0"] + scene["speed"]) % 3]
    wrong_wall = next(w for w, o in WALL_RULES.items() if o == wrong_outcome)
    desc = f"a {scene['ball']} ball rolls to the right toward a {scene['wall']} wall"
    return Rendered(
        frames=frames,
        n_past=len(past),
        question="The ball is rolling toward the wall. What happens when it reaches the wall?",
        answer_text=OUTCOME_TEXT[outcome].capitalize() + ".",
        distractors=[OUTCOME_TEXT[o].capitalize() + "." for o in wrong],
        future_caption=OUTCOME_TEXT[outcome].capitalize() + ".",
        reasoning=(
            f"In the video {desc}. It is about to touch the wall. A {scene['wall']} wall means "
            f"{OUTCOME_TEXT[outcome]}, so that is what should happen next."
        ),
        wrong_prediction=OUTCOME_TEXT[wrong_outcome].capitalize() + ".",
        wrong_reasoning=(
            f"In the video {desc}. It is about to touch the wall. I take the wall to behave like a "
            f"{wrong_wall} wall, so {OUTCOME_TEXT[wrong_outcome]}."
        ),
        hop="hop1",
    )


# ------------------------------------------------------------------ sequence


def sample_sequence(rng: random.Random) -> dict:
    items = [(c, s) for c in sorted(SHAPE_RGB) for s in SHAPES]
    period = rng.choice((2, 3))
    pattern = rng.sample(items, period)
    return {
        "pattern": [list(p) for p in pattern],
        "shown": rng.randint(period + 1, 2 * period + 1),  # at least one full period and one repeat
        "hops": rng.choice((1, 2, 3)),
    }


def _item_text(item) -> str:
    return f"a {item[0]} {item[1]}"


def _shape_frame(size: int, item) -> Image.Image:
    im, d, s = _canvas(size)
    colour, shape = SHAPE_RGB[item[0]], item[1]
    box = [16 * s, 16 * s, 40 * s, 40 * s]
    if shape == "circle":
        d.ellipse(box, fill=colour)
    elif shape == "square":
        d.rectangle(box, fill=colour)
    else:
        d.polygon([(28 * s, 14 * s), (42 * s, 40 * s), (14 * s, 40 * s)], fill=colour)
    return im


def render_sequence(scene: dict, size: int) -> Rendered:
    pattern = [tuple(p) for p in scene["pattern"]]
    p, m, h = len(pattern), scene["shown"], scene["hops"]
    seq = [pattern[i % p] for i in range(m + h)]
    frames = [_shape_frame(size, it) for it in seq for _ in range(FRAMES_PER_ITEM)]
    answer = seq[m - 1 + h]
    # distractors: the other pattern items first (the plausible mistakes), then others drawn per scene
    others = [it for it in pattern if it != answer]
    pool = [(c, s) for c in sorted(SHAPE_RGB) for s in SHAPES if (c, s) not in pattern]
    random.Random(repr(scene["pattern"])).shuffle(pool)
    others += pool
    distractors = others[:3]
    shown = ", ".join(_item_text(it) for it in pattern)
    future = ", then ".join(_item_text(it) for it in seq[m:])
    wrong_item = pattern[(m + h) % p]  # off by one step: never the answer (pattern items are distinct)
    return Rendered(
        frames=frames,
        n_past=m * FRAMES_PER_ITEM,
        question=(
            "The video shows a repeating sequence of coloured shapes. "
            f"Which shape comes {ORDINAL[h]} after the last shape shown?"
            if h == 1
            else "The video shows a repeating sequence of coloured shapes. "
            f"Which shape is the {ORDINAL[h]} one after the last shape shown?"
        ),
        answer_text=_item_text(answer).capitalize() + ".",
        distractors=[_item_text(it).capitalize() + "." for it in distractors],
        future_caption=f"Next the video shows {future}.",
        reasoning=(
            f"The shapes repeat every {p}: {shown}. The last shape shown is {_item_text(seq[m - 1])}, "
            f"position {(m - 1) % p + 1} of the pattern. {h} step(s) later comes {_item_text(answer)}."
        ),
        wrong_prediction=f"The {ORDINAL[h]} shape is {_item_text(wrong_item)}.",
        wrong_reasoning=(
            f"The shapes repeat: {shown}. Counting on from the last shape shown, I get {_item_text(wrong_item)}."
        ),
        hop=f"hop{h}",
    )


FAMILIES = {"ball": (sample_ball, render_ball), "sequence": (sample_sequence, render_sequence)}
