"""The context model of grouped index grids: integer frequency tables, contexts from decoded indices only.

A grid holds one index per latent position and code group, shape (h, w, G).
Symbols are coded group by group; within a group, first the checkerboard's
anchor positions, then the others. Each symbol's context is one of
:data:`NUM_CONTEXTS` values computed with integer arithmetic from indices the
decoder already has:

- an index is *active* unless it is its group's most common code at that
  quality (the first of the most common, by the fitted counts);
- a position's *activity* ``a`` counts the active indices of the groups
  already coded there, and its level is
  ``L = bin((2 * a + a_up + a_down + a_left + a_right) * 32 // (6 * max(g, 1)))``
  with the bins' lower edges 1, 2, 4, 7, 11, 16, 24 (``L`` in 0..7);
- an anchor's context is ``L``;
- a non-anchor's context is ``8 + min(n + L // 2, 7)``, ``n`` the number of
  active indices among its four anchor neighbours in the current group.

Missing neighbours (borders) count as inactive.

Tables cover a *window* of ``W`` consecutive codes per quality and group
(where its indices fall; ``offsets`` holds the first), plus an escape symbol:
an index outside the window is coded as the escape, then as one of all ``K``
codes with equal probability. This keeps the tables small enough to ship
inside a model (``Q x G x 16 x (W + 1)`` counts instead of ``... x K``). Each
context's distribution is its counts plus :data:`BACKOFF` counts' worth of its
group's marginal distribution (every symbol counted once more), so a rare
context borrows from its group instead of from a flat prior. The tables are
integer counts, so the probabilities, and so the bytes, are the same on every
machine and runtime: nothing here depends on floating-point network output.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import CorruptDataError

__all__ = ["ContextModel", "NUM_CONTEXTS", "BACKOFF", "LEVEL_OF"]

NUM_CONTEXTS = 16
#: Weight, in counts, of a group's marginal distribution in each of its contexts' distributions.
BACKOFF = 32
_MAX_TOTAL = 1 << 26
#: Lower edges of the activity levels 1..7 (level 0 below the first).
_ACTIVITY_EDGES = np.array([1, 2, 4, 7, 11, 16, 24])


def _constriction():
    import constriction  # imported lazily: keeps `import bitstream` fast

    return constriction


#: Activity level of every possible ``local`` value (0..32: activity <= g at each of six counts).
LEVEL_OF = np.searchsorted(_ACTIVITY_EDGES, np.arange(33), side="right")


def _neighbour_sum(values: np.ndarray) -> np.ndarray:
    """Sum of the up/down/left/right entries of an (h, w) int array (borders count 0)."""
    h, w = values.shape
    p = np.zeros((h + 2, w + 2), values.dtype)
    p[1:-1, 1:-1] = values
    return p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:]


class _Checkerboard:
    """The anchor mask of an (h, w) grid and the flat positions of its two passes (computed once per grid)."""

    def __init__(self, h: int, w: int):
        ii, jj = np.indices((h, w))
        self.anchor = ((ii + jj) % 2 == 0).astype(np.int32)
        flat = self.anchor.ravel().astype(bool)
        self.positions = (np.flatnonzero(flat), np.flatnonzero(~flat))


class ContextModel:
    """Integer counts ``(Q, G, NUM_CONTEXTS, W + 1)`` over windows of ``W`` of ``num_codes`` codes starting at
    ``offsets`` ``(Q, G)`` (the last column counts escapes), and the coding of (h, w, G) grids with them."""

    def __init__(self, counts: np.ndarray, offsets: np.ndarray, num_codes: int):
        counts, offsets = np.asarray(counts), np.asarray(offsets)
        if counts.ndim != 4 or counts.shape[2] != NUM_CONTEXTS or counts.shape[3] < 2:
            raise ValueError(f"counts must be (Q, G, {NUM_CONTEXTS}, W + 1) with W >= 1, got {counts.shape}")
        width = counts.shape[3] - 1
        if not width <= num_codes:
            raise ValueError(f"a window of {width} codes does not fit {num_codes} codes")
        if offsets.shape != counts.shape[:2]:
            raise ValueError(f"offsets must be {counts.shape[:2]}, got {offsets.shape}")
        if counts.min(initial=0) < 0:
            raise ValueError("counts must be non-negative")
        if offsets.size and (offsets.min() < 0 or offsets.max() > num_codes - width):
            raise ValueError(f"offsets must be in 0..{num_codes - width}")
        self.counts = counts.astype(np.int64)
        self.offsets = offsets.astype(np.int64)
        self.num_codes, self.width = int(num_codes), width
        self.num_qualities, self.num_groups = counts.shape[:2]
        totals = self.counts.sum(axis=(2, 3))  # (Q, G)
        marginal = self.counts.sum(axis=2)  # (Q, G, W + 1)
        # The most common code of the window, first on ties (never the escape).
        self.usual = self.offsets + marginal[..., :width].argmax(axis=-1)  # (Q, G)
        # Each context's counts backed off to its group's marginal (BACKOFF counts' worth), every
        # symbol kept reachable: integers below 2**53, so exact float64 arithmetic on every machine.
        if totals.max(initial=0) >= _MAX_TOTAL:
            raise ValueError(f"counts of one quality and group must sum below {_MAX_TOTAL}")
        prior = marginal + 1
        weights = self.counts * prior.sum(axis=-1)[:, :, None, None] + BACKOFF * prior[:, :, None, :]
        weights = weights.astype(np.float64)
        self.probabilities = weights / weights.sum(axis=-1, keepdims=True)
        # The least a symbol can cost (its most probable symbol in its likeliest context), allowing
        # for the coder's 24-bit rounding: a payload shorter than that cannot hold the grid.
        best = np.minimum(self.probabilities.max(axis=-1) + 2.0**-23, 1.0 - width * 2.0**-24)
        self.min_bits_per_position = (-np.log2(best)).min(axis=-1).sum(axis=-1)  # (Q,)
        self._escaped = np.full(self.num_codes, 1.0 / self.num_codes)
        self._code_bits: dict[int, np.ndarray] = {}

    @classmethod
    def stored(cls, counts: np.ndarray, offsets: np.ndarray, num_codes: int) -> "ContextModel | None":
        """The model of tables kept with a network's weights; None while they are all zero (not fitted)."""
        counts = np.asarray(counts)
        return cls(counts, offsets, num_codes) if counts.any() else None

    # -- fitting -----------------------------------------------------------

    @classmethod
    def fit(cls, grids_by_quality: list[list[np.ndarray]], num_codes: int, width: int) -> "ContextModel":
        """Counts the contexts of ``grids_by_quality[q]`` ((h, w, G) int grids) at every quality.

        Each quality and group gets the window of ``width`` codes that holds the most of its indices.
        """
        q_count = len(grids_by_quality)
        groups = next(g.shape[-1] for grids in grids_by_quality for g in grids)
        width = min(int(width), int(num_codes))
        histogram = np.zeros((q_count, groups, num_codes), np.int64)
        for q, grids in enumerate(grids_by_quality):
            for grid in grids:
                for g in range(groups):
                    histogram[q, g] += np.bincount(grid[..., g].ravel(), minlength=num_codes)
        running = np.concatenate([np.zeros((q_count, groups, 1), np.int64), np.cumsum(histogram, axis=-1)], axis=-1)
        offsets = (running[..., width:] - running[..., :-width]).argmax(axis=-1)  # (Q, G), first of the best
        # The usual codes come from the marginal counts, the contexts from them: count twice.
        marginal = np.zeros((q_count, groups, NUM_CONTEXTS, width + 1), np.int64)
        inside = np.take_along_axis(histogram, offsets[..., None] + np.arange(width), axis=-1)
        marginal[:, :, 0, :width] = inside
        marginal[:, :, 0, width] = histogram.sum(axis=-1) - inside.sum(axis=-1)
        first = cls(marginal, offsets, num_codes)
        counts = np.zeros_like(marginal)
        for q, grids in enumerate(grids_by_quality):
            for grid in grids:
                for g, passes in enumerate(first._contexts(grid, q)):
                    for positions, contexts in passes:
                        symbols = first._windowed(grid[..., g].ravel()[positions], q, g)
                        np.add.at(counts[q, g], (contexts, symbols), 1)
        return cls(counts, offsets, num_codes)

    def _windowed(self, symbols: np.ndarray, q: int, g: int) -> np.ndarray:
        """Codes as window symbols: 0..W-1 inside the window, W (the escape) outside."""
        w = symbols.astype(np.int64) - self.offsets[q, g]
        return np.where((w >= 0) & (w < self.width), w, self.width)

    # -- contexts ----------------------------------------------------------

    @staticmethod
    def _levels(activity: np.ndarray, g: int) -> np.ndarray:
        """(h, w) activity levels 0..7 of group ``g``'s positions, from ``activity``: the (h, w) int32
        count of active indices in groups ``0 .. g - 1``."""
        return LEVEL_OF[(2 * activity + _neighbour_sum(activity)) * 32 // (6 * max(g, 1))]

    def _group_contexts(self, grid: np.ndarray, q: int, g: int, level: np.ndarray, anchors_done: bool,
                        board: _Checkerboard):
        """(positions, contexts) of group ``g``'s anchors, or non-anchors once the anchors are in ``grid``;
        ``level`` from :meth:`_levels`."""
        positions = board.positions[int(anchors_done)]
        if not anchors_done:
            return positions, level.ravel()[positions]
        active = (grid[..., g] != self.usual[q, g]).astype(np.int32)
        ctx = 8 + np.minimum(_neighbour_sum(active * board.anchor) + level // 2, 7)
        return positions, ctx.ravel()[positions]

    def _contexts(self, grid: np.ndarray, q: int):
        """For every group, one at a time: [(anchor positions, contexts), (non-anchor positions, contexts)].

        A generator, like :meth:`decode`'s loop, so that memory holds one
        group's contexts rather than every group's (640 MB on a 24-megapixel image).
        """
        board = _Checkerboard(*grid.shape[:2])
        activity = np.zeros(grid.shape[:2], np.int32)
        for g in range(grid.shape[-1]):
            level = self._levels(activity, g)
            yield [self._group_contexts(grid, q, g, level, done, board) for done in (False, True)]
            activity += grid[..., g] != self.usual[q, g]

    # -- choosing codes ----------------------------------------------------

    def code_bits(self, quality: int) -> np.ndarray:
        """Bits of every code in every context at ``quality``, float32 ``(G, NUM_CONTEXTS, K)``: its window
        symbol's, or the escape's plus the ``log2 K`` of its uniform coding (computed once per quality)."""
        if quality not in self._code_bits:
            p = self.probabilities[quality]  # (G, NUM_CONTEXTS, W + 1)
            bits = np.repeat(-np.log2(p[..., self.width :]) + np.log2(self.num_codes), self.num_codes, axis=-1)
            inside = self.offsets[quality][:, None, None] + np.arange(self.width)
            np.put_along_axis(bits, np.broadcast_to(inside, p[..., : self.width].shape), -np.log2(p[..., : self.width]), -1)
            self._code_bits[quality] = bits.astype(np.float32)
        return self._code_bits[quality]

    def choose(self, candidates: np.ndarray, distances: np.ndarray, quality: int, rate_weight: float) -> np.ndarray:
        """At each position and group, the candidate code with the least ``distance + rate_weight * bits``
        (its bits under this model): an (h, w, G) int32 grid.

        ``candidates`` (h, w, G, N) are codes in 0..K-1 and ``distances``
        (h, w, G, N) what each would cost in distortion (a huge distance rules
        one out). Codes are chosen in the coder's order, so each choice is
        priced in the context it will be coded in: the contexts depend only on
        codes chosen before. The first of equal costs wins. This is the
        encoder's half of entropy-constrained quantisation with the real
        coder's costs; any grid it gives decodes.
        """
        candidates = np.asarray(candidates)
        distances = np.asarray(distances, np.float32)
        h, w, groups, n = candidates.shape
        self._check(quality, groups)
        if distances.shape != candidates.shape:
            raise ValueError(f"distances {distances.shape} do not match candidates {candidates.shape}")
        if candidates.size and (candidates.min() < 0 or candidates.max() >= self.num_codes):
            raise ValueError(f"candidates must be in 0..{self.num_codes - 1}")
        costs = (np.float32(rate_weight) * self.code_bits(quality)).reshape(groups, -1)  # (G, contexts x K)
        board = _Checkerboard(h, w)
        # Each pass's candidates group-major, gathered once: a group's are then contiguous.
        passes = []
        for positions in board.positions:
            passes.append((
                positions,
                np.ascontiguousarray(candidates.reshape(h * w, groups, n)[positions].transpose(1, 0, 2)),
                np.ascontiguousarray(distances.reshape(h * w, groups, n)[positions].transpose(1, 0, 2)),
                np.arange(len(positions)),
            ))
        grid = np.zeros((h, w, groups), np.int32)
        activity = np.zeros((h, w), np.int32)
        for g in range(groups):
            flat = np.zeros(h * w, np.int32)
            level = self._levels(activity, g)
            for anchors_done, (positions, options, spent, rows) in enumerate(passes):
                _, contexts = self._group_contexts(grid, quality, g, level, bool(anchors_done), board)
                cost = spent[g] + costs[g][contexts[:, None] * self.num_codes + options[g]]
                flat[positions] = options[g][rows, cost.argmin(axis=1)]
                grid[..., g] = flat.reshape(h, w)
            activity += grid[..., g] != self.usual[quality, g]
        return grid

    # -- coding ------------------------------------------------------------

    def _check(self, quality: int, groups: int) -> None:
        if not 0 <= quality < self.num_qualities:
            raise ValueError(f"quality {quality} out of range 0..{self.num_qualities - 1}")
        if groups != self.num_groups:
            raise ValueError(f"grid has {groups} groups, the model {self.num_groups}")

    def _chunks(self, q: int, g: int, contexts: np.ndarray):
        """A pass split by context (ascending, stable): each chunk's indices into the pass, with its probability row."""
        order = np.argsort(contexts.astype(np.uint8), kind="stable")  # a radix sort: contexts are below 16
        ends = np.cumsum(np.bincount(contexts, minlength=NUM_CONTEXTS))
        start = 0
        for ctx, end in enumerate(ends):
            if end > start:
                yield order[start:end], self.probabilities[q, g, ctx]
            start = end

    def encode(self, grid: np.ndarray, quality: int) -> bytes:
        """Range-codes an (h, w, G) grid of indices in 0..K-1."""
        grid = np.asarray(grid)
        self._check(quality, grid.shape[-1])
        if grid.size and (grid.min() < 0 or grid.max() >= self.num_codes):
            raise ValueError(f"indices must be in 0..{self.num_codes - 1}")
        c = _constriction()
        # A range coder (not ANS): its output can never undercut the symbols' information,
        # which the decoder's minimum-length check relies on.
        coder = c.stream.queue.RangeEncoder()
        escaped = c.stream.model.Categorical(self._escaped, perfect=False)
        for g, passes in enumerate(self._contexts(grid, quality)):
            flat = grid[..., g].ravel()
            for positions, contexts in passes:
                codes = flat[positions]
                symbols = self._windowed(codes, quality, g).astype(np.int32)
                for chunk, probs in self._chunks(quality, g, contexts):
                    coder.encode(symbols[chunk], c.stream.model.Categorical(probs, perfect=False))
                    outside = codes[chunk][symbols[chunk] == self.width]
                    if len(outside):
                        coder.encode(outside.astype(np.int32), escaped)
        return coder.get_compressed().astype("<u4").tobytes()

    def decode(self, data: bytes, height: int, width: int, quality: int) -> np.ndarray:
        """The (height, width, G) grid coded by :meth:`encode` (uint16, or int32 for more than 2^16 codes).

        A payload too short for the grid is refused before anything is
        allocated; one that is not exactly :meth:`encode`'s output for the grid
        it decodes to (words missing, left over or altered) is refused after.
        """
        self._check(quality, self.num_groups)
        c = _constriction()
        if len(data) % 4:
            raise CorruptDataError("index payload length is not a multiple of 4 bytes")
        needed = height * width * self.min_bits_per_position[quality] - 64
        if len(data) * 8 < needed:
            raise CorruptDataError(
                f"index payload of {len(data)} bytes is too short for a {height}x{width} grid "
                f"(at least {4 * math.ceil(needed / 32)} bytes)"
            )
        coder = c.stream.queue.RangeDecoder(np.frombuffer(data, dtype="<u4").astype(np.uint32))
        escaped = c.stream.model.Categorical(self._escaped, perfect=False)
        # Two bytes a symbol where the codes fit (an image-sized buffer: one symbol per pixel in the codec).
        grid = np.zeros((height, width, self.num_groups), np.uint16 if self.num_codes <= 1 << 16 else np.int32)
        board = _Checkerboard(height, width)
        activity = np.zeros((height, width), np.int32)
        for g in range(self.num_groups):
            flat = grid[..., g].reshape(-1)
            level = self._levels(activity, g)
            for anchors_done in (False, True):
                positions, contexts = self._group_contexts(grid, quality, g, level, anchors_done, board)
                for chunk, probs in self._chunks(quality, g, contexts):
                    pos = positions[chunk]
                    try:
                        symbols = coder.decode(c.stream.model.Categorical(probs, perfect=False), len(pos)).astype(np.int64)
                        outside = symbols == self.width
                        codes = symbols + self.offsets[quality, g]
                        if outside.any():
                            codes[outside] = coder.decode(escaped, int(outside.sum()))
                        flat[pos] = codes
                    except (ValueError, RuntimeError, AssertionError) as exc:
                        raise CorruptDataError(f"index payload does not decode: {exc}") from None
                grid[..., g] = flat.reshape(height, width)
            activity += grid[..., g] != self.usual[quality, g]
        # Exactly the encoder's output, or refused: a range decoder reads zeros past a cut payload and
        # ignores trailing words, so only re-encoding proves that nothing is missing, left over or altered.
        if self.encode(grid, quality) != bytes(data):
            raise CorruptDataError("index payload is not the exact coding of a grid (cut, padded or altered)")
        return grid

    def cross_entropy_bits(self, grid: np.ndarray, quality: int) -> float:
        """Ideal code length of ``grid`` in bits under this model (what :meth:`encode` approaches)."""
        total = 0.0
        for g, passes in enumerate(self._contexts(np.asarray(grid), quality)):
            flat = np.asarray(grid)[..., g].ravel()
            for positions, contexts in passes:
                symbols = self._windowed(flat[positions], quality, g)
                total -= np.log2(self.probabilities[quality, g, contexts, symbols]).sum()
                total += np.count_nonzero(symbols == self.width) * np.log2(self.num_codes)
        return float(total)
