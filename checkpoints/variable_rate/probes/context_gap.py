"""Probe: how far the rate training prices is from the bits the coder spends, level by level.

PYTHONPATH=. python checkpoints/variable_rate/probes/context_gap.py MODEL.keras ../shared/data/train

On the validation set (041/042, as in ``--evaluate-only``), with the codec's
code choice, three rates of the same index grids (bpp):

- *training*: ``-log2`` of the quantiser's learned, context-free code
  distribution, the price the training loss and its code assignment use;
- *best context-free*: the empirical entropy of each level's and channel's
  codes over these very grids (a lower bound for any context-free table);
- *coder*: the ideal bits of the model's stored context tables, what the
  ``.vqc`` payload spends (within the range coder's overhead).

The gap between the last two is what the contexts earn, and what a training
rate term taken from the coder's contexts could teach the transforms to use.
"""

from __future__ import annotations

import sys

import keras
import numpy as np

from vqcodec.data import find_images
from vqcodec.train_variable_rate import validation_images


def main(argv: list[str]) -> int:
    model = keras.saving.load_model(argv[0])
    coder = model.context_model()
    if coder is None:
        sys.exit(f"{argv[0]} has no coding tables: fit them with --evaluate-only first")
    images = validation_images(find_images(argv[1])[-2:])
    pixels = sum(im.shape[0] * im.shape[1] for im in images)
    # (Q, G, K): the distribution the quantiser's training prices codes with
    log_probs = keras.ops.convert_to_numpy(keras.ops.log_softmax(model.quantizer.logits, axis=-1)).astype(np.float64)
    print("level | training bpp | best context-free bpp | coder bpp | coder vs training | coder vs best context-free")
    for q in range(model.num_qualities):
        grids = [np.asarray(model.encode_to_indices(im[None].astype(np.float32) / 255.0, q))[0].astype(np.int64) for im in images]
        coded = sum(coder.cross_entropy_bits(grid, q) for grid in grids)
        flat = np.concatenate([grid.reshape(-1, grid.shape[-1]) for grid in grids])  # (N, G)
        training = -(np.take_along_axis(log_probs[q].T, flat, axis=0)).sum() / np.log(2.0)
        empirical = 0.0
        for g in range(flat.shape[1]):
            _, counts = np.unique(flat[:, g], return_counts=True)
            empirical -= (counts * np.log2(counts / counts.sum())).sum()
        print(f"{q + 1} | {training / pixels:.4f} | {empirical / pixels:.4f} | {coded / pixels:.4f} | "
              f"{coded / training - 1:+.1%} | {coded / empirical - 1:+.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
