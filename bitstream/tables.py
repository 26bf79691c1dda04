"""Integer frequency tables for the index grids, and the context model.

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

from collections.abc import Iterable

import numpy as np

from .errors import CorruptDataError, FormatError

__all__ = ["CodingTables", "TABLES_MAGIC", "TABLES_VERSION"]

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
        from ._fit import fit_tables

        return fit_tables(cls, grids, int(num_stages), int(num_codes), int(num_buckets), bool(spatial))

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
        from .coding import _check_indices, _iter_stage_models

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
