"""Running a model over an image in tiles of the latent grid, so memory is bounded by the tile, not the image.

The latent grid is cut into ``tile_size`` x ``tile_size`` tiles; each tile is
computed with a halo of :data:`HALO` latents (64 pixels) of real image
context on every side (clipped at the image border) and only its centre is
kept. The halo is larger than the receptive field of the encoder and decoder
at latent resolution, so tiled output matches untiled output up to float
rounding. The decoder picks its tiling itself (by the same rule as the
encoder's default); the tile size recorded in a file is informational and
never trusted.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
from PIL import Image

from vqcodec.codec.interface import CodecModel
from vqcodec.model.recipe import STRIDE

__all__ = ["UNTILED_MAX", "DEFAULT_TILE_SIZE", "HALO", "tiles", "effective_tile_size", "encode_grid", "decode_image", "timed"]

#: Images whose latent grid fits in UNTILED_MAX x UNTILED_MAX latents (768 x 768
#: pixels: Kodak's 768x512 in either orientation) go through in one piece ...
UNTILED_MAX = 96
#: ... larger ones in tiles of DEFAULT_TILE_SIZE latents (512 pixels; 640 with
#: the halo), which bounds the network's activation memory per tile. The
#: decoder tiles by the same rule.
DEFAULT_TILE_SIZE = 64
#: Extra latents of context on each side of a tile (64 pixels).
HALO = 8


@contextmanager
def timed(timings: dict | None, key: str):
    """Adds the seconds spent inside to ``timings[key]`` (nothing when ``timings`` is None)."""
    t0 = time.perf_counter()
    try:
        yield
    finally:
        if timings is not None:
            timings[key] = timings.get(key, 0.0) + time.perf_counter() - t0


def tiles(lh: int, lw: int, tile_size: int) -> Iterator[tuple[tuple[int, int, int, int], tuple[int, int, int, int]]]:
    """Yields (core box, context box) on the latent grid: ((y0, y1, x0, x1), (cy0, cy1, cx0, cx1))."""
    if tile_size <= 0 or (lh <= tile_size and lw <= tile_size):
        yield (0, lh, 0, lw), (0, lh, 0, lw)
        return
    for y0 in range(0, lh, tile_size):
        y1 = min(lh, y0 + tile_size)
        for x0 in range(0, lw, tile_size):
            x1 = min(lw, x0 + tile_size)
            yield (y0, y1, x0, x1), (max(0, y0 - HALO), min(lh, y1 + HALO), max(0, x0 - HALO), min(lw, x1 + HALO))


def effective_tile_size(lh: int, lw: int, tile_size: int | None) -> int:
    """The tile size to use for a latent grid of ``lh`` x ``lw`` (0: untiled); None picks the default rule."""
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


def encode_grid(
    model: CodecModel, padded: np.ndarray, level: int, tile_size: int, timings: dict | None,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Index grid (lh, lw, G) at ``level`` (1 .. N) of a padded uint8 RGB image."""
    lh, lw = padded.shape[0] // STRIDE, padded.shape[1] // STRIDE
    grid = None
    done = 0
    for (y0, y1, x0, x1), (cy0, cy1, cx0, cx1) in tiles(lh, lw, tile_size):
        crop = padded[cy0 * STRIDE : cy1 * STRIDE, cx0 * STRIDE : cx1 * STRIDE]
        x = (crop.astype(np.float32) / np.float32(255.0))[None]
        region = np.asarray((y0 - cy0, y1 - cy0, x0 - cx0, x1 - cx0), np.int32)
        with timed(timings, "network"):  # only the core is quantised: the halo is context
            idx = np.asarray(model.encode_to_indices(x, level - 1, region=region)).astype(np.int64)
        if grid is None:
            grid = np.empty((lh, lw, idx.shape[-1]), np.int64)
        grid[y0:y1, x0:x1] = idx[0]
        done += (y1 - y0) * (x1 - x0)
        if progress is not None:
            progress(done, lh * lw)
    return grid


def decode_image(
    model: CodecModel, grid: np.ndarray, level: int, width: int, height: int, timings: dict | None,
    tile_size: int | None = None, progress: Callable[[int, int], None] | None = None,
) -> Image.Image:
    """RGB image (width x height) from an index grid at ``level`` (1 .. N), pasted tile by tile.

    The tile size is the decoder's own choice (``tile_size`` exists for
    tests), so network memory is bounded by one tile and the only image-sized
    buffer is the output image itself.
    """
    lh, lw, _ = grid.shape
    tile_size = effective_tile_size(lh, lw, tile_size)
    img = Image.new("RGB", (width, height))
    done = 0
    for (y0, y1, x0, x1), (cy0, cy1, cx0, cx1) in tiles(lh, lw, tile_size):
        idx = grid[cy0:cy1, cx0:cx1][None].astype(np.int32)
        with timed(timings, "network"):
            y = np.asarray(model.decode_from_indices(idx, level - 1))[0]
        y = y[(y0 - cy0) * STRIDE : (y1 - cy0) * STRIDE, (x0 - cx0) * STRIDE : (x1 - cx0) * STRIDE]
        tile = np.clip(np.rint(y.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)
        tile = tile[: height - y0 * STRIDE, : width - x0 * STRIDE]  # crop the padding of edge tiles
        img.paste(Image.fromarray(np.ascontiguousarray(tile), "RGB"), (x0 * STRIDE, y0 * STRIDE))
        done += (y1 - y0) * (x1 - x0)
        if progress is not None:
            progress(done, lh * lw)
    return img
