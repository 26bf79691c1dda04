"""The VQ-VAE: encoder, (residual) vector quantiser, decoder, in one ``keras.Model``.

Training is plain ``compile(optimizer=...)`` + ``fit(x)``: the loss is built in
``compute_loss`` (reconstruction MSE plus the quantiser's losses), which every
Keras backend's ``train_step`` calls, so there is no backend-specific code.
"""

from __future__ import annotations

import keras
from keras import ops

import vqcodec.model.layers  # noqa: F401  (registers GDN and ResidualBlock, so saved models load)
from vqcodec.model.quantizer import ResidualVectorQuantizer, _replica_context
from vqcodec.model.transforms import build_transforms, deserialize_transforms, latent_region

__all__ = ["VQVAEModel", "scale_for_replicas"]

def scale_for_replicas(loss):
    """Divides a per-replica mean loss by the replica count under ``tf.distribute``.

    Keras 3 sums the replicas' gradients and multiplies the reported loss by
    the replica count (its built-in losses divide by it, see
    ``keras.src.losses.loss.scale_loss_for_distribution``); a custom
    ``compute_loss`` must do the same, or a 2-replica MirroredStrategy run
    takes doubled gradients and logs a doubled loss. A no-op otherwise.
    """
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        if replicas > 1:
            loss = loss / replicas
    return loss


@keras.saving.register_keras_serializable(package="vqcodec")
class VQVAEModel(keras.Model):
    """Encoder -> residual vector quantiser -> decoder.

    With ``num_stages=1`` (the default) this is the classic VQ-VAE and
    ``encode_to_indices`` returns one index per latent vector
    (``latent.shape[:-1]``); with more stages the indices carry a trailing
    stage axis and ``num_stages=n`` at inference picks the rate.

    The library's reference VQ-VAE, trained with ``compile`` and ``fit``. The
    codec's own model is :class:`vqcodec.model.variable_rate.VariableRateVQVAE`.
    """

    def __init__(
        self,
        encoder: keras.Model,
        decoder: keras.Model,
        num_embeddings: int,
        embedding_dim: int,
        commitment_cost: float = 0.25,
        use_ema: bool = False,
        ema_decay: float = 0.99,
        epsilon: float = 1e-5,
        reconstruction_loss_weight: float = 1.0,
        quantizer_initializer="uniform",
        num_stages: int = 1,
        stage_dropout: bool = True,
        dead_code_threshold: float = 0.0,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.decoder = decoder
        self.num_embeddings = int(num_embeddings)
        self.embedding_dim = int(embedding_dim)
        self.commitment_cost = float(commitment_cost)
        self.use_ema = bool(use_ema)
        self.ema_decay = float(ema_decay)
        self.epsilon = float(epsilon)
        self.reconstruction_loss_weight = float(reconstruction_loss_weight)
        self.quantizer_initializer = quantizer_initializer
        self.num_stages = int(num_stages)
        self.stage_dropout = bool(stage_dropout)
        self.dead_code_threshold = float(dead_code_threshold)
        self.seed = seed
        # The quantiser creates its variables now, under the model's name, so their
        # paths ("vqvae/quantizer/stage_0/embeddings") are those a build gave them.
        with keras.name_scope(self.name, caller=self):
            self.quantizer = ResidualVectorQuantizer(
                num_stages=num_stages,
                num_embeddings=num_embeddings,
                embedding_dim=embedding_dim,
                commitment_cost=commitment_cost,
                use_ema=use_ema,
                ema_decay=ema_decay,
                epsilon=epsilon,
                initializer=quantizer_initializer,
                dead_code_threshold=dead_code_threshold,
                stage_dropout=stage_dropout,
                seed=seed,
                name="quantizer",
            )
        self.reconstruction_loss_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.vq_loss_tracker = keras.metrics.Mean(name="vq_loss")
        self.perplexity_tracker = keras.metrics.Mean(name="perplexity")
        self.usage_tracker = keras.metrics.Mean(name="codebook_usage")

    # -- building blocks of the public API ---------------------------------

    def build(self, input_shape):
        build_transforms(self, input_shape)

    def encode(self, x):
        """Continuous latents ``z_e`` (before quantisation)."""
        return self.encoder(x)

    def quantize_latents(self, latents, num_stages: int | None = None):
        """Quantised latents ``z_q`` using the first ``num_stages`` stages."""
        return self.quantizer(latents, training=False, num_stages=num_stages)

    def decode(self, latents):
        """Reconstruction from (quantised) latents."""
        return self.decoder(latents)

    def encode_to_indices(self, x, num_stages: int | None = None, region=None):
        """Codebook indices for inputs ``x``.

        Shape ``latent.shape[:-1]`` for a one-stage model, else
        ``latent.shape[:-1] + (num_stages,)``. ``region``: see :func:`latent_region`.
        """
        indices = self.quantizer.get_code_indices(latent_region(self.encode(x), region), num_stages=num_stages)
        if self.num_stages == 1:
            indices = indices[..., 0]
        return indices

    def decode_from_indices(self, indices):
        """Reconstruction from indices as returned by :meth:`encode_to_indices`."""
        indices = ops.convert_to_tensor(indices)
        if self.num_stages == 1:
            indices = indices[..., None]
        latents = self.quantizer.lookup(indices)
        return self.decode(ops.cast(latents, self.decoder.compute_dtype))

    def call(self, x, training=None, num_stages=None):
        latents = self.encode(x)
        quantized = self.quantizer(latents, training=training, num_stages=num_stages)
        return self.decode(quantized)

    # -- training -----------------------------------------------------------

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        target = x if y is None else y
        reconstruction = self.reconstruction_loss_weight * ops.mean(
            ops.square(ops.cast(target, "float32") - ops.cast(y_pred, "float32"))
        )
        losses = self.losses
        if _replica_context() is not None and self.quantizer.replica_loss() is not None:
            # Under MirroredStrategy the replicas' threads share the layers' loss lists
            # (and take turns at the quantiser's all-reduces): use this replica's own loss.
            losses = [self.quantizer.replica_loss()]
        vq_loss = ops.sum(ops.stack([ops.cast(loss, "float32") for loss in losses]))
        total = reconstruction + vq_loss
        self.reconstruction_loss_tracker.update_state(reconstruction)
        self.vq_loss_tracker.update_state(vq_loss)
        self.perplexity_tracker.update_state(ops.mean(ops.stack(self.quantizer.perplexities)))
        self.usage_tracker.update_state(ops.mean(ops.stack(self.quantizer.usages)))
        return scale_for_replicas(total)

    @property
    def metrics(self):
        trackers = [
            self.reconstruction_loss_tracker,
            self.vq_loss_tracker,
            self.perplexity_tracker,
            self.usage_tracker,
        ]
        return super().metrics + trackers

    def get_config(self):
        config = super().get_config()
        config.update(
            encoder=keras.saving.serialize_keras_object(self.encoder),
            decoder=keras.saving.serialize_keras_object(self.decoder),
            num_embeddings=self.num_embeddings,
            embedding_dim=self.embedding_dim,
            commitment_cost=self.commitment_cost,
            use_ema=self.use_ema,
            ema_decay=self.ema_decay,
            epsilon=self.epsilon,
            reconstruction_loss_weight=self.reconstruction_loss_weight,
            quantizer_initializer=keras.saving.serialize_keras_object(
                keras.initializers.get(self.quantizer_initializer)
            ),
            num_stages=self.num_stages,
            stage_dropout=self.stage_dropout,
            dead_code_threshold=self.dead_code_threshold,
            seed=self.seed,
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = deserialize_transforms(config)
        config["quantizer_initializer"] = keras.initializers.get(config["quantizer_initializer"])
        return cls(**config)
