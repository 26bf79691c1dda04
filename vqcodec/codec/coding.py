"""Images <-> ``.vqc`` bytes: the codec's compress and decompress.

``compress`` pads the image to the model's stride (edge padding), runs the
model's ``encode_to_indices`` (tile by tile for large images,
:mod:`vqcodec.codec.tiling`), entropy-codes the whole index grid in one
payload and packs it with a header into a ``.vqc`` file. ``decompress`` does
the reverse and crops the padding away. Quality is 0 .. 100 and selects one
of the model's operating points (:func:`vqcodec.quality.level_of`): a level
(level ``L`` is the model's quality index ``L - 1``) and the scale the image
is coded at. Below about 0.3 bpp a smaller image at a finer level beats the
whole image at a coarse one: the encoder downscales it (Lanczos), the header
records the coded size, and the decoder upsamples the decoded image back
(Lanczos). Index grids are (latent rows, latent columns, code groups).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

import bitstream
from vqcodec.codec import lossless as lossless_coding
from vqcodec.codec import payloads
from vqcodec.codec.images import load_image
from vqcodec.codec.interface import CodecModel
from vqcodec.codec.loading import RETIRED_DEFAULTS, model_data, resolve_model
from vqcodec.codec.targets import search_target
from vqcodec.codec.tiling import decode_image, effective_tile_size, encode_grid, timed
from vqcodec.model.recipe import STRIDE
from vqcodec.metrics import bpp
from vqcodec.quality import DEFAULT_QUALITY, MAX_QUALITY, level_of

__all__ = ["compress", "decompress", "indices_of", "read_indices", "describe_coding"]

Model = CodecModel | str | os.PathLike | None


def _tables(model: CodecModel):
    tables = model_data(model)[1]
    if tables is None:
        raise ValueError("the model has no entropy-coding tables; fit them with vqcodec train DATA -o MODEL --evaluate-only")
    return tables


def _check_quality(quality: int | None, model: CodecModel) -> int:
    """The operating point (1 .. M) of a 0 .. 100 ``quality`` (None: :data:`DEFAULT_QUALITY`)."""
    if quality is None:
        quality = DEFAULT_QUALITY
    if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)):
        raise TypeError(f"quality must be an int, got {quality!r}")
    if not 0 <= quality <= MAX_QUALITY:
        raise ValueError(f"quality must be in 0..{MAX_QUALITY}, got {quality}")
    return level_of(quality, len(model.operating_points()))


def _split(img: Image.Image) -> tuple[np.ndarray, Image.Image | None]:
    """(rgb uint8 array (H, W, 3), alpha PIL image or None) of a coded-mode image."""
    mode = img.mode
    alpha = img.getchannel("A") if mode in ("LA", "RGBA") else None
    if mode in ("L", "LA"):
        grey = np.asarray(img.getchannel("L") if mode == "LA" else img)
        rgb = np.repeat(grey[:, :, None], 3, axis=2)
    else:
        rgb = np.asarray(img.convert("RGB") if mode == "RGBA" else img)
    return rgb, alpha


def _pad(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    ph, pw = -h % STRIDE, -w % STRIDE
    if ph or pw:
        rgb = np.pad(rgb, ((0, ph), (0, pw), (0, 0)), mode="edge")
    return rgb


def coded_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """The size an image of ``width`` x ``height`` is coded at, at ``scale``."""
    return max(1, round(width * scale)), max(1, round(height * scale))


class _Source:
    """One image to code: its pixels, alpha plane, and padded RGB at each scale (made once, on demand)."""

    def __init__(self, image, max_pixels: int | None = None):
        self.img = load_image(image, max_pixels)
        self.rgb, self.alpha = _split(self.img)
        self._padded: dict[float, np.ndarray] = {}

    def padded(self, scale: float) -> np.ndarray:
        if scale not in self._padded:
            rgb = self.rgb
            if scale != 1.0:
                size = coded_size(self.img.width, self.img.height, scale)
                rgb = np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS))
            self._padded[scale] = _pad(rgb)
        return self._padded[scale]


class _Codings:
    """The codings of one image by one model, each candidate (level index, scale) coded and decoded at most once.

    An operating point (level, scale, alternatives) is coded as the candidate, among itself and its
    alternatives, with the least ``bpp + lambda * 255^2 * MSE``, pixels in [0, 1] (``lambda``: the point's
    level's; the loss that level was trained on); a point without alternatives is coded as itself, without
    decoding.
    """

    def __init__(self, model: CodecModel, source: _Source, tile_size: int | None, timings: dict | None, progress=None):
        self.model, self.source, self.timings = model, source, timings
        self.points = model.operating_points()
        self._tile_size, self._progress = tile_size, progress
        self._grids: dict = {}
        self._files: dict = {}
        self._decoded: dict = {}
        self._tiles: dict = {}

    def tile_size(self, candidate) -> int:
        if candidate not in self._tiles:
            padded = self.source.padded(candidate[1])
            self._tiles[candidate] = effective_tile_size(padded.shape[0] // STRIDE, padded.shape[1] // STRIDE, self._tile_size)
        return self._tiles[candidate]

    def grid(self, candidate) -> np.ndarray:
        if candidate not in self._grids:
            level, scale = candidate
            progress, self._progress = self._progress, None  # the first grid coded reports its progress
            self._grids[candidate] = encode_grid(
                self.model, self.source.padded(scale), level + 1, self.tile_size(candidate), self.timings, progress
            )
        return self._grids[candidate]

    def file(self, candidate) -> bytes:
        if candidate not in self._files:
            self._files[candidate] = _learned_file(
                self.model, self.source, self.grid(candidate), candidate, self.tile_size(candidate), self.timings
            )
        return self._files[candidate]

    def decoded(self, candidate) -> Image.Image:
        """The image the candidate's file decodes to, at the image's size."""
        if candidate not in self._decoded:
            img, (level, scale) = self.source.img, candidate
            w, h = coded_size(img.width, img.height, scale)
            out = decode_image(self.model, self.grid(candidate), level + 1, w, h, self.timings)
            self._decoded[candidate] = out if scale == 1.0 else out.resize(img.size, Image.Resampling.LANCZOS)
        return self._decoded[candidate]

    def chosen(self, point: int) -> tuple[int, float]:
        """The candidate operating point ``point`` (1 .. M) is coded as for this image."""
        level, scale, alternatives = self.points[point - 1]
        candidates = [(level, scale), *alternatives]
        if len(candidates) == 1 or self.model.lambdas is None:
            return candidates[0]
        img = self.source.img
        reference = np.asarray(img.convert("RGB"), np.float64)
        weight = float(self.model.lambdas[level])  # lambda * 255^2 * MSE of [0, 1] pixels = lambda * MSE of 8-bit ones

        def cost(candidate) -> float:
            mse = float(np.mean((reference - np.asarray(self.decoded(candidate), np.float64)) ** 2))
            return bpp(len(self.file(candidate)), img.width, img.height) + weight * mse

        return min(candidates, key=cost)


def _prepare(image, quality, model, tile_size, timings=None, progress=None, max_pixels=None):
    model = resolve_model(model)
    point = _check_quality(quality, model)
    return model, point, _Codings(model, _Source(image, max_pixels), tile_size, timings, progress)


def indices_of(image, quality: int | None = None, model: Model = None, *, tile_size: int | None = None) -> np.ndarray:
    """The index grid (h/8, w/8, G) that :func:`compress` codes for ``image`` (h, w: the coded size)."""
    model, point, codings = _prepare(image, quality, model, tile_size)
    return codings.grid(codings.chosen(point))


def compress(
    image,
    quality: int | None = None,
    model: Model = None,
    *,
    size: int | None = None,
    psnr: float | None = None,
    strict: bool = False,
    lossless: bool | None = None,
    tile_size: int | None = None,
    timings: dict | None = None,
    progress: Callable[[int, int], None] | None = None,
    max_pixels: int | None = None,
) -> bytes:
    """Compress ``image`` to ``.vqc`` bytes.

    ``image``: a path, bytes, a binary file object, a PIL image or a uint8
    array (H, W), (H, W, 1|2|3|4). ``quality``: 0 .. 100, higher is better
    (None = :data:`vqcodec.quality.DEFAULT_QUALITY`). ``model``: None (the
    shipped default), a ``.keras`` path, or a loaded model.

    Targets, instead of ``quality`` (as cwebp has ``-size`` and ``-psnr``):
    ``size`` (bytes) gives the best quality whose file fits; ``psnr`` (dB, on
    8-bit RGB) the smallest file that reaches it. Both search the model's
    operating points by bisection and consider the lossless coding too. A target that
    cannot be met gives the closest file and a
    :class:`vqcodec.codec.targets.TargetNotMetWarning`, or with ``strict`` a
    ``TargetNotMetError``.

    ``lossless``: None (the encoder decides: images of few colours are stored
    losslessly, and any image whose lossless coding is no larger than the
    learned file), True (always lossless), False (never). ``tile_size``:
    latent tile size for large images (None: the default rule of
    :mod:`vqcodec.codec.tiling`; 0 = never tile). ``timings``: a dict to fill
    with seconds spent in "network" (the model's index function, quantiser
    included, and in decoding the upsampling of a smaller coded image) and
    "entropy" (entropy coding, the alpha plane and lossless coding). ``progress(done, total)`` is called after each
    tile with the latent positions coded so far. ``max_pixels`` (None: ``bitstream.DEFAULT_MAX_PIXELS``): larger
    images are refused (``bitstream.ImageTooLargeError``) before their pixels are read, so that every file made
    decodes under the same limit.
    """
    _init_timings(timings)
    targets = [name for name, value in (("size", size), ("psnr", psnr)) if value is not None]
    if len(targets) > 1 or (targets and quality is not None):
        raise ValueError("give one of quality, size and psnr")
    if size is not None and (isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size <= 0):
        raise ValueError(f"size must be a positive number of bytes, got {size!r}")
    if psnr is not None and not (isinstance(psnr, (int, float, np.floating)) and 0 < psnr < 200):
        raise ValueError(f"psnr must be a positive number of dB, got {psnr!r}")
    model = resolve_model(model)
    if targets:
        quality = MAX_QUALITY
    model, point, codings = _prepare(image, quality, model, tile_size, timings, progress, max_pixels)
    img = codings.source.img
    if lossless or (lossless is None and not targets and lossless_coding.few_colours(img)):
        with timed(timings, "entropy"):
            return _lossless_file(img)
    if targets:
        return search_target(
            point, lambda p: codings.file(codings.chosen(p)), lambda p: codings.decoded(codings.chosen(p)), img,
            size, psnr, strict, lossless is None, lambda: _lossless_file(img),
        )
    data = codings.file(codings.chosen(point))
    with timed(timings, "entropy"):
        if lossless is None and lossless_coding.worth_trying(img, len(data)):
            other = _lossless_file(img)
            if len(other) <= len(data):
                return other
    return data


def _init_timings(timings: dict | None) -> None:
    if timings is not None:
        for key in ("network", "entropy"):
            timings[key] = 0.0


def describe_coding(data: bytes) -> str:
    """How a ``.vqc`` file is coded, in words: "level 8" or "lossless (WebP)"."""
    header, payload, _ = bitstream.unpack(data, max_pixels=None)
    if header.kind == "lossless":
        return f"lossless ({lossless_coding.payload_format(payload)})"
    if header.resampled:
        return f"level {header.quality} at {header.coded_width}x{header.coded_height}"
    return f"level {header.quality}"


def _learned_file(model: CodecModel, source: _Source, grid: np.ndarray, candidate, tile_size: int, timings) -> bytes:
    """The ``.vqc`` file of an index grid (h, w, G) coded at ``candidate`` (level index, scale), with the alpha
    plane as a PNG section."""
    img, (level, scale) = source.img, candidate
    coded_width, coded_height = coded_size(img.width, img.height, scale)
    with timed(timings, "entropy"):
        fingerprint = model_data(model)[0]
        payload = _tables(model).encode(grid, level)
        alpha_payload = b""
        if source.alpha is not None:
            alpha_payload = payloads.png_bytes(source.alpha)
        header = bitstream.Header(
            model_fingerprint=fingerprint, width=img.width, height=img.height, mode=img.mode, kind="ecvq",
            level=level, coded_width=coded_width, coded_height=coded_height, latent_height=grid.shape[0],
            latent_width=grid.shape[1], tile_size=tile_size,
        )
        return bitstream.pack(header, payload, alpha_payload)


def _lossless_file(img: Image.Image) -> bytes:
    """The ``.vqc`` file holding ``img`` (a coded mode) losslessly."""
    header = bitstream.Header(None, img.width, img.height, img.mode, kind="lossless")
    return bitstream.pack(header, lossless_coding.encode(img))


# -- decompress ---------------------------------------------------------------------


def _limit(max_pixels: int | None) -> int:
    return bitstream.DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels


def _unpack(data: bytes, model: CodecModel, max_pixels: int | None):
    fingerprint, _ = model_data(model)
    tables = _tables(model)
    # structure, checksum and size first
    header, payload, alpha_payload = bitstream.unpack(data, max_pixels=_limit(max_pixels))
    if header.kind == "lossless":
        raise ValueError("a lossless file holds pixels, not code indices")
    retired = RETIRED_DEFAULTS.get(header.model_fingerprint.hex())
    if retired is not None and header.model_fingerprint != fingerprint:
        raise bitstream.ModelMismatchError(
            f"file was made by the default model of vqcodec {retired}; "
            f"decode it with that version: pip install 'vqcodec=={retired}.*'"
        )
    if header.kind == "learned":
        raise bitstream.UnsupportedVersionError(
            "file holds residual-VQ indices, which this vqcodec no longer decodes; "
            "decode it with the release that made it (pip install 'vqcodec==0.7.*' decodes any but 0.1's)"
        )
    if header.model_fingerprint != fingerprint:
        raise bitstream.ModelMismatchError(
            f"file was made by model {header.model_fingerprint.hex()}, but this model is {fingerprint.hex()}; "
            "decode it with the model that made it"
        )
    lh, lw = math.ceil(header.coded_height / STRIDE), math.ceil(header.coded_width / STRIDE)
    if (header.latent_height, header.latent_width) != (lh, lw):
        raise bitstream.CorruptDataError(
            f"latent grid {header.latent_height}x{header.latent_width} does not fit a "
            f"{header.coded_width}x{header.coded_height} image (expected {lh}x{lw})"
        )
    if header.quality > int(model.num_qualities):
        raise bitstream.CorruptDataError(
            f"file is coded at level {header.quality}, the model has only {model.num_qualities} levels"
        )
    return header, payload, alpha_payload, tables


def read_indices(data: bytes, model: Model = None, *, max_pixels: int | None = None) -> tuple:
    """``(header, index grid (h, w, G))`` decoded from ``.vqc`` bytes (no network)."""
    model = resolve_model(model)
    header, payload, _, tables = _unpack(data, model, max_pixels)
    return header, tables.decode(payload, header.latent_height, header.latent_width, header.level).astype(np.int64)


def _decode_alpha(alpha_payload: bytes, header) -> Image.Image:
    """The alpha plane: an exact L PNG of the header's size (:mod:`.payloads`), checked before any pixel is
    decompressed."""
    return payloads.open_png(alpha_payload, header.width, header.height, ("L",), "alpha payload")


def decompress(
    data: bytes | str | os.PathLike,
    model: Model = None,
    *,
    timings: dict | None = None,
    max_pixels: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Image.Image:
    """Decode ``.vqc`` bytes (or a path to a ``.vqc`` file) into a PIL image of the
    stored mode (L, LA, RGB or RGBA).

    Raises a ``bitstream.FormatError`` subclass for a corrupt or truncated
    file, ``bitstream.ModelMismatchError`` for a file made by another model.
    ``max_pixels`` (None = ``bitstream.DEFAULT_MAX_PIXELS``): larger images are refused from the header, before
    anything is decoded. ``progress(done, total)``: as in :func:`compress`.
    """
    _init_timings(timings)
    if isinstance(data, (str, os.PathLike)):
        data = Path(data).read_bytes()
    if bitstream.read_header(data).kind == "lossless":  # no model needed
        header, payload, _ = bitstream.unpack(data, max_pixels=_limit(max_pixels))
        with timed(timings, "entropy"):
            img = lossless_coding.decode(payload, header.width, header.height, header.mode)
        if progress is not None:
            progress(1, 1)
        return img
    model = resolve_model(model)
    header, payload, alpha_payload, tables = _unpack(data, model, max_pixels)
    with timed(timings, "entropy"):
        # the grid size is already bounded by max_pixels (checked in _unpack)
        alpha = _decode_alpha(alpha_payload, header) if header.has_alpha else None  # the cheaper check first
        grid = tables.decode(payload, header.latent_height, header.latent_width, header.level)
    if grid.size and int(grid.max()) >= int(model.num_embeddings):
        raise bitstream.CorruptDataError("index payload names a code the model does not have")
    img = decode_image(model, grid, header.quality, header.coded_width, header.coded_height, timings, progress=progress)
    if header.resampled:
        with timed(timings, "network"):
            img = img.resize((header.width, header.height), Image.Resampling.LANCZOS)
    if header.mode in ("L", "LA"):
        img = img.convert("L")
    if alpha is not None:
        img.putalpha(alpha)
    return img
