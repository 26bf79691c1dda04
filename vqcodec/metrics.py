"""Image quality and rate measures shared by the codec, training, the CLI and the benchmarks (numpy only)."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["psnr", "bpp", "ms_ssim", "ms_ssim_settings", "MS_SSIM_POWER_FACTORS", "MS_SSIM_FILTER_SIZE"]

#: Default MS-SSIM weights (Wang et al. 2003), as in ``tf.image.ssim_multiscale``, and its window.
MS_SSIM_POWER_FACTORS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
MS_SSIM_FILTER_SIZE = 11


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


def ms_ssim_settings(height: int, width: int) -> tuple[tuple[float, ...], int]:
    """Power factors and window size of MS-SSIM on an image of this size.

    The defaults (5 scales, 11x11 Gaussian window) need the coarsest scale, after four halvings that round up,
    to be at least 11 px: images of at least 161 px per side. Smaller images drop the coarsest scales and
    renormalise the remaining weights to sum to 1; below 11 px the window shrinks to the image. Such values
    are not comparable with published MS-SSIM numbers.
    """
    side = min(height, width)
    scales = 0
    for n in range(1, len(MS_SSIM_POWER_FACTORS) + 1):
        s = side
        for _ in range(n - 1):
            s = (s + 1) // 2
        if s >= MS_SSIM_FILTER_SIZE:
            scales = n
    if scales == len(MS_SSIM_POWER_FACTORS):
        return MS_SSIM_POWER_FACTORS, MS_SSIM_FILTER_SIZE
    if scales == 0:
        return (1.0,), max(1, side if side % 2 else side - 1)
    weights = MS_SSIM_POWER_FACTORS[:scales]
    total = sum(weights)
    return tuple(w / total for w in weights), MS_SSIM_FILTER_SIZE


def _gaussian_filter(x: np.ndarray, size: int, sigma: float = 1.5) -> np.ndarray:
    """``x`` (H, W, C) filtered by a normalised ``size`` x ``size`` Gaussian, 'valid' positions only."""
    taps = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(taps**2) / (2.0 * sigma * sigma))
    g /= g.sum()
    h, w = x.shape[0] - size + 1, x.shape[1] - size + 1
    rows = sum(g[i] * x[i : i + h] for i in range(size))
    return sum(g[i] * rows[:, i : i + w] for i in range(size))


def ms_ssim(reference: np.ndarray, decoded: np.ndarray, max_val: float = 255.0) -> tuple[float, int]:
    """MS-SSIM of two (H, W, C) images, as ``tf.image.ssim_multiscale`` computes it; ``(value, scales used)``.

    Per scale and channel: SSIM's luminance and contrast-structure terms under an 11x11 Gaussian window
    (sigma 1.5, k1 = 0.01, k2 = 0.03); between scales a 2x2 average, odd sides first padded by repeating the
    last row or column. The result is the product of the scales' (non-negative) terms raised to their weights,
    averaged over channels. Window and scales follow :func:`ms_ssim_settings`. In float64: TensorFlow's float32
    loses up to about 1e-4 to cancellation in the variance terms on a 768x512 image.
    """
    x = np.asarray(reference, dtype=np.float64)
    y = np.asarray(decoded, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"shape mismatch: {x.shape} vs {y.shape}")
    if x.ndim == 2:
        x, y = x[..., None], y[..., None]
    weights, size = ms_ssim_settings(*x.shape[:2])
    c1, c2 = (0.01 * max_val) ** 2, (0.03 * max_val) ** 2
    terms = []
    for k in range(len(weights)):
        if k:
            pad = ((0, x.shape[0] % 2), (0, x.shape[1] % 2), (0, 0))
            x, y = (np.pad(a, pad, mode="symmetric") for a in (x, y))
            x, y = ((a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2]) / 4.0 for a in (x, y))
        mx, my = _gaussian_filter(x, size), _gaussian_filter(y, size)
        luminance = (2.0 * mx * my + c1) / (mx * mx + my * my + c1)
        cross = 2.0 * _gaussian_filter(x * y, size)
        power = _gaussian_filter(x * x + y * y, size)
        cs = (cross - 2.0 * mx * my + c2) / (power - (mx * mx + my * my) + c2)
        last = k == len(weights) - 1
        terms.append(np.maximum((luminance * cs if last else cs).mean(axis=(0, 1)), 0.0))
    value = np.prod([t ** w for t, w in zip(terms, weights)], axis=0)
    return float(value.mean()), len(weights)
