"""Probe: the encoder picks each code by distance + rate weight x the context model's own bits, greedily in the
coder's order (group by group, anchors then the rest), instead of by the unconditional learned bits.

PYTHONPATH=. python checkpoints/variable_rate/probes/context_rdo_probe.py ../shared/data/train SCALE [SCALE ...]

The contexts depend only on codes already chosen, so each choice sees the
bits it will really cost; the decoder, the gains and the format are as
shipped. For each rate-weight scale: the shipped tables, then the tables
refitted on the training crops coded this way (twice). Writes
probes/context_rdo_xSCALE_fitN.eval.json (the --evaluate-only format).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import keras
import numpy as np

from bitstream.context_model import NUM_CONTEXTS, ContextModel, _Checkerboard
from vqcodec.data import find_images, load_rgb
from vqcodec.ecvq import WINDOW
from vqcodec.metrics import psnr
from vqcodec.train_variable_rate import random_crops, validation_images

HERE = Path(__file__).resolve().parent


def code_bits(cm: ContextModel, q: int, g: int) -> np.ndarray:
    """(contexts, K) bits of every code in every context: its window symbol's, or the escape's plus log2 K."""
    p = cm.probabilities[q, g]
    bits = np.repeat(-np.log2(p[:, cm.width:]) + np.log2(cm.num_codes), cm.num_codes, axis=1)
    bits[:, cm.offsets[q, g] : cm.offsets[q, g] + cm.width] = -np.log2(p[:, : cm.width])
    return bits


def assign(cm: ContextModel, u: np.ndarray, q: int, rate_weight: float) -> np.ndarray:
    """Code indices (h, w, G) of scaled latents ``u`` (h, w, G), chosen in the coder's order with its bits."""
    h, w, groups = u.shape
    k = cm.num_codes
    low, high = -(k // 2), (k - 1) // 2
    board = _Checkerboard(h, w)
    grid = np.zeros((h, w, groups), np.int64)
    activity = np.zeros((h, w), np.int32)
    steps = np.arange(-WINDOW, WINDOW + 1)
    for g in range(groups):
        x = u[..., g].ravel().astype(np.float64)
        centre = np.clip(np.round(x), low, high)
        values = np.concatenate([centre[:, None] + steps, np.zeros((x.size, 1))], axis=1)  # zero last: ties keep the window
        valid = (values >= low) & (values <= high)
        index = np.where(valid, np.where(values < 0, -2 * values - 1, 2 * values), 0).astype(np.int64)
        distance = np.where(valid, (x[:, None] - values) ** 2, np.inf)
        table = rate_weight * code_bits(cm, q, g)
        flat = np.zeros(h * w, np.int64)
        level = cm._levels(activity, g)
        for done in (False, True):
            positions, contexts = cm._group_contexts(grid, q, g, level, done, board)
            cost = distance[positions] + table[contexts[:, None], index[positions]]
            flat[positions] = index[positions, np.argmin(cost, axis=1)]
            grid[..., g] = flat.reshape(h, w)
        activity += grid[..., g] != cm.usual[q, g]
    return grid


def main(argv: list[str]) -> None:
    data, scales = argv[0], [float(s) for s in argv[1:]]
    files = find_images(data)
    model = keras.models.load_model(HERE.parent / "model.keras", compile=False)
    gains = np.exp(keras.ops.convert_to_numpy(model.quantizer.log_gains))
    shipped = model.context_model()
    val = validation_images(files[-2:])
    crops = random_crops([load_rgb(f) for f in files[:-2]], 2, 256, 0)  # as fit_coding_tables

    def latents(images):
        return [keras.ops.convert_to_numpy(model.encode(i[None].astype(np.float32) / 255.0))[0] for i in images]

    val_y, crop_y = latents(val), latents(crops)
    for scale in scales:
        weight = model.quantizer.rate_weight * scale
        cm = shipped
        for fit in range(3):
            rows = []
            for q in range(model.num_qualities):
                bpps, psnrs = [], []
                for image, y in zip(val, val_y):
                    grid = assign(cm, y * gains[q], q, weight)
                    data = cm.encode(grid, q)
                    assert np.array_equal(cm.decode(data, *grid.shape[:2], q), grid)
                    rec = keras.ops.convert_to_numpy(model.decode_from_indices(grid[None], q))[0]
                    bpps.append(len(data) * 8 / (image.shape[0] * image.shape[1]))
                    psnrs.append(psnr(image, np.clip(np.round(rec * 255.0), 0, 255)))
                rows.append({"quality": q, "bpp": float(np.mean(bpps)), "psnr": float(np.mean(psnrs))})
            result = {"levels": rows, "rate_weight": weight, "table_fits": fit}
            (HERE / f"context_rdo_x{scale:g}_fit{fit}.eval.json").write_text(json.dumps(result, indent=1))
            print(scale, fit, [(round(r["bpp"], 4), round(r["psnr"], 2)) for r in rows], flush=True)
            grids = [[assign(cm, y * gains[q], q, weight) for y in crop_y] for q in range(model.num_qualities)]
            cm = ContextModel.fit(grids, model.num_embeddings, model.table_width)


if __name__ == "__main__":
    main(sys.argv[1:])
