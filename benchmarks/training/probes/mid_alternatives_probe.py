"""Qualities 59 and 67 (levels 6 and 7) with other alternatives than the next level at 2/3: the curve between 0.3 and
1 bpp on the three sets of photos, against 0.8.2's ladder. From the committed JSONs; run from the repository root."""
import json, numpy as np
P = "benchmarks/training/probes/"
sets = {n: json.load(open(P + f)) for n, f in (("train40", "train_codings_probe.json"), ("tuning8", "scale_codings_probe.json"), ("other17", "heldout_codings_probe.json"))}
psnr = lambda m: 10 * np.log10(255**2 / m)
lams = [0.0003, 0.00055, 0.001, 0.0018, 0.0035, 0.0067, 0.013, 0.025, 0.0483, 0.0932]
k = lambda l, s: f"{l}/{s:.4f}"
def curve(d, lad):
    pts = []
    for level, scale, alts in lad:
        cands = [k(level, scale)] + [k(l, s) for l, s in alts]
        c = {p: min(cands, key=lambda x: d[p][x][0] + lams[level] * d[p][x][1]) for p in d}
        pts.append((np.mean([d[p][c[p]][0] for p in d]), np.mean([psnr(d[p][c[p]][1]) for p in d])))
    return pts
def bd(a, t, lo, hi):
    x = np.linspace(np.log(lo), np.log(hi), 2000)
    f = lambda c: np.interp(x, np.log([b for b, q in c]), [q for b, q in c])
    return float(np.mean(f(t) - f(a)))
LOW = [(0, 1/3, [(1, 1/4)]), (2, 1/3, [(3, 1/4)]), (4, 1/3, [(5, 1/4)]), (6, 1/3, [(7, 1/4)]), (6, 1/2, [(7, 2/5)]), (5, 2/3, [(7, 1/2)]), (4, 1.0, [(5, 3/4), (6, 2/3)])]
END = [(7, 1.0, []), (8, 1.0, []), (9, 1.0, [])]
V = {"0.8.2: next level at 2/3": [(5, 1.0, [(6, 2/3)]), (6, 1.0, [(7, 2/3)])],
     "and at 3/4": [(5, 1.0, [(6, 2/3), (6, 3/4)]), (6, 1.0, [(7, 2/3), (7, 3/4)])],
     "at 3/4 instead": [(5, 1.0, [(6, 3/4)]), (6, 1.0, [(7, 3/4)])],
     "and the level after at 1/2": [(5, 1.0, [(6, 2/3), (7, 1/2)]), (6, 1.0, [(7, 2/3), (8, 1/2)])]}
base = {n: curve(d, LOW + V["0.8.2: next level at 2/3"] + END) for n, d in sets.items()}
for name, mid in V.items():
    print(f"{name:28s}", " | ".join(f"{n}: {bd(base[n], curve(d, LOW + mid + END), 0.3, 1.0):+.3f} dB" for n, d in sets.items()))
