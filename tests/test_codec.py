"""The codec API: round trips, sizes, colour modes, tiling, indices, errors, Pillow plugin."""

from __future__ import annotations

import dataclasses
import io
import warnings
from importlib.resources import files

import numpy as np
import pytest
from PIL import Image

import bitstream
from vqcodec import codec
from vqcodec.codec import tiling
from vqcodec.model.vqvae import VQVAEModel


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
    assert codec.quality_levels(model) == [0, 34, 67]  # 0-33: level 1, 34-66: 2, 67-100: 3
    assert codec.load_model(tiny_model_path) is model
    levels = [codec.read_indices(codec.compress(_smooth(8, 8), q, model, lossless=False), model)[0].quality
              for q in (0, 33, 34, 66, 67, 100, None)]
    assert levels == [1, 1, 2, 2, 3, 3, 3]  # the default, 75, is in the top band


def test_fingerprint_is_stable_across_loads(model, tiny_model_path, other_tiny_model_path):
    import keras

    fp = codec.model_fingerprint(model)
    assert isinstance(fp, bytes) and len(fp) == 8
    fresh = keras.models.load_model(tiny_model_path, compile=False)
    assert codec.model_fingerprint(fresh) == fp
    assert codec.model_fingerprint(other_tiny_model_path) != fp


def test_fingerprint_covers_only_what_decoding_reads(tiny_model_path, tmp_path):
    import keras

    def fp_after(change):
        m = keras.models.load_model(tiny_model_path, compile=False)
        change(m)
        return codec.model_fingerprint(m)

    def bump(variable):
        variable.assign(keras.ops.convert_to_numpy(variable) + 1)

    def stats(m):  # what training bookkeeping overwrites
        bump(m.quantizer.code_usage)
        bump(m.quantizer.recent_vectors)

    base = fp_after(lambda m: None)
    assert fp_after(stats) == base
    assert fp_after(lambda m: bump(m.encoder.weights[0])) == base  # the encoder does not decode
    assert fp_after(lambda m: bump(m.decoder.weights[0])) != base
    assert fp_after(lambda m: bump(m.quantizer.codebooks)) != base
    assert fp_after(lambda m: bump(m.quantizer.log_gains)) != base
    assert fp_after(lambda m: bump(m.coding_counts)) != base

    # inference, then saving, keeps the model's identity
    m = keras.models.load_model(tiny_model_path, compile=False)
    m.encode_to_indices(np.random.default_rng(0).random((2, 16, 16, 3), dtype=np.float32), 1)
    m.save(tmp_path / "after_predict.keras")
    assert codec.model_fingerprint(tmp_path / "after_predict.keras") == base


def test_load_model_errors(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="model file not found"):
        codec.load_model(tmp_path / "nope.keras")
    from vqcodec.codec import loading

    monkeypatch.setattr(loading, "default_model_path", lambda: tmp_path / "missing" / "default.keras")
    with pytest.raises(FileNotFoundError, match="default model .* is missing: reinstall vqcodec"):
        codec.load_model()


def test_load_model_refuses_non_models_in_one_line(tmp_path):
    import zipfile

    import keras

    text = tmp_path / "notes.keras"
    text.write_text("hello\n")
    png = tmp_path / "photo.png"
    Image.fromarray(_smooth(8, 8)).save(png)
    plain_zip = tmp_path / "plain.keras"
    with zipfile.ZipFile(plain_zip, "w") as zf:
        zf.writestr("readme.txt", "not a model")
    broken = tmp_path / "broken.keras"
    with zipfile.ZipFile(broken, "w") as zf:
        zf.writestr("config.json", "{not json")
    other = tmp_path / "dense.keras"
    keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]).save(other)
    residual = tmp_path / "residual.keras"
    dense = [keras.Sequential([keras.Input((4,)), keras.layers.Dense(4)]) for _ in range(2)]
    VQVAEModel(*dense, num_embeddings=8, embedding_dim=4, num_stages=2).save(residual)
    for path, reason in [
        (text, r"not a vqcodec model \(not a Keras archive\)"),
        (png, r"not a vqcodec model \(not a Keras archive\)"),
        (plain_zip, r"not a vqcodec model \(a zip file without the config.json"),
        (broken, r"not a usable vqcodec model \(Keras cannot load it: "),
        (other, r"not a vqcodec model \(a Sequential, not a VariableRateVQVAE\)"),
        (residual, r"a residual VQ-VAE, which the codec no longer runs .*'vqcodec==0\.7\.\*'"),
    ]:
        with pytest.raises(codec.InvalidModelError, match=str(path.name) + " is " + reason) as info:
            codec.load_model(str(path))
        assert "\n" not in str(info.value) and len(str(info.value)) < 300, str(info.value)


@pytest.mark.parametrize("level", [1, 2, 3])
def test_round_trip_indices_exact(model, level):
    a = _smooth(40, 56)
    quality = codec.quality_levels(model)[level - 1]
    data = codec.compress(a, quality, model)
    header, grid = codec.read_indices(data, model)
    assert header.quality == level and (header.width, header.height) == (56, 40)
    # the decoded index grid is exactly what the model's encoder + quantiser give
    expected = np.asarray(model.encode_to_indices(a[None].astype(np.float32) / 255, level - 1))[0]
    np.testing.assert_array_equal(grid, expected)
    np.testing.assert_array_equal(grid, codec.indices_of(a, quality, model))
    out = codec.decompress(data, model)
    assert out.mode == "RGB" and out.size == (56, 40)


def test_bad_quality(model):
    with pytest.raises(ValueError, match=r"quality must be in 0\.\.100"):
        codec.compress(_smooth(8, 8), 101, model)
    with pytest.raises(ValueError, match=r"quality must be in 0\.\.100"):
        codec.compress(_smooth(8, 8), -1, model)


@pytest.mark.parametrize("size", [(1, 1), (7, 13), (1, 500), (500, 1), (9, 8)])
def test_odd_sizes(model, size):
    w, h = size
    a = _smooth(h, w)
    data = codec.compress(a, 50, model, lossless=False)  # 34-66: level 2
    header, grid = codec.read_indices(data, model)
    assert grid.shape == (-(-h // 8), -(-w // 8), 4)  # 4 code groups
    # padding is edge replication, so the indices match an explicitly edge-padded image
    padded = np.pad(a, ((0, -h % 8), (0, -w % 8), (0, 0)), mode="edge")
    expected = np.asarray(model.encode_to_indices(padded[None].astype(np.float32) / 255, 1))[0]
    np.testing.assert_array_equal(grid, expected)
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
    data = codec.compress(img, 2, model, lossless=False)
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
    from vqcodec.codec.images import to_coded_mode

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
    assert set(t) == {"network", "entropy"} and all(v >= 0 for v in t.values())
    t = {}
    codec.decompress(data, model, timings=t)
    assert set(t) == {"network", "entropy"}


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
    a = np.asarray(tiling.decode_image(model, g0, 1, 256, 176, None, tile_size=0), np.int16)
    b = np.asarray(tiling.decode_image(model, g0, 1, 256, 176, None, tile_size=8), np.int16)
    assert np.abs(a - b).max() <= 2
    out0 = codec.decompress(untiled, model)
    out1 = codec.decompress(tiled, model)
    assert _psnr(out0, out1) > 35


def test_default_tiling_policy(model):
    assert tiling.effective_tile_size(64, 96, None) == 0  # Kodak 768x512 goes untiled
    assert tiling.effective_tile_size(96, 64, None) == 0
    assert tiling.effective_tile_size(97, 64, None) == tiling.DEFAULT_TILE_SIZE
    assert tiling.effective_tile_size(500, 750, None) == tiling.DEFAULT_TILE_SIZE
    assert tiling.effective_tile_size(500, 750, 0) == 0
    data = codec.compress(np.zeros((8, 8, 3), np.uint8), 1, model)
    assert bitstream.read_header(data).tile_size == 0


def test_corrupt_inputs(model, other_tiny_model_path):
    data = codec.compress(_smooth(16, 16), 2, model, lossless=False)
    with pytest.raises(bitstream.TruncatedError):
        codec.decompress(data[:-5], model)
    with pytest.raises(bitstream.ChecksumError):
        codec.decompress(data[:-1] + bytes([data[-1] ^ 1]), model)
    with pytest.raises(bitstream.NotVQCError):
        codec.decompress(b"hello world, not an image", model)
    with pytest.raises(bitstream.ModelMismatchError):
        codec.decompress(data, other_tiny_model_path)


def test_decoded_pixels_are_the_models_decoding_of_the_decoded_indices(model):
    a = _smooth(44, 60)  # 6x8 latents, cropped back to 44x60 pixels
    data = codec.compress(a, 3, model, lossless=False)
    _, grid = codec.read_indices(data, model)
    y = np.asarray(model.decode_from_indices(grid[None], 2))[0]
    expected = np.clip(np.rint(y.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)[:44, :60]
    np.testing.assert_array_equal(np.asarray(codec.decompress(data, model)), expected)


def _repack(data, **changes):
    header, payload, alpha = bitstream.unpack(data)
    return bitstream.pack(dataclasses.replace(header, **changes), payload, alpha)


def test_decoder_chooses_its_own_tiling(model, monkeypatch):
    """A file's tile_size cannot make the decoder run the network tile by tiny tile."""
    a = _smooth(120, 200)  # 15x25 latents: one untiled network call
    data = codec.compress(a, 2, model)
    reference = np.asarray(codec.decompress(data, model))
    calls = []
    decode = model.decode
    monkeypatch.setattr(model, "decode", lambda latents: calls.append(latents.shape) or decode(latents))
    for tile in (1, 3, 1 << 16):
        calls.clear()
        out = codec.decompress(_repack(data, tile_size=tile), model)
        np.testing.assert_array_equal(np.asarray(out), reference)
        assert len(calls) == 1, (tile, calls)


def test_short_payload_for_huge_grid_is_refused_at_once(model):
    """A 30-byte file announcing a 16384x10920 image (allowed by the pixel limit)
    with an empty index payload is refused before anything is allocated."""
    fp = codec.model_fingerprint(model)
    for w, h, tile in [(16384, 10920, 64), (4096, 4096, 0), (1024, 1024, 1)]:
        header = bitstream.Header(fp, w, h, "RGB", kind="ecvq", level=2, latent_height=h // 8, latent_width=w // 8,
                                  tile_size=tile)
        with pytest.raises(bitstream.CorruptDataError, match="too short"):
            codec.decompress(bitstream.pack(header, b""), model)
    # a 1-latent image needs only a word: files with small grids are not refused
    assert codec.decompress(codec.compress(_smooth(8, 8), 1, model), model).size == (8, 8)


def _alpha_png(w, h):
    buf = io.BytesIO()
    Image.new("L", (w, h), 255).save(buf, format="PNG")
    return buf.getvalue()


def test_alpha_size_checked_before_decoding(model, monkeypatch):
    from PIL import PngImagePlugin

    data = codec.compress(_make("RGBA", 16, 24), 1, model)
    loads = []
    real_load = PngImagePlugin.PngImageFile.load
    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", lambda self: loads.append(self.size) or real_load(self))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5000)  # Pillow would warn about the 100x100 plane
    header, payload, _ = bitstream.unpack(data)
    bomb = bitstream.pack(header, payload, _alpha_png(100, 100))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(bitstream.CorruptDataError, match=r"alpha payload is a 100x100 PNG, the header says 24x16"):
            codec.decompress(bomb, model)
    assert loads == []  # refused from the PNG header alone
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]
    not_png = bitstream.pack(header, payload, b"\x00" * 40)
    with pytest.raises(bitstream.CorruptDataError, match="alpha payload is not a PNG"):
        codec.decompress(not_png, model)


def test_alpha_obeys_our_pixel_limit_not_pillows(model, monkeypatch):
    """Pillow's decompression-bomb limit is not ours: the header's size, already
    checked against max_pixels, decides."""
    img = _make("RGBA", 16, 24)
    data = codec.compress(img, 1, model)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 384 > 2 * 100: Pillow's open would refuse
    out = codec.decompress(data, model)
    np.testing.assert_array_equal(np.asarray(out.getchannel("A")), np.asarray(img.getchannel("A")))


def _frames(n, size=(16, 8)):
    return [Image.fromarray(np.full((size[1], size[0], 3), 40 * i, np.uint8)) for i in range(n)]


def test_multi_frame_input_warns(model, tmp_path):
    from vqcodec.codec.images import MultiFrameWarning

    gif = tmp_path / "photo.gif"
    frames = _frames(3)
    frames[0].save(gif, save_all=True, append_images=frames[1:])
    with pytest.warns(MultiFrameWarning, match=r"^photo\.gif has 3 frames: only the first is stored$"):
        data = codec.compress(gif, 1, model)
    assert codec.decompress(data, model).size == (16, 8)
    buf = io.BytesIO()
    frames[0].save(buf, format="TIFF", save_all=True, append_images=frames[1:2])
    with pytest.warns(MultiFrameWarning, match=r"^the image has 2 frames: only the first is stored$"):
        codec.compress(buf.getvalue(), 1, model)
    with Image.open(gif) as opened:
        opened.seek(2)
        with pytest.warns(MultiFrameWarning, match="only frame 2 is stored"):
            codec.compress(opened, 1, model)
    single = tmp_path / "one.gif"
    frames[0].save(single)
    with warnings.catch_warnings():
        warnings.simplefilter("error", MultiFrameWarning)
        codec.compress(single, 1, model)


def test_pillow_plugin_errors_are_oserrors(model, other_tiny_model_path, tmp_path):
    from vqcodec.codec import pillow_plugin

    data = codec.compress(_make("RGB"), 1, model)
    corrupt = tmp_path / "corrupt.vqc"
    corrupt.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    foreign = tmp_path / "foreign.vqc"
    foreign.write_bytes(codec.compress(_make("RGB"), 1, other_tiny_model_path))
    pillow_plugin.set_model(model)
    try:
        for path, cause in [(corrupt, bitstream.ChecksumError), (foreign, bitstream.ModelMismatchError)]:
            with Image.open(path) as opened:
                with pytest.raises(OSError, match="cannot decode .vqc image") as info:
                    opened.load()
            assert isinstance(info.value.__cause__, cause)
        pillow_plugin.set_model(tmp_path / "corrupt.vqc")  # not a model at all
        with Image.open(io.BytesIO(data)) as opened:
            with pytest.raises(OSError, match="not a vqcodec model"):
                opened.load()
    finally:
        pillow_plugin.set_model(None)


def test_pillow_plugin(model, tmp_path):
    from vqcodec.codec import pillow_plugin

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
        assert bitstream.read_header(out.read_bytes()).quality == 1
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
