"""Recheck a stored vqcodec curve: ``python -m benchmarks.recheck --data DIR [--results FILE] [IMAGE ...]``.

Compresses the named images (default: three Kodak ones) at every quality level with the
shipped model and prints the largest per-image bpp and PSNR difference from the stored
``benchmarks.rd`` results (default: benchmarks/results/kodak/vqcodec.json): a quick way to
show that a change to the codec left the published numbers standing.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .common import bpp, load_rgb, psnr, to_array

DEFAULT_RESULTS = Path(__file__).resolve().parent / "results" / "kodak" / "vqcodec.json"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="folder of the images (e.g. ../shared/data/kodak)")
    p.add_argument("--results", default=str(DEFAULT_RESULTS), help="a benchmarks.rd vqcodec JSON with per-image results")
    p.add_argument("images", nargs="*", default=["kodim01.png", "kodim12.png", "kodim23.png"])
    args = p.parse_args(argv)
    import vqcodec

    stored = json.loads(Path(args.results).read_text())["per_image"]
    worst_bpp = worst_psnr = 0.0
    count = 0
    qualities = vqcodec.quality_levels()  # the order of benchmarks.rd's points
    for name in args.images:
        img = to_array(load_rgb(Path(args.data) / name))
        for q, bpp_then, psnr_then in zip(qualities, stored[name]["bpp"], stored[name]["psnr-rgb"], strict=True):
            data = vqcodec.compress(img, q)
            worst_bpp = max(worst_bpp, abs(bpp(len(data), img.shape[1], img.shape[0]) - bpp_then))
            worst_psnr = max(worst_psnr, abs(psnr(img, to_array(vqcodec.decompress(data))) - psnr_then))
            count += 1
    print(f"largest difference from {args.results} over {count} files: {worst_bpp:.6f} bpp, {worst_psnr:.4f} dB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
