"""``vqcodec train`` end to end: arguments checked before Keras loads, new and resumed runs, fine-tuning the
shipped model, and models the codec then uses."""

from __future__ import annotations

import json
import subprocess
import sys

import keras
import numpy as np
import pytest
from PIL import Image

from vqcodec import cli
from vqcodec.train import data as vdata

SHORT = "--log-every 2 --batch-size 2 --accumulate 1 --patch-size 32 --seed 0".split()
TINY = "--codes 16 --lambdas 0.01 0.1".split()


def _train(argv: list[str]) -> int:
    return cli.main(["train", *argv])


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Three small photo-like images (the last two validate)."""
    folder = tmp_path_factory.mktemp("data") / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:96, 0:104] / 104.0
    for i in range(3):
        c = rng.random((3, 2))
        img = np.stack([c[k, 0] + c[k, 1] * np.sin(7 * xx * (k + 1) + i) * np.cos(5 * yy) for k in range(3)], -1)
        img = np.clip(img / img.max() + 0.03 * rng.standard_normal(img.shape), 0, 1)
        Image.fromarray((img * 255).astype(np.uint8)).save(folder / f"im{i}.png")
    return folder


@pytest.fixture(scope="module")
def patches(photos):
    path = photos.parent / "patches.npz"
    vdata.save_patches(path, vdata.cut_patches(photos, 8, 48, seed=0))
    return path


def _run(*argv: str) -> subprocess.CompletedProcess:
    code = "import sys; from vqcodec.cli import main; rc = main(sys.argv[1:]); assert 'keras' not in sys.modules; sys.exit(rc)"
    return subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120)


def test_help_and_bad_arguments_answer_without_keras(tmp_path):
    shown = _run("train", "--help")
    assert shown.returncode == 0 and "--from" in shown.stdout and "--accumulate" in shown.stdout
    assert "default 100,000" in shown.stdout  # the shipped recipe's schedule
    empty = tmp_path / "empty"
    empty.mkdir()
    for argv, message, status in [
        (["train", str(tmp_path / "missing"), "-o", str(tmp_path / "m.keras")], "no such folder", 1),
        (["train", str(empty), "-o", str(tmp_path / "m.keras")], "no images in this folder", 1),
        (["train", "-o", str(tmp_path / "m.keras")], "give a data folder or --patches", 2),
        (["train", str(empty)], "train: the following arguments are required: -o/--output", 2),
    ]:
        result = _run(*argv)
        assert result.returncode == status, argv
        assert result.stderr.count("\n") == 1 and message in result.stderr and "Traceback" not in result.stderr


def test_trains_on_a_folder_and_the_codec_uses_the_model(photos, tmp_path, capsys):
    model_path = tmp_path / "run" / "model.keras"
    assert _train([str(photos), "-o", str(model_path), "--holdout", "1", "--steps", "2", *TINY, *SHORT]) == 0
    evaluation = json.loads(model_path.with_suffix(".eval.json").read_text())
    assert [row["quality"] for row in evaluation["levels"]] == [0, 1] and evaluation["step"] == 2
    assert all(row["bpp"] > 0 and row["psnr"] > 5 for row in evaluation["levels"])
    image = tmp_path / "photo.png"
    Image.open(photos / "im0.png").save(image)
    out = tmp_path / "photo.vqc"
    assert cli.main(["compress", str(image), "-o", str(out), "--model", str(model_path), "-q", "90"]) == 0
    assert cli.main(["decompress", str(out), "-o", str(tmp_path / "back.png"), "--model", str(model_path)]) == 0
    assert Image.open(tmp_path / "back.png").size == Image.open(image).size
    assert "level 2" in capsys.readouterr().err


def test_from_default_fine_tunes_the_shipped_model(photos, tmp_path):
    from vqcodec import codec

    model_path = tmp_path / "tuned.keras"
    assert _train([str(photos), "-o", str(model_path), "--from", "default", "--holdout", "1", "--steps", "1",
                   "--log-every", "1", "--batch-size", "2", "--accumulate", "2", "--patch-size", "32"]) == 0
    tuned = keras.models.load_model(model_path, compile=False)
    shipped = codec.load_model(runtime="keras")
    assert tuned.get_config()["lambdas"] == shipped.get_config()["lambdas"] and tuned.context_model() is not None
    changed = [not np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(tuned.decoder.weights, shipped.decoder.weights)]
    assert any(changed) and tuned.fingerprint() != shipped.fingerprint()


def test_trains_from_patches_then_resumes_with_more_levels_and_codes(patches, photos, tmp_path, capsys):
    first = tmp_path / "a" / "model.keras"
    first.parent.mkdir()
    argv = ["--patches", str(patches), "-o", str(first), "--steps", "4", "--codes", "16", "--lambdas", "0.01", "0.1"]
    assert _train(argv + SHORT) == 0
    assert json.loads((first.parent / "model.state.json").read_text())["step"] == 4
    assert len((first.parent / "model.log.csv").read_text().strip().splitlines()) == 1 + 2  # header + 2 intervals
    assert keras.models.load_model(first, compile=False).context_model() is None  # patches: no tables

    # Evaluated on a folder: whole images, every level, the container's bytes counted; the tables fitted and stored.
    tests = tmp_path / "tests"
    tests.mkdir()
    Image.fromarray(np.full((40, 48, 3), 120, np.uint8)).save(tests / "flat.png")
    assert _train([str(photos), "-o", str(first), "--holdout", "2", "--evaluate-on", str(tests)]) == 0
    stored = keras.models.load_model(first, compile=False).context_model()
    assert stored is not None and stored.counts.shape == (2, 64, 16, 16 + 1) and stored.counts.sum() > 0
    result = json.loads((first.parent / "model.tests.eval.json").read_text())
    assert result["image_count"] == 1 and result["step"] == 4 and [r["quality"] for r in result["levels"]] == [0, 1]
    assert all(r["bpp"] >= 27 * 8 / (40 * 48) for r in result["levels"])  # at least the container's header and CRC

    second = tmp_path / "b" / "model.keras"
    second.parent.mkdir()
    argv = [
        "--patches", str(patches), "-o", str(second), "--resume", str(first), "--steps", "6",
        "--codes", "32", "--lambdas", "0.003", "0.01", "0.1", "--rate-weight", "0.25", "--level-weight-power", "0.5",
    ]
    assert _train(argv + SHORT) == 0
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


def test_accumulated_batches_make_one_step(patches, tmp_path):
    path = tmp_path / "acc" / "model.keras"
    path.parent.mkdir()
    argv = ["--patches", str(patches), "-o", str(path), "--steps", "2", *TINY,
            "--log-every", "2", "--batch-size", "2", "--accumulate", "3", "--patch-size", "32"]
    assert _train(argv) == 0
    assert json.loads(path.with_suffix(".state.json").read_text())["step"] == 2
    checkpoint = keras.models.load_model(path.with_suffix(".ckpt.keras"), compile=True)
    assert int(np.asarray(checkpoint.optimizer.iterations)) == 2  # six batches, two steps


def test_trains_the_quantiser_alone_at_the_coders_price(patches, tmp_path, capsys):
    first = tmp_path / "a" / "model.keras"
    first.parent.mkdir()
    base = ["--patches", str(patches), *TINY]
    assert _train(base + ["-o", str(first), "--steps", "2", "--coder-rate", "--learn-codebooks"] + SHORT) == 1
    assert "--coder-rate needs the fixed 1-D lattice" in capsys.readouterr().err
    assert _train(base + ["-o", str(first), "--steps", "2"] + SHORT) == 0
    second = tmp_path / "b" / "model.keras"
    second.parent.mkdir()
    argv = ["--patches", str(patches), "-o", str(second), "--resume", str(first), "--steps", "6", "--lr", "1e-2",
            "--coder-rate", "--freeze", "encoder", "decoder"]
    assert _train(argv + SHORT) == 0
    before, after = (keras.models.load_model(p, compile=False) for p in (first, second))
    assert after.coder_rate and not before.coder_rate
    for part in ("encoder", "decoder"):
        for b, a in zip(getattr(before, part).weights, getattr(after, part).weights, strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        assert getattr(after, part).trainable  # frozen for that run only
    assert not np.allclose(np.asarray(after.quantizer.log_gains), np.asarray(before.quantizer.log_gains))
    # The tables it trained with were fitted at the start (the saved weights drop them).
    checkpoint = keras.models.load_model(second.with_suffix(".ckpt.keras"), compile=False)
    assert checkpoint.context_model() is not None and after.context_model() is None
