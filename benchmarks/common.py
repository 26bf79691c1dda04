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

from vqcodec.metrics import bpp, ms_ssim, ms_ssim_settings, psnr  # noqa: F401  (re-exported for the benchmarks)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm", ".webp"}

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
