"""vqcodec compare: the budget search, the comparison's numbers, the page, the command, and the page in a browser."""

from __future__ import annotations

import html.parser
import io
import math
import os
import shutil

import numpy as np
import pytest
from PIL import Image

import vqcodec
from vqcodec import cli
from vqcodec.comparison import codecs as pillow_codecs
from vqcodec.comparison import page
from vqcodec.comparison.budget import fit_budget
from vqcodec.metrics import ms_ssim, psnr


def _photo(w: int = 160, h: int = 120, seed: int = 0) -> Image.Image:
    """Smooth shapes plus texture: something every codec spends bytes on."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([128 + 100 * np.sin(xx / 9.0 + c) * np.cos(yy / 13.0 - c) for c in range(3)], -1)
    noise = rng.normal(0, 12, (h, w, 3))
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8), "RGB")


def _screenshot(w: int = 120, h: int = 80) -> Image.Image:
    img = Image.new("RGB", (w, h), (245, 245, 245))
    for k in range(6):
        img.paste((30 * k, 90, 200 - 20 * k), (8 + 18 * k, 10, 20 + 18 * k, 70))
    return img


def _rgba() -> Image.Image:
    img = _photo(96, 72, seed=1).convert("RGBA")
    img.putalpha(Image.linear_gradient("L").resize((96, 72)))
    return img


@pytest.mark.parametrize("key", ["webp", "jpeg", "avif"])
def test_the_budget_search_finds_the_largest_file_that_fits(key):
    codec = pillow_codecs.BY_KEY[key]
    if not codec.available():
        pytest.fail(f"this Pillow lacks {codec.name}: the bench extra's Pillow has it")
    img = _photo()
    for budget in (1500, 4000, 9000):
        q, data = fit_budget(img, codec, budget)
        assert q is not None and len(data) <= budget, (key, budget, q, len(data))
        assert data == codec.encode(img, q)
        if q < 100:
            assert len(codec.encode(img, q + 1)) > budget, (key, budget, q)  # the next quality step would not fit
    q, smallest = fit_budget(img, codec, 10)
    assert q is None and len(smallest) > 10 and smallest == codec.encode(img, 0)


@pytest.mark.parametrize("make", [_photo, _screenshot, _rgba], ids=["photo", "screenshot", "rgba"])
def test_every_panel_fits_the_budget_and_its_numbers_are_its_images(make):
    img = make()
    comparison = vqcodec.compare(img, 90)
    first = comparison.panels[0]
    assert first.codec == "vqcodec" and comparison.budget == first.nbytes == len(first.data)
    assert [p.codec for p in comparison.panels] == ["vqcodec", "WebP", "AVIF", "JPEG"]
    reference = np.asarray(img.convert("RGB"))
    for p in comparison.panels:
        if p.image is None:  # JPEG's smallest file can be over a tiny budget: said, and no image shown
            assert "over the budget" in p.note and p.nbytes > comparison.budget and math.isnan(p.psnr)
            continue
        assert p.nbytes == len(p.data) <= comparison.budget, p
        assert p.bpp == pytest.approx(8 * p.nbytes / (img.width * img.height))
        decoded = np.asarray(p.image.convert("RGB"))
        assert p.psnr == pytest.approx(psnr(reference, decoded))
        assert p.ms_ssim == pytest.approx(ms_ssim(reference, decoded)[0])
    if img.mode == "RGBA":  # vqcodec, WebP and AVIF keep the alpha plane
        kept = [p for p in comparison.panels[:3] if p.image is not None]
        assert len(kept) >= 2 and all(p.image.mode == "RGBA" for p in kept), [p.codec for p in kept]


def test_targets_size_and_bpp():
    img = _photo()
    by_size = vqcodec.compare(img, size=3000, codecs=("webp",))
    assert by_size.budget <= 3000 and all(p.nbytes <= 3000 for p in by_size.panels)
    by_bpp = vqcodec.compare(img, bpp=1.0, codecs=("jpeg",))
    assert by_bpp.budget <= img.width * img.height / 8
    with pytest.raises(ValueError, match="one of quality, size and bpp"):
        vqcodec.compare(img, 50, size=100)
    with pytest.raises(ValueError, match="unknown codec 'gif'"):
        vqcodec.compare(img, codecs=("gif",))
    with pytest.raises(ValueError, match="unknown codec 'jpeg2000'; known: webp, avif, jpeg"):
        vqcodec.compare(img, codecs=("jpeg2000",))  # its setting is a rate, not a quality to search


class _Sources(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.sources, self.links = [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("img", "script", "link") and (attrs.get("src") or attrs.get("href")):
            self.sources.append(attrs.get("src") or attrs.get("href"))
        if tag == "a":
            self.links.append(attrs.get("href"))


def test_the_page_is_self_contained_and_holds_the_numbers():
    comparison = vqcodec.compare(_photo(), 50)
    text = page.render(comparison, made=page.made_by("vqcodec compare photo.png -q 50"))
    parsed = _Sources()
    parsed.feed(text)
    # The overview, the original's crop and one crop per shown panel, all embedded PNGs: nothing to fetch.
    shown = [p for p in comparison.panels if p.image is not None]
    assert len(parsed.sources) == 2 + len(shown)
    assert all(s.startswith("data:image/png;base64,") for s in parsed.sources)
    assert "http://" not in text and "https://" not in text
    for p in shown:
        assert f"{p.nbytes:,}" in text and f"{p.psnr:.2f}" in text and f"{p.ms_ssim:.4f}" in text
    assert "vqcodec compare photo.png -q 50" in text and f"vqcodec {vqcodec.__version__}" in text
    # The crop panel shows exactly the decoded pixels.
    first = text.index('data-codec="vqcodec"')
    uri = text[text.index("data:image/png;base64,", first):].split('"')[0]
    import base64

    shown_pixels = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    np.testing.assert_array_equal(np.asarray(shown_pixels), np.asarray(comparison.panels[0].image))


def test_a_codec_pillow_lacks_is_named_in_one_line_and_the_page_still_made(monkeypatch, tmp_path, capsys):
    check = pillow_codecs.features.check
    monkeypatch.setattr(pillow_codecs.features, "check", lambda name: name != "avif" and check(name))
    comparison = vqcodec.compare(_photo(), 50)
    assert [p.codec for p in comparison.panels] == ["vqcodec", "WebP", "JPEG"]
    assert comparison.notes == ["AVIF: this Pillow has no AVIF support; left out"]
    _photo().save(tmp_path / "photo.png")
    assert cli.main(["compare", str(tmp_path / "photo.png"), "-q", "50"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "vqcodec: warning: AVIF: this Pillow has no AVIF support; left out"
    assert err[1].startswith(f"{tmp_path / 'photo.png'} -> {tmp_path / 'photo.compare.html'}: vqcodec ")
    assert "AVIF" not in (tmp_path / "photo.compare.html").read_text().split("<table>")[1]


def test_the_command_on_a_folder_writes_a_page_each_and_an_index(tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    _photo().save(src / "photo.png")
    _screenshot().save(src / "screen.png")
    _rgba().save(src / "logo.png")
    (src / "notes.txt").write_text("not an image")
    out = tmp_path / "pages"
    assert cli.main(["compare", str(src), "-o", str(out), "--codecs", "webp,jpeg", "--quiet"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["index.html", "logo.html", "photo.html", "screen.html"]
    parsed = _Sources()
    parsed.feed((out / "index.html").read_text())
    assert sorted(parsed.links) == ["logo.html", "photo.html", "screen.html"]
    assert capsys.readouterr().err == ""
    # Without --force nothing is overwritten; with it, the run is redone.
    assert cli.main(["compare", str(src), "-o", str(out), "--quiet"]) == 1
    assert "exists (use --force to overwrite)" in capsys.readouterr().err
    # A crop picture for one image: the original and each shown panel, side by side.
    picture = tmp_path / "crops.png"
    assert cli.main(["compare", str(src / "photo.png"), "-o", str(tmp_path / "p.html"), "--picture", str(picture),
                     "--crop", "8,8", "--codecs", "webp", "--quiet"]) == 0
    with Image.open(picture) as im:  # the page's 256-px crop from (8, 8) of a 160x120 image: 152x112, 3 tiles
        assert im.size == (3 * (152 + 8) + 8, 112 + 52)


def test_command_errors_are_one_line(tmp_path, capsys):
    _photo().save(tmp_path / "a.png")
    _photo().save(tmp_path / "b.png")
    for argv, message, code in [
        (["compare", str(tmp_path / "a.png"), "-q", "50", "--bpp", "1"], "give one of -q/--quality, --size and --bpp",
         2),
        (["compare", str(tmp_path / "a.png"), "--codecs", "webp,gif"], "--codecs: unknown codec 'gif'", 2),
        (["compare", str(tmp_path / "a.png"), "--bpp", "-1"], "--bpp must be a positive number", 2),
        (["compare", str(tmp_path / "a.png"), "--crop", "1"], "--crop must be X,Y", 2),
        (["compare", str(tmp_path / "a.png"), str(tmp_path / "b.png")], "give the folder for their pages with -o",
         2),
        (["compare", str(tmp_path / "missing.png")], "missing.png", 1),
        (["compare", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "-o", str(tmp_path / "x"), "--picture",
          str(tmp_path / "p.png")], "--picture takes one image", 2),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            raise SystemExit(cli.main(argv))
        err = capsys.readouterr().err
        assert exit_info.value.code == code, (argv, err)
        assert err.count("\n") == 1 and err.startswith("vqcodec: error: ") and message in err, err
    assert not any(p.suffix == ".html" for p in tmp_path.iterdir())


# -- in a real browser ----------------------------------------------------------------------------------------

BROWSER_HOWTO = ("headless Chromium is not installed: apt-get install chromium chromium-driver "
                 "(VQCODEC_BROWSER_TESTS=1 makes this test required)")


def _browser():
    """A headless Chromium driven by Selenium; a skip (or, with VQCODEC_BROWSER_TESTS=1, a failure) without it."""
    required = os.environ.get("VQCODEC_BROWSER_TESTS") == "1"
    chromium = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)),
                    None)
    driver = shutil.which("chromedriver")
    if chromium is None or driver is None:
        if required:
            pytest.fail(BROWSER_HOWTO)
        pytest.skip(BROWSER_HOWTO)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,1000"):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(driver), options=options)


def test_the_page_in_headless_chromium(tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains

    img = _photo(400, 300)
    path = tmp_path / "photo.html"
    path.write_text(page.render(vqcodec.compare(img, 50), made="test", start=(0, 0)), encoding="utf-8")
    browser = _browser()
    try:
        browser.get(path.as_uri())
        widths = browser.execute_script(
            "return Array.from(document.images).map(i => i.complete ? i.naturalWidth : 0)")
        assert len(widths) >= 4 and all(w == 400 for w in widths), widths  # every image decoded
        state = ("return Array.from(document.querySelectorAll('.crop')).map(c => "
                 "[c.dataset.x, c.dataset.y, c.dataset.zoom, c.querySelector('img').style.transform])")
        before = browser.execute_script(state)
        assert len(set(map(tuple, before))) == 1 and before[0][:3] == ["0", "0", "1"]
        # A click on the overview moves every crop together ...
        overview = browser.find_element("id", "overview-img")
        ActionChains(browser).move_to_element_with_offset(overview, 60, 40).click().perform()
        moved = browser.execute_script(state)
        assert len(set(map(tuple, moved))) == 1 and moved[0] != before[0], moved
        # ... and the zoom key zooms them all.
        browser.find_element("tag name", "body").send_keys("2")
        zoomed = browser.execute_script(state)
        assert len(set(map(tuple, zoomed))) == 1 and zoomed[0][2] == "2" and "scale(2)" in zoomed[0][3], zoomed
        shot = np.asarray(Image.open(io.BytesIO(browser.get_screenshot_as_png())).convert("L"), dtype=np.float64)
        assert shot.std() > 20, shot.std()  # not blank: images and text on the page
    finally:
        browser.quit()
