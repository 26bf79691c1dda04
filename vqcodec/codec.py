"""The codec: images <-> ``.vqc`` bytes with a learned model and the bitstream package.

``compress`` pads the image to the model's stride (edge padding), runs the
model's ``encode_to_indices`` (tile by tile on the latent grid for large
images), entropy-codes the whole index grid in one payload and packs it with a
header into a ``.vqc`` file. ``decompress`` does the reverse and crops the
padding away. Quality is 0 .. 100 and selects one of the model's levels
(:func:`vqcodec.quality.level_of`). Two model families: the residual
VQ-VAE, whose level ``L`` is the number of quantiser stages coded
(1 .. ``model.num_stages``; a *learned* file), and the variable-rate ECVQ
model, whose level ``L`` is its quality index ``L - 1``
(1 .. ``model.num_qualities``; an *ecvq* file). Index grids are (latent
rows, latent columns, channels) for both: stages or code groups.

Tiling: the latent grid is cut into ``tile_size`` x ``tile_size`` tiles; each
tile is computed with a halo of :data:`HALO` latents (64 pixels) of real image
context on every side (clipped at the image border) and only its centre is
kept. The halo is larger than the receptive field of the encoder and decoder
at latent resolution, so tiled output matches untiled output up to float
rounding, and memory is bounded by the tile size instead of the image size.
The decoder picks its tiling itself (by the same rule as the encoder's
default); the tile size recorded in a file is informational and never trusted.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import time
import warnings
import weakref
import zipfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

import bitstream
from vqcodec import lossless as lossless_coding
from vqcodec.images import load_image
from vqcodec.quality import DEFAULT_QUALITY, MAX_QUALITY, level_of, lowest_qualities

# Registers the .vqc format with Pillow (Image.open("x.vqc")).
from vqcodec import pillow_plugin as _pillow_plugin  # noqa: F401  (side effect)

__all__ = [
    "DEFAULT_QUALITY",
    "DEFAULT_TILE_SIZE",
    "UNTILED_MAX",
    "HALO",
    "STRIDE",
    "compress",
    "decompress",
    "load_model",
    "InvalidModelError",
    "default_model_path",
    "quality_levels",
    "model_fingerprint",
    "is_variable_rate",
    "indices_of",
    "read_indices",
]

#: Images whose latent grid fits in UNTILED_MAX x UNTILED_MAX latents (768 x 768
#: pixels: Kodak's 768x512 in either orientation) go through in one piece ...
UNTILED_MAX = 96
#: ... larger ones in tiles of DEFAULT_TILE_SIZE latents (512 pixels; 640 with
#: the halo), which bounds the network's activation memory per tile. The
#: decoder tiles by the same rule.
DEFAULT_TILE_SIZE = 64
#: Extra latents of context on each side of a tile (64 pixels).
HALO = 8
#: Latent stride of the image model (vqcodec.architecture.STRIDE, repeated here
#: so that this module imports without Keras until a model is needed).
STRIDE = 8

_DEFAULT_MODEL = "default.keras"
#: Fingerprints of earlier shipped default models, and the vqcodec release that decodes their files.
RETIRED_DEFAULTS = {
    "5e6f14bca9104e3d": "0.1", "d1f617132dc70358": "0.2", "7f49f6a98e4d6b1b": "0.3", "d9bea797d0be4611": "0.4",
    "f411c3f2f02b369e": "0.5", "b508fca3b8da545d": "0.6",
}

# -- models ------------------------------------------------------------------------

_model_cache: dict[tuple, object] = {}
_model_info: "weakref.WeakKeyDictionary[object, tuple[bytes, bitstream.CodingTables]]" = (
    weakref.WeakKeyDictionary()
)


def default_model_path() -> Path:
    """Where the shipped default model lives (it may not exist yet)."""
    from importlib.resources import files

    return Path(str(files("vqcodec") / "models" / _DEFAULT_MODEL))


class InvalidModelError(ValueError):
    """A model file exists but is not a usable vqcodec model (one-line message)."""


def _first_line(exc: BaseException, limit: int = 160) -> str:
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_keras_archive(p: Path, shown: str) -> None:
    """Refuse anything but a zip holding config.json before Keras sees it
    (Keras' own messages for such files are long and misleading)."""
    try:
        with zipfile.ZipFile(p) as zf:
            names = set(zf.namelist())
    except (zipfile.BadZipFile, OSError):
        raise InvalidModelError(f"{shown} is not a vqcodec model (not a Keras archive)") from None
    if "config.json" not in names:
        raise InvalidModelError(f"{shown} is not a vqcodec model (a zip file without the config.json of a Keras archive)")


def load_model(path=None, runtime: str = "auto", threads: int | None = None):
    """Load a codec model, cached by resolved path and modification time.

    ``path=None`` loads the default model shipped in ``vqcodec/models/``.
    ``runtime``: "auto" runs the exported graphs beside the ``.keras`` file
    with onnxruntime when they exist (:mod:`vqcodec.runtime`; no Keras import),
    else Keras; "keras" or "onnx" forces one. Raises ``FileNotFoundError`` for
    a missing file, :class:`InvalidModelError` (a ``ValueError``) with a
    one-line message for a file that is not a vqcodec model, and
    ``vqcodec.runtime.StaleExportError`` for an export made from another
    version of the model. ``threads``: onnxruntime's threads (exported models only).
    """
    if runtime not in ("auto", "keras", "onnx"):
        raise ValueError(f"runtime must be 'auto', 'keras' or 'onnx', got {runtime!r}")
    if path is None:
        p = default_model_path()
        if not p.is_file():
            raise FileNotFoundError(
                f"the default model {p} is not installed yet; pass a model file "
                "(--model PATH on the command line, model=... in Python)"
            )
        shown = str(p)
    else:
        shown = os.fspath(path)
        p = Path(shown).expanduser()
        if not p.is_file():
            raise FileNotFoundError(f"model file not found: {p}")
    p = p.resolve()
    from vqcodec.runtime import has_export, load_export

    exported = runtime == "onnx" or (runtime == "auto" and has_export(p))
    st = p.stat()
    key = (str(p), st.st_mtime_ns, st.st_size, exported)
    model = _model_cache.get(key)
    if model is not None:
        return model
    if exported:
        if not has_export(p):
            raise FileNotFoundError(f"{shown} has no export beside it; run 'vqcodec export {shown}'")
        model = load_export(p, threads=threads)
    else:
        model = _load_keras(p, shown)
    _model_cache[key] = model
    return model


def _load_keras(p: Path, shown: str):
    _check_keras_archive(p, shown)
    import keras

    import vqcodec.architecture  # noqa: F401  (registers the custom layers)
    import vqcodec.variable_rate_model  # noqa: F401  (registers the variable-rate model)

    try:
        model = keras.models.load_model(str(p), compile=False)
    except Exception as exc:
        raise InvalidModelError(
            f"{shown} is not a usable vqcodec model (Keras cannot load it: {_first_line(exc)})"
        ) from exc
    for name in ("encode_to_indices", "decode_from_indices", "decoding_weights"):
        if not hasattr(model, name):
            raise InvalidModelError(f"{shown} is not a vqcodec model (it has no {name!r})")
    if not (hasattr(model, "num_stages") or hasattr(model, "num_qualities")):
        raise InvalidModelError(f"{shown} is not a vqcodec model (it has no quality levels)")
    return model


def _resolve_model(model):
    if model is None or isinstance(model, (str, os.PathLike)):
        return load_model(model)
    return model


def is_variable_rate(model) -> bool:
    """A variable-rate ECVQ model (quality levels), not a residual VQ-VAE (stages); Keras or exported."""
    return hasattr(model, "num_qualities")


def _num_levels(model) -> int:
    return int(model.num_qualities if is_variable_rate(model) else model.num_stages)


def _model_data(model):
    """(fingerprint, coding tables) of a model, computed once and cached: a ``bitstream.CodingTables``
    for a residual model, a ``bitstream.context_model.ContextModel`` for an ECVQ model, or None."""
    if _is_exported(model):
        return model.fingerprint, model.context_model() if is_variable_rate(model) else model.coding_tables
    try:
        return _model_info[model]
    except KeyError:
        pass
    import keras

    h = hashlib.sha256(b"vqcodec-model-v2")
    for v in model.decoding_weights():
        a = np.ascontiguousarray(keras.ops.convert_to_numpy(v))
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    fingerprint = h.digest()[:8]
    if is_variable_rate(model):
        tables = model.context_model()
    elif getattr(model, "coding_tables", None) is None:
        tables = None
    else:
        tables = bitstream.CodingTables.from_array(keras.ops.convert_to_numpy(model.coding_tables))
    info = (fingerprint, tables)
    _model_info[model] = info
    return info


def model_fingerprint(model=None) -> bytes:
    """8 bytes of SHA-256 over what decoding depends on: the coding tables, the
    decoder's weights and the codebooks (not the encoder, not usage statistics).

    Two models that decode every file identically share a fingerprint.
    Computed once per model object and cached (change the weights of a model
    in place after using it with the codec and the cached value is stale).
    """
    return _model_data(_resolve_model(model))[0]


def _tables(model):
    tables = _model_data(model)[1]
    if tables is None:
        fit = (
            "fit them with python -m vqcodec.train_variable_rate DATA -o MODEL --evaluate-only"
            if is_variable_rate(model)
            else "fit them with bitstream.CodingTables.fit and store them with model.set_coding_tables(tables.to_array())"
        )
        raise ValueError(f"the model has no entropy-coding tables; {fit}")
    return tables


def quality_levels(model=None) -> list[int]:
    """The lowest quality (0 .. 100) of each of a model's levels, in order: one value per distinct file."""
    return lowest_qualities(_num_levels(_resolve_model(model)))


def _check_quality(quality, model) -> int:
    """The level (1 .. N) of a 0 .. 100 ``quality`` (None: :data:`DEFAULT_QUALITY`)."""
    if quality is None:
        quality = DEFAULT_QUALITY
    if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)):
        raise TypeError(f"quality must be an int, got {quality!r}")
    if not 0 <= quality <= MAX_QUALITY:
        raise ValueError(f"quality must be in 0..{MAX_QUALITY}, got {quality}")
    return level_of(quality, _num_levels(model))


# -- timing ------------------------------------------------------------------------


@contextmanager
def _timed(timings, key):
    t0 = time.perf_counter()
    try:
        yield
    finally:
        if timings is not None:
            timings[key] = timings.get(key, 0.0) + time.perf_counter() - t0


def _init_timings(timings):
    if timings is not None:
        for key in ("network", "entropy"):
            timings[key] = 0.0


# -- tiling -------------------------------------------------------------------------


def _tiles(lh: int, lw: int, tile_size: int):
    """Yield (core box, context box) on the latent grid: ((y0, y1, x0, x1), (cy0, cy1, cx0, cx1))."""
    if tile_size <= 0 or (lh <= tile_size and lw <= tile_size):
        yield (0, lh, 0, lw), (0, lh, 0, lw)
        return
    for y0 in range(0, lh, tile_size):
        y1 = min(lh, y0 + tile_size)
        for x0 in range(0, lw, tile_size):
            x1 = min(lw, x0 + tile_size)
            yield (y0, y1, x0, x1), (
                max(0, y0 - HALO),
                min(lh, y1 + HALO),
                max(0, x0 - HALO),
                min(lw, x1 + HALO),
            )


def _effective_tile_size(lh, lw, tile_size) -> int:
    if tile_size is None:
        if lh <= UNTILED_MAX and lw <= UNTILED_MAX:
            return 0
        tile_size = DEFAULT_TILE_SIZE
    if isinstance(tile_size, bool) or not isinstance(tile_size, (int, np.integer)) or tile_size < 0:
        raise ValueError(f"tile_size must be a non-negative int (latents; 0 = untiled), got {tile_size!r}")
    tile_size = int(tile_size)
    if tile_size == 0 or (lh <= tile_size and lw <= tile_size):
        return 0
    return tile_size


# -- compress -----------------------------------------------------------------------


def _split(img: Image.Image):
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


def _is_exported(model) -> bool:
    from vqcodec.runtime import ExportedModel

    return isinstance(model, ExportedModel)


def _encode_indices(model, x: np.ndarray, level: int, region: tuple[int, int, int, int]) -> np.ndarray:
    """The model's ``encode_to_indices`` of ``region`` (top, bottom, left, right; latents), int64 ``(1, h, w, C)``."""
    region = np.asarray(region, np.int32)
    if is_variable_rate(model):  # Keras or exported: the same signature, the level as an index
        return np.asarray(model.encode_to_indices(x, level - 1, region=region)).astype(np.int64)
    if _is_exported(model):
        return model.encode_to_indices(x, level, region).astype(np.int64)
    import keras

    idx = keras.ops.convert_to_numpy(model.encode_to_indices(x, num_stages=level, region=region)).astype(np.int64)
    return idx[..., None] if int(model.num_stages) == 1 else idx


def _decode_pixels(model, idx: np.ndarray, level: int) -> np.ndarray:
    """The model's ``decode_from_indices`` of ``(1, h, w, C)`` indices, as float numpy ``(H, W, 3)``."""
    if is_variable_rate(model):  # Keras or exported: the same signature
        return np.asarray(model.decode_from_indices(idx, level - 1))[0]
    if _is_exported(model):
        return model.decode_from_indices(idx)[0]
    import keras

    if int(model.num_stages) == 1:
        idx = idx[..., 0]
    return keras.ops.convert_to_numpy(model.decode_from_indices(keras.ops.convert_to_tensor(idx)))[0]


def _encode_grid(model, padded: np.ndarray, level: int, tile_size: int, timings, progress=None) -> np.ndarray:
    """Index grid (lh, lw, C) of a padded uint8 RGB image, through the model's ``encode_to_indices``."""
    lh, lw = padded.shape[0] // STRIDE, padded.shape[1] // STRIDE
    grid = None
    done = 0
    for (y0, y1, x0, x1), (cy0, cy1, cx0, cx1) in _tiles(lh, lw, tile_size):
        crop = padded[cy0 * STRIDE : cy1 * STRIDE, cx0 * STRIDE : cx1 * STRIDE]
        x = (crop.astype(np.float32) / np.float32(255.0))[None]
        with _timed(timings, "network"):  # only the core is quantised: the halo is context
            idx = _encode_indices(model, x, level, (y0 - cy0, y1 - cy0, x0 - cx0, x1 - cx0))
        if grid is None:
            grid = np.empty((lh, lw, idx.shape[-1]), np.int64)
        grid[y0:y1, x0:x1] = idx[0]
        done += (y1 - y0) * (x1 - x0)
        if progress is not None:
            progress(done, lh * lw)
    return grid


def _prepare(image, quality, model, tile_size):
    model = _resolve_model(model)
    level = _check_quality(quality, model)
    img = load_image(image)
    rgb, alpha = _split(img)
    padded = _pad(rgb)
    lh, lw = padded.shape[0] // STRIDE, padded.shape[1] // STRIDE
    return model, level, img, padded, alpha, _effective_tile_size(lh, lw, tile_size)


def indices_of(image, quality: int | None = None, model=None, *, tile_size: int | None = None) -> np.ndarray:
    """The index grid (H/8, W/8, C) that :func:`compress` codes for ``image`` (C: stages or code groups)."""
    model, level, _, padded, _, tile_size = _prepare(image, quality, model, tile_size)
    return _encode_grid(model, padded, level, tile_size, None)


class TargetNotMetWarning(UserWarning):
    """A ``size`` or ``psnr`` target could not be met; the closest file was written."""


class TargetNotMetError(ValueError):
    """A ``size`` or ``psnr`` target could not be met and ``strict`` was asked for."""


def compress(
    image,
    quality: int | None = None,
    model=None,
    *,
    size: int | None = None,
    psnr: float | None = None,
    strict: bool = False,
    lossless: bool | None = None,
    tile_size: int | None = None,
    timings: dict | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> bytes:
    """Compress ``image`` to ``.vqc`` bytes.

    ``image``: a path, bytes, a binary file object, a PIL image or a uint8
    array (H, W), (H, W, 1|2|3|4). ``quality``: 0 .. 100, higher is better
    (None = :data:`DEFAULT_QUALITY`); it selects one of the model's levels
    (:func:`vqcodec.quality.level_of`). ``model``: None (the shipped
    default), a ``.keras`` path, or a loaded model.

    Targets, instead of ``quality`` (the way cwebp has ``-size`` and ``-psnr``):
    ``size`` (bytes) gives the best quality whose file fits; ``psnr`` (dB, on
    8-bit RGB) the smallest file that reaches it. Both search the model's
    levels by bisection (a residual model's lower level codes a prefix of the
    stages of one encoder pass; an ECVQ model encodes again per level) and
    consider the lossless coding too. A target that cannot be
    met gives the closest file and a :class:`TargetNotMetWarning`, or with
    ``strict`` a :class:`TargetNotMetError`.

    ``lossless``: None (the encoder decides: images of few colours are stored
    losslessly, and any image whose lossless coding is no larger than the
    learned file), True (always lossless), False (never). ``tile_size``:
    latent tile size for large images (None: untiled up to
    :data:`UNTILED_MAX` latents, else tiles of :data:`DEFAULT_TILE_SIZE`; 0 =
    never tile). ``timings``: a dict to fill with seconds spent in "network"
    (the model's index function, quantiser included) and "entropy" (entropy
    coding, the alpha plane and lossless coding). ``progress(done, total)`` is
    called after each tile with the latent positions coded so far.
    """
    _init_timings(timings)
    targets = [name for name, value in (("size", size), ("psnr", psnr)) if value is not None]
    if len(targets) > 1 or (targets and quality is not None):
        raise ValueError("give one of quality, size and psnr")
    if size is not None and (isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size <= 0):
        raise ValueError(f"size must be a positive number of bytes, got {size!r}")
    if psnr is not None and not (isinstance(psnr, (int, float, np.floating)) and 0 < psnr < 200):
        raise ValueError(f"psnr must be a positive number of dB, got {psnr!r}")
    model = _resolve_model(model)
    if targets:
        quality = MAX_QUALITY
    model, level, img, padded, alpha, tile_size = _prepare(image, quality, model, tile_size)
    few = lossless_coding.few_colours(img)
    if lossless or (lossless is None and not targets and few):
        with _timed(timings, "entropy"):
            return _lossless_file(img)
    grid = _encode_grid(model, padded, level, tile_size, timings, progress)
    with _timed(timings, "entropy"):
        if targets:
            grids = _grids_by_level(model, padded, grid, level, tile_size, timings)
            return _search_target(model, grids, level, img, alpha, tile_size, size, psnr, strict, lossless is None, timings)
        data = _learned_file(model, grid, level, img, alpha, tile_size)
        if lossless is None and lossless_coding.worth_trying(img, len(data)):
            other = _lossless_file(img)
            if len(other) <= len(data):
                return other
    return data


def _grids_by_level(model, padded, grid, level, tile_size, timings) -> Callable[[int], np.ndarray]:
    """The index grid at any level up to ``level`` (whose grid is ``grid``): a prefix of its
    stages for a residual model, the image encoded again at that level for an ECVQ model."""
    cache = {level: grid}

    def at(q: int) -> np.ndarray:
        if q not in cache:
            cache[q] = _encode_grid(model, padded, q, tile_size, timings) if is_variable_rate(model) else grid[..., :q]
        return cache[q]

    return at


def _search_target(model, grids, levels, img, alpha, tile_size, size, psnr_target, strict, allow_lossless, timings) -> bytes:
    """Bisection over quality levels 1..``levels`` (``grids(q)``) for a size or PSNR target; lossless considered."""
    from vqcodec.metrics import psnr as psnr_of

    files: dict[int, bytes] = {}
    reference = np.asarray(img.convert("RGB"))

    def learned(q: int) -> bytes:
        if q not in files:
            files[q] = _learned_file(model, grids(q), q, img, alpha, tile_size)
        return files[q]

    def quality_of(q: int) -> float:
        with _timed(timings, "network"):
            decoded = _decode_image(model, grids(q), q, img.width, img.height, None)
        return psnr_of(reference, np.asarray(decoded))

    def meets(q: int) -> bool:
        return len(learned(q)) <= size if size is not None else quality_of(q) >= psnr_target

    # size: the largest level that fits; psnr: the smallest level that reaches the target.
    found, lo, hi = None, 1, levels
    while lo <= hi:
        mid = (lo + hi) // 2
        ok = meets(mid)
        if ok:
            found = mid
        # a size is met below the answer (search up), a PSNR above it (search down)
        if ok == (size is not None):
            lo = mid + 1
        else:
            hi = mid - 1
    best = None if found is None else learned(found)

    if allow_lossless:
        budget = size if size is not None else (len(best) if best is not None else None)
        few = lossless_coding.few_colours(img)
        graphic = few or (budget is not None and lossless_coding.worth_trying(img, budget))
        if budget is None or graphic:
            exact = _lossless_file(img)
            if size is not None and len(exact) <= size:
                return exact  # the best quality there is, and it fits
            if psnr_target is not None and (best is None or len(exact) <= len(best)):
                return exact  # reaches any PSNR: the smaller file wins
    if best is not None:
        return best
    closest = learned(1) if size is not None else learned(levels)
    what = (
        f"size {size} bytes cannot be met: the smallest file is {len(closest)} bytes (the lowest level)"
        if size is not None
        else f"PSNR {psnr_target:g} dB cannot be met: the highest quality reaches {quality_of(levels):.2f} dB"
    )
    if strict:
        raise TargetNotMetError(what)
    warnings.warn(f"{what}; wrote that", TargetNotMetWarning, stacklevel=3)
    return closest


def describe_coding(data: bytes) -> str:
    """How a ``.vqc`` file is coded, in words: "level 8" or "lossless (WebP)"."""
    header, payload, _ = bitstream.unpack(data, max_pixels=None)
    if header.kind == "lossless":
        return f"lossless ({lossless_coding.payload_format(payload)})"
    return f"level {header.quality}"


def _learned_file(model, grid: np.ndarray, level: int, img: Image.Image, alpha, tile_size: int) -> bytes:
    """The ``.vqc`` file of an index grid (h, w, C) at ``level``, with the alpha plane as a PNG section."""
    fingerprint, _ = _model_data(model)
    tables = _tables(model)
    if is_variable_rate(model):
        payload = tables.encode(grid, level - 1)
        levels = dict(kind="ecvq", level=level - 1)
    else:
        payload = bitstream.encode_indices(np.moveaxis(grid, -1, 0), tables)
        levels = dict(num_stages=level)
    alpha_payload = b""
    if alpha is not None:
        buf = io.BytesIO()
        alpha.save(buf, format="PNG", optimize=True)
        alpha_payload = buf.getvalue()
    header = bitstream.Header(
        model_fingerprint=fingerprint,
        width=img.width,
        height=img.height,
        mode=img.mode,
        latent_height=grid.shape[0],
        latent_width=grid.shape[1],
        tile_size=tile_size,
        **levels,
    )
    return bitstream.pack(header, payload, alpha_payload)


def _lossless_file(img: Image.Image) -> bytes:
    """The ``.vqc`` file holding ``img`` (a coded mode) losslessly."""
    header = bitstream.Header(None, img.width, img.height, img.mode, kind="lossless")
    return bitstream.pack(header, lossless_coding.encode(img))


# -- decompress ---------------------------------------------------------------------


def _unpack(data, model, max_pixels):
    fingerprint, _ = _model_data(model)
    tables = _tables(model)
    if max_pixels is None:
        max_pixels = bitstream.DEFAULT_MAX_PIXELS
    try:
        header, payload, alpha_payload = bitstream.unpack(data, max_pixels=max_pixels, expected_fingerprint=fingerprint)
    except bitstream.ModelMismatchError:
        header = bitstream.read_header(data)  # the file is intact: unpack checks the CRC first
        kind = header.kind
        retired = RETIRED_DEFAULTS.get(header.model_fingerprint.hex())
        if retired is not None:
            raise bitstream.ModelMismatchError(
                f"file was made by the default model of vqcodec {retired}; "
                f"decode it with that version: pip install 'vqcodec=={retired}.*'"
            ) from None
        if (kind == "ecvq") != is_variable_rate(model):
            family = {True: "a variable-rate ECVQ model", False: "a residual VQ model"}
            raise bitstream.ModelMismatchError(
                f"file was made by {family[kind == 'ecvq']}, but this model is {family[is_variable_rate(model)]}; "
                "decode it with the model that made it"
            ) from None
        raise
    if header.kind == "lossless":
        raise ValueError("a lossless file holds pixels, not codebook indices")
    lh, lw = math.ceil(header.height / STRIDE), math.ceil(header.width / STRIDE)
    if (header.latent_height, header.latent_width) != (lh, lw):
        raise bitstream.CorruptDataError(
            f"latent grid {header.latent_height}x{header.latent_width} does not fit a "
            f"{header.width}x{header.height} image (expected {lh}x{lw})"
        )
    if header.quality > _num_levels(model):
        raise bitstream.CorruptDataError(
            f"file is coded at level {header.quality}, the model has only {_num_levels(model)} levels"
        )
    return header, payload, alpha_payload, tables


def _decode_grid(payload: bytes, header, tables) -> np.ndarray:
    """The index grid (h, w, C) of a learned or ecvq payload (its size already bounded by the pixel limit)."""
    if header.kind == "ecvq":
        return tables.decode(payload, header.latent_height, header.latent_width, header.level).astype(np.int64)
    grid = bitstream.decode_indices(
        payload, tables, header.num_stages, header.latent_height, header.latent_width, max_symbols=None
    )
    return np.moveaxis(grid, 0, -1)


def read_indices(data: bytes, model=None, *, max_pixels: int | None = None):
    """``(header, index grid (h, w, C))`` decoded from ``.vqc`` bytes (no network)."""
    model = _resolve_model(model)
    header, payload, _, tables = _unpack(data, model, max_pixels)
    return header, _decode_grid(payload, header, tables)


def _decoded_tiles(model, grid: np.ndarray, level: int, tile_size: int, timings):
    """Yield ``(y0, x0, uint8 RGB tile)`` in pixels for an index grid (h, w, C) at ``level``."""
    lh, lw, _ = grid.shape
    for (y0, y1, x0, x1), (cy0, cy1, cx0, cx1) in _tiles(lh, lw, tile_size):
        idx = grid[cy0:cy1, cx0:cx1][None].astype(np.int32)
        with _timed(timings, "network"):
            y = _decode_pixels(model, idx, level)
        y = y[(y0 - cy0) * STRIDE : (y1 - cy0) * STRIDE, (x0 - cx0) * STRIDE : (x1 - cx0) * STRIDE]
        yield y0 * STRIDE, x0 * STRIDE, np.clip(np.rint(y.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)


def _decode_image(
    model, grid: np.ndarray, level: int, width: int, height: int, timings, tile_size: int | None = None, progress=None
) -> Image.Image:
    """RGB image (width x height) from an index grid, pasted tile by tile.

    The tile size is the decoder's own choice (the file's tile_size is not
    trusted; ``tile_size`` exists for tests), so network memory is bounded by one tile and the only
    image-sized buffer is the output image itself.
    """
    tile_size = _effective_tile_size(grid.shape[0], grid.shape[1], tile_size)
    img = Image.new("RGB", (width, height))
    done, total = 0, grid.shape[0] * grid.shape[1]
    for y0, x0, tile in _decoded_tiles(model, grid, level, tile_size, timings):
        done += (tile.shape[0] // STRIDE) * (tile.shape[1] // STRIDE)
        tile = tile[: height - y0, : width - x0]  # crop the padding of edge tiles
        img.paste(Image.fromarray(np.ascontiguousarray(tile), "RGB"), (x0, y0))
        if progress is not None:
            progress(done, total)
    return img


def _decode_alpha(alpha_payload: bytes, header) -> Image.Image:
    """The alpha plane, its PNG size and mode checked against the header before decoding.

    The PNG plugin class is used directly: it reads only the PNG header, so an
    alpha plane declaring a huge size is refused before any pixel is
    decompressed, and Pillow's own decompression-bomb warning never fires
    (the header's size is already bounded by ``max_pixels``).
    """
    from PIL import PngImagePlugin

    try:
        alpha = PngImagePlugin.PngImageFile(io.BytesIO(alpha_payload))
    except Exception as exc:
        raise bitstream.CorruptDataError(f"alpha payload is not a PNG image: {exc}") from None
    if alpha.mode != "L" or alpha.size != (header.width, header.height):
        raise bitstream.CorruptDataError(
            f"alpha payload is a {alpha.mode} {alpha.width}x{alpha.height} PNG, "
            f"expected L {header.width}x{header.height}"
        )
    try:
        alpha.load()
    except Exception as exc:
        raise bitstream.CorruptDataError(f"alpha payload is corrupt: {exc}") from None
    return alpha


def decompress(
    data: bytes,
    model=None,
    *,
    timings: dict | None = None,
    max_pixels: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Image.Image:
    """Decode ``.vqc`` bytes (or a path to a ``.vqc`` file) into a PIL image of the
    stored mode (L, LA, RGB or RGBA).

    Raises a ``bitstream.FormatError`` subclass for a corrupt or truncated
    file, ``bitstream.ModelMismatchError`` for a file made by another model.
    ``max_pixels`` (None = ``bitstream.DEFAULT_MAX_PIXELS``) guards against
    decompression bombs. ``progress(done, total)``: as in :func:`compress`.
    """
    _init_timings(timings)
    if isinstance(data, (str, os.PathLike)):
        data = Path(data).read_bytes()
    if bitstream.read_header(data).kind == "lossless":  # no model needed
        limit = bitstream.DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels
        header, payload, _ = bitstream.unpack(data, max_pixels=limit)
        with _timed(timings, "entropy"):
            img = lossless_coding.decode(payload, header.width, header.height, header.mode)
        if progress is not None:
            progress(1, 1)
        return img
    model = _resolve_model(model)
    header, payload, alpha_payload, tables = _unpack(data, model, max_pixels)
    with _timed(timings, "entropy"):
        # the grid size is already bounded by max_pixels (checked in _unpack)
        grid = _decode_grid(payload, header, tables)
        alpha = _decode_alpha(alpha_payload, header) if header.has_alpha else None
    if grid.size and int(grid.max()) >= int(model.num_embeddings):
        raise bitstream.CorruptDataError("index payload names a code the model does not have")
    img = _decode_image(model, grid, header.quality, header.width, header.height, timings, progress=progress)
    if header.mode in ("L", "LA"):
        img = img.convert("L")
    if alpha is not None:
        img.putalpha(alpha)
    return img
