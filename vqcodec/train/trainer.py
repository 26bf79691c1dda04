"""Training a codec model: every quality level of a :class:`VariableRateVQVAE` in one run.

``vqcodec train DATA -o model.keras`` (:mod:`vqcodec.cli.train` reads the
options) trains from scratch (the shipped recipe, :data:`vqcodec.model.recipe.SHIPPED`),
from a model's weights (``--from default`` fine-tunes the shipped model) or
resumes a run, on the rate-distortion loss of every level at once, with a CSV
log, an atomic checkpoint every interval and dead-code revival between steps.
At the end it fits the entropy coder's tables on training crops, stores them
in the model and reports each level's real coded bpp and PSNR on the
validation images (the last ``--holdout`` files).
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import keras
import numpy as np

from vqcodec.atomic_write import write_atomic
from vqcodec.model.recipe import STRIDE
from vqcodec.model.variable_rate import VariableRateVQVAE, build_codec_model
from vqcodec.train.data import CropDataset, PatchDataset, SetDatasetEpoch, load_patches
from vqcodec.train.evaluation import fit_coding_tables, random_crops, refit_coding_tables, report, validation_images
from vqcodec.train.photos import center_crop_multiple, find_images, load_rgb

__all__ = ["train", "reconfigured", "float32_copy", "save_model", "WarmCosine", "state_path"]


def save_model(model: keras.Model, path: str | Path) -> None:
    """Saves ``model`` to ``path`` atomically: a killed run never leaves half a model under its name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.stem}.") as tmp:
        staged = Path(tmp) / "model.keras"
        model.save(staged)
        write_atomic(path, lambda f: f.write(staged.read_bytes()), overwrite=True)


def reconfigured(
    model: VariableRateVQVAE,
    lambdas=None,
    rate_weight: float | None = None,
    num_embeddings: int | None = None,
    level_weight_power: float | None = None,
    learned_reconstruction: bool | None = None,
) -> VariableRateVQVAE:
    """A copy of ``model`` with another quality ladder, assignment rate weight, level weighting, more codes or
    a learned reconstruction, keeping what it has learned (not the coding tables: fit them again).

    A level whose lambda the model already has keeps its gains, code
    distribution and learned reconstruction. A new level gets gains
    interpolated (or extrapolated from the two nearest levels) linearly in log
    lambda, and the code distribution (which the refit at the start of
    training replaces) and learned reconstruction of the nearest level.
    More codes extend each codebook with the next lattice points (the old codes
    keep their indices) at a probability below every old code's. A learned
    reconstruction switched on starts as each code's own value.
    """
    config = model.get_config()
    old = np.log(np.asarray(model.lambdas))
    if lambdas is not None:
        config["lambdas"] = [float(v) for v in lambdas]
        config["ladder"] = None  # the operating points were those of the old levels
    if rate_weight is not None:
        config["rate_weight"] = float(rate_weight)
    if level_weight_power is not None:
        config["level_weight_power"] = float(level_weight_power)
    if learned_reconstruction is not None:
        config["learned_reconstruction"] = bool(learned_reconstruction)
    old_k = model.num_embeddings
    if num_embeddings is not None:
        if num_embeddings < old_k:
            raise ValueError(f"cannot drop codes: the model has {old_k}, asked for {num_embeddings}")
        config["num_embeddings"] = int(num_embeddings)
    copy = VariableRateVQVAE.from_config(config)
    copy.build((None, None, None, 3))
    source, target = model.quantizer, copy.quantizer
    for t, s in zip(copy.encoder.weights + copy.decoder.weights, model.encoder.weights + model.decoder.weights, strict=True):
        t.assign(keras.ops.convert_to_numpy(s))
    for name in ("codebooks", "code_usage", "recent_vectors"):
        values = keras.ops.convert_to_numpy(getattr(target, name)).copy()
        values[:, :old_k] = keras.ops.convert_to_numpy(getattr(source, name))
        getattr(target, name).assign(values)
    gains = keras.ops.convert_to_numpy(source.log_gains)
    logits = keras.ops.convert_to_numpy(source.logits)
    extra = target.num_embeddings - old_k
    if extra:
        logits = np.concatenate([logits, np.broadcast_to(logits.min(-1, keepdims=True) - 1.0, logits.shape[:-1] + (extra,))], -1)
    reconstruction = [keras.ops.convert_to_numpy(w) for w in source.reconstruction_weights()]
    new_gains, new_logits, new_reconstruction = [], [], []
    for value in np.log(np.asarray(copy.lambdas)):
        nearest = np.argsort(np.abs(old - value), kind="stable")[:2]
        a, b = sorted(nearest) if len(nearest) == 2 else (nearest[0], nearest[0])
        t = 0.0 if a == b else (value - old[a]) / (old[b] - old[a])
        new_gains.append(gains[a] + t * (gains[b] - gains[a]))
        new_logits.append(logits[nearest[0]])
        new_reconstruction.append([w[nearest[0]] for w in reconstruction])
    target.log_gains.assign(np.stack(new_gains))
    target.logits.assign(np.stack(new_logits))
    for variable, values in zip(target.reconstruction_weights(), zip(*new_reconstruction)):
        variable.assign(np.stack(values))
    return copy


@keras.saving.register_keras_serializable(package="vqcodec")
class WarmCosine(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up over ``warmup`` optimizer steps, then cosine decay to ``alpha * peak`` at global step ``total``.

    ``offset`` is the global step at which this optimizer started, so a run
    resumed from exported weights (fresh optimizer) warms up again briefly and
    then follows the same cosine as an uninterrupted run.
    """

    def __init__(self, peak: float, total: int, warmup: int = 100, alpha: float = 0.05, offset: int = 0):
        self.peak, self.total, self.warmup = float(peak), int(total), int(warmup)
        self.alpha, self.offset = float(alpha), int(offset)

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        warm = keras.ops.minimum(1.0, (step + 1.0) / max(1, self.warmup))
        progress = keras.ops.clip((step + self.offset) / max(1, self.total), 0.0, 1.0)
        cosine = self.alpha + (1.0 - self.alpha) * 0.5 * (1.0 + keras.ops.cos(math.pi * progress))
        return self.peak * warm * cosine

    def get_config(self):
        return dict(peak=self.peak, total=self.total, warmup=self.warmup, alpha=self.alpha, offset=self.offset)


def _global_step(model, offset: int) -> int:
    return offset + int(keras.ops.convert_to_numpy(model.optimizer.iterations))


def state_path(model_path: str | Path) -> Path:
    """``x.state.json`` for ``x.keras`` and ``x.ckpt.keras``: the step the weights were saved at, and the command."""
    name = str(model_path).removesuffix(".keras").removesuffix(".ckpt")
    return Path(name + ".state.json")


def float32_copy(model) -> VariableRateVQVAE:
    """A float32 copy of ``model`` without optimizer state (what the codec uses and the repository keeps).

    Its coding tables are zero: fitted to other weights, they no longer fit these.
    """
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        config = json.loads(json.dumps(model.get_config()).replace('"mixed_bfloat16"', '"float32"'))
        exported = VariableRateVQVAE.from_config(config)
        exported.encoder.trainable = exported.decoder.trainable = True  # frozen for one run only
        exported.build((None, None, None, 3))
        for target, source in zip(exported.weights, model.weights, strict=True):
            target.assign(keras.ops.convert_to_numpy(source))
        exported.set_coding_tables(np.zeros(exported.coding_counts.shape), np.zeros(exported.coding_offsets.shape))
    finally:
        keras.config.set_dtype_policy(policy)
    return exported


class _ReviveDeadCodes(keras.callbacks.Callback):
    def __init__(self, every: int):
        super().__init__()
        self.every = max(1, int(every))
        self.revived = 0

    def on_train_batch_end(self, batch, logs=None):
        if (batch + 1) % self.every == 0:
            # Under JAX the step's state lives outside the variables until synced.
            sync = getattr(self.model, "jax_state_sync", None)
            if sync is not None:
                sync()
            self.revived += self.model.quantizer.revive_dead_codes()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["revived"] = self.revived
        self.revived = 0


class _RefitCodeDistributions(keras.callbacks.Callback):
    """At the start and after every interval: the code distributions refitted on fixed training crops."""

    def __init__(self, crops: np.ndarray, batch_size: int = 8):
        super().__init__()
        self.crops = crops.astype(np.float32) / 255.0
        self.batch_size = batch_size

    def _refit(self):
        sync = getattr(self.model, "jax_state_sync", None)
        if sync is not None:
            sync()
        latents = np.concatenate([
            keras.ops.convert_to_numpy(self.model.encode(self.crops[i : i + self.batch_size]))
            for i in range(0, len(self.crops), self.batch_size)
        ])
        self.model.quantizer.refit_code_distributions(latents)

    def on_train_begin(self, logs=None):
        self._refit()

    def on_epoch_end(self, epoch, logs=None):
        self._refit()


def _table_crops(images: list[np.ndarray], patch_size: int, seed: int) -> np.ndarray:
    """What the coding tables are fitted on in training: :func:`fit_coding_tables`' crops of the training photos,
    or as many positions' worth of pre-cut patches."""
    if min(min(i.shape[:2]) for i in images) >= 256:
        return random_crops(images, 2, 256, seed)
    pick = np.random.default_rng(seed).permutation(len(images))[: 80 * max(1, 256 // patch_size) ** 2]
    return np.stack([images[i] for i in np.sort(pick)])


class _RefitCodingTables(keras.callbacks.Callback):
    """For training at the coder's price: the coding tables fitted (if missing) at the start, and refitted to the
    codes the codec would now choose after every ``every`` intervals (one round of :func:`refit_coding_tables`)."""

    def __init__(self, crops: np.ndarray, every: int = 1):
        super().__init__()
        self.crops = crops
        self.every = max(1, int(every))

    def _refit(self, rounds: int) -> None:
        sync = getattr(self.model, "jax_state_sync", None)
        if sync is not None:
            sync()
        refit_coding_tables(self.model, self.crops, rounds)

    def on_train_begin(self, logs=None):
        if self.model.context_model() is None:
            self._refit(3)

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every == 0:
            self._refit(1)


class _Budget(keras.callbacks.Callback):
    """Stops at the end of the first interval past ``minutes`` of wall time or at step ``until_step``."""

    def __init__(self, minutes: float | None, until_step: int | None, offset: int):
        super().__init__()
        self.deadline = None if minutes is None else time.time() + 60.0 * minutes
        self.until_step = until_step
        self.offset = offset

    def on_epoch_end(self, epoch, logs=None):
        step = _global_step(self.model, self.offset)
        if (self.deadline is not None and time.time() >= self.deadline) or (
            self.until_step is not None and step >= self.until_step
        ):
            self.model.stop_training = True


class _Checkpoint(keras.callbacks.Callback):
    """Every interval: the full state (``.ckpt.keras``) and the float32 weights with their step (``.keras`` + ``.state.json``).

    The weights file (12 MB) is small enough to commit; resuming from it starts
    a fresh optimizer at the recorded step.
    """

    def __init__(self, output: Path, command: list[str], offset: int):
        super().__init__()
        self.output = output
        self.command = command
        self.offset = offset

    def on_epoch_end(self, epoch, logs=None):
        save_model(self.model, self.output.with_suffix(".ckpt.keras"))
        save_model(float32_copy(self.model), self.output)
        state = {
            "step": _global_step(self.model, self.offset),
            "optimizer_offset": self.offset,
            "command": self.command,
            "time": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        }
        state_path(self.output).write_text(json.dumps(state, indent=1) + "\n")
        if logs is not None:
            logs["step"] = state["step"]


def _start(args: argparse.Namespace) -> tuple[VariableRateVQVAE, int]:
    """The model to train and the global step its optimizer starts at: resumed, from weights, or new."""
    source = args.resume or args.start_from
    if source is None:
        model = build_codec_model(
            seed=args.seed,
            **{name: value for name, value in (
                ("num_embeddings", args.codes), ("code_dim", args.code_dim), ("lambdas", args.lambdas),
                ("rate_weight", args.rate_weight), ("gain_range", args.gain_range),
                ("learn_codebooks", args.learn_codebooks), ("level_weight_power", args.level_weight_power),
            ) if value is not None},
        )
        model.compile(optimizer=_optimizer(args, 0))
        offset = 0
    else:
        model = keras.models.load_model(source, compile=args.resume is not None)
        state = json.loads(state_path(source).read_text()) if args.resume and state_path(source).is_file() else {}
        if (
            (args.lambdas and tuple(args.lambdas) != model.lambdas)
            or (args.rate_weight is not None and args.rate_weight != model.quantizer.rate_weight)
            or (args.codes is not None and args.codes != model.num_embeddings)
            or (args.level_weight_power is not None and args.level_weight_power != model.level_weight_power)
        ):
            model = reconfigured(model, args.lambdas, args.rate_weight, args.codes, args.level_weight_power)
            print(
                f"reconfigured: lambdas {list(model.lambdas)}, rate weight {model.quantizer.rate_weight}, "
                f"{model.num_embeddings} codes, level weight power {model.level_weight_power}; fresh optimizer",
                flush=True,
            )
        if getattr(model, "optimizer", None) is None:
            offset = int(state.get("step", 0))
            model.compile(optimizer=_optimizer(args, offset))
        else:
            if args.freeze:
                raise ValueError("--freeze needs a fresh optimizer: resume from the weights (OUTPUT.keras), not the .ckpt.keras")
            offset = int(state.get("optimizer_offset", 0))
            model.optimizer.learning_rate = WarmCosine(args.lr, args.steps, offset=offset)
    if args.coder_rate is not None:
        model.coder_rate = args.coder_rate
    for name in args.freeze:
        getattr(model, name).trainable = False
    if model.coder_rate and not model.quantizer.windowed:
        raise ValueError("--coder-rate needs the fixed 1-D lattice (a model trained without --learn-codebooks)")
    return model, offset


def _optimizer(args: argparse.Namespace, offset: int) -> keras.optimizers.Optimizer:
    """Adam on the warm cosine, gradients clipped and summed over ``--accumulate`` batches per step."""
    accumulate = args.accumulate if args.accumulate > 1 else None
    return keras.optimizers.Adam(WarmCosine(args.lr, args.steps, offset=offset), clipnorm=1.0,
                                 gradient_accumulation_steps=accumulate)


def _data(args: argparse.Namespace) -> tuple[list[np.ndarray], list[Path]]:
    """(training images or patches, validation files)."""
    if args.patches:
        patches = load_patches(args.patches)
        print(f"training on {len(patches)} patches from {args.patches}; no validation", flush=True)
        return list(patches), []
    files = find_images(args.data_dir)
    train_files, val_files = files[: -args.holdout] if args.holdout else files, files[len(files) - args.holdout :]
    print(f"training on {len(train_files)} images; validating on {[f.name for f in val_files]}", flush=True)
    return [_load(f) for f in train_files], val_files


def _load(path: Path) -> np.ndarray:
    try:
        return load_rgb(path)
    except Exception as exc:  # Pillow's errors for a damaged or unknown file
        raise ValueError(f"{path}: cannot read this photo ({exc})") from exc


def _refit_crops(images: list[np.ndarray], patch_size: int, seed: int) -> np.ndarray:
    """One crop of each of the first 40 photos large enough for one, to refit the code distributions on."""
    large = [image for image in images if min(image.shape[:2]) >= patch_size][:40]
    if not large:
        raise ValueError(f"no training photo is as large as --patch-size {patch_size}")
    return random_crops(large, 1, patch_size, seed)


def evaluate_only(args: argparse.Namespace) -> int:
    """``--evaluate-only`` / ``--evaluate-on``: fits the tables where missing, then reports."""
    images, val_files = _data(args)
    output = Path(args.output)
    model = keras.models.load_model(output, compile=False)
    state = json.loads(state_path(output).read_text()) if state_path(output).is_file() else {}
    if model.context_model() is None:
        fit_coding_tables(model, images)
        save_model(model, output)
        print(f"fitted the coding tables on the training images and stored them in {output}", flush=True)
    if args.evaluate_on:
        test = [center_crop_multiple(_load(f), STRIDE) for f in find_images(args.evaluate_on)]  # whole latents
        path = output.with_suffix(f".{Path(args.evaluate_on).resolve().name}.eval.json")
        report(model, test, path, whole_file=True, step=state.get("step"), image_count=len(test))
    else:
        report(model, validation_images(val_files), output.with_suffix(".eval.json"), step=state.get("step"))
    return 0


def train(args: argparse.Namespace, command: list[str]) -> int:
    """Trains as the parsed options of ``vqcodec train`` say; ``command`` is recorded with each checkpoint."""
    if args.evaluate_only or args.evaluate_on:
        return evaluate_only(args)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    images, val_files = _data(args)
    keras.utils.set_random_seed(args.seed)
    keras.config.set_dtype_policy(args.precision)
    model, offset = _start(args)
    done = _global_step(model, offset)
    print(f"model: {model.count_params():,} parameters; at step {done}; "
          f"{args.batch_size} x {args.accumulate} examples a step", flush=True)

    start = done // args.log_every
    kind = PatchDataset if args.patches else CropDataset
    dataset = kind(images, args.batch_size, args.patch_size, steps=args.log_every * args.accumulate, seed=args.seed, epoch=start)
    t0 = time.time()
    model.fit(
        dataset,
        epochs=math.ceil(args.steps / args.log_every),
        initial_epoch=start,
        callbacks=[
            SetDatasetEpoch(dataset),
            _ReviveDeadCodes(args.revive_every * args.accumulate),
            *([_RefitCodeDistributions(_refit_crops(images, args.patch_size, args.seed))] if args.refit_codes else []),
            *([_RefitCodingTables(_table_crops(images, args.patch_size, args.seed), args.table_refit_every)] if model.coder_rate else []),
            keras.callbacks.CSVLogger(str(output.with_suffix(".log.csv")), append=True),
            _Checkpoint(output, command, offset),
            _Budget(args.minutes, args.until_step, offset),
        ],
        verbose=0 if args.quiet else 2,
        shuffle=False,
    )
    steps = _global_step(model, offset)
    print(f"trained to step {steps} in {time.time() - t0:.0f} s", flush=True)

    keras.config.set_dtype_policy("float32")
    final = float32_copy(model)
    if args.patches:
        save_model(final, output)
        print(f"saved {output}; evaluate it with --evaluate-only and the data folder (that fits its coding tables)", flush=True)
        return 0
    fit_coding_tables(final, images)
    save_model(final, output)
    report(final, validation_images(val_files), output.with_suffix(".eval.json"), step=steps,
           wall_s=round(time.time() - t0), args={k: v for k, v in vars(args).items() if k != "func"})
    return 0
