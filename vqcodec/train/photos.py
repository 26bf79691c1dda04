"""Training photos: found, decoded, scaled, cropped (numpy and Pillow only, so arguments are checked without Keras)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

__all__ = ["IMAGE_SUFFIXES", "DEFAULT_SCALES", "find_images", "load_rgb", "build_pyramid", "center_crop_multiple"]

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


def center_crop_multiple(image: np.ndarray, multiple: int, max_side: int | None = None) -> np.ndarray:
    """Centre crop to a multiple of ``multiple`` (and at most ``max_side``) on each side."""
    h, w = image.shape[:2]
    th = (min(h, max_side or h) // multiple) * multiple
    tw = (min(w, max_side or w) // multiple) * multiple
    y, x = (h - th) // 2, (w - tw) // 2
    return image[y : y + th, x : x + tw]
