"""Probe: train the decoder alone on the codes the codec really writes, everything before it fixed.

PYTHONPATH=. python checkpoints/variable_rate/probes/decoder_finetune.py MODEL.keras ../shared/data/train OUT.keras \
    --lr 2e-5 --steps 1300 --minutes 16 --every 200 [--reconstruction] [--extra-blocks N] [--cache CODES.npz]

The encoder, the gains, the code distributions and the coding tables stay
as they are, so every level's codes, and so its bits, are exactly those of
MODEL; only the pixels decoded from them change. 600 training crops (256²,
the 40 training photos at the training scales) are coded at every level
once, through ``encode_to_indices`` (the coder-priced choice; cached in
CODES.npz). Each step decodes a batch of them whole at random levels and
lowers the squared error, each level's weighted by 1 / its error under
MODEL, so that every level counts by its relative (dB) change. Every
``--every`` steps: PSNR of the validation set (041/042, as in
``--evaluate-only``) at every level from its fixed codes, logged in
OUT.log.csv; OUT gets the weights of the best mean PSNR so far.

``--reconstruction`` also learns, per level and channel, a shrink of the
nonzero codes toward zero and a scale, saved beside OUT
(OUT.reconstruction.npz; ``with_reconstruction.py`` puts them into a model
with ``learned_reconstruction=True``); a MODEL that already has them trains
its own, saved in OUT. ``--extra-blocks N`` deepens the decoder by N
residual blocks after its last one, each starting as the identity (its
second convolution zero) and trained at ``--extra-lr``.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from vqcodec.data import cut_patches, find_images
from vqcodec.layers import ResidualBlock
from vqcodec.metrics import psnr
from vqcodec.train_variable_rate import validation_images


def grids(model, images: np.ndarray, q: int, batch: int = 64) -> np.ndarray:
    """Codec indices of uint8 images (N, H, W, 3) at level ``q``: int16 (N, h, w, G)."""
    out = []
    for start in range(0, len(images), batch):
        x = images[start : start + batch].astype(np.float32) / 255.0
        out.append(np.asarray(model.encode_to_indices(x, q), np.int16))
    return np.concatenate(out)


def validation_psnr(model, images, codes, latents_of) -> list[float]:
    rows = []
    for q, per_image in enumerate(codes):
        values = []
        for image, grid in zip(images, per_image):
            q_vec = tf.constant([q], tf.int32)
            rec = keras.ops.convert_to_numpy(model.decoder(latents_of(tf.constant(grid[None], tf.int32), q_vec)))[0]
            values.append(psnr(image, np.clip(np.round(rec * 255.0), 0, 255)))
        rows.append(float(np.mean(values)))
    return rows


def deepen(model, count: int) -> tuple:
    """A copy of ``model`` with ``count`` identity-initialised residual blocks after the decoder's last one;
    returns it and the blocks."""
    layers = list(model.decoder.layers)
    last = max(i for i, layer in enumerate(layers) if isinstance(layer, ResidualBlock))
    existing = sum(isinstance(layer, ResidualBlock) for layer in layers)
    blocks = [ResidualBlock(layers[last].filters, name=f"dec_res_{existing + k}") for k in range(count)]
    decoder = keras.Sequential(
        [keras.Input((None, None, model.embedding_dim))] + layers[: last + 1] + blocks + layers[last + 1 :], name="decoder"
    )
    for block in blocks:
        block.conv2.kernel.assign(np.zeros(block.conv2.kernel.shape, np.float32))
        block.conv2.bias.assign(np.zeros(block.conv2.bias.shape, np.float32))
    config = model.get_config()
    config.update(encoder=model.encoder, decoder=decoder)
    for key in ("name", "trainable", "dtype"):
        config.pop(key, None)
    deeper = type(model)(**config, name=model.name)
    deeper.build((None, None, None, 3))
    deeper.quantizer.set_weights(model.quantizer.get_weights())
    deeper.set_coding_tables(model.coding_counts, model.coding_offsets)
    return deeper, blocks


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("data")
    p.add_argument("output")
    p.add_argument("--patches", type=int, default=600)
    p.add_argument("--patch-size", type=int, default=256)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=2e-5)
    p.add_argument("--minutes", type=float, default=60)
    p.add_argument("--every", type=int, default=250)
    p.add_argument("--steps", type=int, help="stop after this many steps, the learning rate decaying to 0 on a cosine")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--reconstruction", action="store_true", help="also learn a shrink and scale per level and channel")
    p.add_argument("--reconstruction-lr", type=float, default=2e-3)
    p.add_argument("--extra-blocks", type=int, default=0, help="residual blocks added to the decoder (identity at first)")
    p.add_argument("--extra-lr", type=float, default=1e-4, help="the added blocks' learning rate")
    p.add_argument("--cache", help="the coded crops (.npz; made if missing; default OUT.codes.npz)")
    args = p.parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    model = keras.saving.load_model(args.model)
    blocks = []
    if args.extra_blocks:
        model, blocks = deepen(model, args.extra_blocks)
    levels = model.num_qualities
    started = time.time()

    val_images = validation_images(find_images(args.data)[-2:])
    val_codes = [[grids(model, im[None], q)[0] for im in val_images] for q in range(levels)]
    t = time.time()
    print(f"validation coded in {t - started:.0f} s", flush=True)
    cache = Path(args.output).with_suffix(".codes.npz") if args.cache is None else Path(args.cache)
    if cache.exists():  # made by an earlier run: the caller keeps it to the same MODEL and crop settings
        with np.load(cache) as saved:
            patches, codes = saved["patches"], saved["codes"]
        print(f"loaded {len(patches)} coded crops from {cache}", flush=True)
    else:
        patches = cut_patches(args.data, args.patches, args.patch_size, seed=args.seed, holdout=2)
        codes = np.stack([grids(model, patches, q) for q in range(levels)], axis=1)  # (N, L, h, w, G)
        np.savez(cache, patches=patches, codes=codes)
        print(f"coded {len(patches)} crops at {levels} levels in {time.time() - t:.0f} s", flush=True)

    quantizer, decoder = model.quantizer, model.decoder

    own = quantizer.reconstruction_weights()  # a model with learned_reconstruction: lookup applies them
    levels_c = (levels, model.embedding_dim)
    shrink = tf.Variable(tf.zeros(levels_c), name="shrink")  # toward zero, in lattice steps
    log_scale = tf.Variable(tf.zeros(levels_c), name="log_scale")

    def latents_of(idx, q):
        """Dequantised latents; with --reconstruction each level and channel also shrinks nonzero codes toward
        zero and rescales them (learned)."""
        latents = quantizer.lookup(idx, q)
        if not args.reconstruction or own:
            return latents
        gains = tf.exp(tf.gather(quantizer.log_gains, q))[:, None, None, :]
        d = tf.gather(shrink, q)[:, None, None, :]
        a = tf.exp(tf.gather(log_scale, q))[:, None, None, :]
        scaled = latents * gains
        return (scaled - d * tf.sign(scaled)) * a / gains

    def level_mse(x, idx, q):
        rec = decoder(latents_of(idx, q))
        return tf.reduce_mean(tf.square(tf.cast(rec, tf.float32) - x), axis=[1, 2, 3])

    base = np.zeros(levels)
    x = patches[:128].astype(np.float32) / 255.0
    for q in range(levels):
        errors = [
            level_mse(x[i : i + 16], codes[i : i + 16, q].astype(np.int32), tf.fill([len(x[i : i + 16])], q))
            for i in range(0, len(x), 16)
        ]
        base[q] = np.mean([e.numpy().mean() for e in errors])
    weights = tf.constant(1.0 / base, tf.float32)
    print("baseline training-crop MSE per level:", " ".join(f"{v:.3g}" for v in base), flush=True)

    lr = args.lr if args.steps is None else keras.optimizers.schedules.CosineDecay(args.lr, args.steps)
    optimizer = keras.optimizers.Adam(lr)
    added = [w for block in blocks for w in block.trainable_weights]
    variables = [w for w in decoder.trainable_weights if not any(w is v for v in added)]
    added_optimizer = keras.optimizers.Adam(args.extra_lr)
    extra = own or [shrink, log_scale]
    extra_optimizer = keras.optimizers.Adam(args.reconstruction_lr)

    @tf.function
    def step(x, idx, q):
        with tf.GradientTape() as tape:
            rec = decoder(latents_of(idx, q))
            mse = tf.reduce_mean(tf.square(tf.cast(rec, tf.float32) - x), axis=[1, 2, 3])
            loss = tf.reduce_mean(tf.gather(weights, q) * mse)
        grads = tape.gradient(loss, variables + added + extra)
        optimizer.apply_gradients(zip(grads[: len(variables)], variables))
        if added:
            added_optimizer.apply_gradients(zip(grads[len(variables) : len(variables) + len(added)], added))
        if args.reconstruction:
            extra_optimizer.apply_gradients(zip(grads[len(variables) + len(added) :], extra))
        return loss

    rng = np.random.default_rng(args.seed)
    out = Path(args.output)
    log_path = out.with_suffix(".log.csv")
    before = validation_psnr(model, val_images, val_codes, latents_of)
    best = float(np.mean(before))
    with open(log_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["step", "seconds", "train_loss", "val_mean_psnr"] + [f"val_psnr_q{q}" for q in range(levels)])
        writer.writerow([0, 0, "", best] + before)
        print(f"step 0: validation {best:.4f} dB  " + " ".join(f"{v:.2f}" for v in before), flush=True)
        losses, n, t0 = [], 0, time.time()
        while time.time() - t0 < args.minutes * 60 and (args.steps is None or n < args.steps):
            pick = rng.integers(0, len(patches), args.batch)
            q = rng.integers(0, levels, args.batch)
            x = patches[pick].astype(np.float32) / 255.0
            idx = codes[pick, q].astype(np.int32)
            losses.append(float(step(tf.constant(x), tf.constant(idx), tf.constant(q, tf.int32))))
            n += 1
            if n % args.every == 0:
                val = validation_psnr(model, val_images, val_codes, latents_of)
                mean = float(np.mean(val))
                writer.writerow([n, round(time.time() - t0), np.mean(losses), mean] + val)
                f.flush()
                print(f"step {n} ({time.time() - t0:.0f} s): loss {np.mean(losses):.4f} validation {mean:.4f} dB  "
                      + " ".join(f"{v:.2f}" for v in val), flush=True)
                losses = []
                if mean > best:
                    best = mean
                    model.save(out)
                    if args.reconstruction and not own:
                        learned = {"shrink": shrink.numpy(), "log_scale": log_scale.numpy()}
                        np.savez(out.with_suffix(".reconstruction.npz"), **learned)
    print(f"best validation mean PSNR {best:.4f} dB (start {np.mean(before):.4f})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
