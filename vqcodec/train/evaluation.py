"""Measuring a codec model as the codec runs it: fitted coding tables, real coded bits, decoded PSNR.

Validation uses real range-coded payloads (optionally packed in the
``.vqc`` container) on a fixed set of held-out images, never an estimate.
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np

import bitstream
from bitstream.context_model import ContextModel
from vqcodec.metrics import bpp, psnr
from vqcodec.model.recipe import STRIDE
from vqcodec.model.variable_rate import VariableRateVQVAE
from vqcodec.train.photos import build_pyramid, center_crop_multiple, load_rgb

__all__ = ["validation_images", "random_crops", "fit_coding_tables", "refit_coding_tables", "evaluate", "report"]


def validation_images(files: list[Path]) -> list[np.ndarray]:
    """Each file at half size (whole) and a 512x512 centre crop at full size, cropped to the stride."""
    out = []
    for f in files:
        image = load_rgb(f)
        half = build_pyramid(image, scales=(0.5,))[0]
        out += [center_crop_multiple(half, STRIDE), center_crop_multiple(image, STRIDE, 512)]
    return out


def _indices(model, image: np.ndarray, quality: int) -> np.ndarray:
    x = image[None].astype(np.float32) / 255.0
    return np.asarray(keras.ops.convert_to_numpy(model.encode_to_indices(x, quality))[0], dtype=np.int64)


def random_crops(images: list[np.ndarray], per_image: int, size: int, seed: int) -> np.ndarray:
    """``per_image`` random ``size``-square crops of each image, in order: (N, size, size, 3) uint8."""
    rng = np.random.default_rng(seed)
    crops = []
    for image in images:
        for _ in range(per_image):
            y = rng.integers(0, image.shape[0] - size + 1)
            x = rng.integers(0, image.shape[1] - size + 1)
            crops.append(image[y : y + size, x : x + size])
    return np.stack(crops)


def fit_coding_tables(
    model: VariableRateVQVAE, images: list[np.ndarray], crops_per_image: int = 2, crop: int = 256, seed: int = 0,
    rounds: int = 3,
) -> ContextModel:
    """Fits the integer context model on random crops of ``images`` at every quality and stores its tables in ``model``.

    The first round counts the codes the quantiser's learned distribution
    picks; each later one the codes picked with the tables of the round
    before (as ``encode_to_indices`` picks them once tables are stored), so
    the tables settle on the codes the codec really codes (two refits: the
    third changed rates by under 0.1% on the validation photos). Photos
    smaller than ``crop`` are cropped to their smaller side (a multiple of the stride).
    """
    crop = min(crop, min(min(i.shape[:2]) for i in images) // STRIDE * STRIDE)
    model.set_coding_tables(np.zeros(model.coding_counts.shape, "int32"), np.zeros(model.coding_offsets.shape, "int32"))
    return refit_coding_tables(model, random_crops(images, crops_per_image, crop, seed), rounds)


def refit_coding_tables(model: VariableRateVQVAE, crops: np.ndarray, rounds: int = 1) -> ContextModel:
    """``rounds`` rounds of fitting the coding tables to the codes of uint8 ``crops`` (N, h, w, 3) chosen with the
    model's present tables (or, without any, its learned distribution); stores and returns the last. Each crop is
    encoded once, alone (as the codec encodes an image)."""
    latents = [model.encode(c[None].astype(np.float32) / 255.0) for c in crops]
    for _ in range(rounds):
        grids = [
            [np.asarray(keras.ops.convert_to_numpy(model.latents_to_indices(z, q))[0], np.int64) for z in latents]
            for q in range(model.num_qualities)
        ]
        fitted = ContextModel.fit(grids, model.num_embeddings, model.table_width)
        model.set_coding_tables(fitted.counts, fitted.offsets)
    return fitted


def evaluate(model: VariableRateVQVAE, images: list[np.ndarray], context_model, whole_file: bool = False) -> dict:
    """Per quality: mean real coded bpp and PSNR over ``images``; and the transforms' unquantised PSNR.

    ``whole_file``: rates of the payload packed in the ``.vqc`` container the
    codec writes (an ecvq file: header and CRC), else of the payload alone.
    """
    rows = []
    for q in range(model.num_qualities):
        bpps, psnrs = [], []
        for image in images:
            grid = _indices(model, image, q)
            data = context_model.encode(grid, q)
            if not np.array_equal(context_model.decode(data, *grid.shape[:2], q), grid):
                raise RuntimeError(f"quality {q}: the coded grid does not decode to itself")
            rec = keras.ops.convert_to_numpy(model.decode_from_indices(grid[None], q))[0]
            rec = np.clip(np.round(rec * 255.0), 0, 255)
            if whole_file:
                header = bitstream.Header(
                    bytes(8), image.shape[1], image.shape[0], "RGB", level=q, latent_height=grid.shape[0],
                    latent_width=grid.shape[1], kind="ecvq",
                )
                data = bitstream.pack(header, data)
            bpps.append(bpp(len(data), image.shape[1], image.shape[0]))
            psnrs.append(psnr(image, rec))
        rows.append({"quality": q, "bpp": float(np.mean(bpps)), "psnr": float(np.mean(psnrs))})
    unquantised = []
    for image in images:
        x = image[None].astype(np.float32) / 255.0
        rec = keras.ops.convert_to_numpy(model.decode(model.encode(x)))[0]
        unquantised.append(psnr(image, np.clip(np.round(rec * 255.0), 0, 255)))
    return {"levels": rows, "unquantised_psnr": float(np.mean(unquantised))}


def report(model, test: list[np.ndarray], path: Path, whole_file: bool = False, **extra) -> dict:
    """Evaluates on ``test`` with the model's stored coding tables, writes ``path`` and prints the table."""
    result = evaluate(model, test, model.context_model(), whole_file)
    result.update(extra)
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    print(f"unquantised PSNR {result['unquantised_psnr']:.2f} dB", flush=True)
    for row in result["levels"]:
        print(f"q{row['quality']}: {row['bpp']:.3f} bpp {row['psnr']:.2f} dB", flush=True)
    return result
