"""``python -m vqcodec.train.trainer`` end to end: from pre-cut patches, then resumed with a changed ladder."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from PIL import Image

from vqcodec.train import data as vdata
from vqcodec.train import trainer as tvr

SHORT = "--log-every 2 --batch-size 2 --patch-size 32 --seed 0".split()


@pytest.fixture(scope="module")
def patches(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data") / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:256, 0:264] / 264.0  # big enough for the context model's 256-pixel crops
    for i in range(3):
        c = rng.random((3, 2))
        img = np.stack([c[k, 0] + c[k, 1] * np.sin(7 * xx * (k + 1) + i) * np.cos(5 * yy) for k in range(3)], -1)
        img = np.clip(img / img.max() + 0.03 * rng.standard_normal(img.shape), 0, 1)
        Image.fromarray((img * 255).astype(np.uint8)).save(folder / f"im{i}.png")
    path = folder.parent / "patches.npz"
    vdata.save_patches(path, vdata.cut_patches(folder, 8, 48, seed=0))
    return path


def test_trains_from_patches_then_resumes_with_more_levels_and_codes(patches, tmp_path, capsys):
    first = tmp_path / "a" / "model.keras"
    argv = ["--patches", str(patches), "-o", str(first), "--steps", "4", "--codes", "16", "--fixed-lattice", "--lambdas", "0.01", "0.1"]
    assert tvr.main(argv + SHORT) == 0
    assert json.loads((first.parent / "model.state.json").read_text())["step"] == 4
    assert len((first.parent / "model.log.csv").read_text().strip().splitlines()) == 1 + 2  # header + 2 intervals

    assert keras.models.load_model(first, compile=False).context_model() is None  # patches: no tables

    # Evaluated on a folder: whole images, every level, the container's bytes counted; the tables fitted and stored.
    tests = tmp_path / "tests"
    tests.mkdir()
    Image.fromarray(np.full((40, 48, 3), 120, np.uint8)).save(tests / "flat.png")
    assert tvr.main([str(patches.parent / "photos"), "-o", str(first), "--holdout", "2", "--evaluate-on", str(tests)]) == 0
    stored = keras.models.load_model(first, compile=False).context_model()
    assert stored is not None and stored.counts.shape == (2, 64, 16, 16 + 1) and stored.counts.sum() > 0
    result = json.loads((first.parent / "model.tests.eval.json").read_text())
    assert result["image_count"] == 1 and result["step"] == 4 and [r["quality"] for r in result["levels"]] == [0, 1]
    assert all(r["bpp"] >= 27 * 8 / (40 * 48) for r in result["levels"])  # at least the container's header and CRC

    second = tmp_path / "b" / "model.keras"
    argv = [
        "--patches", str(patches), "-o", str(second), "--resume", str(first), "--steps", "6",
        "--codes", "32", "--lambdas", "0.003", "0.01", "0.1", "--rate-weight", "0.25", "--level-weight-power", "0.5",
    ]
    assert tvr.main(argv + SHORT) == 0
    out = capsys.readouterr().out
    assert "reconfigured: lambdas [0.003, 0.01, 0.1], rate weight 0.25, 32 codes, level weight power 0.5" in out
    assert json.loads((second.parent / "model.state.json").read_text())["step"] == 6
    model = keras.models.load_model(second, compile=False)
    assert model.lambdas == (0.003, 0.01, 0.1) and model.num_embeddings == 32 and model.quantizer.rate_weight == 0.25
    assert model.level_weight_power == 0.5
    assert model.quantizer.windowed  # the fixed lattice trained through the windowed search
    x = np.random.default_rng(1).random((1, 32, 32, 3)).astype("float32")
    for q in range(3):
        indices = np.asarray(model.encode_to_indices(x, q))
        assert indices.shape == (1, 4, 4, 64) and indices.min() >= 0 and indices.max() < 32
        assert np.isfinite(np.asarray(model.decode_from_indices(indices, q))).all()


def test_needs_exactly_one_data_source(patches, tmp_path, capsys):
    for argv in ([], [str(patches.parent / "photos"), "--patches", str(patches)]):
        with pytest.raises(SystemExit):
            tvr.main(argv + ["-o", str(tmp_path / "m.keras")])
        assert "give a data folder or --patches" in capsys.readouterr().err


def test_trains_the_quantiser_alone_at_the_coders_price(patches, tmp_path, capsys):
    first = tmp_path / "a" / "model.keras"
    base = ["--patches", str(patches), "--codes", "16", "--fixed-lattice", "--lambdas", "0.01", "0.1"]
    with pytest.raises(SystemExit):  # learned codebooks have no coder's price
        tvr.main(base[:-4] + ["-o", str(first), "--steps", "2", "--coder-rate"] + SHORT)
    assert "--coder-rate needs the fixed 1-D lattice" in capsys.readouterr().err
    assert tvr.main(base + ["-o", str(first), "--steps", "2"] + SHORT) == 0
    second = tmp_path / "b" / "model.keras"
    argv = ["--patches", str(patches), "-o", str(second), "--resume", str(first), "--steps", "6", "--lr", "1e-2",
            "--coder-rate", "--freeze", "encoder", "decoder"]
    assert tvr.main(argv + SHORT) == 0
    before, after = (keras.models.load_model(p, compile=False) for p in (first, second))
    assert after.coder_rate and not before.coder_rate
    for part in ("encoder", "decoder"):
        for b, a in zip(getattr(before, part).weights, getattr(after, part).weights, strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        assert getattr(after, part).trainable  # frozen for that run only
    assert not np.allclose(np.asarray(after.quantizer.log_gains), np.asarray(before.quantizer.log_gains))
    # The tables it trained with were fitted at the start (the exported weights drop them).
    checkpoint = keras.models.load_model(second.with_suffix(".ckpt.keras"), compile=False)
    assert checkpoint.context_model() is not None and after.context_model() is None
