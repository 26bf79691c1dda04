"""Entropy coding of index grids with constriction's range coder."""

from __future__ import annotations

import functools
import math

import numpy as np

from .errors import CorruptDataError, FormatError, ImageTooLargeError
from .tables import BOOST_SHIFT, CodingTables

__all__ = ["encode_indices", "decode_indices"]

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
