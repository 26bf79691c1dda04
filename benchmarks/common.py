"""Shared helpers: image discovery, metrics, progress bar, JSON output."""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from vqcodec.metrics import bpp, psnr  # noqa: F401  (re-exported for the benchmarks)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm", ".webp"}

# Default MS-SSIM weights (Wang et al. 2003), as used by tf.image.ssim_multiscale.
MS_SSIM_POWER_FACTORS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
MS_SSIM_FILTER_SIZE = 11


def list_images(data: str | os.PathLike, limit: int | None = None) -> list[Path]:
    """Image files directly inside ``data``, sorted by name (non-images such as README are ignored)."""
    root = Path(data)
    if not root.is_dir():
        raise SystemExit(f"--data {root}: not a directory")
    files = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if limit is not None:
        files = files[: max(0, limit)]
    if not files:
        raise SystemExit(f"--data {root}: no images found ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


def load_rgb(path: str | os.PathLike) -> Image.Image:
    with Image.open(path) as im:
        return im.convert("RGB")


def to_array(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def ms_ssim_settings(height: int, width: int) -> tuple[tuple[float, ...], int]:
    """Power factors and filter size for ``tf.image.ssim_multiscale`` on an image of this size.

    TF's defaults (5 scales, 11x11 Gaussian window) need the coarsest scale, after four
    halvings that round up, to be at least 11 px: images of at least 161 px per side.  For
    smaller images we drop the coarsest scales and renormalise the remaining weights to sum
    to 1; below 11 px the window shrinks to the image.  Kodak (512 x 768) always gets the
    standard 5-scale MS-SSIM.  Results on small images are therefore not comparable with
    published MS-SSIM numbers; they exist so that the smoke tests can run on tiny images.
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


_tf = None


def _tensorflow():
    global _tf
    if _tf is None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf

        _tf = tf
    return _tf


def ms_ssim(reference: np.ndarray, decoded: np.ndarray) -> tuple[float, int]:
    """MS-SSIM of two uint8 RGB arrays via ``tf.image.ssim_multiscale`` (max_val=255).

    Returns ``(value, number_of_scales_used)``; see :func:`ms_ssim_settings`.
    """
    if reference.shape != decoded.shape:
        raise ValueError(f"shape mismatch: {reference.shape} vs {decoded.shape}")
    tf = _tensorflow()
    power_factors, filter_size = ms_ssim_settings(*reference.shape[:2])
    value = tf.image.ssim_multiscale(
        tf.constant(reference, tf.float32),
        tf.constant(decoded, tf.float32),
        max_val=255.0,
        power_factors=power_factors,
        filter_size=filter_size,
    )
    return float(value), len(power_factors)


def ms_ssim_db(value: float) -> float:
    """MS-SSIM in dB, -10 log10(1 - MS-SSIM) (inf for a perfect match)."""
    if value >= 1.0:
        return float("inf")
    return float(-10.0 * math.log10(1.0 - value))


class Progress:
    """A minimal progress bar on stderr (only redraws on a TTY; otherwise a line every 10%)."""

    def __init__(self, total: int, label: str = "", stream=None, width: int = 30):
        self.total = max(1, int(total))
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.done = 0
        self.start = time.perf_counter()
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._last_decile = -1

    def update(self, n: int = 1, note: str = "") -> None:
        self.done = min(self.total, self.done + n)
        frac = self.done / self.total
        elapsed = time.perf_counter() - self.start
        eta = elapsed / frac - elapsed if frac > 0 else 0.0
        bar = "#" * int(frac * self.width)
        line = (f"{self.label} [{bar:<{self.width}}] {self.done}/{self.total} "
                f"{elapsed:6.1f}s elapsed, ~{eta:6.1f}s left {note}")
        if self.tty:
            self.stream.write("\r" + line[:160].ljust(160))
            self.stream.flush()
        else:
            decile = int(frac * 10)
            if decile != self._last_decile or self.done == self.total:
                self._last_decile = decile
                self.stream.write(line.rstrip() + "\n")
                self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def notice(message: str) -> None:
    print(f"notice: {message}", file=sys.stderr)


def write_json(path: str | os.PathLike, obj) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False, allow_nan=True)
        f.write("\n")


def slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name.lower()).strip("-")
