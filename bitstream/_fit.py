"""Fitting CodingTables to training index grids (numpy only; not needed to decode)."""

from __future__ import annotations

import numpy as np

from .tables import BOOST_SHIFT, MAX_BOOST, MAX_ROW_SUM, _PRIOR_MASS

_BOOST_GRID = np.concatenate([[0.0], 2.0 ** np.arange(-10.0, 6.01, 1.0)])
_MAX_BOOST_SAMPLES = 1 << 16
#: Positions per stage of the training grids kept in memory for the boost fit.
_MAX_KEPT_POSITIONS = 1 << 19


def _kmeans_buckets(cond: np.ndarray, weight: np.ndarray, B: int, iters: int = 30) -> np.ndarray:
    """Cluster the rows of ``cond`` (K, K) into B classes; return a (K,) map."""
    K = cond.shape[0]
    if B >= K:
        return np.arange(K, dtype=np.int64)
    x = np.sqrt(cond)  # Hellinger geometry
    # deterministic farthest-point initialisation, starting from the heaviest row
    centres = [int(np.argmax(weight))]
    d = ((x - x[centres[0]]) ** 2).sum(1)
    for _ in range(1, B):
        c = int(np.argmax(d * np.sqrt(weight + 1.0)))
        centres.append(c)
        d = np.minimum(d, ((x - x[c]) ** 2).sum(1))
    ctr = x[centres].copy()
    assign = np.zeros(K, np.int64)
    for _ in range(iters):
        dist = (x * x).sum(1)[:, None] - 2 * x @ ctr.T + (ctr * ctr).sum(1)[None]
        new = dist.argmin(1)
        if _ and np.array_equal(new, assign):
            break
        assign = new
        for b in range(B):
            m = assign == b
            if m.any():
                wts = weight[m] + 1e-9
                ctr[b] = (x[m] * wts[:, None]).sum(0) / wts.sum()
    return assign


def _to_counts(real: np.ndarray) -> np.ndarray:
    """Scale non-negative real rows (.., K) to integer counts >= 1 with row sums <= MAX_ROW_SUM."""
    K = real.shape[-1]
    f = (MAX_ROW_SUM - K) / np.maximum(real.sum(-1, keepdims=True), 1e-12)
    return (np.floor(real * f) + 1).astype(np.int64)


def _neighbour_stats(grids, s, counts, bucket_map):
    """Per non-anchor training position: base prob of the true code, and per
    neighbour (combo id n*5+e or -1, is-true flag, counts towards normaliser)."""
    from .coding import _plan

    qs, combos, trues, dists = [], [], [], []
    probs = counts / counts.sum(-1, keepdims=True)
    for g in grids:
        _, h, w = g.shape
        _, non, nb = _plan(h, w)
        if len(non) == 0:
            continue
        cur = g[s].ravel()
        prev = g[s - 1].ravel() if s > 0 else None
        rows = bucket_map[s][prev[non]] if s > 0 else np.full(len(non), bucket_map[0, 0])
        valid = nb >= 0
        nbc = np.maximum(nb, 0)
        vals = np.where(valid, cur[nbc], -1)
        eq = (vals[:, :, None] == vals[:, None, :]) & valid[:, :, None] & valid[:, None, :]
        n = eq.sum(2)
        if s > 0:
            match = valid & (prev[nbc] == prev[non][:, None])
            e = (eq & match[:, None, :]).sum(2)
        else:
            e = np.zeros_like(n)
        # a neighbour counts once per distinct value: only its first occurrence
        first = valid & ~(eq & np.tril(np.ones((4, 4), bool), -1)[None]).any(2)
        x = cur[non]
        qs.append(probs[rows, x])
        combos.append(np.where(first, n * 5 + e, -1))
        trues.append(first & (vals == x[:, None]))
        dists.append(first)
    if not qs:
        return None
    q, c, t, d = (np.concatenate(a) for a in (qs, combos, trues, dists))
    if len(q) > _MAX_BOOST_SAMPLES:
        sel = np.linspace(0, len(q) - 1, _MAX_BOOST_SAMPLES).astype(np.int64)
        q, c, t, d = q[sel], c[sel], t[sel], d[sel]
    return q, c, t, d


def _fit_boost(stats, s):
    q, combo, true, first = stats
    beta = np.zeros(26)  # index 25 = "no boost" slot for combo -1
    cidx = np.where(combo >= 0, combo, 25)

    def loglik(b):
        bv = b[cidx]
        num = q + (bv * true).sum(1)
        den = 1.0 + (bv * first).sum(1)
        return float(np.log(num / den).sum())

    params = [n * 5 + e for n in range(1, 5) for e in range(0, n + 1 if s > 0 else 1)]
    params = [p for p in params if (combo == p).any()]
    best = loglik(beta)
    for _sweep in range(2):
        for p in params:
            for v in _BOOST_GRID:
                old = beta[p]
                beta[p] = v
                ll = loglik(beta)
                if ll > best + 1e-9:
                    best = ll
                else:
                    beta[p] = old
    out = np.zeros((5, 5), np.int64)
    for p in params:
        out[p // 5, p % 5] = min(MAX_BOOST, int(round(beta[p] * (1 << BOOST_SHIFT))))
    return out


def fit_tables(cls, grids, S: int, K: int, B: int, spatial: bool):
    if not 1 <= S <= 255 or not 2 <= K <= 1 << 16 or not 1 <= B <= 256:
        raise ValueError(f"invalid sizes: num_stages={S}, num_codes={K}, num_buckets={B}")
    B = min(B, K)
    # stream over the grids: accumulate counts, keep only a bounded sample of
    # whole grids (the first ones) for fitting the neighbour boosts
    gl = []
    kept = 0
    marg = np.zeros((S, K))
    joint = np.zeros((S, K, K)) if B > 1 and S > 1 else None
    for g in grids:
        a = np.asarray(g)
        if a.ndim != 3 or a.shape[0] != S or 0 in a.shape:
            raise ValueError(f"training grid must have shape ({S}, h, w), got {a.shape}")
        if not np.issubdtype(a.dtype, np.integer) or a.min() < 0 or a.max() >= K:
            raise ValueError(f"training grid must hold integer codes in [0, {K})")
        a = a.astype(np.int64)
        flat = a.reshape(S, -1)
        for s in range(S):
            marg[s] += np.bincount(flat[s], minlength=K)
            if joint is not None and s > 0:
                joint[s] += np.bincount(flat[s - 1] * K + flat[s], minlength=K * K).reshape(K, K)
        if spatial and kept < _MAX_KEPT_POSITIONS:
            gl.append(a)
            kept += flat.shape[1]
    q = (marg + 1.0) / (marg + 1.0).sum(1, keepdims=True)
    bucket_map = np.zeros((S, K), np.int64)
    real = np.repeat((marg + _PRIOR_MASS * q)[:, None, :], B, axis=1)
    for s in range(1, S):
        if joint is None:
            break
        j = joint[s]
        rs = j.sum(1)
        cond = (j + _PRIOR_MASS * q[s]) / (rs[:, None] + _PRIOR_MASS)
        bucket_map[s] = _kmeans_buckets(cond, rs, B)
        bc = np.zeros((B, K))
        np.add.at(bc, bucket_map[s], j)
        real[s] = bc + _PRIOR_MASS * q[s]
    counts = _to_counts(real)
    boost = np.zeros((S, 5, 5), np.int64)
    if spatial:
        for s in range(S):
            stats = _neighbour_stats(gl, s, counts[s], bucket_map)
            if stats is not None:
                boost[s] = _fit_boost(stats, s)
    return cls(bucket_map, counts, boost)
