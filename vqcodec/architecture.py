"""The image VQ-VAE used by the codec: conv/GDN analysis and synthesis transforms.

Latent stride 8 (three stride-2 stages): one latent vector per 8x8 block. With
256 codes per residual stage that is at most 8 bits / 64 pixels = 0.125 bpp
per stage before entropy coding, so stages 1..8 span roughly 0.1 to 0.8 bpp.
"""

from __future__ import annotations

import keras

from vqcodec.layers import GDN, ResidualBlock
from vqcodec.model import VQVAEModel

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


def build_image_vqvae(
    channels: int = 128,
    embedding_dim: int = 64,
    num_stages: int = 8,
    num_embeddings: int = 256,
    res_blocks: int = 2,
    commitment_cost: float = 0.25,
    use_ema: bool = True,
    dead_code_threshold: float = 0.03,
    reconstruction_loss_weight: float = 1.0,
    seed: int | None = None,
) -> VQVAEModel:
    """The codec's model: a residual VQ-VAE whose stage count is the quality level."""
    model = VQVAEModel(
        build_encoder(channels, embedding_dim, res_blocks),
        build_decoder(channels, embedding_dim, res_blocks),
        num_embeddings=num_embeddings,
        embedding_dim=embedding_dim,
        commitment_cost=commitment_cost,
        use_ema=use_ema,
        num_stages=num_stages,
        stage_dropout=True,
        dead_code_threshold=dead_code_threshold,
        reconstruction_loss_weight=reconstruction_loss_weight,
        seed=seed,
        name="vqvae",
    )
    model.build((None, None, None, 3))
    return model
