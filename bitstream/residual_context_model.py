"""The context model of residual-VQ index grids: integer tables, their fitting, and range coding.

A grid holds one index per residual stage and latent position, shape (S, h, w).

Context model (see FORMAT.md, "Coding tables")
----------------------------------------------
Stages are coded in order 0, 1, ..., and within a stage the positions are
split in a checkerboard: *anchors* ``(i + j) % 2 == 0`` first (grouped by
their bucket, ascending, raster order within a bucket), then the
*non-anchors* ``(i + j) % 2 == 1`` in raster order.

* Every stage ``s`` has ``B`` count rows ``counts[s, b, :]`` (all entries
  >= 1).  The row used at a position is ``b = bucket_map[s, prev]``, where
  ``prev`` is the index of stage ``s - 1`` at the same position (stage 0
  always uses row ``bucket_map[0, 0]``).  The bucket map clusters the K
  previous-stage codes into B classes with similar conditional statistics.
* Non-anchor positions additionally see their (up to) four anchor
  neighbours of the same stage, already decoded.  For a candidate code
  ``x`` let ``n`` = how many of those neighbours equal ``x`` and ``e`` = how
  many of those matching neighbours also have the same previous-stage index
  as the current position.  The weight of ``x`` is::

      w(x) = counts[s, b, x] * 2**16 + boost[s, n, e] * N_b,
      N_b  = sum_x counts[s, b, x]

  with ``boost[s, 0, 0] == 0``.  All of this is exact integer arithmetic
  (< 2**53), converted exactly to float64 and handed unnormalised to
  constriction's ``Categorical(perfect=False)``, so encoder and decoder
  build bit-identical models on any machine.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable

import numpy as np

from .errors import CorruptDataError, FormatError, ImageTooLargeError

__all__ = ["CodingTables", "encode_indices", "decode_indices", "TABLES_MAGIC", "TABLES_VERSION"]

TABLES_MAGIC = 0x54435156  # b"VQCT" read as little-endian int32
TABLES_VERSION = 1
_HEADER_LEN = 8
#: Row sums of the count tables are at most this (keeps weights < 2**53).
MAX_ROW_SUM = 1 << 20
#: Boost values are at most this (boost / 2**16 = extra mass relative to the row).
MAX_BOOST = 1 << 24
BOOST_SHIFT = 16
MAX_CODES = 1 << 16
MAX_STAGES = 255
MAX_BUCKETS = 256
DEFAULT_BUCKETS = 16
#: Pseudo-count mass of the stage marginal mixed into every bucket row.
_PRIOR_MASS = 16.0
#: constriction's Categorical models quantise probabilities to multiples of
#: 2**-24 and give every symbol at least one unit ...
CODER_PRECISION = 24
#: ... and rounding moves a probability up by far less than this.
_QUANTISATION_SLACK = 2.0**-20


class CodingTables:
    """Integer probability tables for ``num_stages`` stages of ``num_codes`` codes.

    Attributes (all numpy int64 arrays, read-only by convention):
    ``bucket_map`` (S, K), ``counts`` (S, B, K), ``boost`` (S, 5, 5).
    """

    def __init__(self, bucket_map: np.ndarray, counts: np.ndarray, boost: np.ndarray):
        bucket_map = np.asarray(bucket_map)
        counts = np.asarray(counts)
        boost = np.asarray(boost)
        if counts.ndim != 3 or bucket_map.ndim != 2 or boost.ndim != 3:
            raise CorruptDataError("coding tables have the wrong number of dimensions")
        S, B, K = counts.shape
        if not (1 <= S <= MAX_STAGES and 1 <= B <= MAX_BUCKETS and 2 <= K <= MAX_CODES):
            raise CorruptDataError(f"coding tables have an invalid shape {counts.shape}")
        if bucket_map.shape != (S, K) or boost.shape != (S, 5, 5):
            raise CorruptDataError("coding table parts have inconsistent shapes")
        for name, a in (("bucket_map", bucket_map), ("counts", counts), ("boost", boost)):
            if not np.issubdtype(a.dtype, np.integer):
                raise CorruptDataError(f"coding table {name} must be integers, got {a.dtype}")
        if bucket_map.min() < 0 or bucket_map.max() >= B:
            raise CorruptDataError("coding table bucket map refers to a missing bucket")
        if counts.min() < 1:
            raise CorruptDataError("coding table counts must all be >= 1")
        if counts.max() > MAX_ROW_SUM or counts.astype(np.int64).sum(axis=2).max() > MAX_ROW_SUM:
            raise CorruptDataError(f"coding table rows must sum to at most {MAX_ROW_SUM}")
        if boost.min() < 0 or boost.max() > MAX_BOOST:
            raise CorruptDataError(f"coding table boosts must lie in [0, {MAX_BOOST}]")
        if (boost[:, 0, 0] != 0).any() or (np.triu(np.ones((5, 5), bool), 1)[None] & (boost != 0)).any():
            raise CorruptDataError("coding table boosts must be zero where n = 0 or e > n")
        self.bucket_map = bucket_map.astype(np.int64)
        self.counts = counts.astype(np.int64)
        self.boost = boost.astype(np.int64)
        for a in (self.bucket_map, self.counts, self.boost):
            a.setflags(write=False)
        self.row_sums = self.counts.sum(axis=2)
        self.row_sums.setflags(write=False)
        # exact float64 copies used to build coder models (all values < 2**53)
        self._base_weights = (self.counts << BOOST_SHIFT).astype(np.float64)
        self._boost_mass = self.boost.astype(np.float64)
        self._row_sums_f = self.row_sums.astype(np.float64)
        self._min_bits = self._min_bits_per_symbol()

    def _min_bits_per_symbol(self) -> np.ndarray:
        """(S, 2) lower bounds on the coded cost in bits of one anchor / non-anchor symbol.

        The most probable symbol of a row has probability cmax / N_b; a
        non-anchor's boost can raise it at most to (cmax * 2**16 + beta * N_b) /
        (N_b * (2**16 + beta)), beta the stage's largest boost.  The bound
        allows for constriction's quantisation of the model.
        """
        K = self.num_codes
        n = self.row_sums.astype(np.float64)
        cmax = self.counts.max(axis=2).astype(np.float64)
        beta = self.boost.max(axis=(1, 2)).astype(np.float64)[:, None]
        anchor = cmax / n
        non = (cmax * 2.0**BOOST_SHIFT + beta * n) / (n * (2.0**BOOST_SHIFT + beta))
        ceiling = 1.0 - (K - 1) * 2.0**-CODER_PRECISION  # the others keep one unit each
        p = np.minimum(np.stack([anchor, non], axis=-1) + _QUANTISATION_SLACK, ceiling)
        bits = -np.log2(p.max(axis=1))  # the likeliest row gives the least cost
        bits.setflags(write=False)
        return bits

    # -- shape ----------------------------------------------------------------
    @property
    def num_stages(self) -> int:
        return self.counts.shape[0]

    @property
    def num_buckets(self) -> int:
        return self.counts.shape[1]

    @property
    def num_codes(self) -> int:
        return self.counts.shape[2]

    def __repr__(self) -> str:
        return (
            f"CodingTables(num_stages={self.num_stages}, num_codes={self.num_codes}, "
            f"num_buckets={self.num_buckets})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CodingTables):
            return NotImplemented
        return np.array_equal(self.to_array(), other.to_array())

    __hash__ = None  # type: ignore[assignment]

    def min_coded_bits(self, num_stages: int, height: int, width: int) -> float:
        """Fewest bits any payload for a (num_stages, height, width) grid can hold.

        Each symbol costs at least the information content of the most
        probable symbol its model can have, so a payload much shorter than
        this cannot encode the grid (see FORMAT.md, "Index payload").
        """
        cells = int(height) * int(width)
        anchors = (cells + 1) // 2
        bits = self._min_bits[: int(num_stages)]
        return float(anchors * bits[:, 0].sum() + (cells - anchors) * bits[:, 1].sum())

    # -- construction -----------------------------------------------------------
    @classmethod
    def uniform(cls, num_stages: int, num_codes: int) -> "CodingTables":
        """Tables giving every code the same probability (no context)."""
        S, K = int(num_stages), int(num_codes)
        return cls(np.zeros((S, K), np.int64), np.ones((S, 1, K), np.int64), np.zeros((S, 5, 5), np.int64))

    @classmethod
    def fit(
        cls,
        grids: Iterable[np.ndarray],
        num_stages: int,
        num_codes: int,
        *,
        num_buckets: int = DEFAULT_BUCKETS,
        spatial: bool = True,
    ) -> "CodingTables":
        """Fit tables to training index grids, each of shape ``(num_stages, h, w)``.

        ``num_buckets``: classes of previous-stage codes (1 = one static table
        per stage).  ``spatial``: fit the neighbour boosts (False = all zero).
        Deterministic: the same grids give the same tables.
        """
        return _fit_tables(cls, grids, int(num_stages), int(num_codes), int(num_buckets), bool(spatial))

    # -- serialisation ------------------------------------------------------------
    def to_array(self) -> np.ndarray:
        """All tables as one flat int32 array (see FORMAT.md for its layout)."""
        S, B, K = self.counts.shape
        head = np.array([TABLES_MAGIC, TABLES_VERSION, S, K, B, 0, 0, 0], np.int64)
        flat = np.concatenate([head, self.bucket_map.ravel(), self.counts.ravel(), self.boost.ravel()])
        return flat.astype(np.int32)

    @classmethod
    def from_array(cls, arr: np.ndarray) -> "CodingTables":
        """Inverse of :meth:`to_array`; raises :class:`FormatError` on a bad array."""
        try:
            a = np.asarray(arr)
        except Exception as exc:  # pragma: no cover - exotic inputs
            raise FormatError(f"coding tables: cannot read array ({exc})") from None
        if not np.issubdtype(a.dtype, np.integer):
            raise FormatError(f"coding tables must be an integer array, got dtype {a.dtype}")
        a = a.astype(np.int64).ravel()
        if a.size < _HEADER_LEN:
            raise FormatError("coding tables array is too short to hold its header")
        magic, version, S, K, B = (int(v) for v in a[:5])
        if magic != TABLES_MAGIC:
            raise FormatError("not a coding-tables array (bad magic number)")
        if version != TABLES_VERSION:
            raise FormatError(f"unsupported coding-tables version {version}")
        if (a[5:_HEADER_LEN] != 0).any():
            raise FormatError("coding tables header has nonzero reserved fields")
        if not (1 <= S <= MAX_STAGES and 2 <= K <= MAX_CODES and 1 <= B <= MAX_BUCKETS):
            raise FormatError(f"coding tables header has invalid sizes S={S} K={K} B={B}")
        n_map, n_counts, n_boost = S * K, S * B * K, S * 25
        if a.size != _HEADER_LEN + n_map + n_counts + n_boost:
            raise FormatError(
                f"coding tables array has {a.size} entries, expected {_HEADER_LEN + n_map + n_counts + n_boost}"
            )
        p = _HEADER_LEN
        bucket_map = a[p : p + n_map].reshape(S, K)
        p += n_map
        counts = a[p : p + n_counts].reshape(S, B, K)
        p += n_counts
        boost = a[p:].reshape(S, 5, 5)
        return cls(bucket_map, counts, boost)

    # -- model evaluation ----------------------------------------------------------
    def cross_entropy_bits(self, indices: np.ndarray) -> float:
        """Ideal coded size in bits of ``indices`` (S_used, h, w) under these tables."""
        idx = _check_indices(indices, self)
        total = 0.0
        flat = idx.reshape(idx.shape[0], -1)
        for s, pos, w in _iter_stage_models(idx, self, decoding=False):
            sym = flat[s, pos]
            if w.ndim == 1:
                p = w[sym] / w.sum()
            else:
                p = w[np.arange(len(pos)), sym] / w.sum(axis=1)
            total -= float(np.sum(np.log2(p)))
        return total


# -- range coding ------------------------------------------------------------------
#: Float64 entries per batched coder call (bounds memory for huge grids).
_CHUNK_ENTRIES = 1 << 21


def _constriction():
    import constriction  # imported lazily: keeps `import bitstream` fast

    return constriction


#: Grids up to this many cells keep their coding plan cached (larger plans
#: would pin tens of MB each in a long-running process).
_CACHED_PLAN_CELLS = 1 << 16


def _plan(h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Checkerboard coding order (see :func:`_make_plan`), cached for small grids."""
    if h * w <= _CACHED_PLAN_CELLS:
        return _cached_plan(h, w)
    return _make_plan(h, w)


def _make_plan(h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Checkerboard coding order: anchor positions, non-anchor positions, and
    the flat indices of each non-anchor's up/down/left/right neighbour (-1 = none)."""
    flat = np.arange(h * w, dtype=np.int64)
    i, j = flat // w, flat % w
    anchors = flat[(i + j) % 2 == 0]
    non = flat[(i + j) % 2 == 1]
    ni, nj = non // w, non % w
    nb = np.stack(
        [
            np.where(ni > 0, non - w, -1),
            np.where(ni < h - 1, non + w, -1),
            np.where(nj > 0, non - 1, -1),
            np.where(nj < w - 1, non + 1, -1),
        ],
        axis=1,
    )
    for a in (anchors, non, nb):
        a.setflags(write=False)
    return anchors, non, nb


_cached_plan = functools.lru_cache(maxsize=32)(_make_plan)


def _iter_stage_models(idx: np.ndarray, tables: CodingTables, decoding: bool):
    """Yield ``(stage, positions, weights)`` chunks in coding order.

    ``weights`` is either one row (K,) shared by all positions of the chunk, or
    one row per position (len(positions), K).

    ``idx`` is an (S, h, w) int64 array.  When decoding, the caller must store
    the decoded symbols of each chunk into ``idx`` before asking for the next
    chunk (later chunks' contexts read them).  ``weights`` is a float64 array
    of exact integers: the unnormalised model of each symbol.
    """
    S, h, w = idx.shape
    K = tables.num_codes
    flat = idx.reshape(S, h * w)
    anchors, non, nb = _plan(h, w)
    chunk = max(1, _CHUNK_ENTRIES // K)
    for s in range(S):
        g = flat[s]
        base = tables._base_weights[s]
        row_sums = tables._row_sums_f[s]
        boost = tables._boost_mass[s]
        if s > 0:
            prev = flat[s - 1]
            rows_all = tables.bucket_map[s][prev]
        else:
            prev = None
            rows_all = np.full(h * w, tables.bucket_map[0, 0], np.int64)
        # anchors: grouped by bucket (ascending), raster order within a bucket;
        # one shared model per group (a 1-D weight row)
        if s > 0:
            arows = rows_all[anchors]
            order = np.argsort(arows, kind="stable")
            sorted_rows = arows[order]
            cuts = np.flatnonzero(np.diff(sorted_rows)) + 1
            for grp in np.split(order, cuts):
                if len(grp):
                    yield s, anchors[grp], base[arows[grp[0]]]
        elif len(anchors):
            yield s, anchors, base[rows_all[0]]
        for start in range(0, len(non), chunk):
            pos = non[start : start + chunk]
            nbi = nb[start : start + chunk]
            rows = rows_all[pos]
            valid = nbi >= 0
            nbc = np.maximum(nbi, 0)
            vals = np.where(valid, g[nbc], -1)
            eq = (vals[:, :, None] == vals[:, None, :]) & valid[:, :, None]
            n = eq.sum(axis=2)
            if prev is not None:
                match = valid & (prev[nbc] == prev[pos][:, None])
                e = (eq & match[:, None, :]).sum(axis=2)
            else:
                e = np.zeros_like(n)
            weights = base[rows]
            # boosted weight of each neighbour's value (exact: integers < 2**53);
            # neighbours with equal values get equal (n, e), so duplicate writes agree
            extra = boost[n, e] * row_sums[rows][:, None]
            r = np.broadcast_to(np.arange(len(pos))[:, None], vals.shape)
            rv, vv = r[valid], vals[valid]
            weights[rv, vv] = base[rows[rv], vv] + extra[valid]
            yield s, pos, weights


def _check_indices(indices: np.ndarray, tables: CodingTables) -> np.ndarray:
    a = np.asarray(indices)
    if a.ndim != 3 or 0 in a.shape:
        raise ValueError(f"indices must have shape (stages, height, width), got {a.shape}")
    if not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"indices must be integers, got dtype {a.dtype}")
    if a.shape[0] > tables.num_stages:
        raise ValueError(f"indices have {a.shape[0]} stages, the tables only {tables.num_stages}")
    if a.min() < 0 or a.max() >= tables.num_codes:
        raise ValueError(f"indices must lie in [0, {tables.num_codes}), got [{a.min()}, {a.max()}]")
    return np.ascontiguousarray(a, dtype=np.int64)


def encode_indices(indices: np.ndarray, tables: CodingTables) -> bytes:
    """Entropy-code an index array of shape (S_used, h, w) with values in [0, K).

    Returns a payload of whole little-endian 32-bit words.
    """
    idx = _check_indices(indices, tables)
    c = _constriction()
    family = c.stream.model.Categorical(perfect=False)
    enc = c.stream.queue.RangeEncoder()
    flat = idx.reshape(idx.shape[0], -1)
    for s, pos, weights in _iter_stage_models(idx, tables, decoding=False):
        symbols = flat[s, pos].astype(np.int32)
        if weights.ndim == 1:
            enc.encode(symbols, c.stream.model.Categorical(weights, perfect=False))
        else:
            enc.encode(symbols, family, weights)
    return enc.get_compressed().astype("<u4").tobytes()


#: Default cap on num_stages * height * width in :func:`decode_indices`
#: (8 stages of the latent grid of a 2**28-pixel image at stride 8 is 2**25).
DEFAULT_MAX_SYMBOLS = 1 << 27
#: A range coder's output may fall short of the information content it holds
#: by less than this (its final state words); see FORMAT.md.
PAYLOAD_SLACK_BITS = 64


def decode_indices(
    payload: bytes,
    tables: CodingTables,
    num_stages: int,
    height: int,
    width: int,
    *,
    max_symbols: int | None = DEFAULT_MAX_SYMBOLS,
) -> np.ndarray:
    """Inverse of :func:`encode_indices`: return an int64 array (num_stages, height, width).

    Raises :class:`FormatError` if the payload cannot be a valid encoding, and
    :class:`ImageTooLargeError` (before allocating anything) if
    ``num_stages * height * width`` exceeds ``max_symbols`` (None = no cap).
    A payload too short for the grid (fewer bits than
    :meth:`CodingTables.min_coded_bits` less :data:`PAYLOAD_SLACK_BITS`) raises
    :class:`CorruptDataError` before anything is allocated, so the work done
    is bounded by the payload's length.
    """
    if not isinstance(tables, CodingTables):
        raise TypeError("tables must be a bitstream.CodingTables")
    for name, v in (("num_stages", num_stages), ("height", height), ("width", width)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    if num_stages > tables.num_stages:
        raise ValueError(f"num_stages={num_stages} exceeds the tables' {tables.num_stages} stages")
    if max_symbols is not None and int(num_stages) * int(height) * int(width) > max_symbols:
        raise ImageTooLargeError(
            f"index grid {num_stages}x{height}x{width} has more than max_symbols={max_symbols} entries"
        )
    payload = bytes(payload)
    if len(payload) % 4:
        raise CorruptDataError(f"index payload is {len(payload)} bytes, not a whole number of 32-bit words")
    need = tables.min_coded_bits(num_stages, height, width) - PAYLOAD_SLACK_BITS
    if 8 * len(payload) < need:
        raise CorruptDataError(
            f"index payload is {len(payload)} bytes, too short for a {num_stages}x{height}x{width} "
            f"index grid (these coding tables need at least {math.ceil(need / 8)} bytes)"
        )
    c = _constriction()
    idx = np.zeros((int(num_stages), int(height), int(width)), np.int64)
    flat = idx.reshape(idx.shape[0], -1)
    words = np.frombuffer(payload, "<u4").astype(np.uint32)
    try:
        family = c.stream.model.Categorical(perfect=False)
        dec = c.stream.queue.RangeDecoder(words)
        for s, pos, weights in _iter_stage_models(idx, tables, decoding=True):
            if weights.ndim == 1:
                flat[s, pos] = dec.decode(c.stream.model.Categorical(weights, perfect=False), len(pos))
            else:
                flat[s, pos] = dec.decode(family, weights)
        exhausted = dec.maybe_exhausted()
    except FormatError:
        raise
    except Exception as exc:  # constriction reports invalid streams as generic errors
        raise CorruptDataError(f"index payload is corrupt: {exc}") from None
    if not exhausted:
        raise CorruptDataError("index payload is corrupt: it has data left over after the last symbol")
    if idx.min() < 0 or idx.max() >= tables.num_codes:  # pragma: no cover - defensive
        raise CorruptDataError("index payload is corrupt: decoded an out-of-range code")
    return idx


# -- fitting (numpy only; not needed to decode) ---------------------------------------
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


def _fit_tables(cls, grids, S: int, K: int, B: int, spatial: bool):
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
