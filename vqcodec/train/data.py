"""Training data: every image decoded once, kept in memory at a few scales, cut into random crops.

PNG decoding is far slower than a training step's worth of crops, so the
images are decoded and down-scaled once up front; each batch is then only
numpy slicing, which keeps both cores busy with the model. Pre-cut patches
(``python -m vqcodec.train.data cut``) carry crops to a machine with an accelerator.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from vqcodec.atomic_write import write_atomic
from vqcodec.train.photos import DEFAULT_SCALES, build_pyramid, find_images, load_rgb

__all__ = ["CropDataset", "PatchDataset", "SetDatasetEpoch", "cut_patches", "save_patches", "load_patches"]


class _RandomCrops(keras.utils.PyDataset):
    """Shared batching: batch ``index`` of epoch ``epoch`` is a pure function of (seed, epoch, index).

    So a run is reproducible whatever order (or thread) Keras asks for batches
    in, a peek at a batch does not shift the stream, and a resumed run sees
    the same batches as an uninterrupted one. Set ``epoch`` before each epoch
    (``train`` does it with a callback).
    """

    def __init__(self, batch_size: int, patch_size: int, steps: int, seed: int = 0, epoch: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.batch_size = int(batch_size)
        self.patch_size = int(patch_size)
        self.steps = int(steps)
        self.seed = int(seed)
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.steps

    def _pick(self, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def batch_uint8(self, index: int) -> np.ndarray:
        """Batch ``index`` of the current epoch as uint8 (B, P, P, 3)."""
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        p = self.patch_size
        batch = np.empty((self.batch_size, p, p, 3), dtype=np.uint8)
        for i in range(self.batch_size):
            crop = self._pick(rng)
            if rng.random() < 0.5:
                crop = crop[:, ::-1]
            batch[i] = crop
        return batch

    def __getitem__(self, index):
        return self.batch_uint8(index).astype(np.float32) / 255.0


class CropDataset(_RandomCrops):
    """Random ``patch_size`` crops with horizontal flips from in-memory images at several scales.

    Yields float32 batches in [0, 1] of shape (batch_size, P, P, 3). Each
    "epoch" has ``steps`` batches; crops are drawn from a generator seeded
    with (seed, epoch, batch index), so a run is reproducible. Scales at which
    an image is smaller than ``patch_size`` are skipped.
    """

    def __init__(
        self,
        images: list[np.ndarray],
        batch_size: int,
        patch_size: int,
        steps: int,
        scales=DEFAULT_SCALES,
        seed: int = 0,
        epoch: int = 0,
        **kwargs,
    ):
        super().__init__(batch_size, patch_size, steps, seed=seed, epoch=epoch, **kwargs)
        self.levels = [lvl for im in images for lvl in build_pyramid(im, scales, patch_size)]
        if not self.levels:
            raise ValueError(f"no training image is at least {patch_size} pixels on each side")
        # Sample levels in proportion to their area, so large images give more crops.
        areas = np.array([lvl.shape[0] * lvl.shape[1] for lvl in self.levels], dtype=np.float64)
        self.weights = areas / areas.sum()

    def _pick(self, rng):
        p = self.patch_size
        level = self.levels[rng.choice(len(self.levels), p=self.weights)]
        y = rng.integers(0, level.shape[0] - p + 1)
        x = rng.integers(0, level.shape[1] - p + 1)
        return level[y : y + p, x : x + p]


class PatchDataset(_RandomCrops):
    """Batches from pre-cut uint8 patches (N, Q, Q, 3): random patch, random ``patch_size`` sub-crop, flips.

    The compact input for accelerators (``vqcodec train --patches``): no
    image decoding or resizing at training time.
    """

    def __init__(self, patches: np.ndarray, batch_size: int, patch_size: int | None, steps: int, seed: int = 0, epoch: int = 0, **kwargs):
        patches = np.asarray(patches)
        if patches.ndim != 4 or patches.shape[-1] != 3 or patches.shape[1] != patches.shape[2] or patches.dtype != np.uint8:
            raise ValueError(f"patches must be a uint8 array (N, P, P, 3), got {patches.dtype} {patches.shape}")
        if len(patches) == 0:
            raise ValueError("no patches")
        patch_size = patches.shape[1] if patch_size is None else int(patch_size)
        if patch_size > patches.shape[1]:
            raise ValueError(f"patch size {patch_size} is larger than the stored patches ({patches.shape[1]})")
        super().__init__(batch_size, patch_size, steps, seed=seed, epoch=epoch, **kwargs)
        self.patches = patches

    def _pick(self, rng):
        p, q = self.patch_size, self.patches.shape[1]
        patch = self.patches[rng.integers(0, len(self.patches))]
        y, x = rng.integers(0, q - p + 1, size=2)
        return patch[y : y + p, x : x + p]


class SetDatasetEpoch(keras.callbacks.Callback):
    """Tells the crop dataset which interval is starting (its batches are a function of it)."""

    def __init__(self, dataset: "_RandomCrops"):
        super().__init__()
        self.dataset = dataset

    def on_epoch_begin(self, epoch, logs=None):
        self.dataset.epoch = int(epoch)


def cut_patches(
    data_dir: str | Path, count: int, patch_size: int, seed: int = 0, scales=DEFAULT_SCALES, holdout: int = 0
) -> np.ndarray:
    """``count`` random crops (uint8 (count, P, P, 3)) from the images under ``data_dir``, as in training.

    ``holdout``: leave out the last files, the ones training validates on.
    """
    files = find_images(data_dir)
    images = [load_rgb(f) for f in files[: len(files) - int(holdout)]]
    ds = CropDataset(images, batch_size=min(int(count), 256), patch_size=patch_size, steps=1, scales=scales, seed=seed)
    out = np.empty((int(count), patch_size, patch_size, 3), np.uint8)
    for b, start in enumerate(range(0, int(count), ds.batch_size)):
        batch = ds.batch_uint8(b)
        out[start : start + ds.batch_size] = batch[: int(count) - start]
    return out


def save_patches(path: str | Path, patches: np.ndarray) -> None:
    """Writes patches as a compressed ``.npz`` (key ``patches``; about 3/4 of the raw bytes for photos), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda f: np.savez_compressed(f, patches=np.ascontiguousarray(patches, dtype=np.uint8)), overwrite=True)


def load_patches(path: str | Path) -> np.ndarray:
    """The uint8 (N, P, P, 3) array of a file written by :func:`save_patches` (or any ``.npz``/``.npy`` with one)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"patch file not found: {path}")
    data = np.load(path)
    if isinstance(data, np.ndarray):
        return data
    with data:
        key = "patches" if "patches" in data.files else data.files[0]
        arr = data[key]
    return arr


def main(argv: list[str] | None = None) -> int:
    """``python -m vqcodec.train.data cut DATA_DIR -o patches.npz --count N --patch-size P``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m vqcodec.train.data")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("cut", help="cut random training crops from a folder into a compact uint8 .npz")
    p.add_argument("data_dir")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--patch-size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--holdout", type=int, default=0, help="leave out the last N files (training's validation images)")
    args = parser.parse_args(argv)
    patches = cut_patches(args.data_dir, args.count, args.patch_size, seed=args.seed, holdout=args.holdout)
    save_patches(args.output, patches)
    print(f"wrote {len(patches)} patches of {args.patch_size}x{args.patch_size} to {args.output}")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
