"""The lossless payload: the image in the smaller of lossless WebP and PNG, and when to try it.

Why: the learned model was trained on photographs. Screenshots, charts and
line art cost it more bytes than a lossless coder needs, and it blurs them;
the encoder keeps whichever is smaller, so a ``.vqc`` file is never larger
than lossless and never worse than the learned path. Pillow's coders are
used as they are (libwebp and zlib are well kept and fast).
"""

from __future__ import annotations

import io
import zlib

import numpy as np
from PIL import Image

from vqcodec.codec import payloads

__all__ = ["encode", "decode", "few_colours", "worth_trying", "quick_size", "payload_format", "MAX_COLOURS"]

#: Colour images with at most this many distinct colours skip the learned path ...
MAX_COLOURS = 256
#: ... and grey ones with at most this many levels (any 8-bit grey image has 256).
MAX_GREY_LEVELS = 32
#: Lossless is tried only past two checks, cheapest first. A quick lossless
#: coding, the smaller of deflate at level 1 and WebP's method 1 on a sample
#: of the image (:func:`_sample`), must be within this factor of the learned
#: file: it is at most 5.2 times the full lossless file on the content samples
#: (gradient_slide), and at least 7.2 times the learned file on every Kodak
#: photograph at the default quality (``python -m benchmarks.content``).
#: Deflate alone is no bound: on a smooth ramp it is hundreds of times the
#: full coding ...
QUICK_RATIO = 6
#: ... of the learned file or of this many bytes, the larger: a learned file of a few hundred bytes (an image
#: coded at a fraction of its size) would otherwise hide a smooth graphic that lossless codes smaller still.
QUICK_FLOOR = 2048
#: ... and then lossless WebP at Pillow's default effort within this factor:
#: at most 1.29 times the full lossless file on the samples. It costs about
#: 0.3 s on a Kodak image, which the full coding (11 s) would cost forty times.
DEFAULT_EFFORT_RATIO = 1.5
#: The quick codings see a sample: every fourth band of :data:`BAND_ROWS` rows, stacked
#: (a quarter of the pixels, a quarter of the time), their size scaled back up by the
#: rows; images under :data:`SAMPLE_MIN_ROWS` rows are coded whole. The stacks hold at
#: most :data:`_STRIP_PIXELS` pixels each, so memory stays small on large images.
BAND_ROWS = 16
BAND_EVERY = 4
SAMPLE_MIN_ROWS = 128
_STRIP_PIXELS = 1 << 20
#: libwebp's largest width or height; larger images are coded as PNG only.
WEBP_MAX_DIMENSION = 16383


def _webp(img: Image.Image, **settings) -> bytes:
    buf = io.BytesIO()
    img.convert("RGBA" if img.mode in ("LA", "RGBA") else "RGB").save(
        buf, format="WEBP", lossless=True, exact=True, **settings
    )
    return buf.getvalue()


def _webp_fits(img: Image.Image) -> bool:
    return max(img.size) <= WEBP_MAX_DIMENSION


def few_colours(img: Image.Image) -> bool:
    """True for bilevel, palette-like and flat images (:data:`MAX_COLOURS` colours, :data:`MAX_GREY_LEVELS` greys)."""
    return img.getcolors(MAX_GREY_LEVELS if img.mode in ("L", "LA") else MAX_COLOURS) is not None


def _strips(img: Image.Image) -> list[tuple[int, int, int, int]]:
    rows = max(1, _STRIP_PIXELS // img.width)
    return [(0, top, img.width, min(top + rows, img.height)) for top in range(0, img.height, rows)]


def _sample(img: Image.Image) -> tuple[list[Image.Image], float]:
    """The quick codings' input: stacks of sampled bands (or the image's strips), and the factor to scale their size by."""
    if img.height < SAMPLE_MIN_ROWS:
        return [img.crop(box) for box in _strips(img)], 1.0
    bands = [(top, min(top + BAND_ROWS, img.height)) for top in range(0, img.height, BAND_ROWS * BAND_EVERY)]
    per_stack = max(1, _STRIP_PIXELS // (img.width * BAND_ROWS))
    stacks = []
    for first in range(0, len(bands), per_stack):
        group = bands[first : first + per_stack]
        stack = Image.new(img.mode, (img.width, sum(b - t for t, b in group)))
        y = 0
        for top, bottom in group:
            stack.paste(img.crop((0, top, img.width, bottom)), (0, y))
            y += bottom - top
        stacks.append(stack)
    return stacks, img.height / sum(s.height for s in stacks)


def _deflate_size(parts: list[Image.Image]) -> int:
    deflate = zlib.compressobj(1)
    return sum(len(deflate.compress(np.asarray(part).tobytes())) for part in parts) + len(deflate.flush())


def _fast_webp_size(parts: list[Image.Image]) -> int:
    return sum(len(_webp(part, method=1, quality=25)) for part in parts)


def quick_size(img: Image.Image) -> int:
    """The smaller of the two quick lossless codings :func:`worth_trying` uses, in bytes (estimated from the sample)."""
    parts, scale = _sample(img)
    sizes = [_deflate_size(parts)] + ([_fast_webp_size(parts)] if _webp_fits(img) else [])
    return round(min(sizes) * scale)


def worth_trying(img: Image.Image, learned_bytes: int) -> bool:
    """Could a lossless coding be no larger than ``learned_bytes``?

    A deflate at level 1 is the cheapest bound and catches flat graphics;
    WebP's method 1 catches smooth ones (gradients), where deflate is ten
    times too large. Both code a sample of the image (:func:`_sample`).
    Photographs at high rates pass that check, so WebP at its default effort
    on the whole image has the last word (strip by strip, which bounds its
    memory on large images).
    """
    parts, scale = _sample(img)
    bound = QUICK_RATIO * max(learned_bytes, QUICK_FLOOR)
    if _deflate_size(parts) * scale > bound:
        if not _webp_fits(img) or _fast_webp_size(parts) * scale > bound:
            return False
    if not _webp_fits(img):
        return True
    return sum(len(_webp(img.crop(box))) for box in _strips(img)) <= DEFAULT_EFFORT_RATIO * learned_bytes


#: Images up to this size also get WebP's slowest, strongest method.
STRONG_EFFORT_PIXELS = 1_000_000


def encode(img: Image.Image) -> bytes:
    """The smallest of lossless WebP (pixels under transparent alpha kept: ``exact``) and optimised PNG.

    WebP runs at Pillow's default effort and at full quality; images up to
    :data:`STRONG_EFFORT_PIXELS` add method 6, which on graphics saves a few
    per cent more but takes 20 times as long as method 4. Images wider or
    taller than libwebp allows are coded as PNG.
    """
    candidates = []
    if _webp_fits(img):
        settings = [{}, {"quality": 100}]
        if img.width * img.height <= STRONG_EFFORT_PIXELS:
            settings.append({"quality": 100, "method": 6})
        candidates += [_webp(img, **extra) for extra in settings]
    candidates.append(payloads.png_bytes(img))
    return min(candidates, key=len)


def payload_format(payload: bytes) -> str:
    """"WebP" or "PNG" (from the payload's own magic bytes)."""
    if payload[:4] == b"RIFF" and payload[8:12] == b"WEBP":
        return "WebP"
    if payload[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    return "unknown"


def decode(payload: bytes, width: int, height: int, mode: str) -> Image.Image:
    """The stored image in ``mode``; the payload must be an exact PNG or WebP (:mod:`.payloads`) of the header's
    size, checked before any pixel is decoded."""
    from bitstream import CorruptDataError

    fmt = payload_format(payload)
    if fmt == "WebP":
        img = payloads.open_webp(payload, width, height, "lossless payload")
    elif fmt == "PNG":
        img = payloads.open_png(payload, width, height, (mode,), "lossless payload")
    else:
        raise CorruptDataError("lossless payload is neither a WebP nor a PNG file")
    return img if img.mode == mode else img.convert(mode)
