"""Bjøntegaard-delta rate, via the maintained ``bjontegaard`` package (FAU-LMS).

BD-rate is the average difference in log rate between two RD curves over the interval of
quality where both are defined, expressed as a percentage: negative means the test codec
needs fewer bits than the anchor for the same quality.  Akima interpolation by default
(piecewise cubic Hermite, "pchip", as in the JCT-VC CTC sheet, is the alternative).
"""

from __future__ import annotations

import math
import warnings

import numpy as np


def monotone_curve(rate, quality) -> tuple[np.ndarray, np.ndarray]:
    """Sort points by rate and keep only those whose quality strictly increases with rate.

    Interpolating log-rate as a function of quality needs quality to be strictly monotone;
    real sweeps occasionally have a point that costs more bits for no gain (duplicated
    settings, a saturated encoder), which is dropped here.  Non-finite points are dropped.
    """
    r = np.asarray(rate, dtype=float)
    q = np.asarray(quality, dtype=float)
    if r.shape != q.shape:
        raise ValueError("rate and quality must have the same length")
    keep = np.isfinite(r) & np.isfinite(q) & (r > 0)
    r, q = r[keep], q[keep]
    order = np.lexsort((q, r))
    r, q = r[order], q[order]
    out_r, out_q = [], []
    for ri, qi in zip(r, q):
        if not out_q or qi > out_q[-1]:
            if out_r and ri == out_r[-1]:
                out_r[-1], out_q[-1] = ri, qi
            else:
                out_r.append(ri)
                out_q.append(qi)
    return np.asarray(out_r), np.asarray(out_q)


def overlap_fraction(q_anchor, q_test) -> float:
    lo = max(np.min(q_anchor), np.min(q_test))
    hi = min(np.max(q_anchor), np.max(q_test))
    total = max(np.max(q_anchor), np.max(q_test)) - min(np.min(q_anchor), np.min(q_test))
    return float(max(hi - lo, 0.0) / total) if total > 0 else 0.0


def bd_rate(rate_anchor, quality_anchor, rate_test, quality_test, method: str = "akima") -> float:
    """BD-rate of the test curve against the anchor, in percent (nan if the curves don't overlap).

    ``quality`` is PSNR in dB or any other quality in which higher is better (e.g. MS-SSIM
    in dB).  Each curve needs at least two usable points; see :func:`monotone_curve`.
    """
    import bjontegaard

    ra, qa = monotone_curve(rate_anchor, quality_anchor)
    rt, qt = monotone_curve(rate_test, quality_test)
    if len(ra) < 2 or len(rt) < 2 or overlap_fraction(qa, qt) == 0.0:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = bjontegaard.bd_rate(ra, qa, rt, qt, method=method,
                                    require_matching_points=False, min_overlap=0.0)
    value = float(value)
    return value if math.isfinite(value) else float("nan")
