"""Training data: every image decoded once, kept in memory at a few scales, cut into random crops.

PNG decoding is far slower than a training step's worth of crops, so the
images are decoded and down-scaled once up front; each batch is then only
numpy slicing, which keeps both cores busy with the model.
"""

from __future__ import annotations

import math
from pathlib import Path

import keras
import numpy as np
from PIL import Image, ImageOps

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
DEFAULT_SCALES = (1.0, 0.8, 0.6, 0.45)


def find_images(root: str | Path) -> list[Path]:
    """All image files under ``root`` (recursively), sorted for reproducibility."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"not a directory: {root}")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise FileNotFoundError(f"no images found under {root}")
    return files


def load_rgb(path: str | Path) -> np.ndarray:
    """An image file as an RGB uint8 array, EXIF orientation applied."""
    with Image.open(path) as im:
        return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))


def build_pyramid(image: np.ndarray, scales=DEFAULT_SCALES, min_side: int = 0) -> list[np.ndarray]:
    """Down-scaled copies (Lanczos) of one image; scales too small for a crop are skipped."""
    pil = Image.fromarray(image)
    levels = []
    for scale in scales:
        w, h = round(pil.width * scale), round(pil.height * scale)
        if min(w, h) < min_side:
            continue
        levels.append(image if scale == 1.0 else np.asarray(pil.resize((w, h), Image.LANCZOS)))
    return levels


class CropDataset(keras.utils.PyDataset):
    """Random ``patch_size`` crops with flips from in-memory images at several scales.

    Yields float32 batches in [0, 1] of shape (batch_size, P, P, 3). Each
    "epoch" has ``steps`` batches; crops are drawn with a seeded generator so a
    run is reproducible.
    """

    def __init__(
        self,
        images: list[np.ndarray],
        batch_size: int,
        patch_size: int,
        steps: int,
        scales=DEFAULT_SCALES,
        seed: int = 0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.levels = [lvl for im in images for lvl in build_pyramid(im, scales, patch_size)]
        if not self.levels:
            raise ValueError(f"no training image is at least {patch_size} pixels on each side")
        # Sample levels in proportion to their area, so large images give more crops.
        areas = np.array([lvl.shape[0] * lvl.shape[1] for lvl in self.levels], dtype=np.float64)
        self.weights = areas / areas.sum()
        self.batch_size = int(batch_size)
        self.patch_size = int(patch_size)
        self.steps = int(steps)
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, index):
        p = self.patch_size
        batch = np.empty((self.batch_size, p, p, 3), dtype=np.uint8)
        picks = self.rng.choice(len(self.levels), size=self.batch_size, p=self.weights)
        for i, k in enumerate(picks):
            level = self.levels[k]
            y = self.rng.integers(0, level.shape[0] - p + 1)
            x = self.rng.integers(0, level.shape[1] - p + 1)
            crop = level[y : y + p, x : x + p]
            if self.rng.random() < 0.5:
                crop = crop[:, ::-1]
            batch[i] = crop
        return batch.astype(np.float32) / 255.0


def center_crop_multiple(image: np.ndarray, multiple: int, max_side: int | None = None) -> np.ndarray:
    """Centre crop to a multiple of ``multiple`` (and at most ``max_side``) on each side."""
    h, w = image.shape[:2]
    th = (min(h, max_side or h) // multiple) * multiple
    tw = (min(w, max_side or w) // multiple) * multiple
    y, x = (h - th) // 2, (w - tw) // 2
    return image[y : y + th, x : x + tw]


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    """PSNR in dB between two arrays on the same scale."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(peak * peak / mse)
