"""Decontamination of training questions against the eval benchmarks (MathVista testmini, We-Math).

Text: questions are normalised (lower-case, alphanumeric words only) and cut into word n-grams
(n = `DecontamConfig.ngram`, 8 by default). A candidate is contaminated when at least `threshold` of its
n-grams occur in one benchmark question. Questions shorter than n words match only by exact normalised
text, and only with at least `min_exact_tokens` words (default 8 = n, i.e. never): a short generic question
such as "What is the perimeter of the rectangle?" is also a MathVista question, and without MathVista's
images here an exact match of such a text is no evidence of a leak.

Images (We-Math only: the MathVista copy here has no images): `exact` compares the SHA-256 of the file
bytes; `dhash` compares a 64-bit difference hash (9x8 grayscale, left/right gradient signs) by Hamming
distance <= `max_hamming`, which survives re-encoding and resizing. Near-blank images (fewer than 8 or more
than 56 gradient bits set) are never matched perceptually, since any two of them hash alike.

The benchmark index is built once and cached as JSON under `cache_dir`, keyed by the benchmark files'
sizes and mtimes and the n-gram size.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from PIL import Image

from mmreason.data.recipe import DecontamConfig

_WORD = re.compile(r"[a-z0-9]+")


def normalise(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def ngrams(tokens: list[str], n: int) -> set[str]:
    return {" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


def dhash(path: str | Path) -> int:
    with Image.open(path) as im:
        g = im.convert("L").resize((9, 8), Image.Resampling.LANCZOS)
        px = list(g.getdata())
    bits = 0
    for row in range(8):
        for col in range(8):
            bits = (bits << 1) | (px[row * 9 + col] > px[row * 9 + col + 1])
    return bits


def sha256_file(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def informative(h: int) -> bool:
    return 8 <= bin(h).count("1") <= 56


def default_benchmarks_dir() -> Path:
    env = os.environ.get("MMREASON_BENCHMARKS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "shared" / "benchmarks"


@dataclass
class Hit:
    benchmark: str
    benchmark_id: str
    match: str  # text | image_exact | image_dhash
    score: float

    def to_json(self) -> dict:
        return {"benchmark": self.benchmark, "benchmark_id": self.benchmark_id, "match": self.match,
                "score": round(self.score, 4)}


class BenchmarkIndex:
    """Question n-grams and image hashes of the eval benchmarks."""

    def __init__(self, cfg: DecontamConfig, entries: list[dict]):
        self.cfg = cfg
        self.entries = entries  # {benchmark, id, tokens, sha256|None, dhash|None}
        self.gram_to_entries: dict[str, list[int]] = {}
        self.exact_text: dict[str, int] = {}
        self.sha: dict[str, int] = {}
        self.dhashes: list[tuple[int, int]] = []
        for i, e in enumerate(entries):
            toks = e["tokens"]
            for g in ngrams(toks, cfg.ngram):
                self.gram_to_entries.setdefault(g, []).append(i)
            self.exact_text.setdefault(" ".join(toks), i)
            if e.get("sha256"):
                self.sha.setdefault(e["sha256"], i)
            if e.get("dhash") is not None and informative(e["dhash"]):
                self.dhashes.append((e["dhash"], i))

    @classmethod
    def load(cls, cfg: DecontamConfig) -> "BenchmarkIndex":
        root = Path(cfg.benchmarks_dir) if cfg.benchmarks_dir else default_benchmarks_dir()
        files = [root / "mathvista" / "testmini.json", root / "wemath" / "testmini.json"]
        present = [f for f in files if f.is_file()]
        if not present:
            raise FileNotFoundError(
                f"decontam.benchmarks_dir: no mathvista/ or wemath/ testmini.json under {root}: point "
                "decontam.benchmarks_dir (or $MMREASON_BENCHMARKS) at the benchmark data (layout: "
                "tests/fixtures/README.md), or set decontam.enabled=false to build without decontamination")
        key_src = json.dumps([[str(f), f.stat().st_size, f.stat().st_mtime_ns] for f in present] + [cfg.ngram])
        key = hashlib.sha256(key_src.encode()).hexdigest()[:16]
        cache_dir = Path(cfg.cache_dir) if cfg.cache_dir else Path.home() / ".cache" / "mmreason" / "decontam"
        cache = cache_dir / f"index-{key}.json"
        if cache.is_file():
            try:
                return cls(cfg, json.loads(cache.read_text()))
            except (json.JSONDecodeError, KeyError, TypeError):
                pass  # a damaged cache is rebuilt
        entries = list(_entries(root))
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(entries))
        tmp.replace(cache)
        return cls(cfg, entries)

    def check(self, question: str, image_paths: Iterable[Path]) -> Hit | None:
        """The first benchmark item this question or one of its images matches, else None."""
        cfg = self.cfg
        toks = normalise(question)
        if len(toks) >= cfg.ngram:
            grams = ngrams(toks, cfg.ngram)
            counts: dict[int, int] = {}
            for g in grams:
                for i in self.gram_to_entries.get(g, ()):
                    counts[i] = counts.get(i, 0) + 1
            if counts:
                i, c = max(counts.items(), key=lambda kv: (kv[1], -kv[0]))
                if c / len(grams) >= cfg.threshold:
                    return self._hit(i, "text", c / len(grams))
        elif len(toks) >= cfg.min_exact_tokens and " ".join(toks) in self.exact_text:
            return self._hit(self.exact_text[" ".join(toks)], "text", 1.0)
        if cfg.image_hash == "none":
            return None
        for p in image_paths:
            if cfg.image_hash in ("exact", "both"):
                i = self.sha.get(sha256_file(p))
                if i is not None:
                    return self._hit(i, "image_exact", 1.0)
            if cfg.image_hash in ("dhash", "both"):
                h = dhash(p)
                if informative(h):
                    best = min(((bin(h ^ bh).count("1"), i) for bh, i in self.dhashes), default=None)
                    if best is not None and best[0] <= cfg.max_hamming:
                        return self._hit(best[1], "image_dhash", 1 - best[0] / 64)
        return None

    def _hit(self, i: int, match: str, score: float) -> Hit:
        e = self.entries[i]
        return Hit(e["benchmark"], e["id"], match, score)


def _entries(root: Path) -> Iterable[dict]:
    mv = root / "mathvista" / "testmini.json"
    if mv.is_file():
        for pid, row in json.loads(mv.read_text(encoding="utf-8")).items():
            yield {"benchmark": "mathvista_testmini", "id": str(pid), "tokens": normalise(row.get("question") or "")}
    wm = root / "wemath" / "testmini.json"
    if wm.is_file():
        for row in json.loads(wm.read_text(encoding="utf-8")):
            img = root / "wemath" / row["image_path"] if row.get("image_path") else None
            sha = dh = None
            if img is not None and img.is_file():
                sha = sha256_file(img)
                try:
                    dh = dhash(img)
                except OSError:
                    dh = None
            yield {"benchmark": "wemath_testmini", "id": str(row.get("ID") or row.get("key")),
                   "tokens": normalise(row.get("question") or ""), "sha256": sha, "dhash": dh}
