"""Content benchmark: ``python -m benchmarks.content --data DIR [--quality Q] [--model PATH]``.

Compresses every image of a folder with vqcodec at the default quality (or
``--quality``) and with Pillow's lossless WebP and PNG, and reports per image:
bytes, bpp and PSNR of vqcodec, the payload kind it chose, and the lossless
sizes, and the quick lossless coding the encoder's check uses. The bar: no vqcodec file is larger than the smallest lossless coding
plus the container's bytes (its header and checksum); the table also says
where a file is no larger than the bare lossless coding. Writes
content.json and content.md.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from .common import list_images, write_json

DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def lossless_sizes(img: Image.Image) -> dict:
    """Pillow's lossless WebP (defaults) and optimised PNG, in bytes."""
    out = {}
    for key, fmt, kw in (("webp_lossless", "WEBP", {"lossless": True}), ("png", "PNG", {"optimize": True})):
        buf = io.BytesIO()
        (img.convert("RGBA" if "A" in img.mode else "RGB") if fmt == "WEBP" else img).save(buf, format=fmt, **kw)
        out[key] = len(buf.getvalue())
    return out


def measure(path: Path, model, quality: int | None) -> dict:
    import bitstream
    from vqcodec import codec
    from vqcodec.codec import lossless
    from vqcodec.codec.images import load_image
    from vqcodec.metrics import psnr

    img = load_image(path)
    data = codec.compress(img, quality, model)
    header = bitstream.read_header(data)
    decoded = codec.decompress(data, model)
    exact = np.array_equal(np.asarray(decoded), np.asarray(img))
    db = None if exact else psnr(np.asarray(img.convert("RGB")), np.asarray(decoded.convert("RGB")))
    container = len(bitstream.pack(bitstream.Header(None, img.width, img.height, img.mode, kind="lossless"), b""))
    sizes = lossless_sizes(img)
    smallest = min(sizes.values())
    quick = lossless.quick_size(img)
    return {
        "image": path.name,
        "size": [img.width, img.height],
        "mode": img.mode,
        "bytes": len(data),
        "bpp": 8 * len(data) / (img.width * img.height),
        "psnr": db,
        "exact": exact,
        "kind": header.kind,
        "coding": codec.describe_coding(data),
        **sizes,
        "smallest_lossless": smallest,
        "quick_lossless": quick,
        "container_bytes": container,
        "ok": len(data) <= smallest + container,
        "no_larger_than_bare_lossless": len(data) <= smallest,
    }


def table(result: dict) -> str:
    lines = [
        f"# Content benchmark ({result['date']}, quality {result['quality']})",
        "",
        "| image | size | vqcodec bytes | bpp | PSNR dB | chosen | lossless WebP | PNG | quick lossless | within lossless | ≤ bare lossless |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["images"]:
        db = "exact" if r["exact"] else f"{r['psnr']:.2f}"
        lines.append(
            f"| {r['image']} | {r['size'][0]}x{r['size'][1]} {r['mode']} | {r['bytes']} | {r['bpp']:.3f} | {db} | "
            f"{r['coding']} | {r['webp_lossless']} | {r['png']} | {r['quick_lossless']} | {'yes' if r['ok'] else 'NO'} | "
            f"{'yes' if r['no_larger_than_bare_lossless'] else 'no'} |"
        )
    lines += [
        "",
        "'within lossless': vqcodec bytes <= the smaller lossless coding + the container's bytes;",
        "'≤ bare lossless': vqcodec bytes <= the smaller lossless coding alone;",
        "'quick lossless': the smaller of deflate level 1 and WebP's lossless method 1 (the encoder's cheap check).",
        "",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.content", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="folder of images (e.g. benchmarks/content_samples)")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="output folder (default: benchmarks/results)")
    p.add_argument("--model", default=None, help="vqcodec model file (default: the shipped model)")
    p.add_argument("--quality", type=int, default=None, help="quality 0..100 (default: the codec's default)")
    p.add_argument("--limit", type=int, default=None, help="use only the first N images (sorted by name)")
    args = p.parse_args(argv)
    from vqcodec import codec
    from vqcodec.quality import DEFAULT_QUALITY

    model = codec.load_model(args.model)
    quality = args.quality if args.quality is not None else DEFAULT_QUALITY
    rows = [measure(path, model, quality) for path in list_images(args.data, args.limit)]
    result = {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python -m benchmarks.content " + " ".join(sys.argv[1:] if argv is None else argv),
        "quality": quality,
        "images": rows,
        "all_within_lossless": all(r["ok"] for r in rows),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "content.json", result)
    (out / "content.md").write_text(table(result))
    print(table(result))
    return 0 if result["all_within_lossless"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
