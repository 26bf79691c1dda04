"""BD-rate (PSNR, Akima) of a curve against the Kodak results of benchmarks.rd in benchmarks/results/kodak.

PYTHONPATH=. python checkpoints/variable_rate/probes/kodak_bd_rate.py CURVE.json   (an --evaluate-on result or a benchmarks.rd codec file)
"""
import json, sys
from benchmarks.bdrate import bd_rate
test = sys.argv[1]
if test.endswith(".eval.json"):
    levels = json.load(open(test))["levels"]
    rt, qt = [r["bpp"] for r in levels], [r["psnr"] for r in levels]
else:
    r = json.load(open(test))["results"]; rt, qt = r["bpp"], r["psnr-rgb"]
for anchor in ("jpeg", "webp", "avif", "vqcodec"):
    a = json.load(open(f"benchmarks/results/kodak/{anchor}.json"))["results"]
    print(anchor, f"{bd_rate(a['bpp'], a['psnr-rgb'], rt, qt, method='akima'):+.1f}%")
