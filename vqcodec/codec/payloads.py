"""Exact image payloads: a PNG or WebP inside a ``.vqc`` file is checked whole before Pillow decodes it.

Why: Pillow forgives. It fills the rows a short PNG lacks with zeros, ignores
bytes after a PNG's end or a WebP's RIFF chunk, decodes lossy and animated
WebP, and warns (or refuses) by its own pixel limit. A payload must instead
be exactly what the encoder writes (FORMAT.md, *Image payloads*): one
non-interlaced 8-bit PNG of IHDR, IDAT and IEND chunks with every row
present and nothing after IEND, or one simple-format lossless WebP (a single
VP8L chunk filling the RIFF file). These checks read the
structure and, for PNG, inflate the pixel data once with a bounded buffer,
so they cost time linear in the payload and the image, and no image-sized
memory; anything else is a ``bitstream.CorruptDataError``.
"""

from __future__ import annotations

import contextlib
import io
import struct
import threading
import zlib

from PIL import Image

__all__ = ["PNG_COLOUR_TYPES", "check_png", "check_webp", "open_png", "open_webp", "png_bytes", "pillow_limit_lifted",
           "open_lifted"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: PNG colour type of each coded mode, and its channels.
PNG_COLOUR_TYPES = {"L": (0, 1), "LA": (4, 2), "RGB": (2, 3), "RGBA": (6, 4)}
_INFLATE_STEP = 1 << 20
_LIFTING = threading.Lock()


@contextlib.contextmanager
def pillow_limit_lifted():
    """Pillow's own pixel limit off while an image whose size our limit has allowed is opened.

    Pillow keeps its limit in a global (``Image.MAX_IMAGE_PIXELS``) and some
    plugins check it when they read the header; it is lifted only for that
    read, under a lock, and restored after.
    """
    with _LIFTING:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def png_bytes(img: Image.Image) -> bytes:
    """``img`` as an exact payload PNG: optimised, and with no ICC profile or transparency chunk even when the image
    carries them in ``info`` (the payload rules allow IHDR, IDAT and IEND only)."""
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True, icc_profile=None, transparency=None)
    return buf.getvalue()


def open_lifted(opener):
    """``opener()`` (an ``Image.open`` or a plugin's constructor, which read the header) with Pillow's pixel limit
    out of the way: its warning ignored, and, only when Pillow refuses the size outright, once more with its limit
    lifted. The caller applies our limit."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            return opener()
        except Image.DecompressionBombError:
            with pillow_limit_lifted():
                return opener()


def _corrupt(message: str) -> Exception:
    from bitstream import CorruptDataError

    return CorruptDataError(message)


def check_png(data: bytes, width: int, height: int, modes: tuple[str, ...], what: str) -> str:
    """The mode of the exact PNG ``data`` of ``width`` x ``height`` in one of ``modes``; else ``CorruptDataError``."""
    view = memoryview(data)
    if bytes(view[:8]) != PNG_SIGNATURE:
        raise _corrupt(f"{what} is not a PNG file")
    pos, idat, seen = 8, zlib.decompressobj(), []
    mode = None
    expected = produced = 0
    while True:
        if pos + 12 > len(view):
            raise _corrupt(f"{what} is a PNG cut short (no IEND chunk)")
        length, kind = struct.unpack(">I4s", view[pos : pos + 8])
        end = pos + 12 + length
        if end > len(view):
            raise _corrupt(f"{what} is a PNG cut short in its {kind!r} chunk")
        body = view[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", view[end - 4 : end])
        if zlib.crc32(body, zlib.crc32(kind)) != crc:
            raise _corrupt(f"{what} is a PNG whose {kind.decode('latin-1')} chunk fails its checksum")
        if not seen:
            if kind != b"IHDR" or length != 13:
                raise _corrupt(f"{what} is a PNG that does not start with its IHDR chunk")
            w, h, depth, colour, compression, filtering, interlace = struct.unpack(">IIBBBBB", body)
            if (w, h) != (width, height):
                raise _corrupt(f"{what} is a {w}x{h} PNG, the header says {width}x{height}")
            mode = next((m for m in modes if PNG_COLOUR_TYPES[m][0] == colour), None)
            if depth != 8 or mode is None or compression or filtering or interlace:
                raise _corrupt(
                    f"{what} is not an 8-bit non-interlaced {' or '.join(modes)} PNG "
                    f"(bit depth {depth}, colour type {colour}, interlace {interlace})"
                )
            expected = height * (1 + width * PNG_COLOUR_TYPES[mode][1])
        elif kind == b"IDAT":  # consecutive: no other chunk may come between them
            produced += _inflate(idat, body, expected - produced, what)
        elif kind == b"IEND":
            if length:
                raise _corrupt(f"{what} is a PNG whose IEND chunk holds data")
            if end != len(view):
                raise _corrupt(f"{what} is a PNG with {len(view) - end} bytes after its IEND chunk")
            break
        else:
            raise _corrupt(f"{what} is a PNG with a {kind.decode('latin-1')!r} chunk (only IHDR, IDAT, IEND)")
        seen.append(kind)
        pos = end
    if b"IDAT" not in seen or not idat.eof or produced != expected or idat.unused_data:
        raise _corrupt(f"{what} is a PNG whose pixel data holds {produced} of its {expected} bytes of rows")
    return mode


def _inflate(stream, chunk, room: int, what: str) -> int:
    """Bytes ``chunk`` inflates to, never holding more than one step of them; refused past ``room``."""
    total, data = 0, chunk
    while True:
        try:
            out = stream.decompress(data, _INFLATE_STEP)
        except zlib.error as exc:
            raise _corrupt(f"{what} is a PNG whose pixel data does not inflate: {exc}") from None
        total += len(out)
        if total > room or (stream.eof and stream.unused_data):
            raise _corrupt(f"{what} is a PNG whose pixel data holds more than its rows")
        data = stream.unconsumed_tail
        if not data and len(out) < _INFLATE_STEP:  # a full step may leave output pending inside zlib
            return total


def check_webp(data: bytes, width: int, height: int, what: str) -> None:
    """Refuses (``CorruptDataError``) anything but one simple lossless WebP of ``width`` x ``height``."""
    if len(data) < 25 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise _corrupt(f"{what} is not a WebP file")
    (riff,) = struct.unpack("<I", data[4:8])
    if riff + 8 != len(data):
        raise _corrupt(f"{what} is a WebP file of {riff + 8} bytes in {len(data)}")
    kind, size = data[12:16], struct.unpack("<I", data[16:20])[0]
    if kind != b"VP8L":
        raise _corrupt(f"{what} is not a simple lossless WebP (its first chunk is {kind.decode('latin-1')!r})")
    if 20 + size + (size & 1) != len(data):
        raise _corrupt(f"{what} is a WebP whose VP8L chunk does not fill the file")
    if data[20] != 0x2F:
        raise _corrupt(f"{what} is a WebP whose VP8L chunk lacks its signature")
    (bits,) = struct.unpack("<I", data[21:25])
    w, h, version = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, bits >> 29
    if version:
        raise _corrupt(f"{what} is a WebP of VP8L version {version}")
    if (w, h) != (width, height):
        raise _corrupt(f"{what} is a {w}x{h} WebP, the header says {width}x{height}")


def _load(plugin, data: bytes, what: str) -> Image.Image:
    """Decodes a checked payload with Pillow's plugin class itself: its pixel limit is ours, already applied."""
    try:
        img = open_lifted(lambda: plugin(io.BytesIO(data)))
        img.load()
    except Exception as exc:
        raise _corrupt(f"{what} is corrupt: {exc}") from None
    return img


def open_png(data: bytes, width: int, height: int, modes: tuple[str, ...], what: str) -> Image.Image:
    """The decoded exact PNG (see :func:`check_png`)."""
    from PIL import PngImagePlugin

    check_png(data, width, height, modes, what)
    return _load(PngImagePlugin.PngImageFile, data, what)


def open_webp(data: bytes, width: int, height: int, what: str) -> Image.Image:
    """The decoded exact lossless WebP (see :func:`check_webp`)."""
    from PIL import WebPImagePlugin

    check_webp(data, width, height, what)
    img = _load(WebPImagePlugin.WebPImageFile, data, what)
    if img.size != (width, height):
        raise _corrupt(f"{what} decodes to {img.width}x{img.height}, the header says {width}x{height}")
    return img
