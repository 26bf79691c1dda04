"""Smoke and unit tests for benchmarks/: fast, on two tiny generated images.

The benchmarks' dependencies are the 'bench' extra, which the test command
installs: a missing one fails the import here instead of skipping the file.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import bjontegaard  # noqa: F401  (the 'bench' extra: a missing one is an error, not a skip)
import matplotlib  # noqa: F401
import numpy as np
import pytest
import scipy  # noqa: F401
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # benchmarks/ is not an installed package: import it from the checkout
    sys.path.insert(0, str(ROOT))

from vqcodec.comparison import codecs as pillow_codecs  # noqa: E402
from benchmarks import batch, content, ours, prior, rd, recheck, speed  # noqa: E402
from benchmarks.bdrate import bd_rate, monotone_curve  # noqa: E402
from benchmarks.common import list_images, ms_ssim, ms_ssim_db, ms_ssim_settings, psnr  # noqa: E402
from benchmarks.report import REFERENCE_DIR, load_curve, load_references  # noqa: E402


def _tiny_image(w: int, h: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([128 + 100 * np.sin(x / 7 + seed), 128 + 90 * np.cos(y / 5), (x + y) * 255 / (w + h)], -1)
    noise = rng.normal(0, 12, size=(h, w, 3))
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8), "RGB")


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("tiny_images")
    _tiny_image(64, 48, 1).save(d / "a.png")
    _tiny_image(40, 56, 2).save(d / "b.png")
    (d / "README.md").write_text("not an image")
    return d


# ---------------------------------------------------------------- BD-rate

CURVE_R = [0.15, 0.3, 0.6, 1.2, 2.4]
CURVE_P = [27.0, 30.1, 33.0, 35.6, 38.0]


@pytest.mark.parametrize("method", ["akima", "pchip"])
def test_bd_rate_of_a_curve_against_itself_is_zero(method):
    assert bd_rate(CURVE_R, CURVE_P, CURVE_R, CURVE_P, method) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("method", ["akima", "pchip"])
def test_bd_rate_at_half_the_rate_is_minus_50_percent(method):
    half = [r / 2 for r in CURVE_R]
    assert bd_rate(CURVE_R, CURVE_P, half, CURVE_P, method) == pytest.approx(-50.0, abs=1e-6)
    assert bd_rate(half, CURVE_P, CURVE_R, CURVE_P, method) == pytest.approx(100.0, abs=1e-6)


def test_bd_rate_known_value_for_parallel_log_linear_curves():
    # PSNR = 30 + 10 log10(R): +1 dB everywhere is a constant log10-rate saving of 0.1,
    # so BD-rate = 10**-0.1 - 1 = -20.567...% exactly (both interpolations are exact here).
    r = np.array([0.1, 0.3, 0.9, 2.7])
    p = 30 + 10 * np.log10(r)
    assert bd_rate(r, p, r, p + 1.0) == pytest.approx((10**-0.1 - 1) * 100, abs=1e-9)


def test_bd_rate_needs_overlap_and_ignores_point_order():
    assert math.isnan(bd_rate(CURVE_R, CURVE_P, [5.0, 6.0], [50.0, 51.0]))
    shuffled = [3, 0, 4, 1, 2]
    got = bd_rate(CURVE_R, CURVE_P, [CURVE_R[i] / 2 for i in shuffled], [CURVE_P[i] for i in shuffled])
    assert got == pytest.approx(-50.0, abs=1e-6)


def test_monotone_curve_drops_points_without_quality_gain():
    r, q = monotone_curve([1, 2, 3, 4, float("nan")], [30, 32, 31.5, 33, 40])
    assert r.tolist() == [1, 2, 4] and q.tolist() == [30, 32, 33]


# ---------------------------------------------------------------- metrics

def test_psnr_known_value():
    a = np.full((4, 5, 3), 100, np.uint8)
    assert psnr(a, a + 1) == pytest.approx(20 * math.log10(255), abs=1e-9)
    assert psnr(a, a) == float("inf")


def test_ms_ssim_settings_follow_tf_size_limit():
    assert ms_ssim_settings(512, 768) == ((0.0448, 0.2856, 0.3001, 0.2363, 0.1333), 11)
    assert len(ms_ssim_settings(161, 161)[0]) == 5  # smallest size TF accepts with defaults
    w4, f4 = ms_ssim_settings(160, 400)
    assert len(w4) == 4 and f4 == 11 and sum(w4) == pytest.approx(1.0)
    assert len(ms_ssim_settings(40, 64)[0]) == 2
    w1, f1 = ms_ssim_settings(8, 9)
    assert w1 == (1.0,) and f1 <= 8


@pytest.mark.parametrize("shape", [(512, 768, 3), (161, 200, 3), (333, 257, 3), (40, 56, 3), (9, 9, 1)])
def test_ms_ssim_is_tensorflows(shape):
    """The numpy MS-SSIM computes what tf.image.ssim_multiscale does. TF works in float32, whose cancellation in
    the variance terms costs it up to 6e-5 here (seen at 512x768); the numpy one, in float64, equals TF's own
    operations run in float64 to 1e-15."""
    import tensorflow as tf

    rng = np.random.default_rng(sum(shape))
    a = rng.integers(0, 256, shape).astype(np.uint8)
    b = np.clip(a + rng.normal(0, 12, shape), 0, 255).astype(np.uint8)
    weights, size = ms_ssim_settings(*shape[:2])
    expected = float(tf.image.ssim_multiscale(tf.constant(a, tf.float32), tf.constant(b, tf.float32), max_val=255.0,
                                              power_factors=weights, filter_size=size))
    value, scales = ms_ssim(a, b)
    assert scales == len(weights) and value == pytest.approx(expected, abs=1e-4)


def test_ms_ssim_runs_on_tiny_and_kodak_sized_images():
    img = np.asarray(_tiny_image(40, 56, 3))
    value, scales = ms_ssim(img, img)
    assert value == pytest.approx(1.0, abs=1e-5) and scales == 2
    big = np.asarray(_tiny_image(200, 170, 4))
    noisy = np.clip(big.astype(int) + 20, 0, 255).astype(np.uint8)
    value, scales = ms_ssim(big, noisy)
    assert 0.5 < value < 1.0 and scales == 5
    assert ms_ssim_db(0.99) == pytest.approx(20.0)


def test_list_images_ignores_non_images_and_limits(tiny_dir):
    assert [p.name for p in list_images(tiny_dir)] == ["a.png", "b.png"]
    assert [p.name for p in list_images(tiny_dir, limit=1)] == ["a.png"]


# ---------------------------------------------------------------- reference curves

def test_reference_curves_are_complete_and_sourced():
    curves = load_references()
    names = " ".join(c.name for c in curves)
    for needed in ("Ballé 2017", "Ballé 2018", "Minnen 2018", "Cheng 2020", "VTM"):
        assert needed in names
    for path in sorted(REFERENCE_DIR.glob("*.json")):
        data = json.loads(path.read_text())
        assert {"name", "description", "results"} <= data.keys()
        assert "CompressAI" in data["description"] and "results/image/kodak/" in data["description"]
        c = load_curve(path)
        assert len(c.bpp) == len(c.psnr) >= 6
        assert all(np.diff(c.bpp) > 0) and all(np.diff(c.psnr) > 0)
        if c.msssim:
            assert len(c.msssim) == len(c.bpp)


# ---------------------------------------------------------------- Pillow codecs

@pytest.mark.parametrize("codec", [c for c in pillow_codecs.ALL if c.available()], ids=lambda c: c.key)
def test_pillow_codecs_round_trip_whole_files(codec):
    img = _tiny_image(64, 48, 5)
    data = codec.encode(img, codec.settings[len(codec.settings) // 2])
    out = codec.decode(data)
    assert out.size == img.size and out.mode == "RGB"
    with Image.open(io.BytesIO(data)) as probe:  # a complete file Pillow can identify
        assert probe.format in {"JPEG", "WEBP", "JPEG2000", "AVIF"}


def test_match_quality_finds_nearby_bpp():
    img = _tiny_image(64, 48, 6)
    q, got = speed.match_quality(pillow_codecs.JPEG, img, 2.0, {})
    assert 1 <= q <= 95 and abs(math.log(got / 2.0)) < 0.3


# ---------------------------------------------------------------- end to end, Pillow side

def _check_codec_json(path: Path, n_settings: int | None = None):
    data = json.loads(path.read_text())
    assert {"name", "description", "results"} <= data.keys()
    res = data["results"]
    for key in ("bpp", "psnr-rgb", "ms-ssim", "quality"):
        assert key in res, key
    n = len(res["bpp"])
    assert n >= 2 and len(res["psnr-rgb"]) == n and len(res["ms-ssim"]) == n
    if n_settings is not None:
        assert n == n_settings
    assert all(b > 0 for b in res["bpp"]) and all(0 < m <= 1 for m in res["ms-ssim"])
    assert data["images"] == 2 and set(data["per_image"]) == {"a.png", "b.png"}
    return data


@pytest.mark.parametrize("module", ["benchmarks.rd", "benchmarks.speed", "benchmarks.batch", "benchmarks.content"])
def test_commands_exist(module):
    proc = subprocess.run([sys.executable, "-m", module, "--help"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and "--data" in proc.stdout and "--limit" in proc.stdout and "--model" in proc.stdout


def test_rd_command_end_to_end_pillow(tiny_dir, tmp_path, capsys):
    # in-process (TensorFlow is imported once per test session); the entry point is checked above
    out = tmp_path / "rd"
    assert rd.main(["--data", str(tiny_dir), "--out", str(out), "--codecs", "jpeg,webp,jpeg2000,avif"]) == 0
    captured = capsys.readouterr()
    assert "rd [" in captured.err  # progress bar
    for c in pillow_codecs.ALL:
        if c.available():
            _check_codec_json(out / f"{c.key}.json", len(c.settings))
        else:
            assert f"skipping {c.name}" in captured.err
    assert (out / "rd.png").stat().st_size > 10_000
    md = (out / "rd.md").read_text()
    assert "BD-rate" in md and "| WebP |" in md and "VTM (published)" in md
    assert "fewer than 5 scales" in md  # tiny images: documented reduced MS-SSIM
    bd = json.loads((out / "bd-rate.json").read_text())
    webp = next(r for r in bd["rows"] if r["key"] == "webp")
    assert math.isfinite(webp["vs"]["JPEG"]["psnr"])
    assert "BD-rate WebP: vs JPEG" in captured.out


def test_speed_command_end_to_end_pillow(tiny_dir, tmp_path, capsys):
    out = tmp_path / "speed"
    assert speed.main(["--data", str(tiny_dir), "--out", str(out), "--codecs", "jpeg,webp,avif",
                       "--repeat", "1", "--bpp", "0.5,1.5"]) == 0
    data = json.loads((out / "speed.json").read_text())
    assert {"date", "command", "machine", "in_process", "whole_process"} <= data.keys()
    assert [row["level"] for row in data["in_process"]] == ["0.5 bpp", "1.5 bpp"]
    for row in data["in_process"]:
        for key, s in row["codecs"].items():
            assert key in {"jpeg", "webp", "avif"}
            assert s["images"] == 2 and s["encode_s"] > 0 and s["decode_mp_per_s"] > 0
    assert "| 0.5 bpp | JPEG |" in capsys.readouterr().out
    assert (out / "speed.md").exists()


def test_run_measured_reports_child_peak_memory():
    small = speed.run_measured([sys.executable, "-c", "pass"])
    big = speed.run_measured([sys.executable, "-c", "b = bytearray(200 * 2**20); b[::4096] = b'x' * len(b[::4096])"])
    assert small["returncode"] == 0 and big["returncode"] == 0
    assert big["peak_rss_mib"] > 200 > small["peak_rss_mib"] > 1
    assert big["wall_s"] > 0
    failed = speed.run_measured([sys.executable, "-c", "import sys; sys.exit('boom')"])
    assert failed["returncode"] == 1 and "boom" in failed["stderr_tail"]


def test_content_benchmark_on_the_shipped_samples(tmp_path, capsys):
    """Every shipped non-photographic sample: never larger than lossless; flat graphics stored exactly."""
    samples = ROOT / "benchmarks" / "content_samples"
    assert content.main(["--data", str(samples), "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "content.json").read_text())
    rows = {r["image"]: r for r in data["images"]}
    assert len(rows) == 7 and data["all_within_lossless"]
    assert all(r["bytes"] <= r["smallest_lossless"] for r in rows.values())  # the bare coding too, with the container
    for name in ("line_art.png", "logo_rgba.png", "bar_chart.png", "screenshot.png", "gradient_slide.png"):
        assert rows[name]["kind"] == "lossless" and rows[name]["exact"], rows[name]
    assert "| screenshot.png |" in capsys.readouterr().out


def test_tree_memory_sums_worker_processes():
    """Two children holding 150 MiB each: the tree's peak counts both."""
    child = "b = bytearray(150 * 2**20); b[::4096] = b'x' * len(b[::4096]); import time; time.sleep(1.5)"
    parent = (
        "import subprocess, sys\n"
        f"ps = [subprocess.Popen([sys.executable, '-c', {child!r}]) for _ in range(2)]\n"
        "[p.wait() for p in ps]\n"
    )
    r = batch.run_tree_measured([sys.executable, "-c", parent], env=dict(os.environ))
    assert r["returncode"] == 0 and r["peak_rss_mib"] > 300 and r["wall_s"] > 1.5


def test_make_large_image_keeps_aspect(tmp_path, tiny_dir):
    path = speed.make_large_image(tiny_dir / "a.png", 0.03, tmp_path)
    with Image.open(path) as im:
        w, h = im.size
    assert abs(w * h - 30_000) < 500 and abs(w / h - 64 / 48) < 0.02


# ---------------------------------------------------------------- our side, with a stand-in codec

class _FakeOurCodec:
    """Stands in for ours.OurCodec: levels map to JPEG qualities, timings are filled."""

    key, name, description = ours.KEY, ours.NAME, "stand-in"

    def __init__(self, model_path=None):
        self.model_path = model_path

    def levels(self):
        return [1, 2, 3, 4]

    def encode(self, image, quality, timings=None):
        if timings is not None:
            timings.update(network=1e-4, entropy=2e-5)
        return pillow_codecs.JPEG.encode(image, 15 * quality)

    def decode(self, data, timings=None):
        if timings is not None:
            timings.update(network=1e-4, entropy=2e-5)
        return pillow_codecs.JPEG.decode(data)


def test_rd_and_speed_handle_our_codec(tiny_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(ours, "unavailable_reason", lambda: None)
    monkeypatch.setattr(ours, "OurCodec", _FakeOurCodec)
    out = tmp_path / "out"
    assert rd.main(["--data", str(tiny_dir), "--out", str(out), "--codecs", "vqcodec,jpeg,webp"]) == 0
    data = _check_codec_json(out / "vqcodec.json", 4)
    assert data["results"]["quality"] == [1, 2, 3, 4]
    bd = json.loads((out / "bd-rate.json").read_text())
    assert bd["rows"][0]["key"] == "vqcodec"
    # the stand-in *is* JPEG at qualities 15..60, so its BD-rate against JPEG is about 0
    assert abs(bd["rows"][0]["vs"]["JPEG"]["psnr"]) < 5
    assert speed.main(["--data", str(tiny_dir), "--out", str(out), "--codecs", "vqcodec,jpeg",
                       "--repeat", "1", "--no-cli"]) == 0
    sp = json.loads((out / "speed.json").read_text())
    assert [row["level"] for row in sp["in_process"]] == [1, 2, 3, 4]
    ours_row = sp["in_process"][0]["codecs"]["vqcodec"]
    assert set(ours_row["encode_split_s"]) == {"network", "entropy", "other"}
    assert "x ours" in capsys.readouterr().out


# ---------------------------------------------------------------- our side, the real codec

@pytest.fixture
def real_codec_model(tiny_model_path):
    """Model path for the real vqcodec: the tiny test model (the codec must work; no skipping)."""
    assert ours.unavailable_reason() is None
    return str(tiny_model_path)


def test_rd_and_speed_end_to_end_with_vqcodec(tiny_dir, tmp_path, real_codec_model, capsys):
    out = tmp_path / "real"
    model = ["--model", real_codec_model]
    assert rd.main(["--data", str(tiny_dir), "--out", str(out), "--codecs", "vqcodec,jpeg"] + model) == 0
    data = _check_codec_json(out / "vqcodec.json")
    assert data["key"] == "vqcodec" and data["results"]["quality"] == sorted(data["results"]["quality"])
    # Side by side: compare pages of the first image at three qualities, linked from rd.md with the plot.
    report = (out / "rd.md").read_text()
    assert "[rd.png](rd.png)" in report
    for quality in (25, 50, 75):
        page = out / f"compare-a-q{quality}.html"
        assert f"[quality {quality}](compare-a-q{quality}.html): vqcodec " in report
        assert "data:image/png;base64," in page.read_text() and "rd.png" in page.read_text()
    assert speed.main(["--data", str(tiny_dir), "--out", str(out), "--codecs", "vqcodec,jpeg", "--repeat", "1",
                       "--no-cli"] + model) == 0
    sp = json.loads((out / "speed.json").read_text())
    assert [row["level"] for row in sp["in_process"]] == data["results"]["quality"]
    split = sp["in_process"][0]["codecs"]["vqcodec"]["encode_split_s"]
    assert set(split) == {"network", "entropy", "other"} and split["network"] > 0
    assert "| vqcodec (ours) |" in capsys.readouterr().out


@pytest.mark.slow  # ten fresh interpreters, most loading TensorFlow: ~2 min
def test_whole_process_cli_runs_with_vqcodec(tiny_dir, real_codec_model):
    res = speed.whole_process(tiny_dir / "a.png", 2, real_codec_model, large_mp=0.02, repeat=1)
    for part in ("one_image_auto", "one_image_keras", "large_image_auto", "large_image_keras"):
        for step in ("compress", "decompress"):
            r = res[part][step]
            assert r["returncode"] == 0, r.get("stderr_tail")
            assert r["wall_s"] > 0 and r["peak_rss_mib"] > 50
    assert res["large_image_auto"]["pixels"] == pytest.approx(20_000, rel=0.05)
    assert res["one_image_auto"]["bytes"] > 0
    assert res["split"]["compress"]["total_s"] > 0 and res["split"]["model_load_s"] > 0


def test_recheck_reports_the_largest_difference_from_stored_results(tmp_path, capsys):
    import vqcodec
    from benchmarks.common import bpp as bpp_of, psnr as psnr_of

    rng = np.random.default_rng(0)
    img = np.clip(np.cumsum(rng.normal(0, 8, (40, 48, 3)), axis=1) + 128, 0, 255).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "a.png")
    levels = vqcodec.quality_levels()
    files = [vqcodec.compress(img, q) for q in levels]
    stored = {
        "bpp": [bpp_of(len(f), 40, 48) for f in files],
        "psnr-rgb": [psnr_of(img, np.asarray(vqcodec.decompress(f).convert("RGB"))) for f in files],
    }
    for shift, expected in ((0.0, "0.000000 bpp, 0.0000 dB"), (0.25, "0.250000 bpp, 0.0000 dB")):
        results = tmp_path / "vqcodec.json"
        results.write_text(json.dumps({"per_image": {"a.png": {**stored, "bpp": [b + shift for b in stored["bpp"]]}}}))
        assert recheck.main(["--data", str(tmp_path), "--results", str(results), "a.png"]) == 0
        assert capsys.readouterr().out.strip().endswith(f"over {len(levels)} files: {expected}")


def test_ab_speed_alternates_two_checkouts(tiny_dir, tmp_path):
    run = [sys.executable, "-m", "benchmarks.ab_speed", "--data", str(tiny_dir)]
    bad = subprocess.run(run + ["--other", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--other must be the root of another vqcodec checkout" in bad.stderr
    proc = subprocess.run(run + ["--other", str(ROOT), "--rounds", "1", "--limit", "1", "--qualities", "0,75"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert [line.split()[:3] for line in lines] == [["round", "1", "other"], ["round", "1", "this"]]
    assert all(re.search(r"q0: \d+ / \d+ ms  q75: \d+ / \d+ ms$", line) for line in lines)


def test_prior_example_runs_offline_and_writes_its_picture(tmp_path, capsys):
    """The learned-prior example, in its quick form: digits drawn here, a picture of 16 + 16 tiles, a bits table."""
    assert prior.main(["--quick", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "prior.json").read_text())
    rows = data["bits_per_grid"]
    assert data["grid_shape"] == [8, 8] and rows["uniform code"] == 64 * 5
    # Any fitted table beats a uniform code on digits (mostly background); seen: 111 and 91 of 320 bits.
    assert rows["one frequency table"] < 0.6 * rows["uniform code"]
    assert rows["the codec's context tables (ideal)"] < rows["one frequency table"]
    assert 0 < rows["PixelCNN prior"] < rows["uniform code"]
    with Image.open(tmp_path / "samples.png") as picture:
        assert picture.size == ((4 * 34 + 2) * 3 * 2 + 12, (4 * 34 + 2) * 3)
        left = np.asarray(picture)[:, : (4 * 34 + 2) * 3]
    assert left.max() == 255 and left.min() == 0  # real digits, white on black
    assert "| PixelCNN prior |" in capsys.readouterr().out


def test_fuzz_mutants_are_refused_or_decode_as_their_header_says(tmp_path, capsys):
    """A few thousand mutants of real files of every payload kind, with the shipped model: format errors or
    images of the stated size and mode, nothing else."""
    from benchmarks import fuzz

    assert fuzz.main(["--cases", "3000", "--seed", "7", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "fuzz.json").read_text())
    outcomes = results["outcomes"]
    assert sum(outcomes.values()) == 3000 and not results["defects"]
    assert all(o == "decoded" or o.startswith("refused: ") for o in outcomes), outcomes
    # Every mutation reaches both outcomes, and most refusals come past the checksum (it is recomputed).
    assert outcomes.get("decoded", 0) > 30 and outcomes["refused: CorruptDataError"] > 1000, outcomes
    assert set(results["by_mutation"]) == {"flip", "cut", "splice", "field"}
    assert len(results["files"]) == 7
    assert "| decoded |" in capsys.readouterr().out
