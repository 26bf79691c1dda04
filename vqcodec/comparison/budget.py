"""An image coded by vqcodec and by Pillow's WebP, AVIF and JPEG at the same byte budget, with the numbers.

vqcodec codes the image at the requested setting; its file's size is the
budget. Each other codec gets the largest file not above it: a bisection over
its integer quality keeps a quality whose file fits and one whose file does
not, until they are neighbours. A codec whose smallest file is over the budget
is reported as such, with no image, so every image shown is within it.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

import numpy as np
from PIL import Image

from vqcodec.comparison import codecs as pillow_codecs
from vqcodec.metrics import bpp as bits_per_pixel
from vqcodec.metrics import ms_ssim, psnr

__all__ = ["Panel", "Comparison", "compare", "fit_budget", "DEFAULT_CODECS"]

#: The codecs a comparison runs beside vqcodec, by key of :mod:`vqcodec.comparison.codecs`: those with a
#: 0..100 quality to search (JPEG 2000's setting is a target rate, not a quality).
DEFAULT_CODECS = ("webp", "avif", "jpeg")
#: Quality range searched for each codec (Pillow's full range).
QUALITIES = (0, 100)


@dataclasses.dataclass
class Panel:
    """One codec's result: its file and decoded image (None when it cannot fit the budget), and the numbers."""

    codec: str
    setting: str
    data: bytes | None
    image: Image.Image | None
    nbytes: int
    bpp: float
    psnr: float
    ms_ssim: float
    note: str = ""


@dataclasses.dataclass
class Comparison:
    """The original (in its coded mode), the byte budget and one :class:`Panel` per codec, vqcodec's first."""

    name: str
    original: Image.Image
    budget: int
    panels: list[Panel]
    notes: list[str]

    def rows(self) -> list[dict]:
        """The numbers, one dict per panel (JSON-ready)."""
        return [
            {"codec": p.codec, "setting": p.setting, "bytes": p.nbytes, "bpp": p.bpp, "psnr": p.psnr,
             "ms_ssim": p.ms_ssim, "note": p.note}
            for p in self.panels
        ]


def _scores(original: Image.Image, decoded: Image.Image) -> tuple[float, float]:
    """PSNR and MS-SSIM on 8-bit RGB."""
    a = np.asarray(original.convert("RGB"))
    b = np.asarray(decoded.convert("RGB"))
    return psnr(a, b), ms_ssim(a, b)[0]


def _codec_input(img: Image.Image, codec: pillow_codecs.PillowCodec) -> Image.Image:
    """What the codec is given: alpha kept where it has alpha (WebP, AVIF), else RGB."""
    if img.mode in ("LA", "RGBA") and codec.key in ("webp", "avif"):
        return img.convert("RGBA")
    return img.convert("RGB")


def fit_budget(img: Image.Image, codec: pillow_codecs.PillowCodec, budget: int) -> tuple[int | None, bytes]:
    """``(quality, file)``: the largest file of ``codec`` not above ``budget`` bytes, the next quality's being
    above it; ``(None, smallest file)`` when even the lowest quality is over."""
    source = _codec_input(img, codec)
    sizes: dict[int, bytes] = {}

    def encoded(q: int) -> bytes:
        if q not in sizes:
            sizes[q] = codec.encode(source, q)
        return sizes[q]

    lo, hi = QUALITIES
    if len(encoded(lo)) > budget:
        return None, encoded(lo)
    if len(encoded(hi)) <= budget:
        return hi, encoded(hi)
    while hi - lo > 1:  # encoded(lo) fits, encoded(hi) does not
        mid = (lo + hi) // 2
        if len(encoded(mid)) <= budget:
            lo = mid
        else:
            hi = mid
    return lo, encoded(lo)


def _decoded(data: bytes) -> Image.Image:
    import io

    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return im.copy()


def compare(
    image,
    quality: int | None = None,
    *,
    size: int | None = None,
    bpp: float | None = None,
    model=None,
    codecs: tuple[str, ...] = DEFAULT_CODECS,
    name: str | None = None,
    max_pixels: int | None = None,
) -> Comparison:
    """Codes ``image`` with vqcodec (``quality``, or a ``size`` in bytes, or ``bpp``) and with each of
    ``codecs`` at the largest file not above vqcodec's; returns the files, decoded images and numbers.

    ``image``: anything :func:`vqcodec.compress` takes. A codec this Pillow lacks is left out and named in
    ``notes``.
    """
    from vqcodec.codec import coding, images, loading

    if sum(v is not None for v in (quality, size, bpp)) > 1:
        raise ValueError("give one of quality, size and bpp")
    unknown = [key for key in codecs if key not in DEFAULT_CODECS]
    if unknown:
        raise ValueError(f"unknown codec {unknown[0]!r}; known: {', '.join(DEFAULT_CODECS)}")
    original = images.load_image(image, max_pixels)
    if name is None:
        name = Path(os.fspath(image)).name if isinstance(image, (str, os.PathLike)) else "image"
    if bpp is not None:
        if not (bpp > 0 and math.isfinite(bpp)):
            raise ValueError(f"bpp must be a positive number, got {bpp}")
        size = max(1, math.floor(bpp * original.width * original.height / 8))
    model = loading.resolve_model(model)
    data = coding.compress(original, quality, model, size=size)
    decoded = coding.decompress(data, model, max_pixels=max_pixels)
    width, height = original.size
    scores = _scores(original, decoded)
    panels = [Panel("vqcodec", coding.describe_coding(data), data, decoded, len(data),
                    bits_per_pixel(len(data), width, height), *scores)]
    notes = []
    for key in codecs:
        codec = pillow_codecs.BY_KEY[key]
        if not codec.available():
            notes.append(f"{codec.name}: this Pillow has no {codec.name} support; left out")
            continue
        q, file = fit_budget(original, codec, len(data))
        if q is None:
            panels.append(Panel(codec.name, f"{codec.param} {QUALITIES[0]}", None, None, len(file),
                                bits_per_pixel(len(file), width, height), math.nan, math.nan,
                                note=f"its smallest file is {len(file)} bytes, over the budget"))
            continue
        image_out = _decoded(file)
        panels.append(Panel(codec.name, f"{codec.param} {q}", file, image_out, len(file),
                            bits_per_pixel(len(file), width, height), *_scores(original, image_out)))
    return Comparison(name, original, len(data), panels, notes)
