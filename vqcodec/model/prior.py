"""A gated PixelCNN prior over a VQ-VAE's index grids: fit, score in bits, sample.

The model predicts every index from the ones before it in raster order
(van den Oord et al., 2016, "Conditional Image Generation with PixelCNN
Decoders"). Causality comes from padding, not masks: a *vertical* stack sees
the rows above (its input is shifted down one row, its convolutions pad only
at the top) and a *horizontal* stack sees the positions to the left in the
row (shifted right one column, padded only on the left); their sum at a
position sees exactly what precedes it, with no blind spot. So sampling runs
the whole grid through one compiled prediction at every step: the positions
not drawn yet cannot reach the logits of the one being drawn.

Its negative log-likelihood is the ideal code length of a grid, so
:meth:`PixelCNNPrior.bits` says what an entropy coder driven by it would spend.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from vqcodec.model.vqvae import scale_for_replicas

__all__ = ["GatedPixelCNNBlock", "PixelCNNPrior"]


@keras.saving.register_keras_serializable(package="vqcodec")
class GatedPixelCNNBlock(keras.layers.Layer):
    """One gated layer of both stacks: ``(v, h) -> (v', h')``, each ``channels`` wide, causal as described above.

    ``v'`` sees rows above; ``h'`` adds the positions to the left in the row and
    keeps a residual path. ``kernel_size`` (odd) spans ``kernel_size // 2``
    further rows up and columns to each side per layer.
    """

    def __init__(self, channels: int, kernel_size: int = 3, **kwargs):
        super().__init__(**kwargs)
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and positive, got {kernel_size}")
        self.channels, self.kernel_size = int(channels), int(kernel_size)
        self.reach = self.kernel_size // 2
        self.vertical = keras.layers.Conv2D(2 * channels, (self.reach + 1, kernel_size), name="vertical")
        self.horizontal = keras.layers.Conv2D(2 * channels, (1, self.reach + 1), name="horizontal")
        self.vertical_to_horizontal = keras.layers.Conv2D(2 * channels, 1, name="vertical_to_horizontal")
        self.horizontal_out = keras.layers.Conv2D(channels, 1, name="horizontal_out")

    def build(self, input_shape):
        shape = (None, None, None, self.channels)
        wide = (None, None, None, 2 * self.channels)
        self.vertical.build(shape)
        self.horizontal.build(shape)
        self.vertical_to_horizontal.build(wide)
        self.horizontal_out.build(shape)

    @staticmethod
    def _gate(x):
        a, b = ops.split(x, 2, axis=-1)
        return ops.tanh(a) * ops.sigmoid(b)

    def call(self, inputs):
        v, h = inputs
        r = self.reach
        v = self.vertical(ops.pad(v, [[0, 0], [r, 0], [r, r], [0, 0]]))
        h_pre = self.horizontal(ops.pad(h, [[0, 0], [0, 0], [r, 0], [0, 0]])) + self.vertical_to_horizontal(v)
        return self._gate(v), h + self.horizontal_out(self._gate(h_pre))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "channels": self.channels, "kernel_size": self.kernel_size}


def _check_rank(shape: tuple) -> None:
    if len(shape) == 4:
        raise ValueError(f"PixelCNNPrior models (N, H, W) grids, got stacked indices {shape}: fit one prior per stage")
    if len(shape) != 3:
        raise ValueError(f"PixelCNNPrior models (N, H, W) grids, got shape {shape}")


@keras.saving.register_keras_serializable(package="vqcodec")
class PixelCNNPrior(keras.Model):
    """An autoregressive model of ``(N, H, W)`` grids of indices in ``0 .. num_embeddings - 1``.

    ``compile(optimizer=...)`` and ``fit(indices)`` train it: the loss (mean
    cross-entropy of each index given those before it) is built in, and
    ``bits_per_index`` is logged beside it. ``grid_shape`` is the ``(H, W)``
    that :meth:`sample` draws; being convolutional, the model also scores
    grids of other sizes. Stacked residual indices ``(N, H, W, stages)`` are
    refused: fit one prior per stage.
    """

    def __init__(
        self,
        num_embeddings: int,
        grid_shape: tuple[int, int],
        *,
        channels: int = 64,
        num_layers: int = 6,
        kernel_size: int = 3,
        **kwargs,
    ):
        super().__init__(**kwargs)
        grid_shape = tuple(int(n) for n in grid_shape)
        if len(grid_shape) != 2 or min(grid_shape) < 1:
            raise ValueError(f"grid_shape must be (H, W) with H, W >= 1, got {grid_shape}")
        if int(num_embeddings) < 2:
            raise ValueError(f"num_embeddings must be at least 2, got {num_embeddings}")
        if int(num_layers) < 1:
            raise ValueError(f"num_layers must be at least 1, got {num_layers}")
        self.num_embeddings, self.grid_shape = int(num_embeddings), grid_shape
        self.channels, self.num_layers, self.kernel_size = int(channels), int(num_layers), int(kernel_size)
        self.embedding = keras.layers.Embedding(self.num_embeddings, self.channels, name="embedding")
        self.blocks = [
            GatedPixelCNNBlock(self.channels, self.kernel_size, name=f"block_{i}") for i in range(self.num_layers)
        ]
        self.hidden = keras.layers.Conv2D(self.channels, 1, activation="relu", name="hidden")
        self.logits = keras.layers.Conv2D(self.num_embeddings, 1, name="logits")
        self.bits_tracker = keras.metrics.Mean(name="bits_per_index")
        self.build((None,) + self.grid_shape)

    def build(self, input_shape):
        self.embedding.build(input_shape)
        feature = (None, None, None, self.channels)
        for block in self.blocks:
            block.build((feature, feature))
        self.hidden.build(feature)
        self.logits.build(feature)

    def call(self, indices):
        """Logits ``(N, H, W, num_embeddings)``: at each position, of its index given the ones before it."""
        _check_rank(tuple(indices.shape))
        x = self.embedding(ops.cast(indices, "int32"))
        v = ops.pad(x, [[0, 0], [1, 0], [0, 0], [0, 0]])[:, :-1]  # rows above
        h = ops.pad(x, [[0, 0], [0, 0], [1, 0], [0, 0]])[:, :, :-1]  # to the left
        for block in self.blocks:
            v, h = block((v, h))
        return self.logits(self.hidden(ops.relu(h)))

    # -- training -----------------------------------------------------------

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        nats = ops.mean(ops.sparse_categorical_crossentropy(ops.cast(x, "int32"), ops.cast(y_pred, "float32"),
                                                            from_logits=True))
        self.bits_tracker.update_state(nats / math.log(2.0))
        return scale_for_replicas(nats)

    @property
    def metrics(self):
        return super().metrics + [self.bits_tracker]

    # -- scoring and sampling -------------------------------------------------

    def _grids(self, indices) -> np.ndarray:
        """``indices`` as an int32 ``(N, H, W)`` array of valid codes, or one clear ``ValueError``."""
        grids = np.asarray(keras.ops.convert_to_numpy(indices))
        _check_rank(grids.shape)
        if grids.size and (grids.min() < 0 or grids.max() >= self.num_embeddings):
            raise ValueError(f"indices must be in 0..{self.num_embeddings - 1}, got {grids.min()}..{grids.max()}")
        return grids.astype(np.int32)

    def log_prob(self, indices, batch_size: int = 64) -> np.ndarray:
        """Each grid's log-likelihood under the model, in nats: float64 ``(N,)``."""
        grids = self._grids(indices)
        out = np.zeros(len(grids), np.float64)
        for start in range(0, len(grids), batch_size):
            batch = grids[start : start + batch_size]
            nats = ops.sparse_categorical_crossentropy(batch, self(batch, training=False), from_logits=True)
            out[start : start + len(batch)] = -np.asarray(ops.convert_to_numpy(nats), np.float64).sum(axis=(1, 2))
        return out

    def bits(self, indices, batch_size: int = 64) -> np.ndarray:
        """Each grid's ideal code length under the model, in bits: float64 ``(N,)``."""
        return -self.log_prob(indices, batch_size) / math.log(2.0)

    def sample(self, num_samples: int, seed: int | None = None, temperature: float = 1.0) -> np.ndarray:
        """``num_samples`` int32 grids of ``grid_shape``, drawn in raster order; the same for the same ``seed``."""
        if int(num_samples) < 1:
            raise ValueError(f"num_samples must be at least 1, got {num_samples}")
        if not (temperature > 0 and math.isfinite(temperature)):
            raise ValueError(f"temperature must be a positive number, got {temperature}")
        generator = keras.random.SeedGenerator(seed)
        height, width = self.grid_shape
        grids = np.zeros((int(num_samples), height, width), np.int32)
        for i in range(height):
            for j in range(width):
                logits = self.predict_on_batch(grids)[:, i, j, :]  # one compiled function, one grid shape
                draw = keras.random.categorical(ops.cast(logits, "float32") / temperature, 1, seed=generator)
                grids[:, i, j] = ops.convert_to_numpy(draw)[:, 0]
        return grids

    def get_config(self):
        return {
            **super().get_config(),
            "num_embeddings": self.num_embeddings,
            "grid_shape": list(self.grid_shape),
            "channels": self.channels,
            "num_layers": self.num_layers,
            "kernel_size": self.kernel_size,
        }
