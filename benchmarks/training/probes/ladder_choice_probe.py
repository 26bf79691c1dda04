"""The ladder's curve on the tuning photos with each rule for choosing among a point's alternatives, from the
per-image codings of scale_codings_probe.py (run from the repository root)."""
import json, numpy as np, sys
d = json.load(open("benchmarks/training/probes/scale_codings_probe.json"))
photos = list(d)
psnr = lambda m: 10 * np.log10(255**2 / m)
lams = [0.0003, 0.00055, 0.001, 0.0018, 0.0035, 0.0067, 0.013, 0.025, 0.0483, 0.0932]
k = lambda l, s: f"{l}/{s:.4f}"
ladder = [(0, 1/3, []), (2, 1/3, []), (4, 1/3, []), (6, 1/3, []), (6, 1/2, []), (7, 1/2, []),
          (4, 1.0, [(5, 2/3)]), (5, 1.0, [(6, 2/3)]), (6, 1.0, [(7, 2/3)]), (7, 1.0, []), (8, 1.0, []), (9, 1.0, [])]
def curve(rule, lad=ladder):
    pts = []
    for level, scale, alts in lad:
        cands = [k(level, scale)] + [k(l, s) for l, s in alts]
        pick = {p: rule(p, cands, lams[level]) for p in photos}
        pts.append((np.mean([d[p][c][0] for p, c in pick.items()]), np.mean([psnr(d[p][c][1]) for p, c in pick.items()])))
    return pts
rules = {
    "native (no alternatives)": lambda p, c, lam: c[0],
    "0.8 as shipped (least error wins)": lambda p, c, lam: min(c, key=lambda x: d[p][x][1]),
    "fixed: bpp + lambda * MSE": lambda p, c, lam: min(c, key=lambda x: d[p][x][0] + lam * d[p][x][1]),
}
def env(pts):
    out, best = [], -1
    for b, q in sorted(pts):
        if q > best: out.append((b, q)); best = q
    return out
def bd_psnr(a, t, lo=None, hi=None):
    la, lt = np.log([b for b, q in a]), np.log([b for b, q in t])
    lo = max(la.min(), lt.min()) if lo is None else np.log(lo); hi = min(la.max(), lt.max()) if hi is None else np.log(hi)
    x = np.linspace(lo, hi, 2000)
    return float(np.mean(np.interp(x, lt, [q for b, q in t]) - np.interp(x, la, [q for b, q in a])))
be = env(curve(rules["native (no alternatives)"]))
print("mean dB at equal rate against native (envelopes, linear in log bpp):")
for name, r in rules.items():
    pe = env(curve(r))
    print(f"{name:36s} all {bd_psnr(be, pe):+.3f} dB | 0.2-0.8 bpp {bd_psnr(be, pe, 0.2, 0.8):+.3f} dB")
