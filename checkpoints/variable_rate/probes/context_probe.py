"""Probe: how many bits would richer contexts save? Ideal code lengths on the validation photos.

PYTHONPATH=. python checkpoints/variable_rate/probes/context_probe.py ../shared/data/train [--out FILE] [--crops 2] [--variants ...]

Grids come from the shipped model's export. Tables are fitted, as the shipped
ones are, on 2 random 256^2 crops of each of the 40 training photos (seed 0)
at every level, and scored on the last 2 photos (whole) by ideal code length
(the range coder adds a few bytes). Every variant uses the shipped model's
rule for counts (each context backed off to its group's marginal, BACKOFF
counts' worth) and its window and escape; only the context function differs.
The stored results (context_probe*.json) are of vqcodec 0.3's default and its
context-free code choice.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from bitstream.context_model import BACKOFF, NUM_CONTEXTS, ContextModel, LEVEL_OF, _neighbour_sum
from vqcodec import codec
from vqcodec.train_variable_rate import random_crops


def magnitude(grid):
    return (grid + 1) // 2  # lattice index -> |value|


def contexts(grid, usual, variant):
    """Per group g: (anchor ctx (h, w), non-anchor ctx (h, w)) under ``variant``; yields (g, anchor mask, ctx)."""
    h, w, groups = grid.shape
    ii, jj = np.indices((h, w))
    anchor = ((ii + jj) % 2 == 0)
    activity = np.zeros((h, w), np.int64)
    mag = np.minimum(magnitude(grid), 3)
    for g in range(groups):
        local = (2 * activity + _neighbour_sum(activity)) * 32 // (6 * max(g, 1))
        level = LEVEL_OF[local]
        active = (grid[..., g] != usual[g]).astype(np.int64)
        n = _neighbour_sum(active * anchor)
        if variant == "shipped":
            a_ctx = level
            na_ctx = 8 + np.minimum(n + level // 2, 7)
        else:
            s = _neighbour_sum(mag[..., g] * anchor)  # 0..12: the anchor neighbours' magnitudes
            s_bin = np.searchsorted([1, 2, 3, 4, 6, 8], s, side="right")  # 0..6
            na_ctx = 8 * (1 + s_bin) + level  # 8..63
            a_ctx = level
            if variant == "magnitudes+previous" and g > 0:
                prev = mag[..., g - 1]  # 0..3: the co-located magnitude one group back
                a_ctx = level + 8 * 7 + 8 * prev  # 64..95
        yield g, anchor, np.where(anchor, a_ctx, na_ctx)
        activity += active


def fit(grids_by_q, base: ContextModel, variant, n_ctx):
    q_count, groups, width = base.num_qualities, base.num_groups, base.width
    counts = np.zeros((q_count, groups, n_ctx, width + 1), np.int64)
    for q, grids in enumerate(grids_by_q):
        for grid in grids:
            for g, _, ctx in contexts(grid, base.usual[q], variant):
                sym = base._windowed(grid[..., g].ravel(), q, g)
                np.add.at(counts[q, g], (ctx.ravel(), sym), 1)
    marginal = counts.sum(axis=2)
    prior = marginal + 1
    weights = (counts * prior.sum(-1)[:, :, None, None] + BACKOFF * prior[:, :, None, :]).astype(np.float64)
    return weights / weights.sum(-1, keepdims=True)


def bits(grid, q, probs, base, variant):
    total = 0.0
    for g, _, ctx in contexts(grid, base.usual[q], variant):
        sym = base._windowed(grid[..., g].ravel(), q, g)
        total -= np.log2(probs[q, g, ctx.ravel(), sym]).sum()
        total += np.count_nonzero(sym == base.width) * np.log2(base.num_codes)
    return total


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("data_dir")
    p.add_argument("--out", default=None)
    p.add_argument("--crops", type=int, default=2, help="256^2 crops per training photo to fit on (the shipped fit: 2)")
    p.add_argument("--variants", default="shipped,magnitudes,magnitudes+previous")
    args = p.parse_args(argv)
    files = sorted(f for f in Path(args.data_dir).iterdir() if f.suffix.lower() in (".png", ".jpg", ".jpeg"))
    train, val = files[:-2], files[-2:]
    model = codec.load_model()
    levels = model.num_qualities
    load = lambda f: np.asarray(Image.open(f).convert("RGB"))
    crops = random_crops([load(f) for f in train], args.crops, 256, 0)
    enc = lambda img, q: np.asarray(model.encode_to_indices(img[None].astype(np.float32) / 255.0, q))[0].astype(np.int64)
    fit_grids = [[enc(c, q) for c in crops] for q in range(levels)]
    val_images = []
    for f in val:
        img = load(f)
        val_images.append(img[: img.shape[0] // 8 * 8, : img.shape[1] // 8 * 8])
    val_grids = [[enc(img, q) for img in val_images] for q in range(levels)]
    pixels = sum(img.shape[0] * img.shape[1] for img in val_images)
    base = ContextModel.fit(fit_grids, model.num_embeddings, 128)
    shipped_bits = [sum(base.cross_entropy_bits(gr, q) for gr in val_grids[q]) for q in range(levels)]
    rows = {"ContextModel.fit (reference)": [b / pixels for b in shipped_bits]}
    sizes = {"shipped": NUM_CONTEXTS, "magnitudes": 64, "magnitudes+previous": 96}
    for variant in args.variants.split(","):
        n_ctx = sizes[variant]
        probs = fit(fit_grids, base, variant, n_ctx)
        rows[variant] = [sum(bits(gr, q, probs, base, variant) for gr in val_grids[q]) / pixels for q in range(levels)]
        print(variant, " ".join(f"{v:.4f}" for v in rows[variant]), f"sum {sum(rows[variant]):.4f}", flush=True)
    ref = rows["ContextModel.fit (reference)"]
    for name, vals in rows.items():
        saving = [100 * (v / r - 1) for v, r in zip(vals, ref)]
        print(f"{name:30s} bpp: " + " ".join(f"{v:.3f}" for v in vals) + " | vs reference %: " + " ".join(f"{s:+.1f}" for s in saving))
    if args.out:
        Path(args.out).write_text(json.dumps({"bpp_ideal": rows, "validation": [f.name for f in val]}, indent=1))


if __name__ == "__main__":
    sys.exit(main())
