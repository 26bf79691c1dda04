"""How far the two runtimes' files differ: indices, bytes and cross-decoded pixels, Keras against the export.

``python -m benchmarks.runtime_agreement --data DIR [--quality 75]``

Each image is compressed by both runtimes of the default model; each file is
decoded by both. Prints the indices that differ, the files that are
byte-identical and the largest pixel difference between the two decodings of
one file: the numbers behind FORMAT.md's runtime contract.
"""

from __future__ import annotations

import argparse

import numpy as np

from .common import list_images, load_rgb


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.runtime_agreement", description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="folder of images")
    p.add_argument("--quality", type=int, default=75)
    p.add_argument("--limit", type=int, default=None, help="first N images only")
    args = p.parse_args(argv)

    from vqcodec import codec

    runtimes = {name: codec.load_model(runtime=name) for name in ("onnx", "keras")}
    paths = list_images(args.data, args.limit)
    differ = total = same_files = 0
    worst = 0
    for path in paths:
        image = load_rgb(path)
        grids = [codec.indices_of(image, args.quality, m) for m in runtimes.values()]
        differ += int(np.count_nonzero(grids[0] != grids[1]))
        total += grids[0].size
        files = [codec.compress(image, args.quality, m, lossless=False) for m in runtimes.values()]
        same_files += files[0] == files[1]
        for data in files:
            a, b = (np.asarray(codec.decompress(data, m), np.int16) for m in runtimes.values())
            worst = max(worst, int(np.abs(a - b).max()))
        print(f"{path.name}: {int(np.count_nonzero(grids[0] != grids[1]))} indices differ, "
              f"files {'identical' if files[0] == files[1] else 'differ'}", flush=True)
    print(f"{differ} of {total} indices differ; {same_files} of {len(paths)} files identical; "
          f"cross-decoded pixels differ by at most {worst}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
