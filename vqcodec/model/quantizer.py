"""Vector quantisers: a single-codebook VQ layer and a residual (multi-stage) VQ.

Everything is written with ``keras.ops`` so the layers train under the
TensorFlow and JAX backends alike. Distances, codebooks and EMA statistics are
kept in float32 even under a ``mixed_float16`` policy: nearest-neighbour search
in half precision picks wrong codes.
"""

from __future__ import annotations

import threading

import keras
from keras import ops

__all__ = ["VectorQuantizer", "ResidualVectorQuantizer"]


def _replica_context():
    """The TF replica context inside a ``tf.distribute`` step with more than one replica, else None.

    The only backend-specific code of this module: a no-op (None) under other
    backends, outside a strategy and with one replica.
    """
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    if not tf.distribute.has_strategy() or tf.distribute.in_cross_replica_context():
        return None
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return None
    return context


def _sum_over_replicas(x):
    """``x`` summed over the replicas of a multi-replica ``tf.distribute`` step (else ``x``).

    Each replica sees only its slice of the global batch; the quantiser's
    state (EMA codebook, usage statistics) must be updated from statistics of
    the whole batch, identically on every replica, or the replicas' copies of
    that state drift apart.
    """
    context = _replica_context()
    return x if context is None else context.all_reduce("SUM", x)


def _batch_position(n):
    """``(offset, total)``: this replica's ``n`` rows are rows ``offset:offset + n`` of the global batch.

    The global batch is the replicas' slices in replica order (how
    ``tf.distribute`` splits a batch); ``(0, n)`` without replicas.
    """
    context = _replica_context()
    if context is None:
        return 0, n
    replicas = context.num_replicas_in_sync
    me = ops.one_hot(context.replica_id_in_sync_group, replicas, dtype="int32")
    sizes = _sum_over_replicas(me * ops.cast(n, "int32"))
    offset = ops.sum(sizes * ops.cast(ops.arange(replicas) < context.replica_id_in_sync_group, "int32"))
    return offset, ops.sum(sizes)


def _random_rows(flat, count, seed_generator):
    """``count`` random rows of the global batch of ``flat``: the same rows on every replica.

    Draws the indices over the global batch (every replica's seed generator
    is in the same state, so all draw the same indices, as one device would)
    and sums each replica's contribution of the rows it holds.
    """
    n = ops.shape(flat)[0]
    offset, total = _batch_position(n)
    pick = keras.random.randint((count,), 0, total, seed=seed_generator)
    if _replica_context() is None:
        return ops.take(flat, pick, axis=0)
    local = pick - offset
    mine = ops.logical_and(local >= 0, local < n)
    rows = ops.take(flat, ops.clip(local, 0, n - 1), axis=0)
    return _sum_over_replicas(ops.where(mine[:, None], rows, ops.zeros_like(rows)))


# Each thread's last loss per quantiser (id): MirroredStrategy traces every replica's step
# in its own thread, and those threads take turns at each all-reduce, so a layer's
# shared ``losses`` list can hold another replica's loss as well.
_THREAD_LOSSES = threading.local()


def first_argmin(values, axis: int = -1):
    """Index of the smallest value along ``axis`` (the first one on ties).

    Why not ``ops.argmin``: on CPU the TensorFlow backend wraps float argmin in
    a bit-cast fix for flushed denormals, and bit casts have no ONNX
    counterpart, so the model's index functions could not be exported.
    """
    best = ops.min(values, axis=axis, keepdims=True)
    return ops.argmax(ops.cast(ops.less_equal(values, best), "int32"), axis=axis)


def _nearest_codes(flat, codebook):
    """Index of the nearest codebook row (L2) for every row of ``flat``."""
    distances = (
        ops.sum(ops.square(flat), axis=1, keepdims=True)
        - 2.0 * ops.matmul(flat, ops.transpose(codebook))
        + ops.sum(ops.square(codebook), axis=1)[None, :]
    )
    return first_argmin(distances, axis=1)


@keras.saving.register_keras_serializable(package="vqcodec")
class VectorQuantizer(keras.layers.Layer):
    """Maps each vector of the last axis to its nearest codebook entry.

    The output is ``x + stop_gradient(q - x)`` (straight-through estimator) so
    gradients reach the encoder. The layer adds the codebook loss
    ``||sg[x] - q||^2`` (only without EMA) and the commitment loss
    ``commitment_cost * ||x - sg[q]||^2`` with ``add_loss``.

    With ``use_ema=True`` the codebook is non-trainable state, updated in
    training by exponential moving averages of the assigned counts and sums
    (counts Laplace-smoothed with ``epsilon``).

    Dead codes: a running average of each code's share of assignments is kept;
    in training, codes whose share falls below ``dead_code_threshold / K`` are
    re-seeded from randomly chosen inputs of the current batch. (Under the JAX
    backend the non-EMA codebook is a trainable variable that cannot be
    re-assigned inside the compiled step, so restarts need ``use_ema=True``
    there.)

    Usage statistics of the last batch seen in training or evaluation
    (``perplexity`` and ``usage``, the fraction of codes used) are exposed as
    non-trainable scalars so the model can report them as metrics.
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        commitment_cost: float = 0.25,
        use_ema: bool = False,
        ema_decay: float = 0.99,
        epsilon: float = 1e-5,
        initializer="uniform",
        dead_code_threshold: float = 0.0,
        usage_decay: float = 0.99,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_embeddings = int(num_embeddings)
        self.embedding_dim = int(embedding_dim)
        self.commitment_cost = float(commitment_cost)
        self.use_ema = bool(use_ema)
        self.ema_decay = float(ema_decay)
        self.epsilon = float(epsilon)
        self.initializer = keras.initializers.get(initializer)
        self.dead_code_threshold = float(dead_code_threshold)
        self.usage_decay = float(usage_decay)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        # The codebook's shape is known now: create the state here (not in
        # ``build``), so that lookups work before the layer is ever called.
        # The creation order is the order of the saved variables: keep it.
        k, d = self.num_embeddings, self.embedding_dim
        self.embeddings = self.add_weight(
            name="embeddings",
            shape=(k, d),
            initializer=self.initializer,
            trainable=not self.use_ema,
            dtype="float32",
            autocast=False,
        )
        state = dict(trainable=False, dtype="float32", autocast=False)
        if self.use_ema:
            self.ema_cluster_size = self.add_weight(
                name="ema_cluster_size", shape=(k,), initializer="zeros", **state
            )
            self.ema_embedding_sum = self.add_weight(
                name="ema_embedding_sum", shape=(k, d), initializer="zeros", **state
            )
            self._ema_initialized = self.add_weight(
                name="ema_initialized", shape=(), initializer="zeros", **state
            )
        self.code_usage = self.add_weight(
            name="code_usage",
            shape=(k,),
            initializer=keras.initializers.Constant(1.0 / k),
            **state,
        )
        self.perplexity = self.add_weight(name="perplexity", shape=(), initializer="zeros", **state)
        self.usage = self.add_weight(name="usage", shape=(), initializer="zeros", **state)

    def build(self, input_shape):
        """Only checks the input: the state exists since ``__init__``."""
        self._check_last_axis(input_shape)

    def _check_last_axis(self, shape):
        if shape[-1] is not None and shape[-1] != self.embedding_dim:
            raise ValueError(
                f"VectorQuantizer expects last axis {self.embedding_dim}, got shape {tuple(shape)}"
            )

    # -- inference helpers -------------------------------------------------

    def get_code_indices(self, inputs):
        """Nearest code index for every vector; shape ``inputs.shape[:-1]``."""
        self._check_last_axis(inputs.shape)
        x = ops.cast(inputs, "float32")
        flat = ops.reshape(x, (-1, self.embedding_dim))
        indices = _nearest_codes(flat, ops.convert_to_tensor(self.embeddings))
        return ops.reshape(indices, ops.shape(x)[:-1])

    def lookup(self, indices):
        """Codebook vectors for an integer index tensor (float32)."""
        return ops.take(ops.convert_to_tensor(self.embeddings), ops.cast(indices, "int32"), axis=0)

    # -- training forward pass --------------------------------------------

    def quantize_vectors(self, inputs, training=None):
        """Returns ``(straight_through_output, quantized, indices, loss)`` in float32.

        Used by the residual quantiser, which needs the raw quantised vectors
        and the per-stage loss rather than the layer's ``add_loss``.
        """
        x = ops.cast(inputs, "float32")
        flat = ops.reshape(x, (-1, self.embedding_dim))
        codebook = ops.convert_to_tensor(self.embeddings)
        if training and self.use_ema:
            codebook = self._init_codebook_from_data(flat, codebook)
        flat_idx = _nearest_codes(flat, codebook)
        quantized = ops.reshape(ops.take(codebook, flat_idx, axis=0), ops.shape(x))
        indices = ops.reshape(flat_idx, ops.shape(x)[:-1])

        commitment = ops.mean(ops.square(x - ops.stop_gradient(quantized)))
        loss = self.commitment_cost * commitment
        if not self.use_ema:
            loss = loss + ops.mean(ops.square(ops.stop_gradient(x) - quantized))

        # State updates use whole-batch statistics (summed over replicas under tf.distribute).
        one_hot = ops.one_hot(flat_idx, self.num_embeddings, dtype="float32")
        counts = _sum_over_replicas(ops.sum(one_hot, axis=0))
        probs = self._track_batch_usage(counts)
        if training:
            if self.use_ema:
                codebook = self._ema_update(flat, one_hot, counts)
            self.code_usage.assign(self.usage_decay * self.code_usage + (1.0 - self.usage_decay) * probs)
            if self.dead_code_threshold > 0:
                self._restart_dead_codes(flat, codebook)

        output = x + ops.stop_gradient(quantized - x)
        return output, quantized, indices, loss

    def call(self, inputs, training=None):
        output, _, _, loss = self.quantize_vectors(inputs, training=training)
        self.add_loss(loss)
        return ops.cast(output, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    # -- state updates (training only) ------------------------------------

    def _init_codebook_from_data(self, flat, codebook):
        """Seeds an EMA codebook from the first batch, so no code starts dead."""
        initialized = ops.cast(self._ema_initialized, "float32")
        seeded = _random_rows(flat, self.num_embeddings, self.seed_generator)
        codebook = initialized * codebook + (1.0 - initialized) * seeded
        self.embeddings.assign(codebook)
        self.ema_embedding_sum.assign(
            initialized * self.ema_embedding_sum + (1.0 - initialized) * codebook
        )
        self.ema_cluster_size.assign(
            initialized * self.ema_cluster_size + (1.0 - initialized) * ops.ones((self.num_embeddings,), "float32")
        )
        self._ema_initialized.assign(ops.ones_like(initialized))
        return codebook

    def _ema_update(self, flat, one_hot, counts):
        decay = self.ema_decay
        cluster_size = decay * self.ema_cluster_size + (1.0 - decay) * counts
        embed_sum = decay * self.ema_embedding_sum + (1.0 - decay) * _sum_over_replicas(
            ops.matmul(ops.transpose(one_hot), flat)
        )
        total = ops.sum(cluster_size)
        smoothed = (cluster_size + self.epsilon) / (total + self.num_embeddings * self.epsilon) * total
        codebook = embed_sum / smoothed[:, None]
        self.ema_cluster_size.assign(cluster_size)
        self.ema_embedding_sum.assign(embed_sum)
        self.embeddings.assign(codebook)
        return codebook

    def _track_batch_usage(self, counts):
        """Sets ``perplexity`` and ``usage`` from this batch's code counts (training or not)."""
        probs = counts / ops.maximum(ops.sum(counts), 1.0)
        entropy = -ops.sum(probs * ops.log(probs + 1e-10))
        self.perplexity.assign(ops.exp(entropy))
        self.usage.assign(ops.mean(ops.cast(counts > 0, "float32")))
        return probs

    def _restart_dead_codes(self, flat, codebook):
        k = self.num_embeddings
        dead = self.code_usage < (self.dead_code_threshold / k)
        candidates = ops.stop_gradient(_random_rows(flat, k, self.seed_generator))
        dead_f = ops.cast(dead, "float32")[:, None]
        new_codebook = dead_f * candidates + (1.0 - dead_f) * codebook
        self.embeddings.assign(new_codebook)
        # A revived code starts with an average share, so it has time to win inputs.
        self.code_usage.assign(ops.where(dead, 1.0 / k, self.code_usage.value))
        if self.use_ema:
            mean_size = ops.mean(self.ema_cluster_size.value)
            self.ema_cluster_size.assign(ops.where(dead, mean_size, self.ema_cluster_size.value))
            self.ema_embedding_sum.assign(
                dead_f * candidates * mean_size + (1.0 - dead_f) * self.ema_embedding_sum
            )

    def get_config(self):
        config = super().get_config()
        config.update(
            num_embeddings=self.num_embeddings,
            embedding_dim=self.embedding_dim,
            commitment_cost=self.commitment_cost,
            use_ema=self.use_ema,
            ema_decay=self.ema_decay,
            epsilon=self.epsilon,
            initializer=keras.initializers.serialize(self.initializer),
            dead_code_threshold=self.dead_code_threshold,
            usage_decay=self.usage_decay,
            seed=self.seed,
        )
        return config


@keras.saving.register_keras_serializable(package="vqcodec")
class ResidualVectorQuantizer(keras.layers.Layer):
    """Several :class:`VectorQuantizer` stages, each coding the previous residual.

    ``call(x, num_stages=n)`` uses only the first ``n`` stages, so one model
    serves many rates. With ``stage_dropout=True``, training picks a random
    stage count per example (uniform on 1..S) for the output the decoder sees,
    while every stage's codebook still learns from every example.

    Indices carry a trailing stage axis: ``x.shape[:-1] + (n,)``.
    """

    def __init__(
        self,
        num_stages: int,
        num_embeddings: int,
        embedding_dim: int,
        commitment_cost: float = 0.25,
        use_ema: bool = False,
        ema_decay: float = 0.99,
        epsilon: float = 1e-5,
        initializer="uniform",
        dead_code_threshold: float = 0.0,
        stage_dropout: bool = True,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_stages = int(num_stages)
        self.num_embeddings = int(num_embeddings)
        self.embedding_dim = int(embedding_dim)
        self.commitment_cost = float(commitment_cost)
        self.use_ema = bool(use_ema)
        self.ema_decay = float(ema_decay)
        self.epsilon = float(epsilon)
        self.initializer = keras.initializers.get(initializer)
        self.dead_code_threshold = float(dead_code_threshold)
        self.stage_dropout = bool(stage_dropout)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        # The stages create their variables now; under this layer's name they
        # get the paths ("quantizer/stage_0/embeddings") a build would give.
        with keras.name_scope(self.name, caller=self):
            self.stages = [
                VectorQuantizer(
                    num_embeddings,
                    embedding_dim,
                    commitment_cost=commitment_cost,
                    use_ema=use_ema,
                    ema_decay=ema_decay,
                    epsilon=epsilon,
                    initializer=initializer,
                    dead_code_threshold=dead_code_threshold,
                    seed=None if seed is None else seed + 1 + s,
                    name=f"stage_{s}",
                )
                for s in range(self.num_stages)
            ]

    def build(self, input_shape):
        """Only checks the input (each stage does): the state exists since ``__init__``."""
        for stage in self.stages:
            stage.build(input_shape)

    def _check_stages(self, num_stages):
        n = self.num_stages if num_stages is None else int(num_stages)
        if not 1 <= n <= self.num_stages:
            raise ValueError(f"num_stages must be in 1..{self.num_stages}, got {num_stages}")
        return n

    def call(self, inputs, training=None, num_stages=None):
        n = self._check_stages(num_stages)
        x = ops.cast(inputs, "float32")
        residual = x
        quantized_sum = ops.zeros_like(x)
        kept_sum = ops.zeros_like(x)
        total_loss = 0.0
        if training and self.stage_dropout:
            batch = ops.shape(x)[0]
            # Drawn for the global batch (as on one device), then this replica's slice.
            offset, total = _batch_position(batch)
            keep_upto = keras.random.randint((total,), 1, n + 1, seed=self.seed_generator)
            if _replica_context() is not None:
                keep_upto = ops.slice(keep_upto, (offset,), (batch,))
            keep_shape = (batch,) + (1,) * (len(x.shape) - 1)
        for s in range(n):
            _, quantized, _, loss = self.stages[s].quantize_vectors(residual, training=training)
            total_loss = total_loss + loss
            residual = residual - ops.stop_gradient(quantized)
            quantized_sum = quantized_sum + quantized
            if training and self.stage_dropout:
                keep = ops.reshape(ops.cast(keep_upto > s, "float32"), keep_shape)
                kept_sum = kept_sum + keep * quantized
        self.add_loss(total_loss)
        _THREAD_LOSSES.__dict__[id(self)] = total_loss
        if training and self.stage_dropout:
            target = kept_sum
        else:
            target = quantized_sum
        output = x + ops.stop_gradient(target - x)
        return ops.cast(output, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_code_indices(self, inputs, num_stages=None):
        """Indices of the first ``num_stages`` stages, shape ``x.shape[:-1] + (n,)``."""
        n = self._check_stages(num_stages)
        residual = ops.cast(inputs, "float32")
        indices = []
        for s in range(n):
            idx = self.stages[s].get_code_indices(residual)
            residual = residual - self.stages[s].lookup(idx)
            indices.append(idx)
        return ops.stack(indices, axis=-1)

    def lookup(self, indices):
        """Sum of the stage vectors named by ``indices`` (trailing stage axis).

        An index of -1 adds nothing: a graph traced for all stages then also
        decodes the lower qualities (their missing stages marked -1).
        """
        n = self._check_stages(indices.shape[-1])
        total = 0.0
        for s in range(n):
            index = ops.cast(indices[..., s], "int32")
            vectors = self.stages[s].lookup(ops.maximum(index, 0))
            total = total + vectors * ops.cast(ops.expand_dims(index >= 0, -1), vectors.dtype)
        return total

    def replica_loss(self):
        """The loss of this layer's last call in this thread (this replica's under ``tf.distribute``)."""
        return _THREAD_LOSSES.__dict__.get(id(self))

    @property
    def perplexities(self):
        return [stage.perplexity.value for stage in self.stages]

    @property
    def usages(self):
        return [stage.usage.value for stage in self.stages]

    def get_config(self):
        config = super().get_config()
        config.update(
            num_stages=self.num_stages,
            num_embeddings=self.num_embeddings,
            embedding_dim=self.embedding_dim,
            commitment_cost=self.commitment_cost,
            use_ema=self.use_ema,
            ema_decay=self.ema_decay,
            epsilon=self.epsilon,
            initializer=keras.initializers.serialize(self.initializer),
            dead_code_threshold=self.dead_code_threshold,
            stage_dropout=self.stage_dropout,
            seed=self.seed,
        )
        return config
