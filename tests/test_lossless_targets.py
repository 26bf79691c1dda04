"""Never worse than lossless, and compressing to a size or PSNR target."""

from __future__ import annotations

import io
import warnings
from importlib.resources import files

import numpy as np
import pytest
from PIL import Image, ImageDraw

import bitstream
from vqcodec import cli
from vqcodec.cli import checks
from vqcodec import codec
from vqcodec.codec import lossless
from vqcodec.metrics import psnr

SAMPLE = files("vqcodec") / "samples" / "endeavour.png"


@pytest.fixture(scope="module")
def model():
    return codec.load_model()  # the shipped model: real rates and PSNRs


@pytest.fixture(scope="module")
def photo():
    with SAMPLE.open("rb") as f:
        return Image.open(f).convert("RGB")


def _screenshot() -> Image.Image:
    img = Image.new("RGB", (320, 200), (246, 246, 246))
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, 0, 320, 24), fill=(40, 70, 140))
    draw.text((8, 6), "Settings - vqcodec", fill="white")
    for i in range(7):
        draw.text((12, 34 + 22 * i), f"Option {i}: enabled   value = {i * 37}", fill=(20, 20, 20))
    draw.rectangle((230, 40, 310, 180), outline=(0, 120, 60), width=2)
    return img


def _container(img: Image.Image) -> int:
    """The bytes a lossless .vqc file adds to its payload (header, length, CRC)."""
    return len(bitstream.pack(bitstream.Header(None, img.width, img.height, "RGB", kind="lossless"), b"x" * 1000)) - 1000


def _smallest_lossless(img: Image.Image) -> int:
    """Pillow's lossless WebP and optimised PNG, the smaller, plus the container's bytes."""
    sizes = []
    for fmt, kw in (("WEBP", {"lossless": True}), ("PNG", {"optimize": True})):
        buf = io.BytesIO()
        img.save(buf, format=fmt, **kw)
        sizes.append(len(buf.getvalue()))
    return min(sizes) + _container(img)


def _quality_psnr(model, image, q) -> float:
    return psnr(np.asarray(image), np.asarray(codec.decompress(codec.compress(image, q, model, lossless=False), model)))


def test_a_screenshot_is_never_larger_than_lossless(model):
    """Each level keeps the smaller of learned and lossless; at the top level lossless wins, exact."""
    shot = _screenshot()
    for q in codec.quality_levels(model):
        data = codec.compress(shot, q, model)
        assert len(data) <= _smallest_lossless(shot)
        learned = codec.compress(shot, q, model, lossless=False)
        assert len(data) <= len(learned)
    data = codec.compress(shot, codec.quality_levels(model)[-1], model)
    assert bitstream.read_header(data).kind == "lossless"
    assert np.array_equal(np.asarray(codec.decompress(data)), np.asarray(shot))  # no model needed either
    assert codec.describe_coding(data).startswith("lossless (")


def test_bilevel_line_art_goes_straight_to_lossless(model):
    art = Image.new("1", (256, 256), 1)
    draw = ImageDraw.Draw(art)
    for i in range(0, 256, 16):
        draw.line((0, i, 255, 255 - i), fill=0)
    data = codec.compress(art, model=model)
    out = codec.decompress(data, model)
    assert bitstream.read_header(data).kind == "lossless" and out.mode == "L"
    assert np.array_equal(np.asarray(out), np.asarray(art.convert("L")))
    assert len(data) <= _smallest_lossless(art.convert("L"))



def test_a_smooth_gradient_is_never_larger_than_lossless(model):
    """Deflate codes a gradient hundreds of times larger than WebP does: the check must not miss it."""
    y, x = np.mgrid[0:256, 0:384]
    ramp = Image.fromarray(np.stack([x // 2, y, (x + y) // 3], -1).astype(np.uint8))
    assert not lossless.few_colours(ramp)
    for q in (codec.quality_levels(model)[0], codec.quality_levels(model)[-1]):
        data = codec.compress(ramp, q, model)
        assert len(data) <= _smallest_lossless(ramp)
        assert len(data) <= len(codec.compress(ramp, q, model, lossless=False))


def test_the_quick_check_codes_a_quarter_of_the_rows_and_tracks_the_whole_image(monkeypatch):
    rng = np.random.default_rng(3)
    y, x = np.mgrid[0:300, 0:200]
    texture = np.stack([x + y, (x * y) % 251, rng.integers(0, 40, x.shape)], -1).astype(np.uint8)
    img = Image.fromarray(texture)
    parts, scale = lossless._sample(img)
    rows = sum(p.height for p in parts)
    assert rows == 80 and scale == pytest.approx(300 / 80)  # 16 of every 64 rows: five bands
    whole = min(lossless._deflate_size([img]), lossless._fast_webp_size([img]))
    assert 0.75 * whole < lossless.quick_size(img) < 1.33 * whole
    # Stacks stay under the strip size, so memory stays small on large images.
    monkeypatch.setattr(lossless, "_STRIP_PIXELS", 200 * 40)
    parts, _ = lossless._sample(img)
    assert len(parts) > 1 and all(p.width * p.height <= 200 * 40 for p in parts) and sum(p.height for p in parts) == 80
    # Short images are coded whole.
    assert lossless._sample(img.crop((0, 0, 200, 100)))[1] == 1.0


def test_images_beyond_webp_s_size_limit_are_stored_as_png(model):
    wide = Image.new("L", (lossless.WEBP_MAX_DIMENSION + 100, 24), 255)
    ImageDraw.Draw(wide).line((0, 0, wide.width - 1, 23), fill=0)
    data = codec.compress(wide, model=model)
    assert codec.describe_coding(data) == "lossless (PNG)"
    assert np.array_equal(np.asarray(codec.decompress(data, model)), np.asarray(wide))

def test_lossless_alpha_is_bit_exact(model):
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (24, 40, 4), dtype=np.uint8)
    rgba[:8, :, 3] = 0  # pixels under full transparency are kept too
    data = codec.compress(rgba, model=model, lossless=True)
    out = codec.decompress(data, model)
    assert out.mode == "RGBA" and np.array_equal(np.asarray(out), rgba)


def test_a_photo_stays_learned(model, photo):
    for q in codec.quality_levels(model):
        data = codec.compress(photo, q, model)
        assert bitstream.read_header(data).kind == "ecvq"
        assert data == codec.compress(photo, q, model, lossless=False)


def test_size_target_is_met_and_no_higher_quality_fits(model, photo):
    files = [codec.compress(photo, q, model, lossless=False) for q in codec.quality_levels(model)]
    budget = (len(files[2]) + len(files[3])) // 2
    data = codec.compress(photo, model=model, size=budget)
    assert len(data) <= budget
    point = files.index(data)  # the operating point, 0 .. M - 1
    assert point == 2 and len(files[point + 1]) > budget  # the next point does not fit


def test_psnr_target_is_met_and_no_lower_quality_meets_it(model, photo):
    files = [codec.compress(photo, q, model, lossless=False) for q in codec.quality_levels(model)]
    psnrs = [_quality_psnr(model, photo, q) for q in codec.quality_levels(model)]
    target = (psnrs[3] + psnrs[4]) / 2
    data = codec.compress(photo, model=model, psnr=target)
    point = files.index(data)
    assert psnr(np.asarray(photo), np.asarray(codec.decompress(data, model))) >= target
    assert point == 4 and psnrs[point - 1] < target  # the point below misses it


def test_unreachable_psnr_goes_lossless(model):
    shot = _screenshot()
    data = codec.compress(shot, model=model, psnr=60)
    assert bitstream.read_header(data).kind == "lossless"


def test_impossible_size_warns_or_fails_with_strict(model, photo, tmp_path, capsys):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = codec.compress(photo, model=model, size=50)
    assert [type(w.message) for w in caught] == [codec.TargetNotMetWarning]
    assert caught[0].filename == __file__  # the warning points at the caller's line
    assert data == codec.compress(photo, 0, model, lossless=False)  # the closest: the lowest quality's file
    smallest, level = len(data), bitstream.read_header(data).quality
    with pytest.raises(codec.TargetNotMetError, match="size 50 bytes cannot be met"):
        codec.compress(photo, model=model, size=50, strict=True)

    photo.save(tmp_path / "p.png")
    assert cli.main(["compress", str(tmp_path / "p.png"), "--size", "50"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0] == (
        f"vqcodec: warning: {tmp_path / 'p.png'}: size 50 bytes cannot be met: "
        f"the smallest file is {smallest} bytes (the lowest level); wrote that"
    )
    assert len(err) == 2 and f"level {level} at " in err[1] and f"{smallest} bytes" in err[1]
    (tmp_path / "p.vqc").unlink()
    assert cli.main(["compress", str(tmp_path / "p.png"), "--size", "50", "--strict"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("vqcodec: error: ") and "cannot be met" in err[0]
    assert not (tmp_path / "p.vqc").exists()



def test_cli_psnr_target_reports_what_it_reached(model, photo, tmp_path, capsys):
    photo.save(tmp_path / "p.png")
    assert cli.main(["compress", str(tmp_path / "p.png"), "--psnr", "27"]) == 0
    [line] = capsys.readouterr().err.splitlines()
    reached = float(line.rsplit(", ", 1)[1].removesuffix(" dB"))
    decoded = codec.decompress((tmp_path / "p.vqc").read_bytes(), model)
    assert reached == pytest.approx(psnr(np.asarray(photo), np.asarray(decoded)), abs=0.01)
    assert reached >= 27 and "bpp" in line

def test_cli_target_arguments_are_checked_early(tmp_path, capsys):
    _screenshot().save(tmp_path / "s.png")
    for args, message in (
        (["--size", "40k", "-q", "3"], "not both"),
        (["--size", "40k", "--psnr", "30"], "not both"),
        (["--strict"], "--strict needs --size or --psnr"),
        (["--psnr", "300"], "above 0 and below 200 dB"),
        (["--lossless", "-q", "3"], "--lossless has no quality level"),
    ):
        assert cli.main(["compress", str(tmp_path / "s.png"), *args]) == 2  # usage errors
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["compress", str(tmp_path / "s.png"), "--size", "lots"])
    assert checks.byte_size("40k") == 40_000 and checks.byte_size("1.5M") == 1_500_000 and checks.byte_size("512") == 512


def test_info_names_the_payload_kind(model, tmp_path, capsys):
    (tmp_path / "s.vqc").write_bytes(codec.compress(_screenshot(), model=model))
    assert cli.main(["info", str(tmp_path / "s.vqc")]) == 0
    assert ": 320x200 RGB, lossless (" in capsys.readouterr().out


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "RGB", "RGBA", "I;16"])
def test_lossless_round_trips_every_coded_mode_exactly(model, mode):
    from vqcodec.codec.images import to_coded_mode

    rng = np.random.default_rng(3)
    base = Image.fromarray(rng.integers(0, 256, (20, 30, 4), dtype=np.uint8), "RGBA")
    img = base.convert("I;16") if mode == "I;16" else base.convert(mode)
    expected = to_coded_mode(img)
    out = codec.decompress(codec.compress(img, model=model, lossless=True), model)
    assert out.mode == expected.mode and np.array_equal(np.asarray(out), np.asarray(expected))


def test_a_lossless_file_has_no_indices(model):
    data = codec.compress(_screenshot(), model=model, lossless=True)
    assert bitstream.read_header(data).kind == "lossless"
    with pytest.raises(ValueError, match="a lossless file holds pixels, not code indices"):
        codec.read_indices(data, model)
