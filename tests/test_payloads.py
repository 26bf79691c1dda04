"""Lossless and alpha payloads decode only when exact: one complete PNG or simple lossless WebP, nothing else."""

from __future__ import annotations

import io
import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

import bitstream
import vqcodec
from vqcodec.codec import payloads


def _image(mode: str, w: int = 12, h: int = 8) -> Image.Image:
    rng = np.random.default_rng(0)
    channels = len(mode)
    a = rng.integers(0, 256, (h, w, channels) if channels > 1 else (h, w), dtype=np.uint8)
    return Image.fromarray(a, mode)


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _webp(img: Image.Image, **settings) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="WEBP", **settings)
    return buf.getvalue()


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(body, zlib.crc32(kind)))


def _png_rows(img: Image.Image, rows: int, interlace: int = 0) -> bytes:
    """A PNG of ``img``'s size whose complete zlib stream holds only ``rows`` rows."""
    colour = payloads.PNG_COLOUR_TYPES[img.mode][0]
    ihdr = struct.pack(">IIBBBBB", img.width, img.height, 8, colour, 0, 0, interlace)
    raw = np.asarray(img).reshape(img.height, -1)[:rows]
    data = b"".join(b"\x00" + row.tobytes() for row in raw)
    return payloads.PNG_SIGNATURE + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(data)) + _chunk(b"IEND", b"")


def _lossless_file(payload: bytes, img: Image.Image) -> bytes:
    return bitstream.pack(bitstream.Header(None, img.width, img.height, img.mode, kind="lossless"), payload)


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
def test_exact_payloads_decode_exactly(mode):
    img = _image(mode)
    for payload in (_png(img), _png_rows(img, img.height)):
        out = vqcodec.decompress(_lossless_file(payload, img))
        np.testing.assert_array_equal(np.asarray(out), np.asarray(img))
    webp = _webp(img.convert("RGBA" if "A" in mode else "RGB"), lossless=True, exact=True)
    out = vqcodec.decompress(_lossless_file(webp, img))
    np.testing.assert_array_equal(np.asarray(out), np.asarray(img))


def _refused(payload: bytes, img: Image.Image, words: str) -> None:
    with pytest.raises(bitstream.CorruptDataError, match=words) as error:
        vqcodec.decompress(_lossless_file(payload, img))
    assert "\n" not in str(error.value)


def test_png_payloads_that_are_not_exact_are_refused():
    img = _image("RGB")
    png = _png(img)
    _refused(_png_rows(img, img.height - 1), img, "holds 259 of its 296 bytes of rows")
    _refused(_png_rows(img, 1), img, "of its 296 bytes of rows")
    _refused(png + b"\x00", img, "1 bytes after its IEND")
    _refused(png[:-12], img, "cut short")
    _refused(_png_rows(img, img.height, interlace=1), img, "interlace 1")
    _refused(_png(img.convert("P")), img, "colour type 3")
    _refused(_png(img.convert("L")), img, "not an 8-bit non-interlaced RGB PNG")
    _refused(_png(img.resize((12, 9))), img, "12x9 PNG, the header says 12x8")
    # A chunk other than IHDR, IDAT and IEND, e.g. an animation control chunk.
    actl = png[:33] + _chunk(b"acTL", struct.pack(">II", 2, 0)) + png[33:]
    _refused(actl, img, "'acTL' chunk")
    flipped = bytearray(png)
    flipped[40] ^= 1
    _refused(bytes(flipped), img, "checksum")
    # Rows beyond the height: more pixel data than the rows hold.
    extra = np.concatenate([np.asarray(img), np.asarray(img)[:1]])
    taller = _png_rows(Image.fromarray(extra), extra.shape[0]).replace(
        struct.pack(">II", 12, 9), struct.pack(">II", 12, 8), 1
    )
    header_fixed = taller[:8] + _chunk(b"IHDR", taller[16:29]) + taller[33:]
    _refused(header_fixed, img, "more than its rows")


def test_webp_payloads_that_are_not_exact_are_refused():
    img = _image("RGB")
    webp = _webp(img, lossless=True, exact=True)
    _refused(_webp(img, quality=90), img, "not a simple lossless WebP")
    frames = [img, img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    animated = io.BytesIO()
    frames[0].save(animated, format="WEBP", save_all=True, append_images=frames[1:], lossless=True)
    _refused(animated.getvalue(), img, "not a simple lossless WebP")
    _refused(webp + b"\x00\x00", img, "WebP file of")
    padded = webp[:4] + struct.pack("<I", len(webp) + 2 - 8) + webp[8:] + b"\x00\x00"
    _refused(padded, img, "does not fill the file")
    _refused(_webp(img.resize((12, 9)), lossless=True), img, "12x9 WebP, the header says 12x8")
    _refused(webp[:30] + bytes(len(webp) - 30), img, "corrupt")


def test_alpha_plane_must_be_an_exact_png(tmp_path):
    """The same rules hold for the alpha plane of a learned file (checked before the index grid)."""
    png = _png_rows(Image.new("L", (16, 24), 200), 23)
    with pytest.raises(bitstream.CorruptDataError, match="alpha payload is a PNG whose pixel data holds"):
        payloads.check_png(png, 16, 24, ("L",), "alpha payload")
    with pytest.raises(bitstream.CorruptDataError, match="not an 8-bit non-interlaced L PNG"):
        payloads.check_png(_png(Image.new("RGB", (16, 24))), 16, 24, ("L",), "alpha payload")
    assert payloads.check_png(_png(Image.new("L", (16, 24))), 16, 24, ("L",), "alpha payload") == "L"


def test_pillows_pixel_limit_is_not_ours(monkeypatch):
    """A lossless file under our limit decodes with no Pillow warning, whatever Pillow's own limit says."""
    img = _image("RGB", 40, 30)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 1200 > 2 * 100: Image.open would refuse it
    for payload in (_png(img), _webp(img, lossless=True, exact=True)):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            out = vqcodec.decompress(_lossless_file(payload, img))
        np.testing.assert_array_equal(np.asarray(out), np.asarray(img))
    with pytest.raises(bitstream.ImageTooLargeError, match="1200 pixels, more than the limit of 1000"):
        vqcodec.decompress(_lossless_file(_png(img), img), max_pixels=1000)


def test_images_carrying_an_icc_profile_or_transparency_code_to_exact_payloads():
    """Metadata Pillow would write as iCCP or tRNS chunks never reaches a payload: every file made decodes."""
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    rgba = _image("RGBA", 24, 16)
    rgba.info["icc_profile"] = icc
    flat = Image.new("RGB", (24, 16), (200, 30, 30))
    flat.info["icc_profile"] = icc
    flat.info["transparency"] = (200, 30, 30)
    for img, lossless in ((rgba, False), (rgba, True), (flat, None), (flat, True)):
        data = vqcodec.compress(img, 90, lossless=lossless)
        out = vqcodec.decompress(data)
        assert out.size == img.size and out.mode == img.mode
        if lossless or bitstream.read_header(data).kind == "lossless":
            np.testing.assert_array_equal(np.asarray(out), np.asarray(img))


def test_an_iend_chunk_holding_data_is_refused():
    img = _image("RGB")
    png = _png(img)
    _refused(png[:-12] + _chunk(b"IEND", b"x"), img, "IEND chunk holds data")
