"""Probe: refine each image's latents at encode time by gradient descent on its own rate-distortion loss,
the decoder and quantiser fixed, then choose and code the codes as the codec does.

PYTHONPATH=. python checkpoints/variable_rate/probes/latent_refine.py \
    MODEL.keras ../shared/data/train OUT.json STEPS LR [LEVELS]

The encoder is amortised: one network for every image. Here the scaled
latents u of one image are the variables, and Adam lowers
``bits / pixels + lambda 255^2 MSE(x, decoder(Q(u)))`` with the training
loss's straight-through quantiser and soft rate (the quantiser's learned
context-free distribution). The refined latents then go through the
codec's path: candidates, ``ContextModel.choose`` with the stored tables,
real coding. Validation set of ``--evaluate-only`` (041/042); LEVELS is a
comma list of quality indices (default all). STEPS is a comma list:
each is reported (0 = no refinement). Stored: ``latent_refine_lr*.json``
(level 8, with MODEL the 0.4 default).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from vqcodec.data import find_images
from vqcodec.metrics import psnr
from vqcodec.train_variable_rate import validation_images


def coded(model, u, q, image):
    """Real payload bpp and PSNR of scaled latents ``u`` (1, h, w, C) through the codec's choice and coder."""
    cm = model.context_model()
    gains = ops.exp(model.quantizer.log_gains[q])
    y = u / gains
    candidates, distances = (ops.convert_to_numpy(t) for t in model.quantizer.code_candidates(y, q))
    grid = cm.choose(candidates[0], distances[0], q, model.quantizer.rate_weight)
    data = cm.encode(grid, q)
    rec = ops.convert_to_numpy(model.decode_from_indices(grid[None], q))[0]
    rec = np.clip(np.round(rec * 255.0), 0, 255)
    return len(data) * 8 / (image.shape[0] * image.shape[1]), psnr(image, rec)


def main(argv: list[str]) -> int:
    model_path, data, out = argv[0], argv[1], Path(argv[2])
    checkpoints = [int(s) for s in argv[3].split(",")]
    lr = float(argv[4])
    model = keras.saving.load_model(model_path)
    levels = [int(s) for s in argv[5].split(",")] if len(argv) > 5 else list(range(model.num_qualities))
    images = validation_images(find_images(data)[-2:])
    rows = []
    for q in levels:
        lam = model.lambdas[q] * 255.0**2
        gains = ops.exp(model.quantizer.log_gains[q])
        results = {s: [] for s in checkpoints}
        started = time.time()
        for image in images:
            x = ops.convert_to_tensor(image[None].astype(np.float32) / 255.0)
            pixels = float(image.shape[0] * image.shape[1])
            u = keras.Variable(model.encode(x) * gains)
            optimizer = keras.optimizers.Adam(lr)
            for step in range(max(checkpoints) + 1):
                if step in results:
                    results[step].append(coded(model, ops.convert_to_tensor(u), q, image))
                if step == max(checkpoints):
                    break
                with tf.GradientTape() as tape:
                    quantized, bits = model.quantizer(u / gains, quality=q, training=True)
                    rec = model.decode(quantized)
                    loss = bits[0] / pixels + lam * ops.mean(ops.square(rec - x))
                optimizer.apply_gradients([(tape.gradient(loss, u), u)])
        for s in checkpoints:
            bpp, db = np.mean(results[s], axis=0)
            rows.append({"quality": q, "steps": s, "bpp": float(bpp), "psnr": float(db)})
            print(f"level {q + 1} steps {s}: {bpp:.4f} bpp {db:.2f} dB", flush=True)
        print(f"level {q + 1}: {time.time() - started:.0f} s", flush=True)
    out.write_text(json.dumps({"model": model_path, "lr": lr, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
