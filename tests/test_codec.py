"""The codec API: round trips, sizes, colour modes, tiling, indices, errors, Pillow plugin."""

from __future__ import annotations

import io
from importlib.resources import files

import numpy as np
import pytest
from PIL import Image

import bitstream
from vqcodec import codec


@pytest.fixture(scope="module")
def model(tiny_model_path):
    return codec.load_model(tiny_model_path)


@pytest.fixture(scope="module")
def sample():
    with (files("vqcodec") / "samples" / "endeavour.png").open("rb") as f:
        img = Image.open(f)
        img.load()
    return img


def _smooth(h, w, channels=3, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    planes = [(np.sin(xx / (5 + 3 * c)) + np.cos(yy / (7 + c))) * 60 + 128 for c in range(channels)]
    a = np.stack(planes, -1) + rng.normal(0, 5, (h, w, channels))
    return np.clip(a, 0, 255).astype(np.uint8)


def _psnr(a, b):
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def test_quality_levels_and_load_cache(model, tiny_model_path):
    assert codec.quality_levels(model) == [1, 2, 3]
    assert codec.load_model(tiny_model_path) is model
    assert codec.default_quality(model) == 3  # DEFAULT_QUALITY clamped to 3 stages


def test_fingerprint_is_stable_across_loads(model, tiny_model_path, other_tiny_model_path):
    import keras

    fp = codec.model_fingerprint(model)
    assert isinstance(fp, bytes) and len(fp) == 8
    fresh = keras.models.load_model(tiny_model_path, compile=False)
    assert codec.model_fingerprint(fresh) == fp
    assert codec.model_fingerprint(other_tiny_model_path) != fp


def test_load_model_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="model file not found"):
        codec.load_model(tmp_path / "nope.keras")
    if not codec.default_model_path().is_file():
        with pytest.raises(FileNotFoundError, match="default model"):
            codec.load_model()


@pytest.mark.parametrize("quality", [1, 2, 3])
def test_round_trip_indices_exact(model, quality):
    a = _smooth(40, 56)
    data = codec.compress(a, quality, model)
    header, grid = codec.read_indices(data, model)
    assert header.num_stages == quality and (header.width, header.height) == (56, 40)
    # the decoded index grid is exactly what the model's encoder + quantiser give
    expected = np.asarray(model.encode_to_indices(a[None].astype(np.float32) / 255, num_stages=quality))[0]
    np.testing.assert_array_equal(grid, np.moveaxis(expected, -1, 0))
    np.testing.assert_array_equal(grid, codec.indices_of(a, quality, model))
    out = codec.decompress(data, model)
    assert out.mode == "RGB" and out.size == (56, 40)


def test_bad_quality(model):
    with pytest.raises(ValueError, match=r"quality must be in 1\.\.3"):
        codec.compress(_smooth(8, 8), 4, model)
    with pytest.raises(ValueError):
        codec.compress(_smooth(8, 8), 0, model)


@pytest.mark.parametrize("size", [(1, 1), (7, 13), (1, 500), (500, 1), (9, 8)])
def test_odd_sizes(model, size):
    w, h = size
    a = _smooth(h, w)
    data = codec.compress(a, 2, model)
    header, grid = codec.read_indices(data, model)
    assert grid.shape == (2, -(-h // 8), -(-w // 8))
    # padding is edge replication, so the indices match an explicitly edge-padded image
    padded = np.pad(a, ((0, -h % 8), (0, -w % 8), (0, 0)), mode="edge")
    expected = np.asarray(model.encode_to_indices(padded[None].astype(np.float32) / 255, num_stages=2))[0]
    np.testing.assert_array_equal(grid, np.moveaxis(expected, -1, 0))
    out = codec.decompress(data, model)
    assert out.size == (w, h) and out.mode == "RGB"


def _alpha(h, w):
    yy, xx = np.mgrid[0:h, 0:w]
    a = ((xx * 7 + yy * 13) % 256).astype(np.uint8)
    a[: h // 2, : w // 2] = 0
    return a


def _make(mode, h=24, w=40):
    rgb = _smooth(h, w)
    base = Image.fromarray(rgb, "RGB")
    if mode == "RGB":
        return base
    if mode == "L":
        return base.convert("L")
    if mode == "RGBA":
        img = base.copy()
        img.putalpha(Image.fromarray(_alpha(h, w), "L"))
        return img
    if mode == "LA":
        img = base.convert("L").convert("LA")
        img.putalpha(Image.fromarray(_alpha(h, w), "L"))
        return img
    if mode == "P":
        return base.quantize(16)
    if mode == "P+transparency":
        img = base.quantize(16)
        img.info["transparency"] = 3
        return img
    if mode == "1":
        return base.convert("1")
    if mode == "I;16":
        img = Image.fromarray(np.asarray(base.convert("L")).astype(np.uint16) * 257)
        assert img.mode == "I;16"
        return img
    if mode == "I":
        return Image.fromarray(np.asarray(base.convert("L")).astype(np.int32) * 257)
    if mode == "F":
        return Image.fromarray(np.asarray(base.convert("L")).astype(np.float32))
    return base.convert(mode)  # CMYK, YCbCr, ...


EXPECTED_MODE = {
    "RGB": "RGB", "L": "L", "RGBA": "RGBA", "LA": "LA", "P": "RGB", "P+transparency": "RGBA",
    "1": "L", "I;16": "L", "I": "L", "F": "L", "CMYK": "RGB", "YCbCr": "RGB", "HSV": "RGB",
}


@pytest.mark.parametrize("mode", sorted(EXPECTED_MODE))
def test_colour_modes(model, mode, tmp_path):
    img = _make(mode)
    data = codec.compress(img, 2, model)
    header = bitstream.read_header(data)
    assert header.mode == EXPECTED_MODE[mode]
    out = codec.decompress(data, model)
    assert out.mode == EXPECTED_MODE[mode] and out.size == img.size
    if mode in ("RGBA", "LA"):
        np.testing.assert_array_equal(np.asarray(out.getchannel("A")), np.asarray(img.getchannel("A")))
    if mode == "P+transparency":
        np.testing.assert_array_equal(
            np.asarray(out.getchannel("A")), np.asarray(img.convert("RGBA").getchannel("A"))
        )
    _, grid = codec.read_indices(data, model)
    np.testing.assert_array_equal(grid, codec.indices_of(img, 2, model))


def test_grey_is_coded_as_grey(model):
    grey = _make("L")
    from_grey = codec.indices_of(grey, 3, model)
    replicated = np.repeat(np.asarray(grey)[:, :, None], 3, axis=2)
    np.testing.assert_array_equal(from_grey, codec.indices_of(replicated, 3, model))


def test_sixteen_bit_scaling():
    from vqcodec.images import to_coded_mode

    img = Image.fromarray(np.array([[0, 257, 32896, 65535]], np.uint16))
    assert img.mode == "I;16"
    np.testing.assert_array_equal(np.asarray(to_coded_mode(img)), [[0, 1, 128, 255]])


def test_sample_round_trip_every_mode(model, sample):
    for mode in ("RGB", "L", "RGBA", "LA", "P"):
        img = sample.convert(mode)
        out = codec.decompress(codec.compress(img, 3, model), model)
        assert out.size == sample.size
        assert out.mode == EXPECTED_MODE[mode]
        if mode in ("RGBA", "LA"):
            np.testing.assert_array_equal(np.asarray(out.getchannel("A")), np.asarray(img.getchannel("A")))


def test_exif_orientation_applied(model):
    img = Image.fromarray(_smooth(10, 20), "RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    buf = io.BytesIO()
    img.save(buf, format="PNG", exif=exif)
    out = codec.decompress(codec.compress(buf.getvalue(), 1, model), model)
    assert out.size == (10, 20)


def test_input_types(model, tmp_path):
    a = _smooth(16, 24)
    path = tmp_path / "a.png"
    Image.fromarray(a).save(path)
    expected = codec.compress(a, 2, model)
    assert codec.compress(path, 2, model) == expected
    assert codec.compress(str(path), 2, model) == expected
    assert codec.compress(path.read_bytes(), 2, model) == expected
    with open(path, "rb") as f:
        assert codec.compress(f, 2, model) == expected
    assert codec.compress(Image.fromarray(a), 2, model) == expected
    with pytest.raises(ValueError, match="uint8"):
        codec.compress(a.astype(np.float32), 2, model)
    with pytest.raises(TypeError):
        codec.compress(12, 2, model)


def test_model_as_path(model, tiny_model_path):
    a = _smooth(8, 8)
    data = codec.compress(a, 1, tiny_model_path)
    assert data == codec.compress(a, 1, model)
    assert codec.decompress(data, tiny_model_path).size == (8, 8)


def test_timings(model):
    t = {}
    data = codec.compress(_smooth(16, 16), 2, model, timings=t)
    assert set(t) == {"network", "quantize", "entropy"} and all(v >= 0 for v in t.values())
    t = {}
    codec.decompress(data, model, timings=t)
    assert set(t) == {"network", "quantize", "entropy"}


def test_tiled_matches_untiled(model, sample):
    # 256x176 px = 32x22 latents; tiles of 8 latents -> 4x3 tiles, each with an 8-latent halo
    untiled = codec.compress(sample, 3, model, tile_size=0)
    tiled = codec.compress(sample, 3, model, tile_size=8)
    assert bitstream.read_header(untiled).tile_size == 0
    assert bitstream.read_header(tiled).tile_size == 8
    _, g0 = codec.read_indices(untiled, model)
    _, g1 = codec.read_indices(tiled, model)
    assert np.mean(g0 == g1) > 0.99  # identical up to float rounding at near-ties
    # decoder: the same indices decoded with and without tiles
    a = np.asarray(codec._decode_grid(model, g0, 0, None), np.int16)
    b = np.asarray(codec._decode_grid(model, g0, 8, None), np.int16)
    assert np.abs(a - b).max() <= 2
    out0 = codec.decompress(untiled, model)
    out1 = codec.decompress(tiled, model)
    assert _psnr(out0, out1) > 35


def test_default_tiling_policy(model):
    assert codec._effective_tile_size(64, 96, None) == 0  # Kodak 768x512 goes untiled
    assert codec._effective_tile_size(96, 64, None) == 0
    assert codec._effective_tile_size(97, 64, None) == codec.DEFAULT_TILE_SIZE
    assert codec._effective_tile_size(500, 750, None) == codec.DEFAULT_TILE_SIZE
    assert codec._effective_tile_size(500, 750, 0) == 0
    data = codec.compress(np.zeros((8, 8, 3), np.uint8), 1, model)
    assert bitstream.read_header(data).tile_size == 0


def test_corrupt_inputs(model, other_tiny_model_path):
    data = codec.compress(_smooth(16, 16), 2, model)
    with pytest.raises(bitstream.TruncatedError):
        codec.decompress(data[:-5], model)
    with pytest.raises(bitstream.ChecksumError):
        codec.decompress(data[:-1] + bytes([data[-1] ^ 1]), model)
    with pytest.raises(bitstream.NotVQCError):
        codec.decompress(b"hello world, not an image", model)
    with pytest.raises(bitstream.ModelMismatchError):
        codec.decompress(data, other_tiny_model_path)


def test_pillow_plugin(model, tmp_path):
    from vqcodec import pillow_plugin

    img = _make("RGBA")
    data = codec.compress(img, 2, model)
    path = tmp_path / "x.vqc"
    path.write_bytes(data)
    pillow_plugin.set_model(model)
    try:
        with Image.open(path) as opened:
            assert opened.format == "VQC"
            assert opened.size == img.size and opened.mode == "RGBA"
            pixels = np.asarray(opened)
        np.testing.assert_array_equal(pixels, np.asarray(codec.decompress(data, model)))
        # from a file object too, and saving through Pillow
        with Image.open(io.BytesIO(data)) as opened:
            assert np.asarray(opened).shape == (img.height, img.width, 4)
        out = tmp_path / "saved.vqc"
        img.save(out, quality=1)
        assert bitstream.read_header(out.read_bytes()).num_stages == 1
    finally:
        pillow_plugin.set_model(None)


def test_import_vqcodec_registers_pillow_plugin_without_keras():
    """`import vqcodec` alone makes Pillow recognise .vqc, and loads no TensorFlow/Keras."""
    import subprocess
    import sys

    code = (
        "import sys, vqcodec; from PIL import Image; "
        "assert 'VQC' in Image.OPEN, sorted(Image.OPEN); "
        "assert '.vqc' in Image.registered_extensions(); "
        "assert not {'tensorflow', 'keras'} & set(sys.modules), 'heavy import'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
