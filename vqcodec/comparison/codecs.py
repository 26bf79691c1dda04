"""Pillow's codecs, as a user would call them: JPEG, WebP, JPEG 2000 and AVIF.

Each codec encodes a PIL RGB image at one setting to the bytes of a complete file
(headers included, nothing stripped) and decodes such bytes back to an RGB image.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Callable

from PIL import Image, features


@dataclass(frozen=True)
class PillowCodec:
    key: str  # short id, used for file names and --codecs
    name: str  # display name
    feature: str  # PIL.features name that must be present
    settings: tuple  # default RD sweep of the quality parameter, low to high rate
    search_range: tuple[int, int] | None  # integer quality range for bpp matching (speed bench)
    param: str  # what the quality number means
    _encode: Callable[[Image.Image, float], bytes] = field(repr=False)
    description: str = ""

    def available(self) -> bool:
        try:
            return bool(features.check(self.feature))
        except ValueError:
            return False

    def encode(self, image: Image.Image, quality) -> bytes:
        return self._encode(image, quality)

    @staticmethod
    def decode(data: bytes) -> Image.Image:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            return im.convert("RGB")


def _save(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kwargs)
    return buf.getvalue()


def _jpeg(image, q):
    # Pillow's defaults: 4:2:0 chroma subsampling, standard tables, no optimize/progressive.
    return _save(image, "JPEG", quality=int(q))


def _webp(image, q):
    return _save(image, "WEBP", quality=int(q), method=6)


def _jpeg2000(image, target_bpp):
    # OpenJPEG rate control: "rates" are compression ratios against the raw 24-bit RGB image.
    # Irreversible (9/7) wavelet and the RGB->YCbCr component transform (mct=1; Pillow's
    # default of mct=0 codes R, G, B separately and loses ~4 dB at 1 bpp), JP2 container.
    return _save(image, "JPEG2000", quality_mode="rates", quality_layers=[24.0 / float(target_bpp)],
                 irreversible=True, mct=1)


def _avif(image, q):
    # Pillow's AVIF defaults otherwise: speed 6, 4:2:0.
    return _save(image, "AVIF", quality=int(q))


JPEG = PillowCodec("jpeg", "JPEG", "jpg", (5, 10, 15, 20, 30, 40, 50, 60, 70, 80, 90, 95), (1, 95),
                   "quality", _jpeg, "Pillow JPEG (libjpeg-turbo), quality sweep, 4:2:0 (Pillow default)")
WEBP = PillowCodec("webp", "WebP", "webp", (5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95), (0, 100),
                   "quality", _webp, "Pillow WebP (libwebp), method=6, quality sweep")
JPEG2000 = PillowCodec("jpeg2000", "JPEG 2000", "jpg_2000",
                       (0.1, 0.15, 0.25, 0.375, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0), None,
                       "target bpp", _jpeg2000,
                       "Pillow JPEG 2000 (OpenJPEG), irreversible 9/7 wavelet, mct=1, rate control at the target bpp, JP2 file")
AVIF = PillowCodec("avif", "AVIF", "avif", (10, 20, 30, 40, 50, 60, 70, 80, 90), (0, 100),
                   "quality", _avif, "Pillow AVIF (libavif), quality sweep, speed 6, 4:2:0 (Pillow defaults)")

ALL = (JPEG, WEBP, JPEG2000, AVIF)
BY_KEY = {c.key: c for c in ALL}


def library_versions() -> dict:
    out = {}
    for name in ("jpg", "libjpeg_turbo", "webp", "jpg_2000", "avif"):
        try:
            out[name] = features.version(name)
        except ValueError:
            out[name] = None
    import PIL

    out["pillow"] = PIL.__version__
    return out
