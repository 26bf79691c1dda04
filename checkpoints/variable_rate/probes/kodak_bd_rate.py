"""BD-rate (PSNR, Akima) of a curve against the Kodak results of benchmarks.rd in benchmarks/results/kodak (and any
other curves given), and its PSNR difference at each of its own rates (linear in log bpp, inside each anchor's range).

PYTHONPATH=. python checkpoints/variable_rate/probes/kodak_bd_rate.py CURVE.json [OTHER.json ...]
(each an --evaluate-on result or a benchmarks.rd codec file)
"""
import json, sys
import numpy as np
from benchmarks.bdrate import bd_rate


def curve(path):
    data = json.load(open(path))
    if "levels" in data:
        return [r["bpp"] for r in data["levels"]], [r["psnr"] for r in data["levels"]]
    return data["results"]["bpp"], data["results"]["psnr-rgb"]


rt, qt = curve(sys.argv[1])
# vqcodec-0.1 … 0.6: the earlier default models (their benchmarks.rd results, kept when the default changed)
anchors = {name: f"benchmarks/results/kodak/{name}.json" for name in ("jpeg", "webp", "avif", "vqcodec-0.1", "vqcodec-0.2", "vqcodec-0.3", "vqcodec-0.4", "vqcodec-0.5", "vqcodec-0.6")}
anchors.update({path: path for path in sys.argv[2:]})
for name, path in anchors.items():
    ra, qa = curve(path)
    at_rate = np.interp(np.log(rt), np.log(ra), qa, left=np.nan, right=np.nan)
    gaps = ", ".join(f"{r:.3f}: {d:+.2f}" for r, d in zip(rt, np.asarray(qt) - at_rate) if np.isfinite(d))
    print(f"{name} {bd_rate(ra, qa, rt, qt, method='akima'):+.1f}%  dB at equal rate (bpp: dB) {gaps}")
