"""Rate-distortion benchmark: ``python -m benchmarks.rd --data DIR [--out DIR] [--model PATH] [--limit N]``.

For every quality level of vqcodec and a quality sweep of each Pillow codec this build
supports (JPEG 4:2:0, WebP method 6, JPEG 2000, AVIF), per image: bpp of the whole output
file, PSNR on 8-bit RGB of the decoded file, MS-SSIM (vqcodec.metrics.ms_ssim: tf.image.ssim_multiscale's computation, max_val=255).
Averages over images (PSNR and MS-SSIM averaged per image, like published results), BD-rates
of every curve against JPEG and WebP measured in the same run, and the published Kodak curves
in benchmarks/reference/.  Writes one JSON per codec (CompressAI layout), rd.md and rd.png.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import math
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from vqcodec.comparison import codecs as pillow_codecs
from . import ours
from .bdrate import bd_rate
from .common import (Progress, bpp, list_images, load_rgb, ms_ssim, notice, psnr, slug, to_array,
                     write_json)
from .report import REFERENCE_DIR, Curve, load_references, markdown, plot_rd

DEFAULT_OUT = Path(__file__).resolve().parent / "results"
ALL_CODECS = (ours.KEY,) + tuple(c.key for c in pillow_codecs.ALL)
ANCHORS = ("jpeg", "webp")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.rd", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="folder of images (e.g. ../shared/data/kodak)")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="output folder (default: benchmarks/results)")
    p.add_argument("--model", default=None, help="vqcodec model file (default: the shipped model)")
    p.add_argument("--limit", type=int, default=None, help="use only the first N images (sorted by name)")
    p.add_argument("--codecs", default=",".join(ALL_CODECS),
                   help=f"comma-separated subset of {','.join(ALL_CODECS)} (default: all)")
    p.add_argument("--reference", default=str(REFERENCE_DIR),
                   help="folder of published curves to draw dashed (default: benchmarks/reference)")
    p.add_argument("--bd-method", choices=("akima", "pchip"), default="akima")
    p.add_argument("--compare-image", default=None, metavar="NAME",
                   help="image of --data to show side by side (vqcodec compare pages; default: the first)")
    p.add_argument("--compare-qualities", default="25,50,75", metavar="LIST",
                   help="vqcodec qualities of those pages (default 25,50,75; empty: no pages)")
    return p.parse_args(argv)


def write_compare_pages(images: list[Path], args, keys: list[str], out_dir: Path, command: str) -> list[str]:
    """``vqcodec compare`` pages for one image at a few qualities, in ``out_dir``; their Markdown lines."""
    from vqcodec.comparison import compare, page

    name = args.compare_image or images[0].name
    path = next((p for p in images if p.name == name), None)
    if path is None:
        notice(f"--compare-image {name} is not among the images: no comparison pages")
        return []
    others = tuple(k for k in ("webp", "avif", "jpeg") if k in keys and pillow_codecs.BY_KEY[k].available())
    lines = ["## Side by side", "",
             f"`vqcodec compare` pages of {name} (every other codec at the largest file not above vqcodec's), "
             "beside the plot [rd.png](rd.png):", ""]
    for quality in [int(q) for q in args.compare_qualities.split(",") if q.strip()]:
        comparison = compare(path, quality, model=args.model, codecs=others)
        file = f"compare-{path.stem}-q{quality}.html"
        made = page.made_by(f"{command} (quality {quality}); the rate-distortion plot is rd.png beside this page")
        (out_dir / file).write_text(page.render(comparison, made=made), encoding="utf-8")
        numbers = "; ".join(f"{p.codec} {p.nbytes:,} B" + ("" if p.image is None else f", {p.psnr:.2f} dB")
                            for p in comparison.panels)
        lines.append(f"- [quality {quality}]({file}): {numbers}")
    return lines + [""]


class _Runner:
    """Uniform encode/decode for ours and Pillow's codecs."""

    def __init__(self, key, name, description, settings, param, encode, decode, kind):
        self.key, self.name, self.description = key, name, description
        self.settings, self.param, self.encode, self.decode, self.kind = settings, param, encode, decode, kind


def build_runners(keys: list[str], model_path: str | None) -> list[_Runner]:
    runners = []
    for key in keys:
        if key == ours.KEY:
            reason = ours.unavailable_reason()
            if reason is None:
                try:
                    codec = ours.OurCodec(model_path)
                    levels = codec.levels()
                except Exception as exc:  # noqa: BLE001 - report and carry on with the rest
                    reason = f"could not load the vqcodec model ({type(exc).__name__}: {exc})"
            if reason is not None:
                notice(f"skipping {ours.NAME}: {reason}")
                continue
            runners.append(_Runner(codec.key, codec.name, codec.description, levels, "quality level",
                                   codec.encode, codec.decode, "ours"))
        else:
            codec = pillow_codecs.BY_KEY[key]
            if not codec.available():
                notice(f"skipping {codec.name}: this Pillow build lacks '{codec.feature}' support")
                continue
            runners.append(_Runner(codec.key, codec.name, codec.description, list(codec.settings),
                                   codec.param, codec.encode, codec.decode, "measured"))
    return runners


def measure(images: list[Path], runners: list[_Runner]) -> dict:
    """Per codec, per setting, per image: bpp, psnr, ms-ssim.  Returns {key: {...}}."""
    total = len(images) * sum(len(r.settings) for r in runners)
    bar = Progress(total, "rd")
    out = {r.key: {"per_image": {}, "scales": set(), "seconds": 0.0} for r in runners}
    for path in images:
        image = load_rgb(path)
        ref = to_array(image)
        h, w = ref.shape[:2]
        for r in runners:
            rows = {"bpp": [], "psnr-rgb": [], "ms-ssim": []}
            for setting in r.settings:
                t0 = time.perf_counter()
                data = r.encode(image, setting)
                decoded = to_array(r.decode(data))
                out[r.key]["seconds"] += time.perf_counter() - t0
                if decoded.shape != ref.shape:
                    raise RuntimeError(f"{r.name} at {setting} decoded {path.name} to {decoded.shape}, "
                                       f"expected {ref.shape}")
                value, scales = ms_ssim(ref, decoded)
                out[r.key]["scales"].add(scales)
                rows["bpp"].append(bpp(len(data), w, h))
                rows["psnr-rgb"].append(psnr(ref, decoded))
                rows["ms-ssim"].append(value)
                bar.update(1, f"{path.name} {r.key} {setting}")
            out[r.key]["per_image"][path.name] = rows
    bar.close()
    return out


def average(per_image: dict, field: str) -> list[float]:
    arr = np.array([rows[field] for rows in per_image.values()], dtype=float)
    return [float(x) for x in arr.mean(axis=0)]


def bd_table(curves: list[Curve], anchors: list[Curve], method: str) -> list[dict]:
    rows = []
    for c in curves:
        row = {"name": c.name + (" (published)" if c.kind == "reference" else ""), "key": c.extra.get("key"),
               "vs": {}}
        for a in anchors:
            entry = {"psnr": float("nan"), "ms-ssim": float("nan")}
            if c is not a:
                entry["psnr"] = bd_rate(a.bpp, a.psnr, c.bpp, c.psnr, method)
                if c.msssim and a.msssim:
                    entry["ms-ssim"] = bd_rate(a.bpp, a.msssim_db(), c.bpp, c.msssim_db(), method)
            row["vs"][a.name] = entry
        rows.append(row)
    return rows


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    keys = [k.strip().lower() for k in args.codecs.split(",") if k.strip()]
    unknown = sorted(set(keys) - set(ALL_CODECS))
    if unknown:
        raise SystemExit(f"--codecs: unknown {', '.join(unknown)} (choose from {', '.join(ALL_CODECS)})")
    images = list_images(args.data, args.limit)
    runners = build_runners(keys, args.model)
    if not runners:
        raise SystemExit("no codec to benchmark")
    sizes = sorted({load_rgb(p).size for p in images})
    print(f"{len(images)} images from {args.data}; codecs: {', '.join(r.name for r in runners)}", file=sys.stderr)

    measured = measure(images, runners)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    date = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
    command = "python -m benchmarks.rd " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    versions = pillow_codecs.library_versions()
    curves = []
    for r in runners:
        m = measured[r.key]
        scales = sorted(m["scales"])
        curve = Curve(name=r.name, bpp=average(m["per_image"], "bpp"), psnr=average(m["per_image"], "psnr-rgb"),
                      msssim=average(m["per_image"], "ms-ssim"), kind=r.kind, settings=r.settings,
                      description=r.description,
                      extra={"key": r.key, "param": r.param, "images": len(images), "data": str(args.data),
                             "date": date, "command": command,
                             "ms-ssim-scales": scales[0] if len(scales) == 1 else scales,
                             "encode+decode-seconds": round(m["seconds"], 3),
                             "per_image": m["per_image"]})
        curves.append(curve)
        write_json(out_dir / f"{slug(r.key)}.json", curve.to_json())

    references = []
    try:
        references = load_references(args.reference)
    except (OSError, ValueError) as exc:
        notice(f"could not read reference curves from {args.reference}: {exc}")
    anchors = [c for c in curves if c.extra.get("key") in ANCHORS]
    if not anchors:
        notice("no JPEG/WebP curve measured: no BD-rate table")
    ordered = sorted(curves, key=lambda c: c.kind != "ours") + references
    bd_rows = bd_table(ordered, anchors, args.bd_method) if anchors else []

    elapsed = time.perf_counter() - started
    small = [s for s in measured.values() if any(n < 5 for n in s["scales"])]
    header = [f"date: {date}", f"command: `{command}`",
              f"data: {args.data} ({len(images)} images; sizes {', '.join(f'{w}x{h}' for w, h in sizes[:4])}"
              f"{' ...' if len(sizes) > 4 else ''})",
              "bpp = whole file bytes x 8 / (H x W); PSNR on 8-bit RGB, averaged per image; "
              "MS-SSIM: vqcodec.metrics.ms_ssim (as tf.image.ssim_multiscale, max_val=255), averaged per image",
              f"libraries: Pillow {versions['pillow']}, libjpeg-turbo {versions.get('libjpeg_turbo')}, "
              f"libwebp {versions['webp']}, OpenJPEG {versions['jpg_2000']}, libavif {versions['avif']}; "
              f"Python {platform.python_version()}",
              f"runtime: {elapsed:.0f} s"]
    if small:
        header.append("MS-SSIM used fewer than 5 scales (images under 161 px per side): "
                      "not comparable with published MS-SSIM")
    pages = []
    if any(r.key == ours.KEY for r in runners) and args.compare_qualities.strip():
        pages = write_compare_pages(images, args, keys, out_dir, command)
    report = markdown(ordered, bd_rows, header)
    if pages:
        report = report.rstrip("\n") + "\n\n" + "\n".join(pages)
    (out_dir / "rd.md").write_text(report)
    write_json(out_dir / "bd-rate.json", {"method": args.bd_method, "date": date, "command": command,
                                          "anchors": [a.name for a in anchors], "rows": bd_rows})
    plot_rd(ordered, out_dir / "rd.png",
            title=f"{Path(args.data).name}: {len(images)} images, {date[:10]}")

    print(f"wrote {out_dir}/{{rd.md,rd.png,bd-rate.json}} and one JSON per codec in {elapsed:.0f} s",
          file=sys.stderr)
    for row in bd_rows:
        if row["key"] is None:
            continue
        parts = [f"vs {a}: {_pct(v['psnr'])} (PSNR), {_pct(v['ms-ssim'])} (MS-SSIM)" for a, v in row["vs"].items()]
        print(f"BD-rate {row['name']}: " + "; ".join(parts))
    return 0


def _pct(x: float) -> str:
    return "n/a" if x is None or math.isnan(x) else f"{x:+.1f}%"


if __name__ == "__main__":
    sys.exit(main())
