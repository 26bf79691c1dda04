"""Measure the coding tables on realistic index grids (a development tool).

    python -m bitstream.measure_tables [--grids grids.npz] [--save grids.npz]

``grids.npz`` holds ``train`` and ``test`` arrays of shape (n, S, h, w), e.g.
real model indices.  Without it, synthetic residual-VQ grids are made: 48
dead-leaves images (a standard model of natural-image statistics: occluding
discs with power-law radii, shading and noise), 768x512, cut into 8x8x3
patches, projected to 32 PCA dimensions and quantised by an 8-stage, 256-code
residual k-means VQ trained on 36 of them; the other 12 are held out.

Reports held-out bits per index for one static table per stage vs the
context model (previous-stage buckets, + checkerboard neighbour boosts), the
coded size vs the cross-entropy, and coding speed.  Uses numpy only.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from . import CodingTables, decode_indices, encode_indices


def dead_leaves(rng, H=512, W=768, n=6000, rmin=2.0, rmax=200.0):
    img = np.zeros((H, W, 3))
    filled = np.zeros((H, W), bool)
    yy, xx = np.mgrid[0:H, 0:W]
    u = rng.random(n)
    a, b = rmin**-2, rmax**-2
    radii = (a - u * (a - b)) ** -0.5  # density ~ r^-3
    for rr in radii:
        cy, cx = rng.uniform(-20, H + 20), rng.uniform(-20, W + 20)
        y0, y1 = int(max(0, cy - rr)), int(min(H, cy + rr + 1))
        x0, x1 = int(max(0, cx - rr)), int(min(W, cx + rr + 1))
        if y0 >= y1 or x0 >= x1:
            continue
        sy, sx = yy[y0:y1, x0:x1] - cy, xx[y0:y1, x0:x1] - cx
        m = (sy * sy + sx * sx <= rr * rr) & ~filled[y0:y1, x0:x1]
        if not m.any():
            continue
        col = rng.random(3)
        g = rng.normal(0, 0.002, 2)
        shade = 1 + g[0] * sy + g[1] * sx
        img[y0:y1, x0:x1][m] = col[None, :] * shade[m][:, None]
        filled[y0:y1, x0:x1] |= m
        if filled.all():
            break
    img += rng.normal(0, 0.02, img.shape)
    return np.clip(img, 0, 1)


def _kmeans(x, k, rng, iters=12):
    c = x[rng.choice(len(x), k, replace=False)].copy()
    for _ in range(iters):
        a = _assign(x, c)
        cnt = np.bincount(a, minlength=k)
        s = np.zeros_like(c)
        np.add.at(s, a, x)
        nz = cnt > 0
        c[nz] = s[nz] / cnt[nz, None]
        dead = np.flatnonzero(~nz)
        if len(dead):
            c[dead] = x[rng.choice(len(x), len(dead), replace=False)]
    return c


def _assign(x, c):
    return ((x * x).sum(1)[:, None] - 2 * x @ c.T + (c * c).sum(1)[None]).argmin(1)


def synthetic_grids(n=48, S=8, K=256, D=32, seed=1):
    rng = np.random.default_rng(seed)
    imgs = []
    for _ in range(n):
        im = dead_leaves(rng)
        H, W, _ = im.shape
        imgs.append(im.reshape(H // 8, 8, W // 8, 8, 3).transpose(0, 2, 1, 3, 4).reshape(H // 8, W // 8, 192))
    ntr = n * 3 // 4
    X = np.concatenate([p.reshape(-1, 192) for p in imgs[:ntr]])
    mu = X.mean(0)
    P = np.linalg.svd((X - mu)[::7], full_matrices=False)[2][:D].T
    feats = [(p.reshape(-1, 192) - mu) @ P for p in imgs]
    R = np.concatenate(feats[:ntr]).copy()
    books = []
    for _ in range(S):
        c = _kmeans(R, K, rng)
        books.append(c)
        R -= c[_assign(R, c)]
    grids = []
    for f, p in zip(feats, imgs):
        r, idx = f.copy(), []
        for c in books:
            a = _assign(r, c)
            idx.append(a)
            r -= c[a]
        grids.append(np.stack(idx).reshape(S, *p.shape[:2]))
    return np.stack(grids[:ntr]), np.stack(grids[ntr:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grids")
    ap.add_argument("--save")
    args = ap.parse_args()
    if args.grids:
        d = np.load(args.grids)
        train, test = d["train"], d["test"]
    else:
        train, test = synthetic_grids()
        if args.save:
            np.savez(args.save, train=train, test=test)
    _, S, h, w = test.shape
    K = int(max(train.max(), test.max())) + 1
    n = test[:, 0].size
    print(f"train {train.shape}, held-out {test.shape}, K={K}")
    results = {}
    for name, kw in [
        ("static (1 table/stage)", dict(num_buckets=1, spatial=False)),
        ("prev-stage buckets B=16", dict(num_buckets=16, spatial=False)),
        ("checkerboard boosts only", dict(num_buckets=1, spatial=True)),
        ("buckets + boosts (default)", dict(num_buckets=16, spatial=True)),
    ]:
        t0 = time.perf_counter()
        tables = CodingTables.fit(list(train), S, K, **kw)
        fit_s = time.perf_counter() - t0
        per = np.zeros(S)
        for g in test:
            prev = 0.0
            for s in range(S):
                cur = tables.cross_entropy_bits(g[: s + 1])
                per[s] += cur - prev
                prev = cur
        per /= n
        results[name] = (tables, per)
        print(
            f"{name:28s} {per.sum():7.3f} bits/position ({per.mean():.3f}/index), "
            f"per stage {np.round(per, 3).tolist()}, fit {fit_s:.1f}s, table {tables.to_array().nbytes} B"
        )
    base = results["static (1 table/stage)"][1]
    for name, (_, per) in results.items():
        print(f"saving of {name:28s}: {100 * (1 - per.sum() / base.sum()):5.2f}%  "
              f"cumulative by stages 1..S: {np.round(100 * (1 - per.cumsum() / base.cumsum()), 1).tolist()}")
    tables = results["buckets + boosts (default)"][0]
    for S_used in (1, 4, S):
        coded = ideal = 0.0
        enc_t, dec_t = [], []
        for g in test:
            t0 = time.perf_counter()
            payload = encode_indices(g[:S_used], tables)
            t1 = time.perf_counter()
            out = decode_indices(payload, tables, S_used, h, w)
            t2 = time.perf_counter()
            assert np.array_equal(out, g[:S_used])
            enc_t.append(t1 - t0)
            dec_t.append(t2 - t1)
            coded += 8 * len(payload)
            ideal += tables.cross_entropy_bits(g[:S_used])
        print(
            f"S={S_used}: coded {coded / 8 / len(test):.0f} B/image vs cross-entropy {ideal / 8 / len(test):.0f} B "
            f"(+{100 * (coded / ideal - 1):.3f}%), encode min/median {1e3 * min(enc_t):.1f}/"
            f"{1e3 * np.median(enc_t):.1f} ms, decode {1e3 * min(dec_t):.1f}/{1e3 * np.median(dec_t):.1f} ms"
        )


if __name__ == "__main__":
    main()
