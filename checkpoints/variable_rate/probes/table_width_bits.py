"""Probe: ideal bits per pixel on the validation photos of tables fitted over windows of several widths.

PYTHONPATH=. python checkpoints/variable_rate/probes/table_width_bits.py MODEL.keras 128,192,256

The grids are the model's own choices (with its stored tables) on the
training crops that ``fit_coding_tables`` uses and on the validation set;
the tables of each width are fitted on the former and scored on the latter
(escapes cost their symbol plus log2 K). Nothing is refitted to the new
tables' choices, so this ranks widths; ``table_width.py`` measures one.
"""
import sys

import numpy as np

from bitstream.context_model import ContextModel
from vqcodec import codec
from vqcodec.data import find_images, load_rgb
from vqcodec.train_variable_rate import random_crops, validation_images

model = codec.load_model(sys.argv[1])
widths = [int(w) for w in sys.argv[2].split(",")]
files = find_images("../shared/data/train")
crops = random_crops([load_rgb(f) for f in files[:-2]], 2, 256, 0)
val = validation_images(files[-2:])


def grid(image, q):
    return model.encode_to_indices(image[None].astype(np.float32) / 255, q)[0]


levels = range(model.num_qualities)
train_grids = [[grid(c, q) for c in crops] for q in levels]
val_grids = [[grid(v, q) for v in val] for q in levels]
pixels = sum(v.shape[0] * v.shape[1] for v in val)
for width in widths:
    fitted = ContextModel.fit(train_grids, model.num_embeddings, width)
    bpp = [sum(fitted.cross_entropy_bits(g, q) for g in val_grids[q]) / pixels for q in levels]
    print(f"width {width}: " + " ".join(f"{b:.4f}" for b in bpp), flush=True)
