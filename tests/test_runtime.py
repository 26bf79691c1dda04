"""The exported model (onnxruntime): same files as Keras within near-ties, cross-decoding, stale exports refused."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vqcodec import codec
from vqcodec.runtime.export import export_model
from vqcodec.runtime.onnx_model import ExportedModel, StaleExportError, export_paths, has_export

REPO = Path(__file__).resolve().parents[1]
SAMPLE = files("vqcodec") / "samples" / "endeavour.png"


def _photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([128 + 90 * np.sin(xx / 9.0 + c) * np.cos(yy / 13.0) for c in range(3)], -1)
    return (base + rng.normal(0, 6, (h, w, 3))).clip(0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def exported_tiny(tiny_model_path, tmp_path_factory):
    """A copy of the tiny model with its export beside it."""
    path = tmp_path_factory.mktemp("exported") / "tiny.keras"
    shutil.copy(tiny_model_path, path)
    export_model(path)
    return path


def test_export_carries_the_model_fingerprint_tables_and_levels(exported_tiny):
    keras_model = codec.load_model(exported_tiny, runtime="keras")
    onnx_model = codec.load_model(exported_tiny)
    assert isinstance(onnx_model, ExportedModel)
    assert codec.model_fingerprint(onnx_model) == codec.model_fingerprint(keras_model)
    assert codec.quality_levels(onnx_model) == codec.quality_levels(keras_model) == [0, 34, 67]
    for name in ("counts", "offsets"):
        np.testing.assert_array_equal(getattr(onnx_model.context_model(), name), getattr(keras_model.context_model(), name))


@pytest.mark.parametrize("quality", [0, 34, 67])  # levels 1, 2 and 3
def test_files_cross_decode_between_runtimes(exported_tiny, quality):
    """Indices agree except near-ties; each runtime decodes the other's file, pixels within one level."""
    keras_model = codec.load_model(exported_tiny, runtime="keras")
    onnx_model = codec.load_model(exported_tiny, runtime="onnx")
    image = _photo(72, 96, quality)
    a = codec.indices_of(image, quality, keras_model)
    b = codec.indices_of(image, quality, onnx_model)
    assert np.mean(a != b) <= 0.02
    for data in (codec.compress(image, quality, keras_model), codec.compress(image, quality, onnx_model)):
        x = np.asarray(codec.decompress(data, keras_model), np.int16)
        y = np.asarray(codec.decompress(data, onnx_model), np.int16)
        assert np.abs(x - y).max() <= 1


def test_tiled_images_match_between_runtimes(exported_tiny):
    keras_model = codec.load_model(exported_tiny, runtime="keras")
    onnx_model = codec.load_model(exported_tiny, runtime="onnx")
    image = _photo(40, 1000, 7)  # 125 latents wide: tiled
    data = codec.compress(image, 67, onnx_model)
    x = np.asarray(codec.decompress(data, keras_model), np.int16)
    y = np.asarray(codec.decompress(data, onnx_model), np.int16)
    assert np.abs(x - y).max() <= 1


def test_a_stale_export_is_refused(exported_tiny, other_tiny_model_path, tmp_path):
    path = tmp_path / "tiny.keras"
    shutil.copy(exported_tiny, path)
    for src, dst in zip(export_paths(exported_tiny), export_paths(path)):
        shutil.copy(src, dst)
    assert isinstance(codec.load_model(path), ExportedModel)
    shutil.copy(other_tiny_model_path, path)  # the model changed, the export did not
    with pytest.raises(StaleExportError, match="exported from another version of tiny.keras"):
        codec.load_model(path)


def test_metadata_is_read_like_onnx_reads_it_and_damage_is_refused(exported_tiny, tmp_path):
    import onnx

    from vqcodec.runtime.onnx_model import metadata_props

    for path in export_paths(exported_tiny):
        model = onnx.load(str(path))
        onnx.helper.set_model_props(model, {"vqcodec": "x" * 300, "other": "é", "": ""})
        copy = tmp_path / path.name
        copy.write_bytes(model.SerializeToString())
        assert metadata_props(copy) == {p.key: p.value for p in model.metadata_props}
        assert metadata_props(path) == {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    decode_copy = tmp_path / "cut.keras"
    shutil.copy(exported_tiny, decode_copy)
    for src, dst in zip(export_paths(exported_tiny), export_paths(decode_copy)):
        dst.write_bytes(src.read_bytes()[: src.stat().st_size // 2])  # cut mid-graph
    with pytest.raises(StaleExportError, match="not a readable ONNX file"):
        codec.load_model(decode_copy)


def test_keras_only_model_still_works(tiny_model_path):
    assert not has_export(tiny_model_path)
    data = codec.compress(_photo(16, 16), 2, tiny_model_path)
    assert codec.decompress(data, tiny_model_path).size == (16, 16)


def test_shipped_model_export_matches_keras():
    """The shipped export: same fingerprint, sample indices within near-ties, cross-decoding within one level."""
    assert has_export(codec.default_model_path())
    onnx_model = codec.load_model()
    keras_model = codec.load_model(runtime="keras")
    assert isinstance(onnx_model, ExportedModel)
    assert codec.model_fingerprint(onnx_model) == codec.model_fingerprint(keras_model)
    with SAMPLE.open("rb") as f:
        image = Image.open(f).convert("RGB")
    q = codec.quality_levels(onnx_model)[-1]
    a, b = codec.indices_of(image, q, keras_model), codec.indices_of(image, q, onnx_model)
    assert np.mean(a != b) <= 0.02
    for data in (codec.compress(image, q, keras_model), codec.compress(image, q, onnx_model)):
        x = np.asarray(codec.decompress(data, keras_model), np.int16)
        y = np.asarray(codec.decompress(data, onnx_model), np.int16)
        assert np.abs(x - y).max() <= 1


def test_cli_with_an_export_never_imports_keras(tmp_path):
    """compress and decompress with the shipped export: neither Keras, TensorFlow nor the onnx package is imported."""
    with SAMPLE.open("rb") as f:
        (tmp_path / "s.png").write_bytes(f.read())
    script = (
        "import sys\n"
        "from vqcodec.cli import main\n"
        f"assert main(['compress', {str(tmp_path / 's.png')!r}, '--quiet']) == 0\n"
        f"assert main(['decompress', {str(tmp_path / 's.vqc')!r}, '-o', {str(tmp_path / 'd.png')!r}, '--quiet']) == 0\n"
        "heavy = sorted(m for m in ('keras', 'tensorflow', 'jax', 'onnx', 'tf2onnx') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, timeout=300)
    assert run.returncode == 0, run.stderr.decode()[-2000:]
    assert run.stderr == b""
    with Image.open(tmp_path / "d.png") as img:
        assert img.size == (256, 176)


def test_cli_notices_a_model_without_export_on_a_terminal(tiny_model_path, tmp_path, capsys, monkeypatch):
    from vqcodec import cli

    Image.fromarray(_photo(16, 16)).save(tmp_path / "a.png")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert cli.main(["compress", str(tmp_path / "a.png"), "--model", tiny_model_path, "-q", "2"]) == 0
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == (
        f"vqcodec: notice: {tiny_model_path} has no export, so it runs through Keras (seconds slower to start); "
        f"'vqcodec export {tiny_model_path}' makes one"
    )
    assert cli.main(["compress", str(tmp_path / "a.png"), "-f", "--model", tiny_model_path, "--quiet"]) == 0
    assert capsys.readouterr().err == ""


def test_cli_export_command(tiny_model_path, tmp_path, capsys):
    from vqcodec import cli

    path = tmp_path / "m.keras"
    shutil.copy(tiny_model_path, path)
    assert cli.main(["export", str(path)]) == 0
    assert has_export(path) and "m.encode.onnx" in capsys.readouterr().err
    assert cli.main(["export", str(path)]) == 0, capsys.readouterr().err  # again, over its own export
    assert ExportedModel(path).fingerprint() == codec.model_fingerprint(codec.load_model(path, runtime="keras"))
    assert cli.main(["export", str(tmp_path / "missing.keras")]) == 1
    assert "no such file" in capsys.readouterr().err
