"""The VQ-VAE's learned prior, end to end and offline: digits -> VQ-VAE -> index grids -> PixelCNN prior -> samples.

    python -m benchmarks.prior [--out benchmarks/results/prior] [--quick]

Trains a small :class:`vqcodec.VQVAEModel` on digits drawn with Pillow's
built-in font (random size, offset, angle and stroke: nothing is downloaded),
fits a :class:`vqcodec.PixelCNNPrior` on the training images' index grids,
decodes 16 sampled grids into ``samples.png`` (beside 16 training digits), and
scores held-out grids in bits under a uniform code, one frequency table, the
codec's context tables (:class:`bitstream.ContextModel`, ideal and as coded)
and the prior. Writes ``prior.json`` and ``prior.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

SIDE = 32


def digits(count: int, seed: int) -> np.ndarray:
    """``count`` float32 ``(SIDE, SIDE, 1)`` images in [0, 1] of a random digit, size, offset, angle and stroke."""
    rng = np.random.default_rng(seed)
    fonts = {size: ImageFont.load_default(size=size) for size in range(18, 27)}
    out = np.zeros((count, SIDE, SIDE, 1), np.float32)
    for n in range(count):
        canvas = Image.new("L", (SIDE, SIDE), 0)
        draw = ImageDraw.Draw(canvas)
        centre = (SIDE / 2 + rng.uniform(-3, 3), SIDE / 2 + rng.uniform(-3, 3))
        draw.text(centre, str(rng.integers(10)), fill=255, font=fonts[int(rng.integers(18, 27))], anchor="mm",
                  stroke_width=int(rng.integers(0, 2)), stroke_fill=255)
        canvas = canvas.rotate(rng.uniform(-20, 20), resample=Image.Resampling.BICUBIC)
        out[n, ..., 0] = np.asarray(canvas, np.float32) / 255.0
    return out


def vqvae(num_embeddings: int, embedding_dim: int):
    """A small convolutional VQ-VAE: 32x32 images to 8x8 index grids."""
    import keras

    from vqcodec import VQVAEModel

    encoder = keras.Sequential(
        [
            keras.Input((SIDE, SIDE, 1)),
            keras.layers.Conv2D(32, 4, strides=2, padding="same", activation="relu"),
            keras.layers.Conv2D(64, 4, strides=2, padding="same", activation="relu"),
            keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
            keras.layers.Conv2D(embedding_dim, 1),
        ]
    )
    decoder = keras.Sequential(
        [
            keras.Input((SIDE // 4, SIDE // 4, embedding_dim)),
            keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
            keras.layers.Conv2DTranspose(64, 4, strides=2, padding="same", activation="relu"),
            keras.layers.Conv2DTranspose(32, 4, strides=2, padding="same", activation="relu"),
            keras.layers.Conv2D(1, 3, padding="same"),
        ]
    )
    return VQVAEModel(encoder, decoder, num_embeddings=num_embeddings, embedding_dim=embedding_dim, seed=0)


def tiles(images: np.ndarray, columns: int, scale: int) -> Image.Image:
    """Grey images ``(N, h, w, 1)`` in [0, 1] as one picture, ``columns`` wide, 2 px gaps, enlarged ``scale`` times."""
    n, h, w, _ = images.shape
    rows = math.ceil(n / columns)
    sheet = np.full((rows * (h + 2) + 2, columns * (w + 2) + 2), 128, np.uint8)
    for k, image in enumerate(np.clip(images[..., 0], 0, 1)):
        r, c = divmod(k, columns)
        sheet[2 + r * (h + 2) : 2 + r * (h + 2) + h, 2 + c * (w + 2) : 2 + c * (w + 2) + w] = np.round(image * 255)
    return Image.fromarray(sheet).resize((sheet.shape[1] * scale, sheet.shape[0] * scale), Image.Resampling.NEAREST)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.prior", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/prior", help="output folder")
    parser.add_argument("--quick", action="store_true", help="a few seconds' run, to check that it works")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    import keras

    from bitstream import ContextModel
    from vqcodec import PixelCNNPrior

    keras.utils.set_random_seed(args.seed)
    num_embeddings, embedding_dim = 32, 16
    train_count, test_count = (256, 64) if args.quick else (8192, 1024)
    vq_epochs, prior_epochs = (1, 1) if args.quick else (12, 15)
    started = time.perf_counter()

    x_train, x_test = digits(train_count, args.seed), digits(test_count, args.seed + 1)
    model = vqvae(num_embeddings, embedding_dim)
    model.compile(optimizer=keras.optimizers.Adam(2e-3))
    history = model.fit(x_train, batch_size=64, epochs=vq_epochs, verbose=0).history
    print(f"VQ-VAE: reconstruction MSE {history['reconstruction_loss'][-1]:.4f}, "
          f"perplexity {history['perplexity'][-1]:.1f} of {num_embeddings} codes", file=sys.stderr)

    to_numpy = keras.ops.convert_to_numpy
    train_grids = np.concatenate([to_numpy(model.encode_to_indices(x_train[i : i + 512]))
                                  for i in range(0, train_count, 512)])
    test_grids = np.concatenate([to_numpy(model.encode_to_indices(x_test[i : i + 512]))
                                 for i in range(0, test_count, 512)])
    grid_shape = train_grids.shape[1:]

    prior = PixelCNNPrior(num_embeddings, grid_shape, channels=64, num_layers=6)
    prior.compile(optimizer=keras.optimizers.Adam(2e-3))
    prior_history = prior.fit(train_grids, batch_size=64, epochs=prior_epochs, verbose=0).history
    print(f"prior: {prior_history['bits_per_index'][-1]:.3f} bits per index on the training grids", file=sys.stderr)

    positions = int(np.prod(grid_shape))
    histogram = np.bincount(train_grids.ravel(), minlength=num_embeddings) + 1.0
    table_bits = -np.log2(histogram / histogram.sum())
    tables = ContextModel.fit([[g[..., None] for g in train_grids]], num_embeddings, width=num_embeddings)
    rows = {
        "uniform code": positions * math.log2(num_embeddings),
        "one frequency table": float(table_bits[test_grids].sum(axis=(1, 2)).mean()),
        "the codec's context tables (ideal)": float(np.mean([tables.cross_entropy_bits(g[..., None], 0)
                                                             for g in test_grids])),
        "the codec's context tables (coded bytes)": float(np.mean([8 * len(tables.encode(g[..., None], 0))
                                                                   for g in test_grids])),
        "PixelCNN prior": float(prior.bits(test_grids).mean()),
    }

    samples = prior.sample(16, seed=args.seed)
    decoded = to_numpy(model.decode_from_indices(samples))
    left, right = tiles(x_train[:16], 4, 3), tiles(decoded, 4, 3)
    picture = Image.new("L", (left.width + right.width + 12, left.height), 255)
    picture.paste(left, (0, 0))
    picture.paste(right, (left.width + 12, 0))
    picture.save(out / "samples.png", optimize=True)

    results = {
        "command": "python -m benchmarks.prior" + (" --quick" if args.quick else "") + f" --seed {args.seed}",
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
        "train_images": train_count,
        "test_images": test_count,
        "grid_shape": list(grid_shape),
        "num_embeddings": num_embeddings,
        "vqvae_epochs": vq_epochs,
        "prior_epochs": prior_epochs,
        "reconstruction_mse": float(history["reconstruction_loss"][-1]),
        "bits_per_grid": rows,
        "seconds": round(time.perf_counter() - started, 1),
    }
    (out / "prior.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [
        f"Held-out grids: {test_count} digits, {grid_shape[0]}x{grid_shape[1]} indices of {num_embeddings} codes "
        f"(`{results['command']}`, {results['seconds']} s).",
        "",
        "| code | bits per grid | bits per index |",
        "|---|---:|---:|",
    ] + [f"| {name} | {bits:.1f} | {bits / positions:.3f} |" for name, bits in rows.items()]
    (out / "prior.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    raise SystemExit(main())
