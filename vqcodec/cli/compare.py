"""The compare command: pages showing images coded by vqcodec, WebP, AVIF and JPEG at the same file size."""

from __future__ import annotations

import math
import shlex
import sys
from pathlib import Path

from vqcodec.cli.checks import (
    PROG, CLIError, UsageError, byte_size, check_input, check_model, check_output, check_output_folder, check_quality,
    label, write_output,
)
from vqcodec.cli.console import own_warnings, report

def add_arguments(p) -> None:
    p.add_argument("inputs", nargs="+", metavar="IMAGE", help="image(s), or a folder of images")
    p.add_argument("-q", "--quality", type=int, default=None, metavar="Q", help="vqcodec's quality 0..100 (default 75)")
    p.add_argument("--size", type=byte_size, default=None, metavar="SIZE",
                   help="vqcodec's target file size (e.g. 40000, 40k): the best quality whose file fits")
    p.add_argument("--bpp", type=float, default=None, metavar="B", help="vqcodec's target bits per pixel")
    p.add_argument("-o", "--output", metavar="OUT", default=None,
                   help="the page (one image; default IMAGE.compare.html beside it) or the folder of pages and "
                   "index.html (several images or a folder)")
    p.add_argument("--codecs", default="webp,avif,jpeg", metavar="LIST",
                   help="codecs beside vqcodec, of webp, avif, jpeg (default: all three)")
    p.add_argument("--crop", default=None, metavar="X,Y", help="the first crop's top-left corner (default: the "
                   "most detailed part of the image)")
    p.add_argument("--zoom", type=int, choices=(1, 2, 4), default=1, help="the first crop's zoom (default 1)")
    p.add_argument("--picture", metavar="PNG", default=None,
                   help="also write a PNG of the first crop (as --crop and --zoom set it) in every version side by "
                   "side (one image only)")
    p.add_argument("-f", "--force", action="store_true", help="overwrite existing pages and pictures")
    p.add_argument("--model", metavar="PATH", default=None,
                   help="model file (.keras); default: the model shipped with vqcodec")


def _images(args) -> tuple[list[str], bool]:
    """The input images, and whether they came from a folder."""
    if len(args.inputs) == 1 and Path(args.inputs[0]).is_dir():
        from vqcodec.codec.batch import image_suffixes

        folder, suffixes = Path(args.inputs[0]), image_suffixes()
        found = sorted(str(p) for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
        if not found:
            raise CLIError(f"{folder}: no images in this folder")
        return found, True
    for inp in args.inputs:
        if Path(inp).is_dir():
            raise UsageError(f"{inp} is a folder: a folder must be the only input")
        check_input(inp)
    return list(args.inputs), False


def _check(args) -> tuple[list[str], list[tuple[str, str]], str | None, tuple[int, int] | None, tuple[str, ...]]:
    """Everything checked before any heavy import: (images, (image, page) pairs, index page, crop, codecs)."""
    from vqcodec.comparison.budget import DEFAULT_CODECS

    given = [name for name, value in (("-q/--quality", args.quality), ("--size", args.size), ("--bpp", args.bpp))
             if value is not None]
    if len(given) > 1:
        raise UsageError(f"give one of -q/--quality, --size and --bpp, not {' and '.join(given)}")
    check_quality(args.quality)
    if args.bpp is not None and not (args.bpp > 0 and math.isfinite(args.bpp)):
        raise UsageError(f"--bpp must be a positive number, got {args.bpp:g}")
    codecs = tuple(c.strip().lower() for c in args.codecs.split(",") if c.strip())
    unknown = [c for c in codecs if c not in DEFAULT_CODECS]
    if unknown or not codecs:
        raise UsageError(f"--codecs: unknown codec {unknown[0] if unknown else args.codecs!r}; "
                         f"known: {', '.join(DEFAULT_CODECS)}")
    crop = None
    if args.crop is not None:
        try:
            x, y = (int(v) for v in args.crop.split(","))
        except ValueError:
            raise UsageError(f"--crop must be X,Y (two whole numbers), got {args.crop!r}") from None
        if x < 0 or y < 0:
            raise UsageError(f"--crop must not be negative, got {args.crop}")
        crop = (x, y)
    check_model(args.model)
    images, from_folder = _images(args)
    several = from_folder or len(images) > 1
    if several and args.picture is not None:
        raise UsageError("--picture takes one image")
    if several:
        if args.output is None:
            raise UsageError("several images: give the folder for their pages with -o OUTDIR")
        check_output_folder(args.output, "output", "")
        pairs = [(img, str(Path(args.output) / f"{Path(img).stem}.html")) for img in images]
        if len({page for _, page in pairs}) != len(pairs):
            raise UsageError("two images have the same name: their pages would collide")
        index = str(Path(args.output) / "index.html")
    else:
        page = args.output or str(Path(images[0]).with_suffix(".compare.html"))
        pairs, index = [(images[0], page)], None
    for img, page in pairs:
        if Path(page).parent.is_dir():
            check_output(page, img, args.force)
    if index is not None and Path(index).parent.is_dir():
        check_output(index, "", args.force)
    if args.picture is not None:
        check_output(args.picture, images[0], args.force)
    return images, pairs, index, crop, codecs


def cmd_compare(args) -> int:
    images, pairs, index, crop, codecs = _check(args)
    from vqcodec.cli.commands import load_model
    from vqcodec.comparison import compare, page

    command = " ".join([PROG, *map(shlex.quote, args.argv)])
    made = page.made_by(command)
    with own_warnings(args.verbose):
        model = load_model(args)
    status, done = 0, []
    if index is not None:
        Path(index).parent.mkdir(parents=True, exist_ok=True)
    for img, out in pairs:
        try:
            with own_warnings(args.verbose, label(img)):
                comparison = compare(img, args.quality, size=args.size, bpp=args.bpp, model=model, codecs=codecs)
                for note in comparison.notes:
                    print(f"{PROG}: warning: {note}", file=sys.stderr)
                text = page.render(comparison, made=made, start=crop, zoom=args.zoom)
                write_output(out, lambda f: f.write(text.encode("utf-8")), True)
                if args.picture is not None:
                    picture = page.crop_picture(comparison, crop, zoom=args.zoom)
                    write_output(args.picture, lambda f: picture.save(f, format="PNG", optimize=True), True)
            done.append((Path(out).name, comparison))
            if not args.quiet:
                numbers = "; ".join(f"{p.codec} {p.nbytes:,} B" + ("" if p.image is None else f" {p.psnr:.2f} dB")
                                    for p in comparison.panels)
                print(f"{label(img)} -> {out}: {numbers}", file=sys.stderr)
        except Exception as exc:  # noqa: BLE001  (one line per failed image; the others go on)
            report(exc, args.verbose, label(img))
            status = 1
    if index is not None and done:
        html = page.render_index(done, made=made)
        write_output(index, lambda f: f.write(html.encode("utf-8")), True)
        if not args.quiet:
            print(f"{len(done)} pages -> {index}", file=sys.stderr)
    return status
