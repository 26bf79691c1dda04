"""Validation curves (--evaluate-only results) side by side: each one's BD-rate (PSNR, Akima) against the first,
its PSNR difference to the first at a few rates (linear in log bpp), its top PSNR and its unquantised PSNR.

PYTHONPATH=. python checkpoints/variable_rate/probes/validation_compare.py ANCHOR.eval.json OTHER.eval.json ...
"""
import json, sys
import numpy as np
from benchmarks.bdrate import bd_rate, monotone_curve

RATES = (0.15, 0.25, 0.4, 0.6, 0.9, 1.2)


def curve(path):
    data = json.load(open(path))
    return [r["bpp"] for r in data["levels"]], [r["psnr"] for r in data["levels"]], data.get("unquantised_psnr")


ra, qa, _ = curve(sys.argv[1])
ma = monotone_curve(ra, qa)
print("curve | BD-rate | " + " | ".join(f"dB @{r}" for r in RATES) + " | lowest bpp | top dB | unquantised dB")
for path in sys.argv[1:]:
    rt, qt, unq = curve(path)
    mt = monotone_curve(rt, qt)
    gaps = []
    for r in RATES:
        d = np.interp(np.log(r), np.log(mt[0]), mt[1], left=np.nan, right=np.nan) - np.interp(
            np.log(r), np.log(ma[0]), ma[1], left=np.nan, right=np.nan)
        gaps.append("" if not np.isfinite(d) else f"{d:+.2f}")
    unq_s = f"{unq:.2f}" if unq is not None else ""
    print(f"{path} | {bd_rate(ra, qa, rt, qt, method='akima'):+.1f}% | " + " | ".join(gaps)
          + f" | {min(rt):.3f} | {max(qt):.2f} | {unq_s}")
