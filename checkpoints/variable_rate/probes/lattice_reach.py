"""Probe: PSNR of each level's scaled latents rounded to the nearest integer, unbounded and clipped to a lattice of K codes.

python checkpoints/variable_rate/probes/lattice_reach.py checkpoints/variable_rate/model.keras 128,256
"""
import sys

import keras
import numpy as np

from vqcodec.data import find_images
from vqcodec.metrics import psnr
from vqcodec.train_variable_rate import validation_images

model = keras.models.load_model(sys.argv[1], compile=False)
sizes = [int(k) for k in sys.argv[2].split(",")]
gains = np.exp(keras.ops.convert_to_numpy(model.quantizer.log_gains))
images = validation_images(find_images("../shared/data/train")[-2:])
latents = [keras.ops.convert_to_numpy(model.encode(v[None].astype(np.float32) / 255)) for v in images]


def mean_psnr(quantise, level):
    out = []
    for image, y in zip(images, latents):
        rec = keras.ops.convert_to_numpy(model.decode(quantise(y * gains[level]) / gains[level]))[0]
        out.append(psnr(image, np.clip(np.round(rec * 255), 0, 255)))
    return np.mean(out)


for level in range(len(gains)):
    row = [f"q{level}: rounded {mean_psnr(np.round, level):.2f} dB"]
    for k in sizes:
        low, high = -(k // 2), (k - 1) // 2
        share = np.mean([np.mean((np.round(y * gains[level]) < low) | (np.round(y * gains[level]) > high)) for y in latents])
        row.append(f"K={k}: {mean_psnr(lambda u: np.clip(np.round(u), low, high), level):.2f} dB ({100 * share:.3f}% clipped)")
    print(", ".join(row), flush=True)
