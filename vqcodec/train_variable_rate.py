"""Training and evaluation of :class:`VariableRateVQVAE`: one model, every quality level, real coded rates.

``python -m vqcodec.train_variable_rate DATA -o runs/x/model.keras --minutes 20``
trains (or resumes) with a CSV log, an atomic checkpoint every interval and
dead-code revival between steps; at the end it fits the
:class:`bitstream.context_model.ContextModel` on training crops, stores its
tables in the model, and reports, per quality level, the real range-coded bpp
and PSNR on the validation images (the last ``--holdout`` files), and the
unquantised PSNR of the transforms. Evaluating a model without tables (one
trained from ``--patches``) fits and stores them first.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import keras
import numpy as np

import bitstream
from bitstream.context_model import ContextModel
from vqcodec.architecture import STRIDE, build_decoder, build_encoder
from vqcodec.data import CropDataset, PatchDataset, build_pyramid, center_crop_multiple, find_images, load_patches, load_rgb
from vqcodec.metrics import psnr
from vqcodec.train import SetDatasetEpoch, atomic_save
from vqcodec.variable_rate_model import DEFAULT_LAMBDAS, VariableRateVQVAE

__all__ = ["build_variable_rate_model", "reconfigured", "validation_images", "fit_coding_tables", "refit_coding_tables", "evaluate", "main"]


def build_variable_rate_model(
    channels: int = 128,
    embedding_dim: int = 64,
    res_blocks: int = 2,
    num_embeddings: int = 64,
    code_dim: int = 1,
    lambdas=DEFAULT_LAMBDAS,
    rate_weight: float = 1.0,
    gain_range=(1.0, 16.0),
    learn_codebooks: bool = True,
    level_weight_power: float = 0.0,
    seed: int | None = None,
    warm_start: str | Path | None = None,
) -> VariableRateVQVAE:
    """The codec's variable-rate model; ``warm_start`` copies the transforms of a saved model of the same shape."""
    model = VariableRateVQVAE(
        build_encoder(channels, embedding_dim, res_blocks),
        build_decoder(channels, embedding_dim, res_blocks),
        num_embeddings=num_embeddings,
        embedding_dim=embedding_dim,
        code_dim=code_dim,
        lambdas=lambdas,
        stride=STRIDE,
        rate_weight=rate_weight,
        gain_range=gain_range,
        learn_codebooks=learn_codebooks,
        level_weight_power=level_weight_power,
        seed=seed,
        name="variable_rate_vqvae",
    )
    model.build((None, None, None, 3))
    if warm_start:
        source = keras.models.load_model(warm_start, compile=False)
        for target, origin in ((model.encoder, source.encoder), (model.decoder, source.decoder)):
            for t, s in zip(target.weights, origin.weights, strict=True):
                t.assign(keras.ops.convert_to_numpy(s))
    return model


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


def validation_images(files: list[Path]) -> list[np.ndarray]:
    """Each file at half size (whole) and a 512x512 centre crop at full size, cropped to the stride."""
    out = []
    for f in files:
        image = load_rgb(f)
        half = build_pyramid(image, scales=(0.5,))[0]
        out += [center_crop_multiple(half, STRIDE), center_crop_multiple(image, STRIDE, 512)]
    return out


def _indices(model, image: np.ndarray, quality: int) -> np.ndarray:
    x = image[None].astype(np.float32) / 255.0
    return np.asarray(keras.ops.convert_to_numpy(model.encode_to_indices(x, quality))[0], dtype=np.int64)


def random_crops(images: list[np.ndarray], per_image: int, size: int, seed: int) -> np.ndarray:
    """``per_image`` random ``size``-square crops of each image, in order: (N, size, size, 3) uint8."""
    rng = np.random.default_rng(seed)
    crops = []
    for image in images:
        for _ in range(per_image):
            y = rng.integers(0, image.shape[0] - size + 1)
            x = rng.integers(0, image.shape[1] - size + 1)
            crops.append(image[y : y + size, x : x + size])
    return np.stack(crops)


def fit_coding_tables(
    model: VariableRateVQVAE, images: list[np.ndarray], crops_per_image: int = 2, crop: int = 256, seed: int = 0,
    rounds: int = 3,
) -> ContextModel:
    """Fits the integer context model on random crops of ``images`` at every quality and stores its tables in ``model``.

    The first round counts the codes the quantiser's learned distribution
    picks; each later one the codes picked with the tables of the round
    before (as ``encode_to_indices`` picks them once tables are stored), so
    the tables settle on the codes the codec really codes (two refits: the
    third changed rates by under 0.1% on the validation photos).
    """
    model.set_coding_tables(np.zeros(model.coding_counts.shape, "int32"), np.zeros(model.coding_offsets.shape, "int32"))
    return refit_coding_tables(model, random_crops(images, crops_per_image, crop, seed), rounds)


def refit_coding_tables(model: VariableRateVQVAE, crops: np.ndarray, rounds: int = 1) -> ContextModel:
    """``rounds`` rounds of fitting the coding tables to the codes of uint8 ``crops`` (N, h, w, 3) chosen with the
    model's present tables (or, without any, its learned distribution); stores and returns the last. Each crop is
    encoded once, alone (as the codec encodes an image)."""
    latents = [model.encode(c[None].astype(np.float32) / 255.0) for c in crops]
    for _ in range(rounds):
        grids = [
            [np.asarray(keras.ops.convert_to_numpy(model.latents_to_indices(z, q))[0], np.int64) for z in latents]
            for q in range(model.num_qualities)
        ]
        fitted = ContextModel.fit(grids, model.num_embeddings, model.table_width)
        model.set_coding_tables(fitted.counts, fitted.offsets)
    return fitted


def evaluate(model: VariableRateVQVAE, images: list[np.ndarray], context_model, whole_file: bool = False) -> dict:
    """Per quality: mean real coded bpp and PSNR over ``images``; and the transforms' unquantised PSNR.

    ``whole_file``: rates of the payload packed in the ``.vqc`` container the
    codec writes (an ecvq file: header and CRC), else of the payload alone.
    """
    rows = []
    for q in range(model.num_qualities):
        bpps, psnrs = [], []
        for image in images:
            grid = _indices(model, image, q)
            data = context_model.encode(grid, q)
            if not np.array_equal(context_model.decode(data, *grid.shape[:2], q), grid):
                raise RuntimeError(f"quality {q}: the coded grid does not decode to itself")
            rec = keras.ops.convert_to_numpy(model.decode_from_indices(grid[None], q))[0]
            rec = np.clip(np.round(rec * 255.0), 0, 255)
            if whole_file:
                header = bitstream.Header(
                    bytes(8), image.shape[1], image.shape[0], "RGB", level=q, latent_height=grid.shape[0],
                    latent_width=grid.shape[1], kind="ecvq",
                )
                data = bitstream.pack(header, data)
            bpps.append(len(data) * 8 / (image.shape[0] * image.shape[1]))
            psnrs.append(psnr(image, rec))
        rows.append({"quality": q, "bpp": float(np.mean(bpps)), "psnr": float(np.mean(psnrs))})
    unquantised = []
    for image in images:
        x = image[None].astype(np.float32) / 255.0
        rec = keras.ops.convert_to_numpy(model.decode(model.encode(x)))[0]
        unquantised.append(psnr(image, np.clip(np.round(rec * 255.0), 0, 255)))
    return {"levels": rows, "unquantised_psnr": float(np.mean(unquantised))}


def evaluate_shipped_codec(images: list[np.ndarray]) -> dict:
    """The shipped codec's whole ``.vqc`` files on the same images, per quality: the curve to beat."""
    from vqcodec import codec

    model = codec.load_model()
    rows = []
    for q in codec.quality_levels(model):
        bpps, psnrs = [], []
        for image in images:
            data = codec.compress(image, q, model, lossless=False)
            rec = np.asarray(codec.decompress(data, model).convert("RGB"))
            bpps.append(len(data) * 8 / (image.shape[0] * image.shape[1]))
            psnrs.append(psnr(image, rec))
        rows.append({"quality": q, "bpp": float(np.mean(bpps)), "psnr": float(np.mean(psnrs))})
    return {"levels": rows}


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


def _state_path(model_path: str | Path) -> Path:
    """``x.state.json`` for ``x.keras`` and ``x.ckpt.keras``."""
    name = str(model_path).removesuffix(".keras").removesuffix(".ckpt")
    return Path(name + ".state.json")


def export_float32(model) -> VariableRateVQVAE:
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
        atomic_save(self.model, self.output.with_suffix(".ckpt.keras"))
        atomic_save(export_float32(self.model), self.output)
        state = {
            "step": _global_step(self.model, self.offset),
            "optimizer_offset": self.offset,
            "command": self.command,
            "time": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        }
        _state_path(self.output).write_text(json.dumps(state, indent=1) + "\n")
        if logs is not None:
            logs["step"] = state["step"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vqcodec.train_variable_rate", description=__doc__.splitlines()[0])
    p.add_argument("data_dir", nargs="?", help="folder of training photos; the last --holdout files validate")
    p.add_argument(
        "--patches",
        help="train from pre-cut uint8 patches (python -m vqcodec.data cut) instead of DATA_DIR; "
        "no end-of-run evaluation (run --evaluate-only with DATA_DIR after)",
    )
    p.add_argument("-o", "--output", required=True, help="output model (.keras); the checkpoint goes beside it")
    p.add_argument("--steps", type=int, default=100000, help="schedule length (the cosine decay ends here)")
    p.add_argument("--minutes", type=float, help="stop after this much wall time (at an interval's end)")
    p.add_argument("--until-step", type=int, help="stop once this step is reached (at an interval's end)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--patch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--holdout", type=int, default=2)
    p.add_argument("--log-every", type=int, default=250)
    p.add_argument("--revive-every", type=int, default=50)
    p.add_argument("--precision", default="float32", choices=["float32", "mixed_bfloat16"])
    p.add_argument("--codes", type=int, help="codes per group (new model: 64; on resume: extends the model's)")
    p.add_argument("--code-dim", type=int, default=1)
    p.add_argument(
        "--rate-weight", type=float,
        help="weight of the bits in the code assignment (new model: 1.0; on resume: changes the model's)",
    )
    p.add_argument(
        "--level-weight-power", type=float,
        help="weight each level's loss by (lambda / geometric mean) ** -POWER, so coarse levels pull harder on the "
        "shared transforms (new model: 0, unweighted; on resume: changes the model's)",
    )
    p.add_argument(
        "--lambdas", type=float, nargs="+",
        help="the quality ladder's rate-distortion lambdas (new model: the default ladder; on resume: changes the model's)",
    )
    p.add_argument("--fixed-lattice", action="store_true", help="keep the integer-lattice codebooks (only gains and code probabilities learn)")
    p.add_argument("--gain-range", type=float, nargs=2, default=(1.0, 16.0), metavar=("LOW", "HIGH"))
    p.add_argument("--warm-start", help="copy encoder and decoder weights from this .keras model")
    p.add_argument(
        "--resume",
        help="OUTPUT.ckpt.keras (with optimizer) or exported weights OUTPUT.keras (fresh optimizer from the step in OUTPUT.state.json)",
    )
    p.add_argument(
        "--coder-rate", action=argparse.BooleanOptionalAction,
        help="price the codes in training with the entropy coder's tables in their contexts (new model: off; on "
        "resume: changes the model's)",
    )
    p.add_argument(
        "--table-refit-every", type=int, default=1, metavar="N",
        help="with --coder-rate: refit the coding tables to the codes chosen now after every N intervals",
    )
    p.add_argument(
        "--freeze", nargs="+", choices=["encoder", "decoder"], default=[],
        help="keep these transforms fixed (fresh optimizer only); the quantiser always trains",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--refit-codes", action=argparse.BooleanOptionalAction, default=True,
        help="refit the code distributions to the chosen codes at the start and after every interval",
    )
    p.add_argument("--evaluate-only", action="store_true", help="evaluate OUTPUT (no training) and write OUTPUT.eval.json")
    p.add_argument(
        "--evaluate-on", metavar="DIR",
        help="evaluate OUTPUT on every image of DIR (sides multiples of 8; rates of whole .vqc files) "
        "and write OUTPUT.DIRNAME.eval.json; the context model is fitted on the training photos",
    )
    p.add_argument(
        "--evaluate-shipped", action="store_true",
        help="evaluate the shipped codec's .vqc files on the same validation images and write shipped.eval.json beside OUTPUT",
    )
    args = p.parse_args(argv)
    if (args.data_dir is None) == (args.patches is None):
        p.error("give a data folder or --patches FILE.npz (one of them)")
    if args.patches and (args.evaluate_only or args.evaluate_shipped or args.evaluate_on):
        p.error("evaluation needs the data folder (its last --holdout photos), not --patches")

    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    if args.patches:
        patches = load_patches(args.patches)
        images, val_files = list(patches), []
        print(f"training on {len(patches)} patches from {args.patches}; no validation", flush=True)
    else:
        files = find_images(args.data_dir)
        train_files, val_files = files[: -args.holdout], files[-args.holdout :]
        images = [load_rgb(f) for f in train_files]
        print(f"training on {len(train_files)} images; validating on {[f.name for f in val_files]}", flush=True)
    if args.evaluate_shipped:
        result = evaluate_shipped_codec(validation_images(val_files))
        with open(output.parent / "shipped.eval.json", "w") as f:
            json.dump(result, f, indent=1)
        for row in result["levels"]:
            print(f"shipped q{row['quality']}: {row['bpp']:.3f} bpp {row['psnr']:.2f} dB", flush=True)
        return 0
    if args.evaluate_on or args.evaluate_only:
        model = keras.models.load_model(output, compile=False)
        state = json.loads(_state_path(output).read_text()) if _state_path(output).is_file() else {}
        if model.context_model() is None:
            fit_coding_tables(model, images)
            atomic_save(model, output)
            print(f"fitted the coding tables on the training images and stored them in {output}", flush=True)
        if args.evaluate_on:
            test = [load_rgb(f) for f in find_images(args.evaluate_on)]
            path = output.with_suffix(f".{Path(args.evaluate_on).resolve().name}.eval.json")
            _report(model, test, path, whole_file=True, step=state.get("step"), image_count=len(test))
        else:
            _report(model, validation_images(val_files), output.with_suffix(".eval.json"), step=state.get("step"))
        return 0

    keras.utils.set_random_seed(args.seed)
    keras.config.set_dtype_policy(args.precision)
    if args.resume:
        model = keras.models.load_model(args.resume)
        state = json.loads(_state_path(args.resume).read_text()) if _state_path(args.resume).is_file() else {}
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
        if args.coder_rate is not None:
            model.coder_rate = args.coder_rate
        if args.freeze and getattr(model, "optimizer", None) is not None:
            p.error("--freeze needs a fresh optimizer: resume from the exported weights (OUTPUT.keras), not the .ckpt.keras")
        for name in args.freeze:
            getattr(model, name).trainable = False
        if getattr(model, "optimizer", None) is None:
            offset = int(state.get("step", 0))
            model.compile(optimizer=keras.optimizers.Adam(WarmCosine(args.lr, args.steps, offset=offset), clipnorm=1.0))
        else:
            offset = int(state.get("optimizer_offset", 0))
            model.optimizer.learning_rate = WarmCosine(args.lr, args.steps, offset=offset)
    else:
        offset = 0
        model = build_variable_rate_model(
            num_embeddings=args.codes or 64, code_dim=args.code_dim, gain_range=args.gain_range,
            lambdas=args.lambdas or DEFAULT_LAMBDAS, rate_weight=1.0 if args.rate_weight is None else args.rate_weight,
            learn_codebooks=not args.fixed_lattice, level_weight_power=args.level_weight_power or 0.0,
            seed=args.seed, warm_start=args.warm_start,
        )
        model.coder_rate = bool(args.coder_rate)
        for name in args.freeze:
            getattr(model, name).trainable = False
        model.compile(optimizer=keras.optimizers.Adam(WarmCosine(args.lr, args.steps), clipnorm=1.0))
    if model.coder_rate and not model.quantizer.windowed:
        p.error("--coder-rate needs the fixed 1-D lattice (a model trained with --fixed-lattice)")
    done = _global_step(model, offset)
    print(f"model: {model.count_params():,} parameters; at step {done}", flush=True)

    start = done // args.log_every
    if args.patches:
        dataset = PatchDataset(patches, args.batch_size, args.patch_size, steps=args.log_every, seed=args.seed, epoch=start)
    else:
        dataset = CropDataset(images, args.batch_size, args.patch_size, steps=args.log_every, seed=args.seed, epoch=start)
    t0 = time.time()
    model.fit(
        dataset,
        epochs=math.ceil(args.steps / args.log_every),
        initial_epoch=start,
        callbacks=[
            SetDatasetEpoch(dataset),
            _ReviveDeadCodes(args.revive_every),
            *([_RefitCodeDistributions(random_crops(images[:40], 1, args.patch_size, args.seed))] if args.refit_codes else []),
            *([_RefitCodingTables(_table_crops(images, args.patch_size, args.seed), args.table_refit_every)] if model.coder_rate else []),
            keras.callbacks.CSVLogger(str(output.with_suffix(".log.csv")), append=True),
            _Checkpoint(output, ["python", "-m", "vqcodec.train_variable_rate"] + list(argv if argv is not None else sys.argv[1:]), offset),
            _Budget(args.minutes, args.until_step, offset),
        ],
        verbose=2,
        shuffle=False,
    )
    steps = _global_step(model, offset)
    print(f"trained to step {steps} in {time.time() - t0:.0f} s", flush=True)

    keras.config.set_dtype_policy("float32")
    exported = export_float32(model)
    if args.patches:
        atomic_save(exported, output)
        print(f"saved {output}; evaluate it with --evaluate-only and the data folder (that fits its coding tables)", flush=True)
        return 0
    fit_coding_tables(exported, images)
    atomic_save(exported, output)
    _report(exported, validation_images(val_files), output.with_suffix(".eval.json"), step=steps, wall_s=round(time.time() - t0), args=vars(args))
    return 0


def _report(model, test: list[np.ndarray], path: Path, whole_file: bool = False, **extra) -> dict:
    """Evaluates on ``test`` with the model's stored coding tables, writes ``path`` and prints the table."""
    result = evaluate(model, test, model.context_model(), whole_file)
    result.update(extra)
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    print(f"unquantised PSNR {result['unquantised_psnr']:.2f} dB", flush=True)
    for row in result["levels"]:
        print(f"q{row['quality']}: {row['bpp']:.3f} bpp {row['psnr']:.2f} dB", flush=True)
    return result


if __name__ == "__main__":
    sys.exit(main())
