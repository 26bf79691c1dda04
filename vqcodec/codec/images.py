"""Image input for the codec: open anything Pillow reads and normalise its mode.

Kept free of Keras/TensorFlow so the CLI can use it cheaply. The rules for
each Pillow mode are listed in :data:`MODE_RULES` (and in the README).
"""

from __future__ import annotations

import io
import os
import warnings

import numpy as np
from PIL import Image, ImageOps

from bitstream import check_pixels
from vqcodec.codec.payloads import open_lifted

__all__ = ["CODED_MODES", "MODE_RULES", "MultiFrameWarning", "open_header", "open_image", "to_coded_mode", "load_image"]

#: Modes the .vqc format stores; every other mode is converted to one of them.
CODED_MODES = ("L", "LA", "RGB", "RGBA")

#: Human-readable conversion rules, mode -> what is coded.
MODE_RULES = {
    "RGB": "RGB (the main path)",
    "L": "L: coded as grey (replicated to RGB for the model), decoded as L",
    "RGBA": "RGBA: colour as RGB, alpha stored losslessly (PNG) next to it",
    "LA": "LA: grey as L, alpha stored losslessly (PNG) next to it",
    "P": "palette: expanded to RGB, or RGBA if it has transparency",
    "PA": "palette + alpha: expanded to RGBA",
    "1": "1-bit: L (0 and 255)",
    "La / RGBa": "premultiplied alpha: un-premultiplied to LA / RGBA",
    "I;16*, I": "16-bit grey: L, scaled to 8 bits (round(v * 255 / 65535), values clipped to 0..65535)",
    "F": "32-bit float grey: L, clipped to 0..255 and rounded",
    "CMYK, YCbCr, LAB, HSV, RGBX, ...": "converted to RGB by Pillow",
}


class MultiFrameWarning(UserWarning):
    """An animation or multi-page file was given: only one frame is coded.

    Its message is one line, e.g. ``photo.gif has 12 frames: only the first is stored``.
    """


def _warn_if_multi_frame(img: Image.Image, name: str) -> bool:
    """The .vqc format holds one image, so extra frames are dropped, but never silently."""
    if not getattr(img, "is_animated", False):
        return False
    n = getattr(img, "n_frames", 1)
    if n > 1:
        frame = img.tell()
        which = "the first" if frame == 0 else f"frame {frame}"
        warnings.warn(MultiFrameWarning(f"{name} has {n} frames: only {which} is stored"), stacklevel=3)
    return n > 1


def open_header(fp) -> Image.Image:
    """``Image.open`` (the header only) with Pillow's pixel limit out of the way: callers apply ours."""
    position = fp.tell() if hasattr(fp, "tell") else None

    def opener():
        if position is not None:
            fp.seek(position)
        return Image.open(fp)

    return open_lifted(opener)


def open_image(source, max_pixels: int | None = None) -> Image.Image:
    """``source``: a path, bytes, a binary file object, a PIL image or a uint8 array.

    Returns a PIL image with EXIF orientation applied (not yet mode-normalised).
    Raises ``FileNotFoundError`` for a missing path, ``PIL.UnidentifiedImageError``
    for data Pillow cannot read, ``ValueError`` for unsupported arrays, and
    ``bitstream.ImageTooLargeError`` for an image over ``max_pixels`` (None:
    ``bitstream.DEFAULT_MAX_PIXELS``), from its header, before its pixels are read.
    Animated or multi-page input keeps one frame (the first, unless a PIL image
    positioned on another frame is given) and emits a :class:`MultiFrameWarning`.
    """
    if isinstance(source, Image.Image):
        img = source
    elif isinstance(source, np.ndarray):
        img = _from_array(source)
    elif isinstance(source, (bytes, bytearray, memoryview)):
        img = open_header(io.BytesIO(bytes(source)))
    elif isinstance(source, (str, os.PathLike)):
        img = open_header(os.fspath(source))
    elif hasattr(source, "read"):
        img = open_header(source)
    else:
        raise TypeError(
            f"image must be a path, bytes, a file object, a PIL image or a numpy array, "
            f"got {type(source).__name__}"
        )
    if isinstance(source, (str, os.PathLike)):
        name = os.path.basename(os.fspath(source))
    else:
        known = getattr(img, "filename", None) or getattr(source, "name", None)
        name = os.path.basename(known) if isinstance(known, str) and known else "the image"
    check_pixels(img.width, img.height, max_pixels, name)
    multi = _warn_if_multi_frame(img, name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the limit is ours, checked above
        img.load()
    if multi and img is not source:
        # Pillow keeps a multi-frame file open for seeking; keep only this frame
        single = img.copy()
        img.close()
        img = single
    transposed = ImageOps.exif_transpose(img)
    return img if transposed is None else transposed


def _from_array(a: np.ndarray) -> Image.Image:
    if a.dtype == bool:
        a = a.astype(np.uint8) * 255
    if a.dtype != np.uint8:
        raise ValueError(f"image arrays must be uint8 (or bool), got dtype {a.dtype}")
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    modes = {2: "L", 3: {2: "LA", 3: "RGB", 4: "RGBA"}}
    if a.ndim == 2:
        mode = "L"
    elif a.ndim == 3 and a.shape[2] in modes[3]:
        mode = modes[3][a.shape[2]]
    else:
        raise ValueError(f"image arrays must have shape (H, W) or (H, W, 1|2|3|4), got {a.shape}")
    if 0 in a.shape[:2]:
        raise ValueError(f"image is empty: shape {a.shape}")
    return Image.fromarray(np.ascontiguousarray(a), mode)


def to_coded_mode(img: Image.Image) -> Image.Image:
    """Convert ``img`` to one of :data:`CODED_MODES` following :data:`MODE_RULES`."""
    mode = img.mode
    if mode in CODED_MODES:
        return img
    if mode == "1":
        return img.convert("L")
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in img.info
        return img.convert("RGBA" if has_alpha else "RGB")
    if mode == "La":
        return img.convert("LA")
    if mode == "RGBa":
        return img.convert("RGBA")
    if mode.startswith("I"):  # "I", "I;16", "I;16B", "I;16L", "I;16N"
        a = np.asarray(img).astype(np.int64)
        a = np.clip(a, 0, 65535)
        a = (a * 255 + 32767) // 65535
        return Image.fromarray(a.astype(np.uint8), "L")
    if mode == "F":
        a = np.asarray(img).astype(np.float64)
        a = np.nan_to_num(a, nan=0.0)
        return Image.fromarray(np.clip(np.round(a), 0, 255).astype(np.uint8), "L")
    return img.convert("RGB")


def load_image(source, max_pixels: int | None = None) -> Image.Image:
    """:func:`open_image` followed by :func:`to_coded_mode`."""
    img = to_coded_mode(open_image(source, max_pixels))
    if img.width < 1 or img.height < 1:
        raise ValueError(f"image is empty: {img.width}x{img.height}")
    return img
