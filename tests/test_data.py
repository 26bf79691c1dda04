"""vqcodec.train.data: image discovery, the in-memory crop pipeline, pre-cut patches."""

from __future__ import annotations

import numpy as np
import pytest

from vqcodec.metrics import psnr
from PIL import Image

from vqcodec.train import data, photos


def _write(path, h, w, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)


def test_find_images_recursive_sorted_and_filtered(tmp_path):
    _write(tmp_path / "b.png", 8, 8)
    _write(tmp_path / "a" / "deep" / "c.JPG", 8, 8)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "dir.png").mkdir()  # a folder with an image suffix is not a file
    found = photos.find_images(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in found] == ["a/deep/c.JPG", "b.png"]


def test_find_images_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a directory"):
        photos.find_images(tmp_path / "missing")
    (tmp_path / "readme.md").write_text("x")
    with pytest.raises(FileNotFoundError, match="no images found"):
        photos.find_images(tmp_path)


def test_load_rgb_converts_modes(tmp_path):
    Image.new("L", (5, 4), 7).save(tmp_path / "g.png")
    Image.new("RGBA", (5, 4), (1, 2, 3, 4)).save(tmp_path / "a.png")
    for name in ("g.png", "a.png"):
        a = photos.load_rgb(tmp_path / name)
        assert a.shape == (4, 5, 3) and a.dtype == np.uint8


def _images():
    rng = np.random.default_rng(1)
    return [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)]


def test_crop_dataset_batches():
    ds = data.CropDataset(_images(), batch_size=5, patch_size=32, steps=3, seed=0)
    assert len(ds) == 3
    batch = ds[0]
    assert batch.shape == (5, 32, 32, 3) and batch.dtype == np.float32
    assert 0.0 <= batch.min() and batch.max() <= 1.0
    # Every crop is a (possibly flipped) window of some pyramid level.
    levels = ds.levels
    for crop in (batch * 255).round().astype(np.uint8):
        assert any(_is_window(level, crop) or _is_window(level, crop[:, ::-1]) for level in levels)


def _is_window(level, crop):
    p = crop.shape[0]
    for y in range(level.shape[0] - p + 1):
        for x in range(level.shape[1] - p + 1):
            if np.array_equal(level[y : y + p, x : x + p], crop):
                return True
    return False


def test_crop_dataset_flips_both_ways():
    # A horizontal ramp: a flipped crop decreases left to right.
    ramp = np.broadcast_to(np.arange(64, dtype=np.uint8)[None, :, None] * 4, (32, 64, 3)).copy()
    ds = data.CropDataset([ramp], batch_size=64, patch_size=32, steps=1, scales=(1.0,), seed=0)
    batch = ds.batch_uint8(0).astype(int)
    direction = np.sign(batch[:, 0, -1, 0] - batch[:, 0, 0, 0])
    assert set(direction.tolist()) == {-1, 1}


def test_crop_dataset_reproducible_per_seed_epoch_and_index():
    a = data.CropDataset(_images(), 4, 32, steps=3, seed=7)
    b = data.CropDataset(_images(), 4, 32, steps=3, seed=7)
    # Order of access does not matter: batch i is a function of (seed, epoch, i).
    first = [a[i] for i in range(3)]
    assert all(np.array_equal(b[i], first[i]) for i in (2, 0, 1, 0))
    assert not np.array_equal(first[0], first[1])
    assert not np.array_equal(data.CropDataset(_images(), 4, 32, steps=3, seed=8)[0], first[0])
    b.epoch = 1
    assert not np.array_equal(b[0], first[0])


def test_pyramid_skips_too_small_scales():
    image = np.zeros((100, 200, 3), np.uint8)
    levels = photos.build_pyramid(image, scales=(1.0, 0.5, 0.3), min_side=40)
    assert [lvl.shape[:2] for lvl in levels] == [(100, 200), (50, 100)]
    assert levels[0] is image
    ds = data.CropDataset([image, np.zeros((20, 20, 3), np.uint8)], 2, 40, steps=1, scales=(1.0, 0.5, 0.3))
    assert [lvl.shape[:2] for lvl in ds.levels] == [(100, 200), (50, 100)]
    with pytest.raises(ValueError, match="at least 64"):
        data.CropDataset([np.zeros((50, 50, 3), np.uint8)], 2, 64, steps=1)


def test_cut_patches_file_and_patch_dataset(tmp_path):
    _write(tmp_path / "imgs" / "a.png", 48, 64, seed=1)
    _write(tmp_path / "imgs" / "sub" / "b.png", 40, 40, seed=2)
    out = tmp_path / "p.npz"
    assert data.main(["cut", str(tmp_path / "imgs"), "-o", str(out), "--count", "10", "--patch-size", "32"]) == 0
    patches = data.load_patches(out)
    assert patches.shape == (10, 32, 32, 3) and patches.dtype == np.uint8
    assert np.array_equal(patches, data.cut_patches(tmp_path / "imgs", 10, 32))  # deterministic

    ds = data.PatchDataset(patches, batch_size=3, patch_size=16, steps=2, seed=0)
    batch = ds[1]
    assert batch.shape == (3, 16, 16, 3) and batch.dtype == np.float32 and batch.max() <= 1.0
    assert np.array_equal(batch, ds[1])
    assert data.PatchDataset(patches, 2, None, steps=1)[0].shape == (2, 32, 32, 3)
    with pytest.raises(ValueError, match="larger"):
        data.PatchDataset(patches, 2, 64, steps=1)
    with pytest.raises(ValueError, match="uint8"):
        data.PatchDataset(patches.astype(np.float32), 2, 16, steps=1)
    with pytest.raises(FileNotFoundError):
        data.load_patches(tmp_path / "missing.npz")


def test_psnr_and_center_crop():
    a = np.zeros((4, 4))
    assert psnr(a, a) == float("inf")
    assert psnr(a, a + 255) == pytest.approx(0.0)
    im = np.arange(21 * 30).reshape(21, 30)
    c = photos.center_crop_multiple(im, 8, max_side=16)
    assert c.shape == (16, 16) and c[0, 0] == im[2, 7]


def test_cut_patches_leaves_out_the_validation_files(tmp_path):
    Image.fromarray(np.full((40, 40, 3), (200, 0, 0), np.uint8)).save(tmp_path / "1.png")
    Image.fromarray(np.full((40, 40, 3), (0, 0, 200), np.uint8)).save(tmp_path / "2.png")  # the last: validation
    kept = data.cut_patches(tmp_path, 12, 32, holdout=1)
    assert (kept[..., 2] == 0).all() and (kept[..., 0] == 200).all()
    assert (data.cut_patches(tmp_path, 12, 32)[..., 2] == 200).any()
