"""The model shipped inside the package: present, loadable offline, and a real codec."""

from __future__ import annotations

import json

from importlib.resources import files

import numpy as np
import pytest
from PIL import Image

import bitstream
import vqcodec
from vqcodec.codec import default_model_path, model_fingerprint, read_indices
from vqcodec.codec.coding import coded_size
from vqcodec.model.recipe import SHIPPED, check_ladder
from vqcodec.model.recipe import STRIDE as SHIPPED_STRIDE
from vqcodec.model.variable_rate import VariableRateVQVAE
from vqcodec.quality import level_of
from vqcodec.metrics import psnr

SAMPLE = files("vqcodec") / "samples" / "endeavour.png"


def test_default_model_ships_under_25_mb_with_tables():
    path = default_model_path()
    assert path.is_file(), f"shipped model missing: {path}"
    assert path.stat().st_size < 25 * 1024 * 1024
    model = vqcodec.load_model(runtime="keras")
    assert isinstance(model, VariableRateVQVAE) and len(model.operating_points()) == len(vqcodec.quality_levels()) >= 8
    counts = np.asarray(model.coding_counts)
    assert counts.shape[0] == model.num_qualities and (counts.sum(axis=(2, 3)) > 0).all()  # fitted: every level and group


def test_default_model_refuses_tiny_files_announcing_huge_images():
    """28-byte files announcing up to the pixel limit with no payload: refused at once; above it, by the limit."""
    fp = model_fingerprint()
    for side, tile in [(13376, 64), (4096, 0), (1024, 1)]:  # 13376**2 is just under the limit
        header = bitstream.Header(fp, side, side, "RGB", 0, side // 8, side // 8, tile, kind="ecvq", level=4)
        with pytest.raises(bitstream.CorruptDataError, match="too short"):
            vqcodec.decompress(bitstream.pack(header, b""))
    header = bitstream.Header(fp, 16384, 16384, "RGB", 0, 2048, 2048, 64, kind="ecvq", level=4)
    with pytest.raises(bitstream.ImageTooLargeError, match="more than the limit of 178956970"):
        vqcodec.decompress(bitstream.pack(header, b""))


def test_default_model_rate_and_quality_rise_with_level():
    with SAMPLE.open("rb") as f:
        image = Image.open(f).convert("RGB")
    reference = np.asarray(image)
    sizes, scores = [], []
    points = vqcodec.load_model().operating_points()
    for q in (0, None, 100):  # the lowest, the default and the highest quality
        data = vqcodec.compress(image, quality=q)
        decoded = vqcodec.decompress(data)
        assert decoded.size == image.size and decoded.mode == "RGB"
        header, indices = read_indices(data, vqcodec.load_model())
        level, scale, alternatives = points[level_of(75 if q is None else q, len(points)) - 1]
        codings = {(lv, coded_size(*image.size, s)) for lv, s in [(level, scale), *alternatives]}
        assert header.kind == "ecvq" and (header.level, (header.coded_width, header.coded_height)) in codings
        sizes.append(len(data))
        scores.append(psnr(reference, np.asarray(decoded)))
    assert sizes == sorted(sizes) and len(set(sizes)) == 3
    assert scores == sorted(scores)
    # Thresholds only a trained model meets (the measured numbers are in vqcodec/weights/README.md).
    assert scores[0] > 15.0 and scores[-1] > 33.0  # measured: 17.68 and 35.24 dB (vqcodec demo)


def test_the_shipped_model_is_the_shipped_recipe():
    """The recipe in code is the shipped model's: architecture, quantiser, levels, stride."""
    model = vqcodec.load_model(runtime="keras")
    config = model.get_config()
    for name, value in SHIPPED.model_config().items():
        assert json.loads(json.dumps(config[name])) == json.loads(json.dumps(value)), name
    assert model.operating_points() == check_ladder(SHIPPED.ladder, len(SHIPPED.lambdas))
    encoder = model.encoder
    assert [layer.name for layer in encoder.layers if "res" in layer.name] == ["enc_res_0", "enc_res_1"][: SHIPPED.res_blocks]
    assert encoder.get_layer("down_0").filters == SHIPPED.channels
    assert encoder.get_layer("to_latent").filters == SHIPPED.embedding_dim
    x = np.zeros((1, 32, 48, 3), np.float32)
    assert tuple(model.encode(x).shape) == (1, 32 // SHIPPED_STRIDE, 48 // SHIPPED_STRIDE, SHIPPED.embedding_dim)


def test_the_export_codes_the_same_operating_points():
    """The shipped export (made before exports carried them) takes its points and lambdas from its model's config."""
    exported, keras_model = vqcodec.load_model(), vqcodec.load_model(runtime="keras")
    assert exported.operating_points() == keras_model.operating_points()
    assert list(exported.lambdas) == list(keras_model.lambdas) == list(SHIPPED.lambdas)
    assert any(alternatives for _, _, alternatives in exported.operating_points())
