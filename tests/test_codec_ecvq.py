"""The codec with a variable-rate ECVQ model: ecvq files, exact index round trips at every level."""

from __future__ import annotations

import dataclasses
import zlib
from pathlib import Path

import keras
import numpy as np
import pytest

import bitstream
from conftest import smooth_image
from vqcodec import codec
from vqcodec.codec.interface import CodecModel
from vqcodec.model.transforms import build_decoder, build_encoder
from vqcodec.model.variable_rate import VariableRateVQVAE


@pytest.fixture(scope="module")
def model_path(tiny_model_path):
    return tiny_model_path


@pytest.fixture(scope="module")
def model(model_path):
    return codec.load_model(model_path)


@pytest.mark.parametrize("quality, level", [(0, 0), (33, 0), (34, 1), (None, 2), (100, 2)])  # None: the default, 75
def test_round_trip_at_every_level_is_the_models_own_coding(model, quality, level):
    image = smooth_image(40, 56, seed=7)
    data = codec.compress(image, quality, model, lossless=False)
    header, grid = codec.read_indices(data, model)
    assert (header.kind, header.level, header.quality, data[3]) == ("ecvq", level, level + 1, 4)
    expected = np.asarray(model.encode_to_indices(image[None].astype(np.float32) / 255, level))[0]
    np.testing.assert_array_equal(grid, expected)
    np.testing.assert_array_equal(grid, codec.indices_of(image, quality, model))
    decoded = np.asarray(codec.decompress(data, model))
    y = keras.ops.convert_to_numpy(model.decode_from_indices(grid[None], level))[0]
    np.testing.assert_array_equal(decoded, np.clip(np.rint(y * 255.0), 0, 255).astype(np.uint8))
    assert codec.describe_coding(data) == f"level {level + 1}"


def test_levels_and_bad_quality(model):
    assert codec.quality_levels(model) == [0, 34, 67]
    for bad in (101, -1):
        with pytest.raises(ValueError, match=r"quality must be in 0\.\.100"):
            codec.compress(smooth_image(8, 8), bad, model)


def test_higher_quality_spends_more_bytes_for_less_error(model):
    image = smooth_image(64, 96, seed=3)
    sizes, errors = [], []
    for q in codec.quality_levels(model):
        data = codec.compress(image, q, model, lossless=False)
        sizes.append(len(data))
        errors.append(np.mean((np.asarray(codec.decompress(data, model), np.float64) - image) ** 2))
    assert sizes[0] < sizes[2] and errors[2] < errors[0], (sizes, errors)


def test_size_target_picks_the_best_level_that_fits(model):
    image = smooth_image(64, 96, seed=5)
    sizes = [len(codec.compress(image, q, model, lossless=False)) for q in codec.quality_levels(model)]
    data = codec.compress(image, model=model, size=sizes[1], lossless=False)
    assert bitstream.read_header(data).quality == 2 and len(data) == sizes[1]


def test_tiled_matches_untiled(model):
    image = smooth_image(128, 136, seed=2)  # 16x17 latents, tiles of 8 latents with an 8-latent halo
    untiled = codec.compress(image, 2, model, tile_size=0, lossless=False)
    tiled = codec.compress(image, 2, model, tile_size=8, lossless=False)
    _, a = codec.read_indices(untiled, model)
    _, b = codec.read_indices(tiled, model)
    assert np.mean(a == b) > 0.99


def test_alpha_and_grey_round_trip(model):
    rgba = np.dstack([smooth_image(24, 40), np.linspace(0, 255, 24 * 40).reshape(24, 40).astype(np.uint8)])
    out = codec.decompress(codec.compress(rgba, 2, model, lossless=False), model)
    assert out.mode == "RGBA" and np.array_equal(np.asarray(out)[..., 3], rgba[..., 3])
    grey = smooth_image(24, 40)[..., 0]
    assert codec.decompress(codec.compress(grey, 2, model, lossless=False), model).mode == "L"


def test_residual_files_retired_releases_and_missing_levels_are_refused(model):
    data = codec.compress(smooth_image(24, 40), 2, model, lossless=False)
    header, payload, alpha = bitstream.unpack(data)
    residual = (Path(__file__).parent / "golden" / "rgb_3x16.vqc").read_bytes()  # a residual-VQ file of 0.7
    with pytest.raises(bitstream.UnsupportedVersionError, match=r"residual-VQ indices, .*pip install 'vqcodec==0\.7\.\*'"):
        codec.decompress(residual, model)
    # The defaults of earlier releases: a residual model (0.1) and variable-rate ones (0.2 … 0.6).
    body = residual[:5] + bytes.fromhex("5e6f14bca9104e3d") + residual[13:-4]
    retired = body + zlib.crc32(body).to_bytes(4, "little")
    with pytest.raises(bitstream.ModelMismatchError, match=r"default model of vqcodec 0\.1; .*pip install 'vqcodec==0\.1\.\*'"):
        codec.decompress(retired, model)
    retired_releases = (("d1f617132dc70358", "0.2"), ("7f49f6a98e4d6b1b", "0.3"), ("d9bea797d0be4611", "0.4"),
                        ("f411c3f2f02b369e", "0.5"), ("b508fca3b8da545d", "0.6"))
    for fingerprint, release in retired_releases:
        retired = dataclasses.replace(header, model_fingerprint=bytes.fromhex(fingerprint))
        with pytest.raises(bitstream.ModelMismatchError, match=rf"default model of vqcodec {release}; .*pip install 'vqcodec=={release}\.\*'"):
            codec.decompress(bitstream.pack(retired, payload, alpha), model)
    beyond = bitstream.pack(dataclasses.replace(header, level=3), payload, alpha)
    with pytest.raises(bitstream.CorruptDataError, match="level 4, the model has only 3 levels"):
        codec.decompress(beyond, model)


def test_the_export_codes_like_keras_at_every_level(model_path, tmp_path):
    """The ONNX export (level as a graph input): same fingerprint, levels and tables; files cross-decode."""
    import shutil

    from vqcodec.runtime.export import export_model
    from vqcodec.runtime.onnx_model import ExportedModel

    path = tmp_path / "ecvq.keras"
    shutil.copy(model_path, path)
    export_model(path)
    keras_model = codec.load_model(path, runtime="keras")
    onnx_model = codec.load_model(path)
    assert isinstance(onnx_model, ExportedModel) and isinstance(onnx_model, CodecModel)
    assert codec.model_fingerprint(onnx_model) == codec.model_fingerprint(keras_model)
    assert codec.quality_levels(onnx_model) == codec.quality_levels(keras_model)
    np.testing.assert_array_equal(onnx_model.context_model().counts, keras_model.context_model().counts)
    assert onnx_model.context_model() is onnx_model.context_model()  # built once
    image = smooth_image(48, 64, seed=11)
    for q in codec.quality_levels(keras_model):
        a, b = codec.indices_of(image, q, keras_model), codec.indices_of(image, q, onnx_model)
        assert np.mean(a != b) <= 0.02
        for data in (codec.compress(image, q, keras_model, lossless=False), codec.compress(image, q, onnx_model, lossless=False)):
            x = np.asarray(codec.decompress(data, keras_model), np.int16)
            y = np.asarray(codec.decompress(data, onnx_model), np.int16)
            assert np.abs(x - y).max() <= 1


def test_a_model_without_tables_says_how_to_fit_them(tmp_path):
    keras.utils.set_random_seed(0)
    bare = VariableRateVQVAE(build_encoder(8, 4, 1), build_decoder(8, 4, 1), num_embeddings=16, embedding_dim=4,
                             lambdas=(0.01, 0.1), learn_codebooks=False)
    with pytest.raises(ValueError, match="no entropy-coding tables; fit them with vqcodec train DATA -o MODEL --evaluate-only"):
        codec.compress(smooth_image(16, 16), 1, bare, lossless=False)
    from vqcodec.runtime.export import export_model

    bare.save(tmp_path / "bare.keras")
    with pytest.raises(ValueError, match="no entropy-coding tables: fit them first"):  # its encoder needs them
        export_model(tmp_path / "bare.keras")


def test_fingerprint_covers_the_tables(model_path, tmp_path):
    model = keras.models.load_model(model_path, compile=False)
    before = codec.model_fingerprint(model)
    other = keras.models.load_model(model_path, compile=False)
    counts = keras.ops.convert_to_numpy(other.coding_counts).copy()
    counts[0, 0, 0, 0] += 1
    other.set_coding_tables(counts, keras.ops.convert_to_numpy(other.coding_offsets))
    assert codec.model_fingerprint(other) != before
    assert codec.model_fingerprint(keras.models.load_model(model_path, compile=False)) == before


def test_command_line_round_trip_in_a_fresh_process(model_path, tmp_path):
    """Loading registers the model's class by itself (nothing imported it before), and -q counts 0..100."""
    import subprocess
    import sys

    from PIL import Image

    Image.fromarray(smooth_image(40, 56, seed=9)).save(tmp_path / "in.png")
    run = dict(capture_output=True, text=True, timeout=300)
    args = [sys.executable, "-m", "vqcodec.cli", "compress", str(tmp_path / "in.png"), "-o", str(tmp_path / "x.vqc"),
            "--model", str(model_path), "-q", "67"]
    done = subprocess.run(args, **run)
    assert done.returncode == 0, done.stderr
    header = bitstream.read_header((tmp_path / "x.vqc").read_bytes())
    assert (header.kind, header.quality) == ("ecvq", 3)
    done = subprocess.run([sys.executable, "-m", "vqcodec.cli", "compress", str(tmp_path / "in.png"), "-o",
                           str(tmp_path / "y.vqc"), "--model", str(model_path), "-q", "101"], **run)
    assert done.returncode != 0 and "quality must be in 0..100" in done.stderr
    done = subprocess.run([sys.executable, "-m", "vqcodec.cli", "decompress", str(tmp_path / "x.vqc"), "-o",
                           str(tmp_path / "out.png"), "--model", str(model_path)], **run)
    assert done.returncode == 0, done.stderr
    assert Image.open(tmp_path / "out.png").size == (56, 40)


LADDER = ((0, 0.5), (0, 1.0), (1, 1.0), (2, 1.0))


@pytest.fixture(scope="module")
def laddered(tmp_path_factory):
    """The tiny model with a first operating point that codes the image at half its size."""
    from conftest import build_tiny_model

    return codec.load_model(build_tiny_model(tmp_path_factory.mktemp("ladder") / "ladder.keras", ladder=LADDER))


def test_the_lowest_point_codes_a_smaller_image_and_decodes_the_whole(laddered):
    from PIL import Image

    from vqcodec.codec import tiling

    assert [p[:2] for p in laddered.operating_points()] == list(LADDER) and codec.quality_levels(laddered) == [0, 25, 50, 75]
    rgba = np.dstack([smooth_image(40, 57, seed=3), np.full((40, 57), 200, np.uint8)])
    data = codec.compress(rgba, 0, laddered, lossless=False)
    header, grid = codec.read_indices(data, laddered)
    assert header.resampled and (header.coded_width, header.coded_height, header.level) == (28, 20, 0)
    assert grid.shape == (3, 4, 4) and codec.describe_coding(data) == "level 1 at 28x20"
    np.testing.assert_array_equal(grid, codec.indices_of(rgba, 0, laddered))
    decoded = codec.decompress(data, laddered)
    assert decoded.size == (57, 40) and decoded.mode == "RGBA"
    np.testing.assert_array_equal(np.asarray(decoded)[..., 3], 200)  # alpha at full size, exact
    small = tiling.decode_image(laddered, grid, 1, 28, 20, None)
    expected = np.asarray(small.resize((57, 40), Image.Resampling.LANCZOS))
    np.testing.assert_array_equal(np.asarray(decoded)[..., :3], expected)
    full = codec.compress(rgba, 25, laddered, lossless=False)  # the same level at full size
    assert bitstream.read_header(full).level == 0 and not bitstream.read_header(full).resampled


def test_targets_search_every_operating_point(laddered):
    image = smooth_image(48, 64, seed=5)
    files = [codec.compress(image, q, laddered, lossless=False) for q in codec.quality_levels(laddered)]
    assert [len(f) for f in files] == sorted(len(f) for f in files)
    for budget in (len(files[0]), len(files[2])):
        data = codec.compress(image, model=laddered, size=budget, lossless=False)
        point = files.index(data)  # the largest point that fits
        assert len(data) <= budget and (point == len(files) - 1 or len(files[point + 1]) > budget)
    assert bitstream.read_header(files[0]).resampled


def test_a_point_with_alternatives_codes_the_cheapest_for_its_level(tmp_path_factory):
    """A point may name (level, scale) alternatives; the encoder keeps, per image, the one with the least
    bpp + lambda * 255^2 * MSE for the point's own level (the loss it was trained on: pixels in [0, 1])."""
    from conftest import build_tiny_model

    folder = tmp_path_factory.mktemp("alternatives")
    ladder = ((0, 1.0), (1, 1.0, ((2, 0.5), (0, 1.0))), (2, 1.0))
    # Trade-offs at which this untrained model's bits and errors both weigh (its MSE is about 0.3).
    lambdas = (5e-6, 1e-5, 2e-5)
    model = codec.load_model(build_tiny_model(folder / "alt.keras", ladder=ladder, lambdas=lambdas))
    assert model.operating_points()[1] == (1, 1.0, ((2, 0.5), (0, 1.0)))
    # The same weights with single points: each candidate's own file.
    singles = [codec.load_model(build_tiny_model(folder / f"single{i}.keras", ladder=(c,), lambdas=lambdas))
               for i, c in enumerate(((1, 1.0), (2, 0.5), (0, 1.0)))]
    assert len({codec.model_fingerprint(m) for m in [model, *singles]}) == 1  # the ladder is not decoding state
    not_the_sharpest = 0
    for seed in range(4):
        image = smooth_image(48, 64, seed=seed)

        def mse(data):
            decoded = np.asarray(codec.decompress(data, model), np.float64) / 255.0
            return np.mean((image.astype(np.float64) / 255.0 - decoded) ** 2)

        def cost(data):
            return len(data) * 8 / (64 * 48) + lambdas[1] * 255.0**2 * mse(data)

        chosen = codec.compress(image, 34, model, lossless=False)
        candidates = [codec.compress(image, 0, single, lossless=False) for single in singles]
        assert chosen in candidates and cost(chosen) == min(cost(c) for c in candidates)
        not_the_sharpest += mse(chosen) > min(mse(c) for c in candidates)
        np.testing.assert_array_equal(codec.indices_of(image, 34, model), codec.read_indices(chosen, model)[1])
    assert not_the_sharpest  # the bits weigh: a smaller file with more error wins somewhere
