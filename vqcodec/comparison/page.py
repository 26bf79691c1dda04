"""A comparison as one self-contained HTML page (images embedded, no network), an index page, and a crop picture.

The page is ``page.html`` (a ``string.Template`` in the package) filled in
here: every image is a PNG data URI of the decoded pixels, so what the page
shows is what each decoder produced, and a few lines of plain JavaScript move
one crop across all panels together.
"""

from __future__ import annotations

import base64
import html
import io
import math
import string
from importlib.resources import files

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from vqcodec.comparison.budget import Comparison

__all__ = ["render", "render_index", "crop_picture", "default_crop", "made_by", "CROP"]

#: Side of each panel's crop window, in CSS pixels.
CROP = 256


def _png_uri(img: Image.Image) -> str:
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=3)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _number(value: float, digits: int) -> str:
    if math.isnan(value):
        return "–"
    return "∞ (exact)" if math.isinf(value) else f"{value:.{digits}f}"


def default_crop(original: Image.Image, side: int = CROP) -> tuple[int, int]:
    """Top-left corner of the ``side`` x ``side`` window with the most detail (gradient energy): where codecs
    differ most."""
    grey = np.asarray(original.convert("L"), dtype=np.float32)
    energy = np.zeros_like(grey)
    energy[:, 1:] += np.abs(np.diff(grey, axis=1))
    energy[1:, :] += np.abs(np.diff(grey, axis=0))
    h, w = grey.shape
    side_y, side_x = min(side, h), min(side, w)
    total = np.pad(energy.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    best, corner = -1.0, (0, 0)
    for y in range(0, h - side_y + 1, max(1, side_y // 4)):
        for x in range(0, w - side_x + 1, max(1, side_x // 4)):
            e = total[y + side_y, x + side_x] - total[y, x + side_x] - total[y + side_y, x] + total[y, x]
            if e > best:
                best, corner = e, (x, y)
    return corner


def _label(comparison: Comparison, panel) -> str:
    if panel.image is None:
        return f"<b>{html.escape(panel.codec)}</b>"
    return (
        f"<b>{html.escape(panel.codec)}</b> · {html.escape(panel.setting)}<br>"
        f"{panel.nbytes:,} bytes · {panel.bpp:.3f} bpp<br>"
        f"PSNR {_number(panel.psnr, 2)} dB · MS-SSIM {_number(panel.ms_ssim, 4)}"
    )


def made_by(command: str) -> str:
    """How a page was made: the command and the versions of vqcodec, Pillow and its codecs."""
    from vqcodec import __version__
    from vqcodec.comparison.codecs import library_versions

    v = library_versions()
    return (
        f"Made by: {command} — vqcodec {__version__}, Pillow {v['pillow']} (libwebp {v['webp']}, "
        f"libavif {v['avif']}, libjpeg-turbo {v.get('libjpeg_turbo') or v['jpg']})."
    )


def render(comparison: Comparison, *, made: str, start: tuple[int, int] | None = None, zoom: int = 1) -> str:
    """The page of ``comparison``; ``made`` says how it was made (command and versions), ``start`` is the first
    crop's top-left corner (default: :func:`default_crop`)."""
    original = comparison.original
    x, y = start if start is not None else default_crop(original, CROP // zoom)
    panels = [
        '<div class="panel"><div class="label"><b>original</b><br>'
        f"{original.width}x{original.height} {original.mode}</div>"
        f'<div class="crop" data-codec="original"><img src="{_png_uri(original)}" alt="original"></div></div>'
    ]
    for panel in comparison.panels:
        if panel.image is None:
            body = f'<div class="missing">{html.escape(panel.note)}</div>'
        else:
            body = (f'<div class="crop" data-codec="{html.escape(panel.codec)}">'
                    f'<img src="{_png_uri(panel.image)}" alt="{html.escape(panel.codec)}"></div>')
        panels.append(f'<div class="panel"><div class="label">{_label(comparison, panel)}</div>{body}</div>')
    rows = [
        f"<tr><td>{html.escape(p.codec)}</td><td class=\"text\">{html.escape(p.setting)}</td><td>{p.nbytes:,}</td>"
        f"<td>{p.bpp:.4f}</td><td>{_number(p.psnr, 2)}</td><td>{_number(p.ms_ssim, 4)}</td>"
        f"<td class=\"text\">{html.escape(p.note)}</td></tr>"
        for p in comparison.panels
    ]
    notes = "".join(f"<p>{html.escape(n)}</p>" for n in comparison.notes)
    template = string.Template((files("vqcodec.comparison") / "page.html").read_text(encoding="utf-8"))
    return template.substitute(
        title=html.escape(f"{comparison.name}: vqcodec beside WebP, AVIF and JPEG"),
        subtitle=html.escape(
            f"{original.width}x{original.height} {original.mode}; every file at most {comparison.budget:,} bytes "
            "(vqcodec's), each other codec at the largest file that fits"
        ),
        original_src=_png_uri(original),
        panels="\n".join(panels),
        rows="\n".join(rows),
        notes=notes,
        made=html.escape(made),
        width=original.width,
        height=original.height,
        crop=CROP,
        start_x=int(x),
        start_y=int(y),
        start_zoom=int(zoom),
    )


def render_index(entries: list[tuple[str, Comparison]], *, made: str) -> str:
    """A page linking each comparison's page (``(file name, comparison)``), with its numbers."""
    items = []
    for link, comparison in entries:
        cells = " · ".join(
            f"{html.escape(p.codec)} {p.nbytes:,} B, {_number(p.psnr, 2)} dB" for p in comparison.panels
        )
        items.append(f'<li><a href="{html.escape(link)}">{html.escape(comparison.name)}</a>: {cells}</li>')
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>vqcodec comparisons</title>'
        "<style>body{font:14px/1.5 system-ui,sans-serif;margin:16px}</style></head><body>"
        f"<h1>vqcodec comparisons</h1><ul>{''.join(items)}</ul><p>{html.escape(made)}</p></body></html>\n"
    )


def crop_picture(comparison: Comparison, start: tuple[int, int] | None = None, zoom: int = 1) -> Image.Image:
    """The page's first crop (``CROP // zoom`` image pixels from ``start``, default :func:`default_crop`) of the
    original and of every panel's image, enlarged ``zoom`` times, side by side, each labelled with codec, bytes
    and PSNR (for a README or a report)."""
    original = comparison.original
    side = CROP // zoom
    x, y = start if start is not None else default_crop(original, side)
    box = (x, y, min(x + side, original.width), min(y + side, original.height))
    tiles = [("original", "", original)] + [
        (p.codec, f"{p.nbytes:,} B, {_number(p.psnr, 2)} dB", p.image) for p in comparison.panels if p.image
    ]
    cell = ((box[2] - box[0]) * zoom, (box[3] - box[1]) * zoom)
    font = ImageFont.load_default(size=14)
    sheet = Image.new("RGB", (len(tiles) * (cell[0] + 8) + 8, cell[1] + 52), "white")
    draw = ImageDraw.Draw(sheet)
    for k, (name, numbers, img) in enumerate(tiles):
        left = 8 + k * (cell[0] + 8)
        tile = img.convert("RGB").crop(box).resize(cell, Image.Resampling.NEAREST)
        sheet.paste(tile, (left, 8))
        draw.text((left, cell[1] + 12), name, fill="black", font=font)
        draw.text((left, cell[1] + 30), numbers, fill="#444", font=font)
    return sheet
