"""The vqcodec command line, in-process (fast) and through a few subprocesses."""

from __future__ import annotations

import errno
import io
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import bitstream
from vqcodec import cli
from vqcodec.cli import console
from vqcodec import codec

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
    rc = _main("compress", *(folder / f"{n}.png" for n in names), "--model", tiny_model_path, "-q", "50")
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
    assert "level 2" in err and "bpp" in err  # quality 50 of 0..100: the middle of 3 levels


def test_a_terminal_shows_each_file_s_result_beside_the_progress_bar(folder, tiny_model_path, monkeypatch, capsys):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    rc = _main("compress", folder / "rgb.png", folder / "l.png", "--model", tiny_model_path, "--size", "2k")
    assert rc == 0
    err = capsys.readouterr().err
    for name in ("rgb.png", "l.png"):
        line = next(l for l in err.splitlines() if f"{name} -> " in l)
        assert "bpp" in line and ("dB" in line or "exact" in line)

def test_info(folder, model, capsys):
    data = codec.compress(_image("RGBA"), 50, model)
    (folder / "x.vqc").write_bytes(data)
    assert _main("info", folder / "x.vqc") == 0
    line = capsys.readouterr().out.strip()
    fp = codec.model_fingerprint(model).hex()
    assert "28x20 RGBA" in line and "level 2" in line and fp in line
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
    assert _main("compress", folder / "rgb.png", folder / "l.png", "-o", folder / "x.vqc") == 2  # a usage error
    _assert_error(capsys, "-o/--output")


def test_bad_quality(folder, tiny_model_path, capsys):
    assert _main("compress", folder / "rgb.png", "-q", "101", "--model", tiny_model_path) == 2  # a usage error
    _assert_error(capsys, "-q/--quality must be in 0..100, got 101")
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
    assert [(int(r[0]), r[1], int(r[2])) for r in rows] == [(0, "level", 1), (34, "level", 2), (67, "level", 3)]
    assert "PSNR" in out and "256x176" in out
    assert (tmp_path / "demo" / "endeavour_q67.png").exists()


def test_train_takes_the_global_options_anywhere(monkeypatch, tmp_path):
    import vqcodec.train.trainer as trainer

    data = tmp_path / "data"
    data.mkdir()
    for i in range(3):
        _image("RGB", seed=i).save(data / f"im{i}.png")
    seen = []
    monkeypatch.setattr(trainer, "train", lambda args, command: seen.append((args.quiet, args.verbose, args.steps)) or 0)
    out = str(tmp_path / "m.keras")
    assert cli.main(["--quiet", "train", str(data), "-o", out, "--steps", "3"]) == 0
    assert cli.main(["train", str(data), "-o", out, "-v"]) == 0
    assert seen == [(True, False, 3), (False, True, 100_000)]


def test_no_command_prints_help(capsys):
    assert cli.main([]) == 2
    assert "compress" in capsys.readouterr().err


def test_global_options_before_or_after_the_command(folder, tiny_model_path, capsys):
    for argv in (
        ("--quiet", "compress", folder / "rgb.png"),
        ("compress", folder / "rgb.png", "--quiet", "-f"),
        ("--quiet", "-v", "compress", folder / "rgb.png", "-f"),
        ("compress", "--verbose", folder / "rgb.png", "--quiet", "-f"),
    ):
        assert _main(*argv, "--model", tiny_model_path) == 0, argv
        assert capsys.readouterr().err == "", argv
    assert _main("--quiet", "decompress", folder / "rgb.vqc", "-o", folder / "d.png", "--model", tiny_model_path) == 0
    assert capsys.readouterr().err == ""
    assert _main("decompress", folder / "rgb.vqc", "-o", folder / "d.png", "-f", "--model", tiny_model_path) == 0
    assert "rgb.vqc -> " in capsys.readouterr().err  # without --quiet: the summary line
    (folder / "text.png").write_text("nope")
    assert _main("compress", folder / "text.png", "-v", "--model", tiny_model_path) == 1
    assert "Traceback" in capsys.readouterr().err


def _forbid_model_load(monkeypatch):
    def load_model(*args, **kwargs):
        raise AssertionError("the model was loaded before the arguments were checked")

    monkeypatch.setattr(codec, "load_model", load_model)


def test_read_only_output_folder_fails_before_any_work(folder, tiny_model_path, monkeypatch, capsys):
    """A read-only mount (simulated: root may write anywhere else) is refused up front, by the user's path."""
    ro = folder / "ro"
    ro.mkdir()
    real_mkstemp = tempfile.mkstemp

    def mkstemp(*args, dir=None, **kwargs):
        if dir is not None and Path(dir) == ro:
            raise OSError(errno.EROFS, "Read-only file system", str(Path(dir) / ".x.vqc._kwiz83a.tmp"))
        return real_mkstemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    _forbid_model_load(monkeypatch)
    assert _main("compress", folder / "rgb.png", "-o", ro / "x.vqc", "--model", tiny_model_path) == 1
    _assert_error(capsys, f"output folder {ro} is not writable: Read-only file system")
    assert _main("demo", "--save", ro / "new" / "deeper", "--model", tiny_model_path) == 1
    _assert_error(capsys, f"output folder {ro} is not writable")
    assert _files(ro) == []


def test_write_failure_names_the_output_not_the_temporary_file(folder, tiny_model_path, monkeypatch, capsys):
    def replace(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device", str(src))

    monkeypatch.setattr(os, "replace", replace)
    before = _files(folder)
    assert _main("compress", folder / "rgb.png", "-o", folder / "x.vqc", "--model", tiny_model_path) == 1
    err = capsys.readouterr().err
    assert err.strip() == f"vqcodec: error: {folder / 'rgb.png'}: cannot write {folder / 'x.vqc'}: No space left on device"
    assert _files(folder) == before


def test_bad_arguments_fail_before_the_model_loads(folder, tiny_model_path, monkeypatch, capsys):
    _forbid_model_load(monkeypatch)
    (folder / "notes.keras").write_text("not a model\n")
    (folder / "unreadable.png").write_bytes((folder / "rgb.png").read_bytes())
    for argv in (("compress", folder / "rgb.png", "-q", "101", "--model", tiny_model_path),
                 ("compress", folder / "rgb.png", "-q=-1", "--model", tiny_model_path),
                 ("demo", "-q", "700", "--model", tiny_model_path)):
        assert _main(*argv) == 2, argv  # usage errors
        _assert_error(capsys, "quality must be in 0..100")
    cases = [
        (("compress", folder / "rgb.png", "--model", folder / "notes.keras"),
         f"{folder / 'notes.keras'} is not a vqcodec model (not a Keras archive)"),
        (("decompress", folder / "x.vqc", "--model", folder / "rgb.png"),
         f"{folder / 'rgb.png'} is not a vqcodec model (not a Keras archive)"),
        (("compress", folder / "rgb.png", "--model", folder / "missing.keras"), "missing.keras: no such file"),
        (("demo", "--model", folder), "is a directory"),
        (("compress", folder / "rgb.png", "-o", folder / "no" / "x.vqc", "--model", tiny_model_path),
         f"output folder {folder / 'no'} does not exist"),
        (("demo", "--save", folder / "rgb.png", "--model", tiny_model_path), "not a folder"),
    ]
    for argv, message in cases:
        assert _main(*argv) == 1, argv
        _assert_error(capsys, message)
    assert not (folder / "rgb.vqc").exists()


def test_multi_frame_input_warns_in_one_line(folder, tiny_model_path, capsys):
    frames = [_image("RGB", 16, 16, seed=i) for i in range(3)]
    frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:])
    assert _main("compress", folder / "anim.gif", "--model", tiny_model_path, "--quiet") == 0
    assert capsys.readouterr().err == "vqcodec: warning: anim.gif has 3 frames: only the first is stored\n"
    assert bitstream.read_header((folder / "anim.vqc").read_bytes()).width == 16


def test_only_our_warnings_reach_stderr(folder, tiny_model_path, monkeypatch, capsys):
    import warnings

    from vqcodec.codec import images

    compress = codec.compress

    def noisy(*args, **kwargs):
        warnings.warn("a backend's advice\nover two lines", UserWarning)  # not ours: dropped
        warnings.warn(images.MultiFrameWarning("x.gif has 2 frames: only the first is stored"))
        return compress(*args, **kwargs)

    monkeypatch.setattr(codec, "compress", noisy)
    assert _main("compress", folder / "rgb.png", "--model", tiny_model_path, "--quiet") == 0
    err = capsys.readouterr().err
    assert err == f"vqcodec: warning: {folder / 'rgb.png'}: x.gif has 2 frames: only the first is stored\n"
    with pytest.warns(UserWarning, match="a backend's advice"):  # --verbose passes everything on
        assert _main("compress", folder / "rgb.png", "-f", "-v", "--model", tiny_model_path, "--quiet") == 0


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
    lines = r.stderr.decode().splitlines()
    assert [line.split(":")[0] for line in lines] == ["rgb.png -> rgb.vqc", "rgba.png -> rgba.vqc", "l.png -> l.vqc"], lines
    assert (folder / "rgba.vqc").exists()
    out = folder / "out"
    out.mkdir()
    for n in ("rgb", "rgba", "l"):
        (folder / f"{n}.vqc").rename(out / f"{n}.vqc")
    (out / "bad.vqc").write_bytes((out / "rgb.vqc").read_bytes()[:-5])
    r = _run("decompress", "rgb.vqc", "bad.vqc", "rgba.vqc", "l.vqc", "--model", tiny_model_path, cwd=out)
    assert r.returncode == 1
    err = r.stderr.decode()
    # stderr holds our lines only: one error, one summary per decoded file, no backend start-up messages.
    lines = err.splitlines()
    assert len(lines) == 4, err
    assert lines[1].startswith("vqcodec: error: bad.vqc: ") and "truncated" in lines[1], err
    assert [line.split(":")[0] for line in lines[::2] + lines[3:]] == [
        "rgb.vqc -> rgb.png", "rgba.vqc -> rgba.png", "l.vqc -> l.png"
    ], err
    assert not (out / "bad.png").exists()
    assert Image.open(out / "rgba.png").mode == "RGBA"
    assert Image.open(out / "l.png").mode == "L"
    np.testing.assert_array_equal(
        np.asarray(Image.open(out / "rgba.png").getchannel("A")),
        np.asarray(Image.open(folder / "rgba.png").getchannel("A")),
    )
    assert not [n for n in _files(out) if n.endswith(".tmp")]


def test_quiet_commands_write_nothing_to_stderr(folder, tiny_model_path):
    """--quiet with TF_CPP_MIN_LOG_LEVEL=3: the backend's start-up lines must not leak either."""
    env = dict(_env(), TF_CPP_MIN_LOG_LEVEL="3")
    r = subprocess.run(
        [sys.executable, "-m", "vqcodec.cli", "--quiet", "compress", "rgb.png", "--model", tiny_model_path],
        cwd=folder, env=env, capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0 and r.stderr == "", r.stderr
    r = _run("demo", "-q", "1", "--model", tiny_model_path, cwd=folder)
    assert r.returncode == 0 and r.stderr == b"", r.stderr.decode()
    assert b"endeavour.png" in r.stdout


def test_train_keeps_its_progress_and_drops_the_backend_noise(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for i in range(3):
        _image("RGB", 48, 48, seed=i).save(data / f"im{i}.png")
    r = _run("train", "data", "-o", "m.keras", "--steps", "2", "--batch-size", "2", "--accumulate", "1",
             "--patch-size", "32", "--log-every", "2", "--holdout", "1", "--codes", "16", "--lambdas", "0.01", "0.1",
             cwd=tmp_path)
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    assert r.stderr == b"", r.stderr.decode()
    out = r.stdout.decode()
    assert "2/2 - " in out and "loss: " in out and "q1: " in out  # Keras' progress display, then the evaluation
    assert (tmp_path / "m.keras").is_file()


def test_argument_errors_do_not_start_the_backend(folder, tiny_model_path):
    """Bad --quality, --model and output locations are reported before Keras/TensorFlow is imported."""
    (folder / "notes.keras").write_text("not a model")
    code = (
        "import sys\n"
        "from vqcodec import cli\n"
        f"model = {tiny_model_path!r}\n"
        "cases = [\n"
        "    ['compress', 'rgb.png', '-q', '101', '--model', model],\n"
        "    ['compress', 'rgb.png', '--model', 'notes.keras'],\n"
        "    ['compress', 'rgb.png', '--model', 'rgb.png'],\n"
        "    ['decompress', 'x.vqc', '--model', 'missing.keras'],\n"
        "    ['compress', 'rgb.png', '-o', 'nowhere/x.vqc', '--model', model],\n"
        "    ['decompress', 'rgb.png', '-o', 'x.nope', '--model', model],\n"
        "    ['demo', '-q', '500', '--model', model],\n"
        "]\n"
        "rcs = [cli.main(argv) for argv in cases]\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'jax'))\n"
        "print('RC', rcs, 'BAD', bad)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=folder, env=_env(), capture_output=True, text=True, timeout=60)
    assert "RC [2, 1, 1, 1, 1, 1, 2] BAD []" in r.stdout, (r.stdout, r.stderr)  # 2: usage errors
    lines = r.stderr.splitlines()
    assert len(lines) == 7 and all(line.startswith("vqcodec: error: ") for line in lines), r.stderr
    assert "not a Keras archive" in lines[1] and "not a Keras archive" in lines[2]


def test_list_mode_reports_files_in_the_order_named():
    """Workers finish in any order; the per-file lines follow the command line."""
    from vqcodec.codec.batch import Outcome, Task

    tasks = [Task(Path(f"{n}.png"), Path(f"{n}.vqc")) for n in "abcd"]
    # copies, as they come back pickled from worker processes, finishing last-first
    finished = [Outcome(Task(t.source, t.target), "done") for t in reversed(tasks)]
    assert [o.task.source.name for o in console.in_order(iter(finished), tasks)] == ["a.png", "b.png", "c.png", "d.png"]
    shuffled = [finished[2], finished[3], finished[0], finished[1]]
    assert [o.task.source.name for o in console.in_order(iter(shuffled), tasks)] == ["a.png", "b.png", "c.png", "d.png"]


def test_usage_errors_are_one_line_naming_the_command(folder, capsys):
    for argv, message in [
        (("compress", "-q", "50.5", "x.png"), "compress: argument -q/--quality: invalid int value: '50.5'"),
        (("compress", "--size", "0", "x.png"), "compress: argument --size: size must be at least 1 byte"),
        (("compress", "--size", "inf", "x.png"), "compress: argument --size: size must be at least 1 byte"),
        (("compress", "--size", "0.1", "x.png"), "compress: argument --size: size must be at least 1 byte"),
        (("compress",), "compress: the following arguments are required: IN"),
        (("compress", "--frobnicate", "x.png"), "compress: unrecognized arguments: --frobnicate"),
        (("decompress", "x.vqc", "--output-quality", "101"), "--output-quality must be in 0..100, got 101"),
        (("frobnicate",), "invalid choice: 'frobnicate'"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            raise SystemExit(_main(*argv))
        assert exit_info.value.code == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("vqcodec: error: ") and message in err, err
    (folder / "afile").write_text("x")
    assert _main("compress", folder / "rgb.png", "-o", folder / "afile" / "x.vqc") == 1
    _assert_error(capsys, f"{folder / 'afile'} is a file, not a folder")


def test_decompress_writes_lossy_formats_at_the_quality_asked(folder, tiny_model_path, capsys):
    assert _main("compress", folder / "rgb.png", "--model", tiny_model_path, "--quiet", "-f") == 0
    sizes = {}
    for quality in (None, 30):
        extra = () if quality is None else ("--output-quality", str(quality))
        out = folder / f"out{quality}.jpg"
        assert _main("decompress", folder / "rgb.vqc", "-o", out, "--model", tiny_model_path, "--quiet", *extra) == 0
        sizes[quality] = out.stat().st_size
        reference = io.BytesIO()
        decoded = codec.decompress((folder / "rgb.vqc").read_bytes(), tiny_model_path)
        decoded.save(reference, "JPEG", quality=95 if quality is None else quality)
        assert out.read_bytes() == reference.getvalue()
    assert sizes[30] < sizes[None]


def test_max_pixels_is_one_limit_for_reading_and_writing(folder, tiny_model_path, monkeypatch, capsys):
    """--max-pixels bounds the images compress reads and decompress writes, files and folders alike; Pillow's own
    limit is not ours (no warning, no refusal of its own)."""
    image = folder / "rgb.png"  # 28x20 = 560 pixels
    assert _main("compress", image, "--model", tiny_model_path, "--max-pixels", 559) == 1
    _assert_error(capsys, "rgb.png is 28x20 = 560 pixels, more than the limit of 559")
    assert not (folder / "rgb.vqc").exists()
    assert _main("compress", image, "--model", tiny_model_path, "--max-pixels", 560, "--quiet") == 0
    assert _main("decompress", folder / "rgb.vqc", "-o", folder / "back.png", "--model", tiny_model_path,
                 "--max-pixels", 559) == 1
    _assert_error(capsys, "image is 28x20 = 560 pixels, more than the limit of 559")
    assert not (folder / "back.png").exists()
    # A folder: every file over the limit is named, the others are coded.
    out = folder.parent / "coded"
    assert _main("compress", folder, "-o", out, "--model", tiny_model_path, "--max-pixels", 100, "-j", 1) == 1
    assert "more than the limit of 100" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        raise SystemExit(_main("compress", image, "--max-pixels", 0))
    assert exit_info.value.code == 2
    assert "--max-pixels must be at least 1, got 0" in capsys.readouterr().err
    # Pillow's limit (monkeypatched far below the image) neither warns nor refuses: ours decides.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    assert _main("compress", image, "--model", tiny_model_path, "-f", "--quiet") == 0
    assert _main("decompress", folder / "rgb.vqc", "-o", folder / "back.png", "--model", tiny_model_path,
                 "--quiet") == 0
    assert capsys.readouterr().err == ""
