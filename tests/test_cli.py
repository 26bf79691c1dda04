"""The vqcodec command line, in-process (fast) and through a few subprocesses."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import bitstream
from vqcodec import cli, codec

REPO = Path(__file__).resolve().parents[1]


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _run(*args, cwd, stdin=None):
    return subprocess.run(
        [sys.executable, "-m", "vqcodec.cli", *args],
        cwd=cwd, env=_env(), input=stdin, capture_output=True, timeout=300,
    )


def _image(mode, h=20, w=28, seed=0):
    rng = np.random.default_rng(seed)
    rgb = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")
    if mode == "RGBA":
        rgb.putalpha(Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8), "L"))
        return rgb
    return rgb.convert(mode)


@pytest.fixture(scope="module")
def model(tiny_model_path):
    return codec.load_model(tiny_model_path)


@pytest.fixture
def folder(tmp_path):
    for mode in ("RGB", "L", "RGBA", "LA", "P"):
        _image(mode).save(tmp_path / f"{mode.lower()}.png")
    return tmp_path


def _main(*args):
    return cli.main([str(a) for a in args])


def _files(folder):
    return sorted(p.name for p in Path(folder).iterdir())


# -- in-process ------------------------------------------------------------------------


def test_compress_decompress_in_process(folder, tiny_model_path, capsys):
    names = ["rgb", "l", "rgba", "la", "p"]
    rc = _main("compress", *(folder / f"{n}.png" for n in names), "--model", tiny_model_path, "-q", "2")
    assert rc == 0
    out = folder / "out"
    out.mkdir()
    for n in names:
        (folder / f"{n}.vqc").rename(out / f"{n}.vqc")
    assert _main("decompress", *(out / f"{n}.vqc" for n in names), "--model", tiny_model_path) == 0
    for n, mode in zip(names, ["RGB", "L", "RGBA", "LA", "RGB"]):
        dec = Image.open(out / f"{n}.png")
        assert dec.mode == mode and dec.size == (28, 20)
        if "A" in mode:
            orig = Image.open(folder / f"{n}.png")
            np.testing.assert_array_equal(np.asarray(dec.getchannel("A")), np.asarray(orig.getchannel("A")))
    err = capsys.readouterr().err
    assert "quality 2" in err and "bpp" in err


def test_info(folder, model, capsys):
    data = codec.compress(_image("RGBA"), 2, model)
    (folder / "x.vqc").write_bytes(data)
    assert _main("info", folder / "x.vqc") == 0
    line = capsys.readouterr().out.strip()
    fp = codec.model_fingerprint(model).hex()
    assert "28x20 RGBA" in line and "quality 2" in line and fp in line
    assert f"{len(data)} bytes" in line and f"{8 * len(data) / 560:.4f} bpp" in line


def test_output_format_by_suffix(folder, tiny_model_path):
    assert _main("compress", folder / "rgb.png", "--model", tiny_model_path, "--quiet") == 0
    for suffix, fmt in ((".jpg", "JPEG"), (".bmp", "BMP"), (".webp", "WEBP"), (".tiff", "TIFF")):
        target = folder / f"dec{suffix}"
        assert _main("decompress", folder / "rgb.vqc", "-o", target, "--model", tiny_model_path) == 0
        assert Image.open(target).format == fmt


def test_unknown_output_suffix(folder, tiny_model_path, capsys):
    _main("compress", folder / "rgb.png", "--model", tiny_model_path, "--quiet")
    before = _files(folder)
    assert _main("decompress", folder / "rgb.vqc", "-o", folder / "x.nope", "--model", tiny_model_path) == 1
    assert "cannot tell an image format" in capsys.readouterr().err
    assert _files(folder) == before


def test_stdin_stdout(folder, tiny_model_path, monkeypatch, capsysbinary):
    raw = (folder / "rgba.png").read_bytes()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(raw)))
    assert _main("compress", "-", "--model", tiny_model_path) == 0
    data = capsysbinary.readouterr().out
    assert bitstream.read_header(data).mode == "RGBA"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    assert _main("decompress", "-", "--model", tiny_model_path) == 0
    png = capsysbinary.readouterr().out
    dec = Image.open(io.BytesIO(png))
    assert dec.format == "PNG" and dec.mode == "RGBA"
    np.testing.assert_array_equal(
        np.asarray(dec.getchannel("A")), np.asarray(Image.open(folder / "rgba.png").getchannel("A"))
    )


def _assert_error(capsys, *fragments):
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vqcodec: error: "), err
    assert "Traceback" not in err
    for f in fragments:
        assert f in lines[0]


def test_missing_file(folder, tiny_model_path, capsys):
    before = _files(folder)
    assert _main("compress", folder / "missing.png", "--model", tiny_model_path) == 1
    _assert_error(capsys, "missing.png", "no such file")
    assert _main("decompress", folder / "missing.vqc", "--model", tiny_model_path) == 1
    _assert_error(capsys, "missing.vqc", "no such file")
    assert _main("info", folder / "missing.vqc") == 1
    _assert_error(capsys, "no such file")
    assert _files(folder) == before


def test_text_file_named_png(folder, tiny_model_path, capsys):
    (folder / "text.png").write_text("this is not an image\n")
    before = _files(folder)
    assert _main("compress", folder / "text.png", "--model", tiny_model_path) == 1
    _assert_error(capsys, "text.png", "not an image file")
    assert _files(folder) == before


def test_truncated_vqc(folder, model, tiny_model_path, capsys):
    data = codec.compress(_image("RGB"), 2, model)
    (folder / "t.vqc").write_bytes(data[: len(data) // 2])
    before = _files(folder)
    assert _main("decompress", folder / "t.vqc", "--model", tiny_model_path) == 1
    _assert_error(capsys, "t.vqc", "truncated")
    assert _main("info", folder / "t.vqc") == 1
    _assert_error(capsys, "truncated")
    assert _files(folder) == before


def test_vqc_from_other_model(folder, model, other_tiny_model_path, capsys):
    (folder / "o.vqc").write_bytes(codec.compress(_image("RGB"), 2, model))
    before = _files(folder)
    assert _main("decompress", folder / "o.vqc", "--model", other_tiny_model_path) == 1
    _assert_error(capsys, "o.vqc", "made by model", codec.model_fingerprint(model).hex())
    assert _files(folder) == before


def test_existing_output_needs_force(folder, tiny_model_path, capsys):
    target = folder / "rgb.vqc"
    target.write_bytes(b"precious")
    src = (folder / "rgb.png").read_bytes()
    assert _main("compress", folder / "rgb.png", "--model", tiny_model_path) == 1
    _assert_error(capsys, "rgb.vqc", "exists", "--force")
    assert target.read_bytes() == b"precious"
    assert _main("compress", folder / "rgb.png", "--model", tiny_model_path, "--force") == 0
    assert bitstream.read_header(target.read_bytes()).width == 28
    assert (folder / "rgb.png").read_bytes() == src  # input untouched
    assert not [n for n in _files(folder) if n.endswith(".tmp")]


def test_refuses_to_overwrite_input(folder, model, tiny_model_path, capsys):
    (folder / "a.vqc").write_bytes(codec.compress(_image("RGB"), 1, model))
    assert _main("compress", folder / "a.vqc", "--force", "--model", tiny_model_path) == 1
    _assert_error(capsys, "overwrite the input")


def test_failed_write_leaves_nothing(folder, tiny_model_path, capsys):
    _main("compress", folder / "rgba.png", "--model", tiny_model_path, "--quiet")
    before = _files(folder)
    # JPEG cannot hold alpha: the save fails half-way, the temp file must go
    assert _main("decompress", folder / "rgba.vqc", "-o", folder / "x.jpg", "--model", tiny_model_path) == 1
    _assert_error(capsys, "cannot write a RGBA image as JPEG")
    assert _files(folder) == before


def test_output_with_several_inputs(folder, tiny_model_path, capsys):
    assert _main("compress", folder / "rgb.png", folder / "l.png", "-o", folder / "x.vqc") == 1
    _assert_error(capsys, "-o/--output")


def test_bad_quality(folder, tiny_model_path, capsys):
    assert _main("compress", folder / "rgb.png", "-q", "9", "--model", tiny_model_path) == 1
    _assert_error(capsys, "quality must be in 1..3")
    assert not (folder / "rgb.vqc").exists()


def test_verbose_shows_traceback(folder, tiny_model_path, capsys):
    (folder / "text.png").write_text("nope")
    assert _main("--verbose", "compress", folder / "text.png", "--model", tiny_model_path) == 1
    assert "Traceback" in capsys.readouterr().err


def test_several_files_continue_after_an_error(folder, tiny_model_path, capsys):
    rc = _main("compress", folder / "missing.png", folder / "l.png", "--model", tiny_model_path, "--quiet")
    assert rc == 1
    assert (folder / "l.vqc").exists()
    assert "missing.png" in capsys.readouterr().err


def test_demo(tiny_model_path, tmp_path, capsys):
    assert _main("demo", "--model", tiny_model_path, "--save", tmp_path / "demo") == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert [int(r[0]) for r in rows] == [1, 2, 3]
    assert "PSNR" in out and "256x176" in out
    assert (tmp_path / "demo" / "endeavour_q3.png").exists()


def test_train_delegates(monkeypatch):
    import vqcodec.train

    seen = []
    monkeypatch.setattr(vqcodec.train, "main", lambda argv=None: seen.append(argv) or 0)
    assert cli.main(["train", "--help"]) == 0
    assert cli.main(["-v", "train", "--epochs", "3"]) == 0
    assert seen == [["--help"], ["--epochs", "3"]]


def test_no_command_prints_help(capsys):
    assert cli.main([]) == 2
    assert "compress" in capsys.readouterr().err


# -- subprocesses ----------------------------------------------------------------------


def test_help_and_info_do_not_import_tensorflow(tmp_path, model):
    (tmp_path / "x.vqc").write_bytes(codec.compress(_image("L"), 1, model))
    code = (
        "import sys, time\n"
        "t = time.perf_counter()\n"
        "from vqcodec import cli\n"
        "try:\n"
        "    cli.main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "rc = cli.main(['info', 'x.vqc'])\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'jax', 'torch'))\n"
        "print('RC', rc, 'BAD', bad, 'T', time.perf_counter() - t)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "RC 0 BAD []" in r.stdout, r.stdout
    assert "usage: vqcodec" in r.stdout and "28x20 L" in r.stdout


def test_cli_subprocess_round_trip_and_errors(folder, tiny_model_path):
    r = _run("compress", "rgb.png", "rgba.png", "l.png", "-q", "3", "--model", tiny_model_path, cwd=folder)
    assert r.returncode == 0, r.stderr
    assert (folder / "rgba.vqc").exists()
    out = folder / "out"
    out.mkdir()
    for n in ("rgb", "rgba", "l"):
        (folder / f"{n}.vqc").rename(out / f"{n}.vqc")
    (out / "bad.vqc").write_bytes((out / "rgb.vqc").read_bytes()[:30])
    r = _run("decompress", "rgb.vqc", "bad.vqc", "rgba.vqc", "l.vqc", "--model", tiny_model_path, cwd=out)
    assert r.returncode == 1
    err = r.stderr.decode()
    errors = [line for line in err.splitlines() if line.startswith("vqcodec: error:")]
    assert len(errors) == 1 and "bad.vqc" in errors[0] and "truncated" in errors[0], err
    assert "Traceback" not in err and "cuInit" not in err
    assert not (out / "bad.png").exists()
    assert Image.open(out / "rgba.png").mode == "RGBA"
    assert Image.open(out / "l.png").mode == "L"
    np.testing.assert_array_equal(
        np.asarray(Image.open(out / "rgba.png").getchannel("A")),
        np.asarray(Image.open(folder / "rgba.png").getchannel("A")),
    )
    assert not [n for n in _files(out) if n.endswith(".tmp")]
