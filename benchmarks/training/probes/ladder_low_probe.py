"""The low operating points' curve on three sets of photos under candidate ladders (per image, the coding with the
least bpp + lambda * MSE among a point's codings, lambda its level's), from the per-image codings of
scale_codings_probe.py (8 tuning photos), heldout_codings_probe.py (the 17 other train-extra photos) and
train_codings_probe.py (the 40 training photographs). Run from the repository root."""
import json, numpy as np
P = "benchmarks/training/probes/"
sets = {n: json.load(open(P + f)) for n, f in (("train40", "train_codings_probe.json"), ("tuning8", "scale_codings_probe.json"), ("other17", "heldout_codings_probe.json"))}
psnr = lambda m: 10 * np.log10(255**2 / m)
lams = [0.0003, 0.00055, 0.001, 0.0018, 0.0035, 0.0067, 0.013, 0.025, 0.0483, 0.0932]
k = lambda l, s: f"{l}/{s:.4f}"
TOP = [(4, 1.0, [(5, 3/4)]), (5, 1.0, [(6, 2/3)]), (6, 1.0, [(7, 2/3)]), (7, 1.0, []), (8, 1.0, []), (9, 1.0, [])]
def curve(d, lad):
    photos = list(d); pts = []
    for level, scale, alts in lad:
        cands = [k(level, scale)] + [k(l, s) for l, s in alts]
        pick = {p: min(cands, key=lambda x: d[p][x][0] + lams[level] * d[p][x][1]) for p in photos}
        pts.append((np.mean([d[p][c][0] for p, c in pick.items()]), np.mean([psnr(d[p][c][1]) for p, c in pick.items()])))
    return pts
def bd(a, t, lo, hi):  # mean dB of t over a at equal rate, linear in log bpp
    x = np.linspace(np.log(lo), np.log(hi), 2000)
    f = lambda c: np.interp(x, np.log([b for b, q in c]), [q for b, q in c])
    return float(np.mean(f(t) - f(a)))
cur = [(0, 1/3, []), (2, 1/3, []), (4, 1/3, []), (6, 1/3, []), (6, 1/2, []), (7, 1/2, [])]
V = {"0.8.1": cur,
     "level 6 at 2/3 or 8 at 1/2 for 8 at 1/2": cur[:5] + [(5, 2/3, [(7, 1/2)])],
     "and the next level at 1/4 or 2/5 below": [(0, 1/3, [(1, 1/4)]), (2, 1/3, [(3, 1/4)]), (4, 1/3, [(5, 1/4)]), (6, 1/3, [(7, 1/4)]),
                                                (6, 1/2, [(7, 2/5)]), (5, 2/3, [(7, 1/2)])]}
ALSO = [(0, 1/3, [(1, 1/4)]), (2, 1/3, [(3, 1/4)]), (4, 1/3, [(5, 1/4)]), (6, 1/3, [(7, 1/4)]), (6, 1/2, [(7, 2/5)]), (5, 2/3, [(7, 1/2)])]
TOP2 = [(4, 1.0, [(5, 3/4), (6, 2/3)])] + TOP[1:]  # and level 7 at 2/3 as a second alternative at level 5
base = {n: curve(d, cur + TOP) for n, d in sets.items()}
for name, lad in V.items():
    print(name)
    for n, d in sets.items():
        c = curve(d, lad + TOP)
        print(f"   {n:8s} 0.012-0.05 bpp {bd(base[n], c, 0.012, 0.05):+.3f} dB | 0.05-0.15 {bd(base[n], c, 0.05, 0.15):+.3f} | 0.15-0.5 {bd(base[n], c, 0.15, 0.5):+.3f} | points "
              + " ".join(f"{b:.3f}/{q:.2f}" for b, q in c[:7]))
print("and level 7 at 2/3 as a second alternative at level 5 (quality 50)")
for n, d in sets.items():
    c = curve(d, ALSO + TOP2)
    print(f"   {n:8s} 0.012-0.05 bpp {bd(base[n], c, 0.012, 0.05):+.3f} dB | 0.05-0.15 {bd(base[n], c, 0.05, 0.15):+.3f} | 0.15-0.5 {bd(base[n], c, 0.15, 0.5):+.3f} | points "
          + " ".join(f"{b:.3f}/{q:.2f}" for b, q in c[:8]))
