"""In-process speed of two checkouts of vqcodec, measured alternately in one sitting.

``python -m benchmarks.ab_speed --data DIR --other PATH [--rounds 2] [--qualities 5,75,95]``

Why: the development machine is shared, and its speed drifted by a third
within two hours, so two runs of ``benchmarks.speed`` taken apart cannot
show what a change gained. This runs the same loop in a fresh process for
``--other`` (another checkout, e.g. ``git worktree add /tmp/old COMMIT``)
and for this checkout, in turns: per quality, the mean over the images of
the median of three ``compress`` and three ``decompress`` calls, in ms.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent  # this checkout


def measure(data: str, limit: int, qualities: list[int]) -> dict[int, tuple[float, float]]:
    """{quality: (mean encode ms, mean decode ms)} with the vqcodec this process imports."""
    from PIL import Image

    from vqcodec import codec

    model = codec.load_model()
    paths = sorted(p for p in Path(data).iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".ppm", ".tif", ".tiff"))
    images = [Image.open(p).convert("RGB") for p in paths[:limit]]
    codec.decompress(codec.compress(images[0], qualities[0], model=model), model=model)  # warm-up
    out = {}
    for q in qualities:
        enc, dec = [], []
        for img in images:
            e, d = [], []
            for _ in range(3):
                t0 = time.perf_counter()
                data_ = codec.compress(img, q, model=model)
                e.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                codec.decompress(data_, model=model)
                d.append(time.perf_counter() - t0)
            enc.append(statistics.median(e))
            dec.append(statistics.median(d))
        out[q] = (1000 * statistics.fmean(enc), 1000 * statistics.fmean(dec))
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.ab_speed", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="folder of images (e.g. ../shared/data/kodak)")
    p.add_argument("--other", help="root of the other checkout (its vqcodec and bitstream are imported from there)")
    p.add_argument("--limit", type=int, default=4, help="first N images (default 4)")
    p.add_argument("--rounds", type=int, default=2, help="alternations (default 2)")
    p.add_argument("--qualities", default="5,75,95", help="comma-separated qualities (default 5,75,95)")
    p.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    qualities = [int(q) for q in args.qualities.split(",")]
    data = str(Path(args.data).resolve())
    if args.inner:
        print(json.dumps(measure(data, args.limit, qualities)))
        return
    if not args.other or not (Path(args.other) / "vqcodec").is_dir():
        p.error("--other must be the root of another vqcodec checkout")
    # a script (-P: its folder stays off sys.path), so vqcodec comes from PYTHONPATH
    inner = [sys.executable, "-P", str(Path(__file__).resolve()), "--inner", "--data", data, "--limit", str(args.limit),
             "--qualities", args.qualities]
    for r in range(args.rounds):
        for name, root in (("other", Path(args.other).resolve()), ("this", HERE)):
            env = dict(os.environ, PYTHONPATH=str(root))
            result = subprocess.run(inner, cwd=root, env=env, capture_output=True, text=True, check=True)
            ms = json.loads(result.stdout.strip().splitlines()[-1])
            print(f"round {r + 1} {name:5s} " + "  ".join(f"q{q}: {e:.0f} / {d:.0f} ms" for q, (e, d) in ms.items()), flush=True)


if __name__ == "__main__":
    main()
