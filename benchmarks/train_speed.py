"""Seconds per training step of the variable-rate model under the current Keras backend.

``KERAS_BACKEND=jax python -m benchmarks.train_speed --policy float32`` fits
the full model on random batches for a few intervals and prints each
interval's mean step time (the first includes compilation). Used to choose
the backend and precision for long training runs on a given machine.
"""

from __future__ import annotations

import argparse
import sys
import time


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.train_speed", description=__doc__.splitlines()[0])
    p.add_argument("--policy", default="float32", choices=["float32", "mixed_bfloat16"])
    p.add_argument("--jit", default="auto", choices=["auto", "on", "off"])
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--patch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=10, help="steps per interval")
    p.add_argument("--intervals", type=int, default=3)
    args = p.parse_args(argv)

    import keras
    import numpy as np

    keras.config.set_dtype_policy(args.policy)
    from vqcodec.model.variable_rate import build_codec_model

    model = build_codec_model(seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-4), jit_compile={"auto": "auto", "on": True, "off": False}[args.jit])
    x = np.random.default_rng(0).random((args.batch_size * args.steps, args.patch_size, args.patch_size, 3), dtype=np.float32)

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            per_step = (time.perf_counter() - self.start) / args.steps
            print(f"{keras.backend.backend()} {args.policy} jit={args.jit} interval {epoch}: {per_step:.2f} s/step", flush=True)

    model.fit(x, batch_size=args.batch_size, epochs=args.intervals, verbose=0, callbacks=[Timer()])
    return 0


if __name__ == "__main__":
    sys.exit(main())
