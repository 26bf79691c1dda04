"""Image quality and rate measures shared by the codec, training, the CLI and the benchmarks (numpy only)."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["psnr", "bpp"]


def psnr(reference: np.ndarray, decoded: np.ndarray, peak: float = 255.0) -> float:
    """PSNR in dB: mean squared error over all pixels and channels; inf for identical arrays."""
    reference = np.asarray(reference, dtype=np.float64)
    decoded = np.asarray(decoded, dtype=np.float64)
    if reference.shape != decoded.shape:
        raise ValueError(f"shape mismatch: {reference.shape} vs {decoded.shape}")
    mse = float(np.mean((reference - decoded) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(peak * peak / mse)


def bpp(nbytes: int, width: int, height: int) -> float:
    """Bits per pixel of ``nbytes`` for a ``width`` x ``height`` image: the whole file's bytes x 8 / pixels."""
    return 8.0 * nbytes / (width * height)
