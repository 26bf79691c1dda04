"""Does the latent width cap the top level? Equal-time fine-tunes of the shipped transforms at the top lambda.

The shipped encoder and decoder are widened from 64 latent channels to N, function-preserving: the new
channels' encoder filters start small and random, the decoder's weights from them at zero. Each arm trains
encoder and decoder on ``bpp + lambda * 255^2 * MSE`` at the top level's lambda, with the top level's gains, a
uniform-noise proxy for rounding and a per-channel Laplace density (the rate of a factorized prior, not the
coder's), batch 8 of 128^2 fresh crops of the training photos, Adam, for the same wall time. Measured on
held-out photos with rounding: PSNR of the 8-bit output, the Laplace bits and each channel's empirical
entropy of the rounded values (bits per pixel).

    python latent_width_probe.py PHOTOS HELDOUT OUT.json WIDTH MINUTES [LR [WARMUP]]

WARMUP: steps over which the new channels' bits go from free to full price (default 0: full price at once).
"""

from __future__ import annotations

import json
import math
import sys
import time

import keras
import numpy as np
from keras import ops

import vqcodec.model.variable_rate  # noqa: F401  (registers the shipped model's classes)
from vqcodec.model.transforms import build_decoder, build_encoder
from vqcodec.train.data import CropDataset
from vqcodec.train.photos import find_images, load_rgb
from vqcodec.codec.loading import default_model_path

TOP = 9  # 0-based index of level 10


def widened(shipped, width: int, seed: int = 0):
    enc, dec = build_encoder(128, width, 2), build_decoder(128, width, 2)
    rng = np.random.default_rng(seed)
    for new, old in ((enc, shipped.encoder), (dec, shipped.decoder)):
        for ln, lo in zip(new.layers, old.layers):
            ws = []
            for wn, wo in zip(ln.get_weights(), lo.get_weights()):
                if wn.shape == wo.shape:
                    ws.append(wo)
                    continue
                w = np.zeros(wn.shape, np.float32)
                if ln.name == "to_latent" and wn.ndim == 4:  # new output filters: small, random
                    w[..., : wo.shape[-1]] = wo
                    w[..., wo.shape[-1]:] = rng.normal(0, 0.1 * wo.std(), size=w[..., wo.shape[-1]:].shape)
                elif ln.name == "to_latent":  # bias
                    w[: wo.shape[0]] = wo
                elif ln.name == "from_latent":  # weights from the new channels: zero
                    w[:, :, : wo.shape[2], :] = wo
                else:
                    raise ValueError(f"unexpected shape change in {ln.name}")
                ws.append(w)
            ln.set_weights(ws)
    return enc, dec


class Arm(keras.Model):
    def __init__(self, enc, dec, gains, log_scales, lam, width_old=None):
        super().__init__()
        self.enc, self.dec, self.lam = enc, dec, float(lam)
        self.gains = ops.convert_to_tensor(gains.astype(np.float32))
        self.log_scales = self.add_weight(shape=log_scales.shape, initializer=keras.initializers.Constant(log_scales))
        # The price of the new channels' bits in training (0 .. 1): raised from 0 over a warm-up, so that the decoder
        # can learn to use them before their rate can switch them off.
        self.new_price = self.add_weight(shape=(), initializer="ones", trainable=False)
        self.old = len(gains) if width_old is None else width_old

    def bits(self, u):
        b = ops.exp(self.log_scales)

        def cdf(v):
            return 0.5 + 0.5 * ops.sign(v) * (1.0 - ops.exp(-ops.abs(v) / b))

        p = cdf(u + 0.5) - cdf(u - 0.5)
        return -ops.log(ops.maximum(p, 1e-9)) / math.log(2.0)

    def call(self, x, noise=True):
        u = self.enc(x) * self.gains
        if noise:
            u = u + keras.random.uniform(ops.shape(u), -0.5, 0.5)
        else:
            u = ops.round(u)
        return self.dec(u / self.gains), u

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        xhat, u = y_pred
        pixels = ops.cast(ops.shape(x)[1] * ops.shape(x)[2], "float32")
        bits = self.bits(u)
        bits = ops.sum(bits[..., : self.old], axis=(1, 2, 3)) + self.new_price * ops.sum(bits[..., self.old:], axis=(1, 2, 3))
        bpp = ops.mean(bits) / pixels
        mse = ops.mean(ops.square(xhat - x))
        return bpp + self.lam * 255.0**2 * mse


def evaluate(arm, images):
    psnrs, model_bits, pixels, values = [], 0.0, 0, []
    for im in images:
        x = im[None].astype(np.float32) / 255.0
        xhat, u = arm(x, noise=False)
        out = np.clip(np.round(np.asarray(xhat)[0] * 255.0), 0, 255)
        psnrs.append(10 * np.log10(255.0**2 / np.mean((out - im.astype(np.float64)) ** 2)))
        u = np.asarray(u)[0]
        model_bits += float(np.sum(np.asarray(arm.bits(ops.convert_to_tensor(u)))))
        pixels += im.shape[0] * im.shape[1]
        values.append(u.reshape(-1, u.shape[-1]).astype(np.int64))
    values = np.concatenate(values)
    entropy_bits = 0.0
    for c in range(values.shape[1]):
        _, counts = np.unique(values[:, c], return_counts=True)
        p = counts / counts.sum()
        entropy_bits += -np.sum(counts * np.log2(p))
    active = [int(np.mean(values[:, c] != 0) * 1000) / 1000 for c in range(values.shape[1])]
    mse = np.mean([10 ** (-p / 10) for p in psnrs])  # mean squared error in [0, 1] units
    return {"psnr": float(np.mean(psnrs)), "laplace_bpp": model_bits / pixels, "entropy_bpp": entropy_bits / pixels,
            "lagrangian": entropy_bits / pixels + arm.lam * 255.0**2 * mse,
            "nonzero_share_new": active[64:], "nonzero_share_mean_old": float(np.mean(active[:64]))}


def main(photos, heldout, out, width, minutes, lr=5e-5, warmup=0):
    keras.utils.set_random_seed(0)
    shipped = keras.saving.load_model(default_model_path(), compile=False)
    q = shipped.quantizer
    lam = shipped.lambdas[TOP]
    old_gains = np.exp(np.asarray(q.log_gains)[TOP])
    gains = np.concatenate([old_gains, np.full(width - old_gains.size, np.median(old_gains))])
    enc, dec = widened(shipped, width)
    held = [load_rgb(f) for f in find_images(heldout)]
    held = [im[: im.shape[0] // 8 * 8, : im.shape[1] // 8 * 8] for im in held]
    # Laplace scales from the shipped latents on a few training crops.
    train_imgs = [load_rgb(f) for f in find_images(photos)[:-2]]
    ds = CropDataset(train_imgs, batch_size=8, patch_size=128, steps=10**6, seed=1)
    u0 = np.asarray(enc(ds[0])) * gains
    scales = np.log(np.maximum(np.mean(np.abs(u0), axis=(0, 1, 2)), 0.05)).astype(np.float32)
    arm = Arm(enc, dec, gains, scales, lam, width_old=old_gains.size)
    arm.compile(optimizer=keras.optimizers.Adam(lr), jit_compile=True)
    record = {"width": width, "minutes": minutes, "lr": lr, "warmup": warmup, "lambda": lam, "start": evaluate(arm, held), "log": []}
    print(json.dumps(record["start"])[:300], flush=True)
    start, step, i = time.time(), 0, 1
    while time.time() - start < minutes * 60:
        arm.new_price.assign(min(1.0, step / warmup) if warmup else 1.0)
        loss = arm.train_on_batch(ds[i])
        step, i = step + 1, i + 1
        if step % 100 == 0:
            record["log"].append({"step": step, "seconds": round(time.time() - start), "loss": float(loss)})
            print(record["log"][-1], flush=True)
    record["steps"] = step
    record["end"] = evaluate(arm, held)
    print(json.dumps(record["end"])[:300], flush=True)
    with open(out, "w") as f:
        json.dump(record, f, indent=1)


if __name__ == "__main__":
    a = sys.argv[1:]
    main(a[0], a[1], a[2], int(a[3]), float(a[4]), *(float(v) for v in a[5:]))
