"""What the codec needs of a model: the one interface of the Keras model and its onnxruntime export.

Why a protocol: the codec, the runtime, the export and the benchmarks handle
:class:`vqcodec.model.variable_rate.VariableRateVQVAE` and
:class:`vqcodec.runtime.onnx_model.ExportedModel` alike, through these members only.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["CodecModel"]


@runtime_checkable
class CodecModel(Protocol):
    """A model with ``num_qualities`` levels (level index ``0 .. num_qualities - 1``) of ``num_embeddings`` codes."""

    num_qualities: int
    num_embeddings: int
    #: The levels' rate-distortion trade-offs (``bpp + lambda * 255^2 * MSE``); they choose among a point's alternatives.
    lambdas: Any

    def encode_to_indices(self, x: np.ndarray, quality: int, region: Any = None) -> Any:
        """Code indices ``(1, h, w, G)`` of a float32 image batch ``(1, H, W, 3)`` in [0, 1] at level ``quality``;
        ``region`` (top, bottom, left, right) on the latent grid is the part to quantise."""

    def decode_from_indices(self, indices: np.ndarray, quality: int) -> Any:
        """Float image ``(1, H, W, 3)`` from indices made at level ``quality``."""

    def operating_points(self) -> tuple[tuple[int, float, tuple], ...]:
        """The quality scale's points, from the smallest files up: (level index, scale the image is coded at,
        the (level, scale) pairs the encoder may choose instead for an image)."""

    def context_model(self) -> Any:
        """The entropy coder of the model's integer tables (``bitstream.context_model.ContextModel``), or None."""

    def fingerprint(self) -> bytes:
        """8 bytes that change whenever decoding would: a file records the fingerprint of its model."""
