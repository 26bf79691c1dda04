"""One VQ-VAE for many rates: encoder -> quality-conditioned ECVQ -> decoder, trained on R + lambda * D.

Each training example draws a quality level ``q``; the loss is the
rate-distortion Lagrangian ``bpp + lambdas[q] * 255^2 * MSE`` averaged over
the batch, so every level is trained in the same run. The transforms are
shared, and a level's distortion gradient grows with its lambda, so the fine
levels pull hardest on them; ``level_weight_power`` ``a`` scales level ``q``'s
Lagrangian by ``(lambdas[q] / geometric mean of lambdas) ** -a`` to give the
coarse levels a larger share (0: unweighted). Each level's own optimum is
unchanged by the scaling; only the balance over the shared weights moves.
Like :class:`VQVAEModel`, the loss lives in ``compute_loss`` (no
backend-specific ``train_step``).
"""

from __future__ import annotations

import hashlib
import math

import keras
import numpy as np
from keras import ops

from bitstream.context_model import NUM_CONTEXTS, ContextModel
from vqcodec.model.coder_price import code_bits, usual_codes
from vqcodec.model.ecvq import EntropyConstrainedVQ
from vqcodec.model.recipe import SHIPPED, STRIDE, Recipe, check_ladder, default_ladder
from vqcodec.model.transforms import build_decoder, build_encoder, build_transforms, deserialize_transforms, latent_region

__all__ = ["VariableRateVQVAE", "build_codec_model"]

_R = SHIPPED  # the constructor's defaults are the shipped model's
#: Options a saved config may lack (saved before they existed), with the value they had then.
_ABSENT_MEANT = {"learn_codebooks": True, "learned_reconstruction": False}


@keras.saving.register_keras_serializable(package="vqcodec")
class VariableRateVQVAE(keras.Model):
    """Encoder -> :class:`EntropyConstrainedVQ` -> decoder, with quality level ``0 .. len(lambdas) - 1``.

    ``encode_to_indices(x, quality)`` gives int32 indices of shape
    ``latent.shape[:-1] + (G,)`` (one per code group), and
    ``decode_from_indices(indices, quality)`` the image back.

    The entropy coder's integer tables (``bitstream.context_model``: counts
    over a window of ``table_width`` codes per quality and group, and the
    windows' first codes) are model state, so that weights and tables travel
    together in one ``.keras`` file; all zero until fitted.

    ``coder_rate``: training prices the codes with those tables, each in the
    context the coder will code it in (``vqcodec.model.coder_price``), instead of
    with the quantiser's context-free learned distributions; the tables must
    be fitted before training and refitted as the codes change.
    """

    def __init__(
        self,
        encoder: keras.Model,
        decoder: keras.Model,
        num_embeddings: int,
        embedding_dim: int,
        code_dim: int = _R.code_dim,
        lambdas=_R.lambdas,
        stride: int = STRIDE,
        rate_weight: float = _R.rate_weight,
        commitment_cost: float = _R.commitment_cost,
        temperature: float = _R.temperature,
        gain_range=_R.gain_range,
        dead_code_threshold: float = _R.dead_code_threshold,
        learn_codebooks: bool = _R.learn_codebooks,
        table_width: int = _R.table_width,
        level_weight_power: float = _R.level_weight_power,
        learned_reconstruction: bool = _R.learned_reconstruction,
        ladder=None,
        coder_rate: bool = False,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.decoder = decoder
        self.num_embeddings = int(num_embeddings)
        self.embedding_dim = int(embedding_dim)
        self.code_dim = int(code_dim)
        self.lambdas = tuple(float(v) for v in lambdas)
        self.stride = int(stride)
        self.level_weight_power = float(level_weight_power)
        self.ladder = default_ladder(self.lambdas) if ladder is None else check_ladder(ladder, len(self.lambdas))
        self.coder_rate = bool(coder_rate)
        self.seed = seed
        self.quantizer = EntropyConstrainedVQ(
            num_qualities=len(self.lambdas),
            num_embeddings=num_embeddings,
            embedding_dim=embedding_dim,
            code_dim=code_dim,
            rate_weight=rate_weight,
            commitment_cost=commitment_cost,
            temperature=temperature,
            gain_range=gain_range,
            dead_code_threshold=dead_code_threshold,
            learn_codebooks=learn_codebooks,
            learned_reconstruction=learned_reconstruction,
            seed=seed,
            name="quantizer",
        )
        self.quality_seed = keras.random.SeedGenerator(None if seed is None else seed + 7919)
        groups = self.embedding_dim // self.code_dim
        self.table_width = min(int(table_width), self.num_embeddings)
        self.coding_counts = self.add_weight(
            name="coding_counts", shape=(len(self.lambdas), groups, NUM_CONTEXTS, self.table_width + 1),
            dtype="int32", trainable=False, initializer="zeros",
        )
        self.coding_offsets = self.add_weight(
            name="coding_offsets", shape=(len(self.lambdas), groups), dtype="int32", trainable=False, initializer="zeros"
        )
        self._coder = None  # (counts, offsets, ContextModel) of the tables last read
        self.loss_tracker = keras.metrics.Mean(name="rd_loss")
        self.psnr_tracker = keras.metrics.Mean(name="psnr")
        self.bpp_tracker = keras.metrics.Mean(name="bpp")
        if encoder.built and decoder.built:  # e.g. made with keras.Input: only the quantizer is left to build
            self.quantizer.build((None, None, None, embedding_dim))
            self.built = True

    @property
    def num_qualities(self) -> int:
        return len(self.lambdas)

    def operating_points(self) -> tuple[tuple[int, float, tuple], ...]:
        """The quality scale's points, from the smallest files up: (level index, coded scale, alternatives)."""
        return self.ladder

    def build(self, input_shape):
        build_transforms(self, input_shape)

    def set_coding_tables(self, counts, offsets) -> None:
        """Stores the entropy coder's integer tables (``bitstream.context_model.ContextModel``'s) in the model."""
        self.coding_counts.assign(ops.cast(counts, "int32"))
        self.coding_offsets.assign(ops.cast(offsets, "int32"))

    def context_model(self) -> ContextModel | None:
        """The entropy coder of the stored tables; None while they are all zero (not fitted).

        Built again only when the tables have changed (it caches its code costs).
        """
        counts, offsets = ops.convert_to_numpy(self.coding_counts), ops.convert_to_numpy(self.coding_offsets)
        cached = self._coder
        if cached is None or not (np.array_equal(cached[0], counts) and np.array_equal(cached[1], offsets)):
            cached = self._coder = (counts, offsets, ContextModel.stored(counts, offsets, self.num_embeddings))
        return cached[2]

    def coder_price(self, quality):
        """The entropy coder's price for a training step at ``quality`` (B,): the bits of every code in every
        context at every level, and each example's usual codes (B, G) (``vqcodec.model.coder_price``; traceable)."""
        return (
            code_bits(self.coding_counts, self.coding_offsets, self.num_embeddings),
            ops.take(usual_codes(self.coding_counts, self.coding_offsets), quality, axis=0),
        )

    def decoding_weights(self) -> list:
        """What :meth:`decode_from_indices` and the entropy decoder read, coding tables first.

        The tables, the decoder's weights, the codebooks, the gains and any learned reconstruction: a file's
        model fingerprint is a hash of these.
        """
        q = self.quantizer
        return [self.coding_counts, self.coding_offsets, *self.decoder.weights, q.codebooks, q.log_gains,
                *q.reconstruction_weights()]

    def fingerprint(self) -> bytes:
        """8 bytes of SHA-256 over :meth:`decoding_weights`: a ``.vqc`` file names the model that decodes it."""
        h = hashlib.sha256(b"vqcodec-model-v2")
        for v in self.decoding_weights():
            a = np.ascontiguousarray(ops.convert_to_numpy(v))
            h.update(f"{a.dtype.str}{a.shape}".encode())
            h.update(a.tobytes())
        return h.digest()[:8]

    # -- the public API ----------------------------------------------------

    def encode(self, x):
        """Continuous latents (before quantisation)."""
        return self.encoder(x)

    def quantize_latents(self, latents, quality: int):
        """Dequantised latents at ``quality``."""
        quantized, _ = self.quantizer(latents, quality=quality, training=False)
        return quantized

    def decode(self, latents):
        return self.decoder(latents)

    def encode_to_indices(self, x, quality: int, region=None):
        """Code indices of images ``x`` at ``quality``: int32 (B, h, w, G); ``region`` as in :func:`latent_region`.

        The codes of their latents, chosen by :meth:`latents_to_indices`.
        """
        return self.latents_to_indices(latent_region(self.encode(x), region), quality)

    def latents_to_indices(self, latents, quality: int):
        """Code indices of latents (B, h, w, C) at ``quality``: int32 (B, h, w, G).

        With fitted coding tables each code is priced by the entropy coder
        itself, in the context it will be coded in (:meth:`ContextModel.choose`
        over the quantiser's candidates; numpy, eager): the codes cost what
        the search assumed. Without them the quantiser's own learned
        distribution prices them (traceable).
        """
        coder = self.context_model()
        if coder is None:
            return self.quantizer.get_code_indices(latents, quality)
        candidates, distances = (ops.convert_to_numpy(t) for t in self.quantizer.code_candidates(latents, quality))
        levels = np.broadcast_to(np.asarray(quality, np.int64), candidates.shape[:1])
        return np.stack([
            coder.choose(c, d, int(q), self.quantizer.rate_weight) for c, d, q in zip(candidates, distances, levels)
        ])

    def encode_to_candidates(self, x, quality: int, region=None):
        """Each group's candidate codes at ``quality`` and their squared distances (scaled units), for
        :meth:`ContextModel.choose`: see :meth:`EntropyConstrainedVQ.code_candidates`. Traceable."""
        return self.quantizer.code_candidates(latent_region(self.encode(x), region), quality)

    def decode_from_indices(self, indices, quality: int):
        """Images from indices made by :meth:`encode_to_indices` at the same ``quality``."""
        latents = self.quantizer.lookup(indices, quality)
        return self.decode(ops.cast(latents, self.decoder.compute_dtype))

    def call(self, x, training=None, quality=None):
        """The reconstruction at ``quality``; in training (quality None) a dict with the rate parts."""
        latents = self.encode(x)
        if quality is None:
            if not training:
                raise ValueError("give a quality level for inference")
            quality = keras.random.randint((ops.shape(x)[0],), 0, self.num_qualities, seed=self.quality_seed)
        quality = self.quantizer.quality_vector(x, quality)
        coder = self.coder_price(quality) if training and self.coder_rate else None
        quantized, bits = self.quantizer(latents, quality=quality, training=training, coder=coder)
        image = self.decode(quantized)
        if training:
            return {"image": image, "bits": bits, "quality": quality}
        return image

    # -- training -----------------------------------------------------------

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        target = ops.cast(x if y is None else y, "float32")
        image = ops.cast(y_pred["image"], "float32")
        pixels = ops.cast(ops.shape(target)[1] * ops.shape(target)[2], "float32")
        mse = ops.mean(ops.square(target - image), axis=(1, 2, 3))
        bpp = y_pred["bits"] / pixels
        lambdas = ops.take(ops.convert_to_tensor(self.lambdas, dtype="float32"), y_pred["quality"])
        lagrangian = bpp + lambdas * (255.0**2) * mse
        rd = ops.mean(lagrangian)
        weights = ops.take(ops.convert_to_tensor(self.level_weights(), dtype="float32"), y_pred["quality"])
        weighted = ops.mean(weights * lagrangian)
        vq = ops.sum(ops.stack([ops.cast(loss, "float32") for loss in self.losses]))
        self.loss_tracker.update_state(rd)
        self.psnr_tracker.update_state(ops.mean(-10.0 * ops.log(ops.maximum(mse, 1e-10)) / ops.log(10.0)))
        self.bpp_tracker.update_state(ops.mean(bpp))
        return weighted + vq

    def level_weights(self) -> list[float]:
        """Each level's weight in the training loss: ``(lambda / geometric mean) ** -level_weight_power``."""
        logs = [math.log(v) for v in self.lambdas]
        centre = sum(logs) / len(logs)
        return [math.exp(-self.level_weight_power * (v - centre)) for v in logs]

    @property
    def metrics(self):
        return super().metrics + [self.loss_tracker, self.psnr_tracker, self.bpp_tracker]

    def get_config(self):
        config = super().get_config()
        q = self.quantizer
        config.update(
            encoder=keras.saving.serialize_keras_object(self.encoder),
            decoder=keras.saving.serialize_keras_object(self.decoder),
            num_embeddings=self.num_embeddings,
            embedding_dim=self.embedding_dim,
            code_dim=self.code_dim,
            lambdas=list(self.lambdas),
            stride=self.stride,
            rate_weight=q.rate_weight,
            commitment_cost=q.commitment_cost,
            temperature=q.temperature,
            gain_range=list(q.gain_range),
            dead_code_threshold=q.dead_code_threshold,
            learn_codebooks=q.learn_codebooks,
            table_width=self.table_width,
            level_weight_power=self.level_weight_power,
            ladder=[[level, scale] + ([[list(a) for a in alternatives]] if alternatives else [])
                    for level, scale, alternatives in self.ladder],
            learned_reconstruction=q.learned_reconstruction,
            coder_rate=self.coder_rate,
            seed=self.seed,
        )
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**(_ABSENT_MEANT | deserialize_transforms(config)))


def build_codec_model(recipe: Recipe = SHIPPED, seed: int | None = None, **overrides) -> VariableRateVQVAE:
    """A new, built codec model of ``recipe`` (``overrides``: any of the model's keyword arguments)."""
    model = VariableRateVQVAE(
        build_encoder(recipe.channels, recipe.embedding_dim, recipe.res_blocks),
        build_decoder(recipe.channels, recipe.embedding_dim, recipe.res_blocks),
        **(recipe.model_config() | overrides),
        seed=seed,
        name="variable_rate_vqvae",
    )
    model.build((None, None, None, 3))
    return model
