"""Probe: how many of the coded bits go to escapes (codes outside a table's window), level by level.

PYTHONPATH=. python checkpoints/variable_rate/probes/escape_bits.py MODEL.keras ../shared/data/train

On the validation set (041/042, as in ``--evaluate-only``), with the
model's stored tables and the codec's code choice: the ideal bits of every
level, the share of codes escaped, and the share of bits they take (the
escape symbol plus ``log2 K`` for the code itself), and the empirical
entropy of the escaped codes' distance past the window: about what coding
that distance with a fitted table, instead of ``log2 K`` uniform bits, would
cost (a lower bound, fitted to the very codes it measures).
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
    print("level | bpp (ideal) | codes escaped | bits in escapes | of which log2 K | distance entropy (bits)")
    for q in range(model.num_qualities):
        total = escape = uniform = 0.0
        escaped = codes = 0
        distances = []
        for image in images:
            grid = np.asarray(model.encode_to_indices(image[None].astype(np.float32) / 255.0, q))[0].astype(np.int64)
            total += coder.cross_entropy_bits(grid, q)
            for g, passes in enumerate(coder._contexts(grid, q)):
                flat = grid[..., g].ravel()
                for positions, contexts in passes:
                    symbols = coder._windowed(flat[positions], q, g)
                    out = symbols == coder.width
                    escaped += int(out.sum())
                    past = flat[positions][out] - coder.offsets[q, g]
                    distances.append(np.where(past >= coder.width, past - coder.width, past))
                    codes += len(symbols)
                    escape -= np.log2(coder.probabilities[q, g, contexts[out], symbols[out]]).sum()
                    uniform += out.sum() * np.log2(coder.num_codes)
        _, counts = np.unique(np.concatenate(distances), return_counts=True)
        share = counts / max(counts.sum(), 1)
        entropy = f"{-(share * np.log2(share)).sum():.2f}" if escaped else ""
        print(f"{q + 1} | {total / pixels:.4f} | {escaped / codes:.4%} | {(escape + uniform) / total:.2%} | "
              f"{uniform / total:.2%} | {entropy}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
