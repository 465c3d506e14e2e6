"""Imported once by the verify pool's forkserver (never by the trainer): runs a few checks so sympy's
lazily imported modules and caches are ready before any worker is forked from the server."""

import logging

logging.getLogger("math_verify").setLevel(logging.ERROR)
try:
    from mmreason.verify.answers import match_answer

    for _p, _g in ((r"\frac{1}{2}", "0.5"), (r"2\sqrt{2}", r"\sqrt{8}"), ("x(1+x)", "x^2+x"), ("red", "blue"),
                   (r"\{1, 2\}", r"\{2, 1\}"), ("50\\%", "0.5"), (r"[0, 1)", r"[0,1)")):
        match_answer(_p, _g, "text")
except Exception:  # noqa: BLE001 - warm-up is best effort; workers warm up themselves too
    pass
