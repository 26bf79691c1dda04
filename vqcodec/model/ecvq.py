"""Entropy-constrained product vector quantisation with one gain and one code distribution per quality.

Why this design: a 64-dimensional residual VQ spends the same bits on every
latent, so its rate cannot follow the content. Here the latent's ``C``
channels are scaled by a learned per-quality gain and split into ``G = C / d``
groups of ``d`` dimensions; each group is coded by its own small codebook
with the entropy-constrained rule (Chou, Lookabaugh and Gray, 1989)

    k* = argmin_k ||u - c_k||^2 + rate_weight * bits_q(k),
    bits_q(k) = -log2 softmax(logits[q, g])_k,

so a frequent ("nothing here") code is chosen wherever the residual detail
is not worth its bits. Larger gains make the codebook finer relative to the
latent: the gain and the code distribution together set the rate of quality
level ``q``, and one model serves every level.

Codebooks start as the ``K`` points of the integer lattice ``Z^d`` nearest
the origin (a uniform scalar quantiser for ``d = 1``), so no code starts far
from the data. With ``learn_codebooks=False`` they stay there: the gains alone
set the step size, so every quality keeps a full-range uniform quantiser (a
codebook shared by all qualities otherwise drifts toward the coarse levels'
data and clips the fine ones), and the search for the best code looks only
near each latent (:data:`WINDOW`). Learned codebooks revive dead codes outside the
compiled step (:meth:`EntropyConstrainedVQ.revive_dead_codes`), because a
trainable variable cannot be reassigned inside a JAX train step.

With ``learned_reconstruction=True`` a code does not decode to its own value
``c`` but to ``(c - offset[q] * sign(c)) * exp(log_scale[q])``, per quality
and channel, then divided by the gain: the best value to decode a code to is
the mean of the latents that chose it, which need not be the lattice value
(the latents' density falls away from zero, and the rate term moves the
cells' edges). Zero stays zero, and the choice of codes does not change.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from bitstream.context_model import NUM_CONTEXTS
from vqcodec.model.coder_price import coder_contexts
from vqcodec.model.quantizer import first_argmin
from vqcodec.model.recipe import SHIPPED

__all__ = ["EntropyConstrainedVQ", "lattice_codebook", "CANDIDATE_WINDOW"]

_LN2 = math.log(2.0)
#: With a fixed 1-D lattice the assignment considers only the codes within this
#: many steps of the rounded latent, and zero. A code k steps from the rounded
#: one is at least k^2 - k further (20 just outside the window), more than
#: rate_weight times the bits a refitted distribution can save (under 17 for
#: 40 crops of 128^2), so the choice equals a search over all K codes at a
#: fraction of the work.
WINDOW = 4
#: The codes :meth:`EntropyConstrainedVQ.code_candidates` offers the entropy coder's choice: those within
#: this many steps of the rounded latent, and zero. Three steps away a code is at least 6 further, which a
#: rate weight of 0.25 outweighs only for a saving of over 24 bits; on a Kodak image at the default level
#: the choices matched those from WINDOW steps, at a third less work.
CANDIDATE_WINDOW = 2


def lattice_codebook(num_codes: int, code_dim: int) -> np.ndarray:
    """The ``num_codes`` points of ``Z^code_dim`` nearest the origin, shape (K, d), float32.

    Ties in norm are broken by the lexicographic order of the points, so the
    result is the same on every machine.
    """
    radius = int(math.ceil(num_codes ** (1.0 / code_dim) / 2.0))
    while True:
        axis = np.arange(-radius, radius + 1)
        points = np.stack(np.meshgrid(*([axis] * code_dim), indexing="ij"), -1).reshape(-1, code_dim)
        norms = (points**2).sum(1)
        # Complete only if the K nearest all lie inside the ball the box contains.
        if (norms <= radius**2).sum() >= num_codes:
            break
        radius += 1
    order = np.lexsort(tuple(points[:, i] for i in reversed(range(code_dim))) + (norms,))
    return points[order[:num_codes]].astype(np.float32)


@keras.saving.register_keras_serializable(package="vqcodec")
class EntropyConstrainedVQ(keras.layers.Layer):
    """Product ECVQ of ``(..., C)`` latents at one of ``num_qualities`` quality levels.

    ``call(latents, quality, training)`` takes an int quality per example
    (shape ``(B,)``) and returns ``(quantised latents, bits per example)``.
    Gradients: the straight-through estimator carries the distortion to the
    encoder; the rate reaches the code distribution through the bits of the
    chosen codes, and the encoder and gains through the soft-assignment
    expectation of the bits (temperature ``temperature``). The codebook and
    commitment losses go through ``add_loss``.
    """

    def __init__(
        self,
        num_qualities: int,
        num_embeddings: int,
        embedding_dim: int,
        code_dim: int = 1,
        rate_weight: float = 1.0,
        commitment_cost: float = 0.25,
        temperature: float = 1.0,
        gain_range: tuple[float, float] = SHIPPED.gain_range,
        dead_code_threshold: float = 0.02,
        usage_decay: float = 0.99,
        learn_codebooks: bool = True,
        learned_reconstruction: bool = False,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if embedding_dim % code_dim:
            raise ValueError(f"embedding_dim {embedding_dim} is not a multiple of code_dim {code_dim}")
        self.num_qualities = int(num_qualities)
        self.num_embeddings = int(num_embeddings)
        self.embedding_dim = int(embedding_dim)
        self.code_dim = int(code_dim)
        self.num_groups = self.embedding_dim // self.code_dim
        self.rate_weight = float(rate_weight)
        self.commitment_cost = float(commitment_cost)
        self.temperature = float(temperature)
        self.gain_range = (float(gain_range[0]), float(gain_range[1]))
        self.dead_code_threshold = float(dead_code_threshold)
        self.usage_decay = float(usage_decay)
        self.learn_codebooks = bool(learn_codebooks)
        self.learned_reconstruction = bool(learned_reconstruction)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

        q, g, k, d = self.num_qualities, self.num_groups, self.num_embeddings, self.code_dim
        lattice = lattice_codebook(k, d)
        self.codebooks = self.add_weight(
            name="codebooks", shape=(g, k, d), dtype="float32", autocast=False, trainable=self.learn_codebooks,
            initializer=keras.initializers.Constant(np.broadcast_to(lattice, (g, k, d))),
        )
        # A Laplacian-like start: codes near the origin are cheap, far ones still reachable.
        self.logits = self.add_weight(
            name="logits", shape=(q, g, k), dtype="float32", autocast=False,
            initializer=keras.initializers.Constant(np.broadcast_to(-np.sqrt((lattice**2).sum(1)), (q, g, k))),
        )
        low, high = np.log(self.gain_range)
        self.log_gains = self.add_weight(
            name="log_gains", shape=(q, self.embedding_dim), dtype="float32", autocast=False,
            initializer=keras.initializers.Constant(np.linspace(low, high, q)[:, None] * np.ones((1, self.embedding_dim))),
        )
        if self.learned_reconstruction:  # zero offsets and unit scales: each code decodes to its own value at first
            self.reconstruction_offsets = self.add_weight(
                name="reconstruction_offsets", shape=(q, self.embedding_dim), dtype="float32", autocast=False,
                initializer="zeros",
            )
            self.reconstruction_log_scales = self.add_weight(
                name="reconstruction_log_scales", shape=(q, self.embedding_dim), dtype="float32", autocast=False,
                initializer="zeros",
            )
        state = dict(trainable=False, dtype="float32", autocast=False)
        self.code_usage = self.add_weight(
            name="code_usage", shape=(g, k), initializer=keras.initializers.Constant(1.0 / k), **state
        )
        # Recent scaled latent vectors, one per code slot: the seeds for dead-code revival.
        self.recent_vectors = self.add_weight(
            name="recent_vectors", shape=(g, k, d), initializer=keras.initializers.Constant(np.broadcast_to(lattice, (g, k, d))), **state
        )

    def build(self, latents_shape, quality_shape=None):
        if latents_shape[-1] is not None and latents_shape[-1] != self.embedding_dim:
            raise ValueError(f"EntropyConstrainedVQ expects last axis {self.embedding_dim}, got shape {latents_shape}")

    # -- pieces shared by training and inference ---------------------------

    def _gains(self, quality):
        """Per-example channel gains, shape (B, C)."""
        return ops.exp(ops.take(ops.convert_to_tensor(self.log_gains), ops.cast(quality, "int32"), axis=0))

    def reconstruction_weights(self) -> list:
        """The variables that set what each code decodes to besides the codebook and gains (none by default)."""
        if not self.learned_reconstruction:
            return []
        return [self.reconstruction_offsets, self.reconstruction_log_scales]

    def _dequantize(self, scaled, gains, quality):
        """Latents (B, .., C) from chosen codes' values in scaled units (B, .., C): reconstructed, then unscaled."""
        if self.learned_reconstruction:
            shape = (ops.shape(gains)[0],) + (1,) * (len(scaled.shape) - 2) + (self.embedding_dim,)
            quality = ops.cast(quality, "int32")
            offsets = ops.reshape(ops.take(ops.convert_to_tensor(self.reconstruction_offsets), quality, axis=0), shape)
            scales = ops.exp(ops.take(ops.convert_to_tensor(self.reconstruction_log_scales), quality, axis=0))
            scaled = (scaled - offsets * ops.sign(scaled)) * ops.reshape(scales, shape)
        return scaled / gains

    def _scaled_groups(self, latents, quality):
        x = ops.cast(latents, "float32")
        gains = self._gains(quality)
        gains = ops.reshape(gains, (ops.shape(gains)[0],) + (1,) * (len(x.shape) - 2) + (self.embedding_dim,))
        u = x * gains
        return ops.reshape(u, ops.shape(x)[:-1] + (self.num_groups, self.code_dim)), gains

    def _code_bits(self, quality, rank):
        """Bits of every code, (B, 1.., G, K), for a ``rank``-dimensional latent."""
        log_probs = ops.log_softmax(ops.take(ops.convert_to_tensor(self.logits), ops.cast(quality, "int32"), axis=0), axis=-1)
        bits = -log_probs / _LN2
        return ops.reshape(bits, (ops.shape(bits)[0],) + (1,) * (rank - 2) + (self.num_groups, self.num_embeddings))

    def _distances(self, u):
        codebooks = ops.convert_to_tensor(self.codebooks)
        cross = ops.einsum("...gd,gkd->...gk", u, codebooks)
        return ops.sum(ops.square(u), axis=-1)[..., None] - 2.0 * cross + ops.sum(ops.square(codebooks), axis=-1)

    def _assign(self, u, bits):
        distances = self._distances(u)
        return first_argmin(distances + self.rate_weight * bits, axis=-1), distances

    def _lookup_scaled(self, indices):
        """Codebook vectors of (..., G) indices: (..., G, d), gathered (no (..., G, K) one-hot)."""
        table = ops.reshape(ops.convert_to_tensor(self.codebooks), (self.num_groups * self.num_embeddings, self.code_dim))
        flat = ops.cast(indices, "int32") + ops.arange(self.num_groups, dtype="int32") * self.num_embeddings
        return ops.take(table, flat, axis=0)

    @property
    def windowed(self) -> bool:
        """Whether codes are searched near each latent only (a fixed 1-D lattice, see :data:`WINDOW`)."""
        return self.code_dim == 1 and not self.learn_codebooks

    def _window_assign(self, u, quality, coder=None):
        """ECVQ over the lattice points near each scaled latent, and zero.

        ``u`` is (B, .., G, 1). Returns (indices (B, .., G) int32, chosen values
        (B, .., G, 1), the chosen codes' bits (B, .., G) with gradient to the
        logits, the bits expected under the soft assignment (B, .., G) with
        gradient to ``u``).

        The tables are in value order and padded by :data:`WINDOW` on each
        side (:meth:`_value_tables`), so a window's entries are one contiguous
        gather and a value off the lattice costs 1e30: few operations on the
        (.., G, window) arrays, which dominate an exported encoder's quantiser.
        Zero is compared last, so on a tie the window's code wins, as it would
        as the first of equals.

        ``coder`` (training only; ``u`` then (B, h, w, G, 1)): the entropy
        coder's bits of every code in every context (``coder_price.code_bits``)
        and each example's usual codes (B, G). The codes are then chosen again,
        each priced in the context that the first choice gives it, and the rate
        is the coder's; the learned distribution goes on learning the codes
        chosen, at no cost in the loss.
        """
        x = u[..., 0]
        low = -(self.num_embeddings // 2)
        cost_table, bits_table, width = self._value_tables()
        centre, steps, values, distances = self._window(x)
        g = self.num_groups
        rank = len(x.shape)
        # the table position of value 0 for each example's quality and each group
        quality = ops.reshape(ops.cast(quality, "int32"), (-1,) + (1,) * (rank - 1))
        group = ops.arange(g, dtype="int32") + ops.zeros_like(x, dtype="int32")
        origin = (quality * g + group) * width + (WINDOW - low)
        chosen, hard_bits, soft_bits = self._window_choice(x, centre, steps, values, distances, cost_table, bits_table, origin)
        if coder is not None:
            coder_bits, usual = coder
            value_bits = self._by_value(ops.reshape(coder_bits, (-1, self.num_embeddings)))
            contexts = coder_contexts(self._lattice_index(chosen), usual)
            origin_in_context = ((quality * g + group) * NUM_CONTEXTS + contexts) * width + (WINDOW - low)
            chosen, hard_bits, soft_bits = self._window_choice(
                x, centre, steps, values, distances, self._costs(value_bits), ops.reshape(value_bits, (-1,)), origin_in_context
            )
            learned = ops.take(bits_table, ops.cast(chosen, "int32") + origin, axis=0)
            hard_bits = hard_bits + learned - ops.stop_gradient(learned)
        return self._lattice_index(chosen), chosen[..., None], hard_bits, soft_bits

    def _window_choice(self, x, centre, steps, values, distances, cost_table, bits_table, origin):
        """The choice among a window (and zero) priced by flat tables from ``origin``, the value-0 entry of each
        position: (chosen values, their bits, the bits expected under the soft assignment), all (B, .., G)."""
        low, high = -(self.num_embeddings // 2), (self.num_embeddings - 1) // 2
        window = (ops.cast(centre, "int32") + origin)[..., None] + steps
        cost = distances + ops.take(cost_table, window, axis=0)
        choice = first_argmin(cost, axis=-1)
        zero = ops.square(x) + ops.take(cost_table, origin, axis=0)
        chosen = ops.where(zero < ops.min(cost, axis=-1), 0.0, centre + ops.cast(choice - WINDOW, "float32"))
        hard_bits = ops.take(bits_table, ops.cast(chosen, "int32") + origin, axis=0)
        # The soft assignment (training): the window's codes on the lattice, and zero where it is not among them.
        valid = ops.concatenate(
            [(values >= low) & (values <= high), (ops.abs(centre) > WINDOW)[..., None]],
            axis=-1,
        )
        bits = ops.concatenate(
            [ops.take(bits_table, window, axis=0), ops.take(bits_table, origin, axis=0)[..., None]],
            axis=-1,
        )
        all_distances = ops.concatenate([distances, ops.square(x)[..., None]], axis=-1)
        soft = ops.softmax(ops.where(valid, -all_distances / self.temperature, -1e30), axis=-1)
        soft_bits = ops.sum(soft * ops.stop_gradient(bits), axis=-1)
        return chosen, hard_bits, soft_bits

    def _window(self, x, reach: int = WINDOW):
        """The lattice values within ``reach`` steps of each rounded scaled latent of ``x`` (B, .., G).

        Returns (rounded values (B, .., G), the steps -reach .. reach, the
        window's values and their squared distances to ``x``, both (B, .., G, 2 reach + 1)).
        """
        low, high = -(self.num_embeddings // 2), (self.num_embeddings - 1) // 2
        centre = ops.stop_gradient(ops.clip(ops.round(x), low, high))
        steps = ops.arange(-reach, reach + 1, dtype="int32")
        values = centre[..., None] + ops.cast(steps, "float32")
        return centre, steps, values, ops.square(x[..., None] - values)

    def _value_tables(self):
        """Flat (cost, bits) tables of the learned distributions over quality, group and value
        ``low - WINDOW .. high + WINDOW``; and that width.

        Cost is ``rate_weight`` times the bits on the lattice and 1e30 off it;
        the bits carry the gradient to the logits (0 off the lattice).
        """
        logits = ops.reshape(ops.convert_to_tensor(self.logits), (-1, self.num_embeddings))
        bits = self._by_value(-ops.log_softmax(logits, axis=-1) / _LN2)
        return self._costs(bits), ops.reshape(bits, (-1,)), bits.shape[-1]

    def _value_axis(self):
        """The code index of each value ``low - WINDOW .. high + WINDOW`` (0 off the lattice), and which are on it."""
        k = self.num_embeddings
        low, high = -(k // 2), (k - 1) // 2
        values = np.arange(low - WINDOW, high + WINDOW + 1)
        on_lattice = (values >= low) & (values <= high)
        return np.where(on_lattice, np.where(values < 0, -2 * values - 1, 2 * values), 0).astype("int32"), on_lattice

    def _by_value(self, bits):
        """(N, K) bits in code order as (N, width) in value order (:meth:`_value_axis`), 0 off the lattice."""
        order, on_lattice = self._value_axis()
        return ops.where(on_lattice, ops.take(bits, order, axis=-1), 0.0)

    def _costs(self, value_bits):
        """Flat costs of value-ordered bits (:meth:`_by_value`): ``rate_weight`` times the bits, 1e30 off the lattice."""
        _, on_lattice = self._value_axis()
        return ops.reshape(ops.where(on_lattice, self.rate_weight * ops.stop_gradient(value_bits), 1e30), (-1,))

    @staticmethod
    def _lattice_index(values):
        """Index of 1-D lattice values: the lattice lists 0, -1, 1, -2, 2, ..., so v has index 2|v| - (v < 0)."""
        return ops.cast(ops.where(values < 0, -2.0 * values - 1.0, 2.0 * values), "int32")

    # -- public inference API ----------------------------------------------

    def get_code_indices(self, latents, quality):
        """Code index of every group at ``quality``: int32 of shape ``latents.shape[:-1] + (G,)``."""
        quality = self.quality_vector(latents, quality)
        u, _ = self._scaled_groups(latents, quality)
        if self.windowed:
            return self._window_assign(u, quality)[0]
        indices, _ = self._assign(u, self._code_bits(quality, len(latents.shape)))
        return ops.cast(indices, "int32")

    def code_candidates(self, latents, quality):
        """The codes an entropy-constrained choice considers for each group at ``quality``, and their distances.

        Returns int32 indices and float32 squared distances (in scaled units),
        both ``latents.shape[:-1] + (G, N)``. On the fixed 1-D lattice
        (:attr:`windowed`) they are the codes within :data:`CANDIDATE_WINDOW`
        steps of the rounded scaled latent, then zero (N = 2 CANDIDATE_WINDOW + 2;
        a window value off the lattice gets index 0 and a distance of 1e30, so
        it is never the cheapest); otherwise all K codes. For an encoder that
        prices codes with the real entropy coder's contexts (``ContextModel.choose``).
        """
        quality = self.quality_vector(latents, quality)
        u, _ = self._scaled_groups(latents, quality)
        if not self.windowed:
            distances = self._distances(u)
            return ops.broadcast_to(ops.arange(self.num_embeddings, dtype="int32"), ops.shape(distances)), distances
        x = u[..., 0]
        low, high = -(self.num_embeddings // 2), (self.num_embeddings - 1) // 2
        _, _, values, distances = self._window(x, CANDIDATE_WINDOW)
        values = ops.concatenate([values, ops.zeros_like(x)[..., None]], axis=-1)
        distances = ops.concatenate([distances, ops.square(x)[..., None]], axis=-1)
        valid = (values >= low) & (values <= high)
        return ops.where(valid, self._lattice_index(values), 0), ops.where(valid, distances, 1e30)

    def lookup(self, indices, quality):
        """Dequantised latents (..., C) for ``(..., G)`` indices coded at ``quality``."""
        indices = ops.convert_to_tensor(indices)
        quality = self.quality_vector(indices, quality)
        scaled = self._lookup_scaled(indices)
        scaled = ops.reshape(scaled, ops.shape(indices)[:-1] + (self.embedding_dim,))
        gains = self._gains(quality)
        gains = ops.reshape(gains, (ops.shape(gains)[0],) + (1,) * (len(scaled.shape) - 2) + (self.embedding_dim,))
        return self._dequantize(scaled, gains, quality)

    def quality_vector(self, like, quality):
        """``quality`` as an int32 vector over the batch of ``like`` (a scalar is broadcast)."""
        quality = ops.convert_to_tensor(quality, dtype="int32")
        if len(quality.shape) == 0:
            quality = ops.broadcast_to(quality, (ops.shape(like)[0],))
        return quality

    # -- training forward pass -------------------------------------------

    def call(self, latents, quality, training=None, coder=None):
        """``coder``: price the codes with the entropy coder's tables (see :meth:`_window_assign`; a fixed
        lattice only)."""
        quality = self.quality_vector(latents, quality)
        u, gains = self._scaled_groups(latents, quality)
        if coder is not None and not self.windowed:
            raise ValueError("the coder's price needs the fixed 1-D lattice (learn_codebooks=False, code_dim=1)")
        if self.windowed:
            _, chosen, hard_bits, soft_bits = self._window_assign(u, quality, coder)
        else:
            bits = self._code_bits(quality, len(latents.shape))
            indices, distances = self._assign(u, ops.stop_gradient(bits))
            chosen = self._lookup_scaled(indices)
            one_hot = ops.one_hot(indices, self.num_embeddings, dtype="float32")
            hard_bits = ops.sum(one_hot * bits, axis=-1)
            soft = ops.softmax(-distances / self.temperature, axis=-1)
            soft_bits = ops.sum(soft * ops.stop_gradient(bits), axis=-1)
            if training:
                self._track_usage(u, one_hot)

        # The VQ losses see the latents at a fixed scale: only the rate-distortion loss trains the gains.
        u_fixed = ops.reshape(ops.cast(latents, "float32") * ops.stop_gradient(gains), ops.shape(u))
        commitment = ops.mean(ops.square(u_fixed - ops.stop_gradient(chosen)))
        codebook_loss = ops.mean(ops.square(ops.stop_gradient(u) - chosen))
        self.add_loss(codebook_loss + self.commitment_cost * commitment)

        # Rate: the chosen codes' bits (gradient to the logits) plus, for the encoder and
        # gains, the gradient of the bits expected under a soft assignment.
        position_bits = hard_bits + soft_bits - ops.stop_gradient(soft_bits)
        example_bits = ops.sum(ops.reshape(position_bits, (ops.shape(position_bits)[0], -1)), axis=1)

        quantized = u + ops.stop_gradient(chosen - u)
        quantized = self._dequantize(ops.reshape(quantized, ops.shape(latents)[:-1] + (self.embedding_dim,)), gains, quality)
        return ops.cast(quantized, latents.dtype), example_bits

    def _track_usage(self, u, one_hot):
        g, k, d = self.num_groups, self.num_embeddings, self.code_dim
        flat_hot = ops.reshape(one_hot, (-1, g, k))
        counts = ops.sum(flat_hot, axis=0)
        share = counts / ops.maximum(ops.sum(counts, axis=-1, keepdims=True), 1.0)
        self.code_usage.assign(self.usage_decay * self.code_usage + (1.0 - self.usage_decay) * share)
        flat_u = ops.reshape(u, (-1, g, d))
        pick = keras.random.randint((k,), 0, ops.shape(flat_u)[0], seed=self.seed_generator)
        self.recent_vectors.assign(ops.transpose(ops.stop_gradient(ops.take(flat_u, pick, axis=0)), (1, 0, 2)))

    def revive_dead_codes(self) -> int:
        """Moves codes used less than ``dead_code_threshold / K`` onto recent latents; returns how many.

        Runs eagerly between training steps. A revived code gets an average
        probability at every quality and an average usage, so it has time to
        win inputs before it is judged again.
        """
        if self.dead_code_threshold <= 0 or not self.learn_codebooks:
            return 0
        usage = ops.convert_to_numpy(self.code_usage)
        dead = usage < self.dead_code_threshold / self.num_embeddings
        count = int(dead.sum())
        if count:
            codebooks = ops.convert_to_numpy(self.codebooks).copy()
            codebooks[dead] = ops.convert_to_numpy(self.recent_vectors)[dead]
            logits = ops.convert_to_numpy(self.logits).copy()
            average = np.log(np.mean(np.exp(logits - logits.max(-1, keepdims=True)), -1, keepdims=True)) + logits.max(-1, keepdims=True)
            logits = np.where(dead[None], np.broadcast_to(average, logits.shape), logits)
            usage[dead] = 1.0 / self.num_embeddings
            self.codebooks.assign(codebooks)
            self.logits.assign(logits)
            self.code_usage.assign(usage)
        return count

    def refit_code_distributions(self, latents, smoothing: float = 0.1) -> None:
        """Sets each quality's code distribution to the frequencies of the codes chosen for ``latents``.

        The rate gradient moves the logits by about the learning rate per
        step, far slower than the encoder changes the codes it picks, so the
        trained distributions stay too flat: at 5,000 steps they charged 1.3 to
        1.7 times the bits the chosen codes really cost. This is the rate half
        of an ECVQ Lloyd step, run eagerly between training steps (like
        :meth:`revive_dead_codes`); ``smoothing`` counts keep every code
        reachable.
        """
        logits = ops.convert_to_numpy(self.logits).copy()
        for q in range(self.num_qualities):
            codes = ops.convert_to_numpy(self.get_code_indices(latents, q)).reshape(-1, self.num_groups)
            counts = np.stack([np.bincount(codes[:, g], minlength=self.num_embeddings) for g in range(self.num_groups)])
            counts = counts + smoothing
            logits[q] = np.log(counts / counts.sum(axis=-1, keepdims=True))
        self.logits.assign(logits)

    def compute_output_shape(self, latents_shape, quality_shape=None):
        return latents_shape, (latents_shape[0],)

    def get_config(self):
        config = super().get_config()
        config.update(
            num_qualities=self.num_qualities,
            num_embeddings=self.num_embeddings,
            embedding_dim=self.embedding_dim,
            code_dim=self.code_dim,
            rate_weight=self.rate_weight,
            commitment_cost=self.commitment_cost,
            temperature=self.temperature,
            gain_range=list(self.gain_range),
            dead_code_threshold=self.dead_code_threshold,
            usage_decay=self.usage_decay,
            learn_codebooks=self.learn_codebooks,
            learned_reconstruction=self.learned_reconstruction,
            seed=self.seed,
        )
        return config
