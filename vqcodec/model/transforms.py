"""The codec's analysis and synthesis transforms (convolutions, GDN, residual blocks), and helpers that
build, serialise and crop them for the models that hold them.

Latent stride 8 (three stride-2 stages): one latent vector per 8x8 block.
"""

from __future__ import annotations

import keras
from keras import ops

from vqcodec.model.layers import GDN, ResidualBlock

__all__ = ["STRIDE", "build_encoder", "build_decoder", "build_transforms", "deserialize_transforms", "latent_region"]

#: Pixels per latent along each axis (three stride-2 stages).
STRIDE = 8


def build_encoder(channels: int = 128, embedding_dim: int = 64, res_blocks: int = 2) -> keras.Sequential:
    """Image (H, W, 3) in [0, 1] -> latents (H/8, W/8, embedding_dim)."""
    layers = [keras.Input((None, None, 3))]
    for i in range(3):
        layers += [keras.layers.Conv2D(channels, 5, strides=2, padding="same", name=f"down_{i}")]
        if i < 2:
            layers += [GDN(name=f"gdn_{i}")]
    layers += [ResidualBlock(channels, name=f"enc_res_{i}") for i in range(res_blocks)]
    layers += [keras.layers.Conv2D(embedding_dim, 3, padding="same", name="to_latent")]
    return keras.Sequential(layers, name="encoder")


def build_decoder(channels: int = 128, embedding_dim: int = 64, res_blocks: int = 2) -> keras.Sequential:
    """Latents (h, w, embedding_dim) -> image (8h, 8w, 3), roughly in [0, 1]."""
    layers = [keras.Input((None, None, embedding_dim))]
    layers += [keras.layers.Conv2D(channels, 3, padding="same", name="from_latent")]
    layers += [ResidualBlock(channels, name=f"dec_res_{i}") for i in range(res_blocks)]
    for i in range(3):
        if i > 0:
            layers += [GDN(inverse=True, name=f"igdn_{i}")]
        filters = 3 if i == 2 else channels
        layers += [keras.layers.Conv2DTranspose(filters, 5, strides=2, padding="same", name=f"up_{i}")]
    return keras.Sequential(layers, name="decoder")


def build_transforms(model: keras.Model, input_shape) -> None:
    """Builds ``model.encoder``, ``model.quantizer`` and ``model.decoder`` for images of ``input_shape``.

    Nets made with ``keras.Input`` are built
    already and refuse a re-build, so only unbuilt ones are built.
    """
    if not model.encoder.built:
        model.encoder.build(input_shape)
    latent_shape = model.encoder.compute_output_shape(input_shape)
    model.quantizer.build(latent_shape)
    if not model.decoder.built:
        model.decoder.build(latent_shape)
    model.built = True


def deserialize_transforms(config: dict) -> dict:
    """A copy of a model config with its serialised encoder and decoder turned back into networks."""
    config = dict(config)
    config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
    config["decoder"] = keras.saving.deserialize_keras_object(config["decoder"])
    return config


def latent_region(latents, region=None):
    """The latents ``(B, h, w, C)`` inside ``region = (top, bottom, left, right)`` on the latent grid (None: all).

    Why: a large image is encoded in tiles with a halo of context around each;
    only the tile's core is quantised, since the halo's indices are thrown away.
    ``region`` may be a tensor, so one traced graph serves every tile.
    """
    if region is None:
        return latents
    region = ops.cast(ops.convert_to_tensor(region), "int32")
    top, bottom, left, right = region[0], region[1], region[2], region[3]
    shape = ops.shape(latents)
    return ops.slice(latents, [0, top, left, 0], [shape[0], bottom - top, right - left, shape[3]])
