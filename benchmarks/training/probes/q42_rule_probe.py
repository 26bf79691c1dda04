"""Quality 42 as level 6 at 2/3 with level 8 at 1/2 as the alternative (chosen with level 6's lambda), or the other
way round (level 8's lambda): the curve on the three sets of photos, and MS-SSIM at that point on the training and
held-out photos. From the committed JSONs; run from the repository root."""
import json, numpy as np
P = "benchmarks/training/probes/"
sets = {n: json.load(open(P + f)) for n, f in (("train40", "train_codings_probe.json"), ("tuning8", "scale_codings_probe.json"), ("other17", "heldout_codings_probe.json"))}
ms = json.load(open(P + "q42_msssim_probe.json"))
psnr = lambda m: 10 * np.log10(255**2 / m)
lams = [0.0003, 0.00055, 0.001, 0.0018, 0.0035, 0.0067, 0.013, 0.025, 0.0483, 0.0932]
k = lambda l, s: f"{l}/{s:.4f}"
def pick(row, level, cands):
    return min(cands, key=lambda x: row[x][0] + lams[level] * row[x][1])
def curve(d, lad):
    pts = []
    for level, scale, alts in lad:
        cands = [k(level, scale)] + [k(l, s) for l, s in alts]
        c = {p: pick(d[p], level, cands) for p in d}
        pts.append((np.mean([d[p][c[p]][0] for p in d]), np.mean([psnr(d[p][c[p]][1]) for p in d])))
    return pts
def bd(a, t, lo, hi):
    x = np.linspace(np.log(lo), np.log(hi), 2000)
    f = lambda c: np.interp(x, np.log([b for b, q in c]), [q for b, q in c])
    return float(np.mean(f(t) - f(a)))
low = [(0, 1/3, [(1, 1/4)]), (2, 1/3, [(3, 1/4)]), (4, 1/3, [(5, 1/4)]), (6, 1/3, [(7, 1/4)]), (6, 1/2, [(7, 2/5)])]
top = [(4, 1.0, [(5, 3/4), (6, 2/3)]), (5, 1.0, [(6, 2/3)]), (6, 1.0, [(7, 2/3)]), (7, 1.0, []), (8, 1.0, []), (9, 1.0, [])]
rules = {"level 6 at 2/3 or level 8 at 1/2 (level 6's lambda)": (5, 2/3, [(7, 1/2)]),
         "level 8 at 1/2 or level 6 at 2/3 (level 8's lambda)": (7, 1/2, [(5, 2/3)])}
base = {n: curve(d, low + [(7, 1/2, [])] + top) for n, d in sets.items()}
for name, point in rules.items():
    print(name)
    for n, d in sets.items():
        c = curve(d, low + [point] + top)
        print(f"   {n:8s} dB over level 8 at 1/2 alone, 0.1-0.5 bpp: {bd(base[n], c, 0.1, 0.5):+.3f}; point {c[5][0]:.4f} bpp {c[5][1]:.2f} dB")
    for n, photos in (("train40", [p for p in ms if p.startswith("train/") and int(p[6:9]) <= 40]), ("held25", [p for p in ms if not (p.startswith("train/") and int(p[6:9]) <= 40)])):
        level, scale, alts = point
        c = {p: pick(ms[p], level, [k(level, scale)] + [k(l, s) for l, s in alts]) for p in photos}
        print(f"   {n:8s} MS-SSIM {np.mean([ms[p][c[p]][2] for p in photos]):.4f} at {np.mean([ms[p][c[p]][0] for p in photos]):.4f} bpp, {np.mean([psnr(ms[p][c[p]][1]) for p in photos]):.2f} dB")
