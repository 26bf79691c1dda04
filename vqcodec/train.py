"""``vqcodec train``: train the image VQ-VAE on a folder of photos and export a codec-ready model.

One Keras "epoch" is one logging interval (``--log-every`` steps): the CSV log,
the atomic checkpoint and (every ``--val-every`` intervals) validation happen
at interval ends, so a run killed at any moment resumes with ``--resume`` and
loses at most one interval. At the end the entropy coder's frequency tables
are fitted on the training images' indices and stored in the exported model,
which ``vqcodec compress --model`` can use at once.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import time
from pathlib import Path

import keras
import numpy as np

from vqcodec.architecture import STRIDE, build_image_vqvae
from vqcodec.data import (
    CropDataset,
    PatchDataset,
    build_pyramid,
    center_crop_multiple,
    find_images,
    load_patches,
    load_rgb,
)
from vqcodec.metrics import psnr

__all__ = ["train", "fit_coding_tables", "export_inference_model", "main"]


def atomic_save(model: keras.Model, path: Path) -> None:
    """Saves to a temporary file in the same folder, then renames over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}.keras")
    try:
        model.save(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def stage_indices(model, image01: np.ndarray) -> np.ndarray:
    """All-stage indices of one image in [0, 1], as (S, h, w) int32."""
    idx = keras.ops.convert_to_numpy(model.encode_to_indices(image01[None], num_stages=model.num_stages))
    if model.num_stages == 1:
        idx = idx[..., None]
    return np.moveaxis(idx[0], -1, 0).astype(np.int32)


class ValidationCallback(keras.callbacks.Callback):
    """PSNR per quality level and estimated bpp on held-out images, every few intervals.

    The bpp estimate is the cross-entropy of the validation indices under each
    stage's running code-usage statistics from training (a static table per
    stage), i.e. roughly what a zeroth-order coder would spend.
    """

    def __init__(self, images: list[np.ndarray], every: int, log_path: Path):
        super().__init__()
        self.images = [center_crop_multiple(im, STRIDE, 512).astype(np.float32) / 255.0 for im in images]
        self.every = max(1, int(every))
        self.log_path = Path(log_path)

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every == 0:
            self.evaluate(epoch + 1)

    def evaluate(self, interval: int) -> dict:
        model = self.model
        usage = [np.maximum(keras.ops.convert_to_numpy(st.code_usage), 1e-6) for st in model.quantizer.stages]
        psnrs = np.zeros((len(self.images), model.num_stages))
        bits = np.zeros((len(self.images), model.num_stages))
        pixels = np.array([im.shape[0] * im.shape[1] for im in self.images], dtype=np.float64)
        for i, im in enumerate(self.images):
            idx = stage_indices(model, im)  # (S, h, w)
            stage_bits = [-np.log2(usage[s] / usage[s].sum())[idx[s]].sum() for s in range(model.num_stages)]
            for n in range(1, model.num_stages + 1):
                sub = np.moveaxis(idx[:n], 0, -1)[None]
                if model.num_stages == 1:
                    sub = sub[..., 0]
                rec = keras.ops.convert_to_numpy(model.decode_from_indices(sub))[0].astype(np.float32)
                psnrs[i, n - 1] = psnr(np.clip(rec, 0, 1) * 255, im * 255)
                bits[i, n - 1] = sum(stage_bits[:n])
        record = {
            "interval": interval,
            "step": int(keras.ops.convert_to_numpy(model.optimizer.iterations)),
            "psnr": [round(float(v), 3) for v in psnrs.mean(axis=0)],
            "bpp_estimate": [round(float(v), 4) for v in (bits / pixels[:, None]).mean(axis=0)],
            "time": time.time(),
        }
        with open(self.log_path, "a") as f:
            f.write(json.dumps(record) + "\n")
        print(
            "\nvalidation step {step}: ".format(**record)
            + ", ".join(f"q{n + 1}: {b:.3f} bpp {p:.2f} dB" for n, (b, p) in enumerate(zip(record["bpp_estimate"], record["psnr"]))),
            flush=True,
        )
        return record


class AtomicCheckpoint(keras.callbacks.Callback):
    """Writes the whole training state (weights, optimizer, schedule) atomically every interval."""

    def __init__(self, path: Path):
        super().__init__()
        self.path = Path(path)

    def on_epoch_end(self, epoch, logs=None):
        atomic_save(self.model, self.path)


class SetDatasetEpoch(keras.callbacks.Callback):
    """Tells the crop dataset which interval is starting (its batches are a function of it)."""

    def __init__(self, dataset):
        super().__init__()
        self.dataset = dataset

    def on_epoch_begin(self, epoch, logs=None):
        self.dataset.epoch = int(epoch)


def _make_strategy(name: str):
    if name == "default":
        return None
    if keras.backend.backend() != "tensorflow":
        raise SystemExit(f"--strategy {name} needs the TensorFlow backend (KERAS_BACKEND=tensorflow)")
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"unknown strategy {name!r}")


def _clip_after_all_reduce(optimizer) -> None:
    """Makes ``optimizer`` clip the replicas' summed gradient, as on one device.

    Keras' ``BaseOptimizer.apply`` clips (``clipnorm`` etc.) each replica's
    gradient *before* the optimizer sums them over the replicas, so under
    ``MirroredStrategy`` a clipped step differs from the one-device step on
    the same global batch. This wraps the instance's ``_clip_gradients``: in a
    multi-replica step it sums the gradients first, clips the sum and hands
    every replica ``clipped / replicas`` (which the optimizer's own sum turns
    back into the clipped global gradient). Not saved with the optimizer:
    applied again after every (re)load. A no-op with one replica.
    """
    import tensorflow as tf

    optimizer = getattr(optimizer, "inner_optimizer", optimizer)  # LossScaleOptimizer
    if getattr(optimizer, "_vqcodec_clip_after_all_reduce", False):
        return
    clip = optimizer._clip_gradients

    def clip_global(grads):
        context = tf.distribute.get_replica_context()
        clipping = optimizer.clipnorm or optimizer.global_clipnorm or optimizer.clipvalue
        if not clipping or context is None or context.num_replicas_in_sync == 1:
            return clip(grads)
        present = [i for i, g in enumerate(grads) if g is not None]
        summed = context.all_reduce("SUM", [tf.convert_to_tensor(grads[i]) for i in present])
        clipped = clip(summed)
        grads = list(grads)
        for i, g in zip(present, clipped):
            grads[i] = g / context.num_replicas_in_sync
        return grads

    optimizer._clip_gradients = clip_global
    optimizer._vqcodec_clip_after_all_reduce = True


def fit_coding_tables(model, images: list[np.ndarray], max_side: int = 1024):
    """Fits the entropy coder's integer tables (``bitstream.CodingTables``) on the indices of ``images``."""
    import bitstream

    grids = []
    for image in images:
        for level in build_pyramid(image, scales=(1.0, 0.6), min_side=64):
            crop = center_crop_multiple(level, STRIDE, max_side).astype(np.float32) / 255.0
            grids.append(stage_indices(model, crop))
    return bitstream.CodingTables.fit(grids, num_stages=model.num_stages, num_codes=model.num_embeddings)


def export_inference_model(model):
    """A float32 copy of ``model`` without optimizer state: what the codec ships."""
    config = json.loads(json.dumps(model.get_config()).replace('"mixed_bfloat16"', '"float32"').replace('"mixed_float16"', '"float32"'))
    exported = model.__class__.from_config(config)
    exported.build((None, None, None, 3))
    for target, source in zip(exported.weights, model.weights):
        target.assign(keras.ops.convert_to_numpy(source))
    return exported


def _schedule(lr: float, steps: int):
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=lr * 0.1,
        decay_steps=max(1, steps),
        alpha=0.05,
        warmup_target=lr,
        warmup_steps=min(500, steps // 10),
    )


def _compile(model, lr: float, steps: int) -> None:
    model.compile(optimizer=keras.optimizers.Adam(_schedule(lr, steps), clipnorm=1.0))


def _load_for_resume(path: Path, lr: float, steps: int):
    """A checkpoint resumes with its optimizer; an exported model gets a fresh one."""
    if not path.is_file():
        raise FileNotFoundError(f"--resume: no such file: {path}")
    try:
        model = keras.models.load_model(path)
    except Exception as exc:
        raise ValueError(f"--resume: cannot load {path}: {exc}") from exc
    if getattr(model, "optimizer", None) is None:
        print(
            f"warning: {path} has no optimizer state (an exported model?): starting a fresh optimizer "
            f"(learning-rate schedule and step count restart at 0, {steps} steps to go)",
            file=sys.stderr,
            flush=True,
        )
        _compile(model, lr, steps)
        return model
    schedule = model.optimizer._learning_rate
    if isinstance(schedule, keras.optimizers.schedules.CosineDecay) and schedule.decay_steps != max(1, steps):
        # A run resumed with a new --steps keeps its step count but decays to the new end.
        print(f"learning-rate schedule now decays over {steps} steps (was {schedule.decay_steps})", flush=True)
        model.optimizer.learning_rate = _schedule(lr, steps)
    return model


def train(
    data_dir: str | Path | None,
    output: str | Path,
    *,
    steps: int = 20000,
    batch_size: int = 8,
    patch_size: int = 128,
    lr: float = 3e-4,
    val_dir: str | Path | None = None,
    holdout: int = 0,
    resume: str | Path | None = None,
    strategy: str = "default",
    log_every: int = 250,
    val_every: int = 4,
    precision: str = "mixed_bfloat16",
    model_kwargs: dict | None = None,
    reconstruction_loss_weight: float = 1.0,
    seed: int = 0,
    verbose: int | str = "auto",
    patches: str | Path | None = None,
) -> keras.Model:
    """Trains (or resumes) and exports ``output``; returns the exported model.

    The training data is a folder of images (``data_dir``) or a file of
    pre-cut uint8 patches (``patches``, see ``python -m vqcodec.data cut``).
    Keras' global dtype policy is set to ``precision`` while training and
    restored afterwards.
    """
    options = dict(locals())
    previous_policy = keras.config.dtype_policy()
    try:
        return _train(**options)
    finally:
        keras.config.set_dtype_policy(previous_policy)


def _train(
    data_dir, output, *, steps, batch_size, patch_size, lr, val_dir, holdout, resume, strategy, log_every, val_every,
    precision, model_kwargs, reconstruction_loss_weight, seed, verbose, patches,
):
    output = Path(output)
    if output.suffix != ".keras":
        raise ValueError(f"output must end in .keras, got {output}")
    if (data_dir is None) == (patches is None):
        raise ValueError("give either a data folder or --patches FILE (not both)")
    if resume is not None and not Path(resume).is_file():
        raise FileNotFoundError(f"--resume: no such file: {resume}")
    output.parent.mkdir(parents=True, exist_ok=True)
    checkpoint = output.with_suffix(".ckpt.keras")
    csv_log = output.with_suffix(".log.csv")
    val_log = output.with_suffix(".val.jsonl")

    val_files = find_images(val_dir) if val_dir else []
    if patches is not None:
        patch_array = load_patches(patches)
        if holdout:
            patch_array, held = patch_array[:-holdout], patch_array[-holdout:]
        else:
            held = patch_array[:0]
        print(f"training on {len(patch_array)} patches from {patches}; validating on {len(val_files) + len(held)}", flush=True)
        # Tables are fitted on (at most 512 of) the patches themselves.
        images = list(patch_array[np.linspace(0, len(patch_array) - 1, min(512, len(patch_array))).astype(int)])
        val_images = [load_rgb(f) for f in val_files] + list(held)
    else:
        files = find_images(data_dir)
        if holdout:
            files, val_files = files[:-holdout], val_files + files[-holdout:]
        print(f"training on {len(files)} images from {data_dir}; validating on {len(val_files)}", flush=True)
        images = [load_rgb(f) for f in files]
        val_images = [load_rgb(f) for f in val_files]

    keras.config.set_dtype_policy(precision)
    keras.utils.set_random_seed(seed)
    dist = _make_strategy(strategy)
    if dist is not None and batch_size % dist.num_replicas_in_sync:
        # Keras cannot build the model from unequal per-replica batches (AddN shape error).
        raise ValueError(
            f"--batch-size {batch_size} must be a multiple of the {dist.num_replicas_in_sync} replicas of --strategy {strategy}"
        )
    scope = dist.scope() if dist is not None else contextlib.nullcontext()
    with scope:
        if resume:
            model = _load_for_resume(Path(resume), lr, steps)
            print(f"resumed from {resume} at step {int(keras.ops.convert_to_numpy(model.optimizer.iterations))}", flush=True)
        else:
            model = build_image_vqvae(
                seed=seed, reconstruction_loss_weight=reconstruction_loss_weight, **(model_kwargs or {})
            )
            _compile(model, lr, steps)
        if dist is not None:
            _clip_after_all_reduce(model.optimizer)
    print(f"model: {model.count_params():,} parameters", flush=True)

    done = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
    total_intervals = math.ceil(steps / log_every)
    initial_interval = done // log_every
    if initial_interval < total_intervals:
        if patches is not None:
            dataset = PatchDataset(patch_array, batch_size, patch_size, steps=log_every, seed=seed, epoch=initial_interval)
        else:
            dataset = CropDataset(images, batch_size, patch_size, steps=log_every, seed=seed, epoch=initial_interval)
        callbacks = [
            SetDatasetEpoch(dataset),
            keras.callbacks.CSVLogger(str(csv_log), append=True),
            AtomicCheckpoint(checkpoint),
        ]
        if val_images:
            callbacks.append(ValidationCallback(val_images, val_every, val_log))
        model.fit(
            dataset,
            epochs=total_intervals,
            initial_epoch=initial_interval,
            callbacks=callbacks,
            verbose=verbose,
            # Batches are already random; Keras' shuffle of their order draws on Python's
            # global `random`, which MirroredStrategy's extra pass (symbolic build) also
            # advances, so the orders differed between strategies (and on resume).
            shuffle=False,
        )
    else:
        print(f"already at step {done} of {steps}: nothing to train", flush=True)

    # The codec runs the model in float32: export it under a float32 global
    # policy (sub-layers without a dtype of their own follow the global one)
    # and fit the tables on the indices of the exported model itself.
    keras.config.set_dtype_policy("float32")
    exported = export_inference_model(model)
    print("fitting entropy-coding tables on the training images ...", flush=True)
    tables = fit_coding_tables(exported, images)
    exported.set_coding_tables(tables.to_array())
    atomic_save(exported, output)
    print(f"saved {output} ({output.stat().st_size / 1e6:.1f} MB)", flush=True)
    if keras.backend.backend() == "tensorflow":
        from vqcodec.export import export_model

        encode_path, decode_path = export_model(output)
        print(f"exported {encode_path.name} and {decode_path.name} (the fast runtime's graphs)", flush=True)
    else:
        print(f"not exported (needs the TensorFlow backend): run 'vqcodec export {output}'", flush=True)
    return exported


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vqcodec train", description="Train the image VQ-VAE on a folder of images.")
    p.add_argument("data_dir", nargs="?", help="folder of training images (searched recursively)")
    p.add_argument(
        "--patches",
        metavar="FILE.npz",
        help="train from pre-cut uint8 patches (N, P, P, 3) instead of a folder "
        "(make one with: python -m vqcodec.data cut DATA_DIR -o FILE.npz --count N --patch-size P)",
    )
    p.add_argument("-o", "--output", required=True, help="output model, e.g. model.keras")
    p.add_argument("--steps", type=int, default=20000)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--patch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=3e-4, help="peak learning rate (cosine decay after warm-up)")
    p.add_argument("--val", dest="val_dir", help="folder of validation images")
    p.add_argument("--holdout", type=int, default=0, help="hold out the last N training files for validation")
    p.add_argument(
        "--resume",
        help="checkpoint (OUTPUT.ckpt.keras) to resume from; an exported model (.keras without optimizer "
        "state) also works and starts a fresh optimizer",
    )
    p.add_argument("--strategy", choices=["default", "mirrored", "multiworker"], default="default")
    p.add_argument("--log-every", type=int, default=250, help="steps per logging/checkpoint interval")
    p.add_argument("--val-every", type=int, default=4, help="intervals between validations")
    p.add_argument("--precision", default="mixed_bfloat16", choices=["float32", "mixed_bfloat16", "mixed_float16"])
    p.add_argument("--channels", type=int, default=128)
    p.add_argument("--embedding-dim", type=int, default=64)
    p.add_argument("--stages", type=int, default=8)
    p.add_argument("--codes", type=int, default=256)
    p.add_argument("--res-blocks", type=int, default=2)
    p.add_argument("--recon-weight", type=float, default=1.0, help="reconstruction_loss_weight")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress display (the log files are written as usual)")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.data_dir is None) == (args.patches is None):
        parser.error("give a data folder or --patches FILE.npz (one of them)")
    if args.resume is not None and not Path(args.resume).is_file():
        parser.error(f"--resume: no such file: {args.resume}")
    train(
        args.data_dir,
        args.output,
        steps=args.steps,
        batch_size=args.batch_size,
        patch_size=args.patch_size,
        lr=args.lr,
        val_dir=args.val_dir,
        holdout=args.holdout,
        resume=args.resume,
        strategy=args.strategy,
        log_every=args.log_every,
        val_every=args.val_every,
        precision=args.precision,
        model_kwargs=dict(
            channels=args.channels,
            embedding_dim=args.embedding_dim,
            num_stages=args.stages,
            num_embeddings=args.codes,
            res_blocks=args.res_blocks,
        ),
        reconstruction_loss_weight=args.recon_weight,
        seed=args.seed,
        verbose=0 if args.quiet else 1 if sys.stdout.isatty() else 2,
        patches=args.patches,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
