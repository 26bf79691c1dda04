"""The entropy coder's price of codes, in ``keras.ops``: what the codec really spends, for training.

Why: training priced each code with the quantiser's context-free learned
distribution, while the codec codes it in one of
:data:`bitstream.context_model.NUM_CONTEXTS` contexts with integer tables
(``bitstream.context_model.ContextModel``), and so spends 11 to 18% fewer bits
and spends them differently (cheap zeros where little is active around).
These functions compute the same contexts and bits from a model's stored
tables inside a training step, on every backend, so the transforms can learn
what the coder rewards. They mirror ``ContextModel`` rule for rule; the tests
hold them to it.
"""

from __future__ import annotations

import math

from keras import ops

from bitstream.context_model import BACKOFF, LEVEL_OF, NUM_CONTEXTS

__all__ = ["code_bits", "usual_codes", "coder_contexts"]


def code_bits(counts, offsets, num_codes: int):
    """Bits of every code in every context, float32 ``(Q, G, NUM_CONTEXTS, K)``, from the integer tables
    ``counts`` ``(Q, G, NUM_CONTEXTS, W + 1)`` and ``offsets`` ``(Q, G)``: a window code's own, an outside
    one's the escape's plus ``log2 K`` (``ContextModel.code_bits``, in float32)."""
    counts = ops.cast(counts, "float32")
    width = counts.shape[-1] - 1
    prior = ops.sum(counts, axis=2) + 1.0  # (Q, G, W + 1)
    weights = counts * ops.sum(prior, axis=-1)[:, :, None, None] + BACKOFF * prior[:, :, None, :]
    bits = (ops.log(ops.sum(weights, axis=-1, keepdims=True)) - ops.log(weights)) / math.log(2.0)
    # Code k sits at window symbol k - offset where that is inside the window, else at the escape.
    symbol = ops.arange(num_codes, dtype="int32")[None, None, :] - ops.cast(offsets, "int32")[..., None]  # (Q, G, K)
    inside = (symbol >= 0) & (symbol < width)
    symbol = ops.where(inside, symbol, width)
    shape = ops.shape(bits)
    taken = ops.take_along_axis(bits, ops.broadcast_to(symbol[:, :, None, :], shape[:3] + (num_codes,)), axis=-1)
    return taken + ops.where(inside, 0.0, math.log2(num_codes))[:, :, None, :]


def usual_codes(counts, offsets):
    """Each quality's and group's most common code, int32 ``(Q, G)``: the first of the window's most counted
    (``ContextModel.usual``); a code other than it is *active*."""
    marginal = ops.sum(ops.cast(counts, "int32"), axis=2)[..., :-1]
    return ops.cast(offsets, "int32") + ops.cast(ops.argmax(marginal, axis=-1), "int32")


def _neighbour_sum(values):
    """Sum of the up/down/left/right entries over the (h, w) axes of (B, h, w, G) (borders count 0)."""
    p = ops.pad(values, ((0, 0), (1, 1), (1, 1), (0, 0)))
    return p[:, :-2, 1:-1] + p[:, 2:, 1:-1] + p[:, 1:-1, :-2] + p[:, 1:-1, 2:]


def coder_contexts(codes, usual):
    """The context the coder codes each index of ``codes`` (B, h, w, G) in, int32 of the same shape.

    ``usual`` (B, G) is each example's usual code per group (:func:`usual_codes`
    at its quality). Activity counts the active codes of the groups before,
    anchors (``(i + j)`` even) take its level, the others also count their
    active anchor neighbours in their own group (``ContextModel._contexts``).
    """
    active = ops.cast(ops.not_equal(ops.cast(codes, "int32"), ops.cast(usual, "int32")[:, None, None, :]), "int32")
    activity = ops.cumsum(active, axis=-1) - active  # active codes of groups 0 .. g - 1
    groups = ops.shape(codes)[-1]
    scale = 6 * ops.maximum(ops.arange(groups, dtype="int32"), 1)
    local = ops.floor_divide((2 * activity + _neighbour_sum(activity)) * 32, scale)
    level = ops.take(ops.convert_to_tensor(LEVEL_OF, dtype="int32"), local)
    h, w = ops.shape(codes)[1], ops.shape(codes)[2]
    anchor = ops.cast(ops.equal((ops.arange(h, dtype="int32")[:, None] + ops.arange(w, dtype="int32")[None, :]) % 2, 0), "int32")
    anchor = anchor[None, :, :, None]
    others = 8 + ops.minimum(_neighbour_sum(active * anchor) + ops.floor_divide(level, 2), NUM_CONTEXTS // 2 - 1)
    return ops.where(ops.equal(anchor, 1), level, others)
