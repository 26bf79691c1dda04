"""Probe: the encoder picks each code by distance + rate weight x the context model's own bits, greedily in the
coder's order (group by group, anchors then the rest), instead of by the unconditional learned bits.

PYTHONPATH=. python checkpoints/variable_rate/probes/context_rdo_probe.py MODEL.keras ../shared/data/train SCALE [SCALE ...]

The contexts depend only on codes already chosen, so each choice sees the
bits it will really cost (``ContextModel.choose``, which the codec now
uses; here over the WINDOW codes either side of the rounded latent, and
zero). The decoder, the gains and the format are as in MODEL. For each
rate-weight scale: MODEL's tables, then the tables refitted on the training
crops coded this way (twice). Writes probes/context_rdo_xSCALE_fitN.eval.json
(the --evaluate-only format). The stored results are of vqcodec 0.3's model
(`git show 69984a8:checkpoints/variable_rate/model.keras`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import keras
import numpy as np

from bitstream.context_model import ContextModel
from vqcodec.data import find_images, load_rgb
from vqcodec.ecvq import WINDOW
from vqcodec.metrics import psnr
from vqcodec.train_variable_rate import random_crops, validation_images

HERE = Path(__file__).resolve().parent


def assign(cm: ContextModel, u: np.ndarray, q: int, rate_weight: float) -> np.ndarray:
    """Code indices (h, w, G) of scaled latents ``u`` (h, w, G): the lattice codes within WINDOW steps of the
    rounded latent and zero, chosen by ``cm.choose``."""
    low, high = -(cm.num_codes // 2), (cm.num_codes - 1) // 2
    centre = np.clip(np.round(u), low, high)[..., None]
    values = np.concatenate([centre + np.arange(-WINDOW, WINDOW + 1), np.zeros_like(centre)], axis=-1)
    valid = (values >= low) & (values <= high)
    index = np.where(valid, np.where(values < 0, -2 * values - 1, 2 * values), 0).astype(np.int64)
    distance = np.where(valid, (u[..., None] - values) ** 2, 1e30)
    return cm.choose(index, distance, q, rate_weight)


def main(argv: list[str]) -> None:
    model = keras.models.load_model(argv[0], compile=False)
    data, scales = argv[1], [float(s) for s in argv[2:]]
    files = find_images(data)
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
