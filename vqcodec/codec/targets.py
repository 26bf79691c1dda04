"""Coding to a target instead of a quality: the best file under a size, or the smallest reaching a PSNR."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
from PIL import Image

from vqcodec.codec import lossless as lossless_coding
from vqcodec.metrics import psnr as psnr_of

__all__ = ["TargetNotMetWarning", "TargetNotMetError", "search_target"]


class TargetNotMetWarning(UserWarning):
    """A ``size`` or ``psnr`` target could not be met; the closest file was written."""


class TargetNotMetError(ValueError):
    """A ``size`` or ``psnr`` target could not be met and ``strict`` was asked for."""


def search_target(
    levels: int,
    learned: Callable[[int], bytes],
    decoded: Callable[[int], Image.Image],
    img: Image.Image,
    size: int | None,
    psnr_target: float | None,
    strict: bool,
    allow_lossless: bool,
    lossless_file: Callable[[], bytes],
) -> bytes:
    """Bisection over operating points 1 .. ``levels`` for a size or PSNR target, lossless coding considered.

    ``learned(point)`` gives a point's file and ``decoded(point)`` its decoded
    image; both are called for the few points the bisection visits.
    """
    reference = np.asarray(img.convert("RGB"))

    def quality_of(q: int) -> float:
        return psnr_of(reference, np.asarray(decoded(q)))

    def meets(q: int) -> bool:
        return len(learned(q)) <= size if size is not None else quality_of(q) >= psnr_target

    # size: the largest level that fits; psnr: the smallest level that reaches the target.
    found, lo, hi = None, 1, levels
    while lo <= hi:
        mid = (lo + hi) // 2
        ok = meets(mid)
        if ok:
            found = mid
        # a size is met below the answer (search up), a PSNR above it (search down)
        if ok == (size is not None):
            lo = mid + 1
        else:
            hi = mid - 1
    best = None if found is None else learned(found)

    if allow_lossless:
        budget = size if size is not None else (len(best) if best is not None else None)
        graphic = lossless_coding.few_colours(img) or (budget is not None and lossless_coding.worth_trying(img, budget))
        if budget is None or graphic:
            exact = lossless_file()
            if size is not None and len(exact) <= size:
                return exact  # the best quality there is, and it fits
            if psnr_target is not None and (best is None or len(exact) <= len(best)):
                return exact  # reaches any PSNR: the smaller file wins
    if best is not None:
        return best
    closest = learned(1) if size is not None else learned(levels)
    what = (
        f"size {size} bytes cannot be met: the smallest file is {len(closest)} bytes (the lowest level)"
        if size is not None
        else f"PSNR {psnr_target:g} dB cannot be met: the highest quality reaches {quality_of(levels):.2f} dB"
    )
    if strict:
        raise TargetNotMetError(what)
    warnings.warn(f"{what}; wrote that", TargetNotMetWarning, stacklevel=3)
    return closest
