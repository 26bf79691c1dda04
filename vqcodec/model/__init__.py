"""The models, in ``keras.ops`` (any Keras 3 backend); needs the ``train`` extra.

- :mod:`~vqcodec.model.vqvae`: :class:`VQVAEModel`, the reference VQ-VAE (vector quantiser, optionally residual);
- :mod:`~vqcodec.model.variable_rate`: :class:`VariableRateVQVAE`, the codec's model: one network for every quality;
- :mod:`~vqcodec.model.prior`: :class:`PixelCNNPrior`, an autoregressive model of index grids (bits, samples);
- :mod:`~vqcodec.model.ecvq`: its entropy-constrained quantiser; :mod:`~vqcodec.model.coder_price`: the entropy
  coder's bits in ``keras.ops``;
- :mod:`~vqcodec.model.quantizer`, :mod:`~vqcodec.model.layers`, :mod:`~vqcodec.model.transforms`: the parts;
- :mod:`~vqcodec.model.recipe`: the shipped model's settings (no Keras import).
"""
