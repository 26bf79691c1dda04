"""Image-specific layers for the codec's encoder and decoder."""

from __future__ import annotations

import keras
from keras import ops

__all__ = ["GDN", "ResidualBlock"]


@keras.saving.register_keras_serializable(package="vqcodec")
class GDN(keras.layers.Layer):
    """Simplified generalised divisive normalisation (Johnston et al., 2019).

    ``y = x / (beta + gamma @ |x|)`` over channels (``inverse=True``
    multiplies instead). It whitens local statistics much better than ReLU
    per parameter, which is why learned codecs use it between convolutions.
    ``beta`` and ``gamma`` are kept non-negative by squaring a free parameter.
    """

    def __init__(self, inverse: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.inverse = bool(inverse)

    def build(self, input_shape):
        channels = input_shape[-1]
        self.beta_param = self.add_weight(name="beta", shape=(channels,), initializer="ones")
        self.gamma_param = self.add_weight(
            name="gamma",
            shape=(channels, channels),
            initializer=keras.initializers.Identity(gain=0.1 ** 0.5),
        )

    def call(self, x):
        # The channel mixing as a 1x1 convolution rather than a matmul: the same sums, but an
        # exported graph keeps the convolutions' layout through it instead of transposing around it.
        mixing = ops.reshape(ops.square(self.gamma_param), (1, 1) + tuple(self.gamma_param.shape))
        norm = ops.square(self.beta_param) + 1e-6 + ops.conv(ops.abs(x), mixing, padding="same")
        return x * norm if self.inverse else x / norm

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "inverse": self.inverse}


@keras.saving.register_keras_serializable(package="vqcodec")
class ResidualBlock(keras.layers.Layer):
    """Two 3x3 convolutions with a skip connection: cheap capacity at low resolution."""

    def __init__(self, filters: int, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.conv1 = keras.layers.Conv2D(filters, 3, padding="same", activation="leaky_relu")
        self.conv2 = keras.layers.Conv2D(filters, 3, padding="same")

    def build(self, input_shape):
        self.conv1.build(input_shape)
        self.conv2.build(tuple(input_shape[:-1]) + (self.filters,))

    def call(self, x):
        return x + self.conv2(self.conv1(x))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "filters": self.filters}
