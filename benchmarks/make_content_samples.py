"""Make the non-photographic sample images of ``benchmarks/content_samples/``.

    python -m benchmarks.make_content_samples [--out DIR]

A UI screenshot with text, a line chart and a bar chart (matplotlib), bilevel
line art, a scanned-text page (grey, with paper shading) and a flat-colour logo
on a transparent background. Deterministic: the same files on every run.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

DEFAULT_OUT = Path(__file__).resolve().parent / "content_samples"


def screenshot() -> Image.Image:
    img = Image.new("RGB", (800, 500), (245, 246, 248))
    d = ImageDraw.Draw(img)
    d.rectangle((0, 0, 800, 36), fill=(38, 70, 140))
    d.text((14, 11), "vqcodec - Preferences", fill="white")
    d.rectangle((0, 36, 180, 500), fill=(228, 231, 236))
    for i, name in enumerate(["General", "Compression", "Output", "Advanced", "About"]):
        d.text((18, 56 + 30 * i), name, fill=(30, 30, 30) if i != 1 else (38, 70, 140))
    for i in range(12):
        y = 60 + 32 * i
        d.text((200, y), f"Option {i + 1}: quality level for pass {i}", fill=(25, 25, 25))
        d.rounded_rectangle((640, y - 4, 760, y + 18), radius=6, outline=(150, 150, 160), fill="white")
        d.text((650, y), f"{(i * 37) % 100:>3d} %", fill=(25, 25, 25))
    return img


def line_chart() -> Image.Image:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(0)
    x = np.linspace(0, 10, 200)
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    for k in range(3):
        ax.plot(x, np.sin(x + k) * (1 + 0.2 * k) + rng.normal(0, 0.05, x.size), label=f"series {k + 1}")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("amplitude")
    ax.grid(True, alpha=0.3)
    ax.legend()
    return _figure_image(fig)


def bar_chart() -> Image.Image:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.0, 3.6), dpi=100)
    ax.bar(["JPEG", "WebP", "AVIF", "vqcodec"], [1.0, 0.63, 0.51, 0.67], color=["#888", "#48c", "#c84", "#4a4"])
    ax.set_ylabel("relative size")
    ax.set_title("Bytes at equal quality")
    return _figure_image(fig)


def _figure_image(fig) -> Image.Image:
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def line_art() -> Image.Image:
    img = Image.new("1", (512, 512), 1)
    d = ImageDraw.Draw(img)
    for i in range(0, 512, 24):
        d.line((0, i, 511 - i, 511), fill=0, width=2)
        d.ellipse((256 - i // 2, 256 - i // 2, 256 + i // 2, 256 + i // 2), outline=0)
    return img


def scanned_text() -> Image.Image:
    rng = np.random.default_rng(1)
    img = Image.new("L", (420, 540), 236)
    d = ImageDraw.Draw(img)
    words = "the quick brown fox jumps over the lazy dog while the codec keeps every stroke".split()
    for row in range(24):
        line = " ".join(words[(row * 5 + k) % len(words)] for k in range(6))
        d.text((40, 30 + 21 * row), line, fill=30)
    img = img.filter(ImageFilter.GaussianBlur(0.7))
    # paper shading: a slow gradient, as a flatbed scanner's lamp leaves it
    shade = np.linspace(-6, 6, 540)[:, None] + rng.normal(0, 0.3, (1, 420))
    return Image.fromarray(np.clip(np.asarray(img, np.float32) + shade, 0, 255).astype(np.uint8), "L")


def logo() -> Image.Image:
    img = Image.new("RGBA", (300, 300), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    d.ellipse((20, 20, 280, 280), fill=(220, 60, 50, 255))
    d.rectangle((110, 70, 190, 230), fill=(255, 255, 255, 255))
    d.polygon([(150, 40), (250, 150), (150, 260), (50, 150)], outline=(30, 30, 30, 255))
    return img


def gradient_slide() -> Image.Image:
    """A presentation background: a smooth diagonal colour gradient with a flat title bar (thousands of colours)."""
    y, x = np.mgrid[0:450, 0:800].astype(np.float32)
    t = (x / 800 + y / 450) / 2
    rgb = np.stack([30 + 180 * t, 60 + 120 * (1 - t), 160 + 80 * np.sin(np.pi * t)], -1)
    img = Image.fromarray(np.round(rgb).astype(np.uint8), "RGB")
    d = ImageDraw.Draw(img)
    d.rectangle((0, 0, 800, 60), fill=(250, 250, 250))
    d.text((24, 22), "Quarterly review", fill=(20, 20, 20))
    return img


SAMPLES = {
    "screenshot.png": screenshot,
    "line_chart.png": line_chart,
    "bar_chart.png": bar_chart,
    "line_art.png": line_art,
    "scanned_text.png": scanned_text,
    "logo_rgba.png": logo,
    "gradient_slide.png": gradient_slide,
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.make_content_samples", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(DEFAULT_OUT))
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, make in SAMPLES.items():
        make().save(out / name, optimize=True)
        print(out / name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
