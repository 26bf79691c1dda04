"""Real index grids of a model, for measuring the entropy coder's tables on them.

    python -m benchmarks.index_grids --train ../shared/data/train --test ../shared/data/kodak -o grids.npz
    python -m bitstream.measure_tables --grids grids.npz

Every image is centre-cropped to 512x512 (training images also at scale 0.6,
as the tables are fitted), so the grids stack into the (n, S, 64, 64) arrays
that ``bitstream.measure_tables`` compares table structures on.
"""

from __future__ import annotations

import argparse

import numpy as np

CROP = 512


def grids_of(model, images: list[np.ndarray], scales: tuple[float, ...]) -> np.ndarray:
    """(n, S, CROP/8, CROP/8) all-stage indices of centre crops of ``images`` at ``scales``."""
    from vqcodec.train.data import build_pyramid, center_crop_multiple
    from vqcodec.train import stage_indices

    grids = []
    for image in images:
        for level in build_pyramid(image, scales=scales, min_side=CROP):
            crop = center_crop_multiple(level, 8, CROP)[:CROP, :CROP]
            grids.append(stage_indices(model, crop.astype(np.float32) / 255.0))
    return np.stack(grids)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", required=True, help="folder of training images (tables are fitted on these)")
    parser.add_argument("--test", required=True, help="folder of held-out images")
    parser.add_argument("--holdout", type=int, default=2, help="leave out the last N training files, as training did")
    parser.add_argument("--model", default=None, help="model (.keras); default: the shipped one")
    parser.add_argument("-o", "--output", required=True, help="output .npz with arrays 'train' and 'test'")
    args = parser.parse_args(argv)

    import vqcodec
    from vqcodec.train.data import find_images, load_rgb

    model = vqcodec.load_model(args.model)
    train_files = find_images(args.train)
    if args.holdout:
        train_files = train_files[: -args.holdout]
    train = grids_of(model, [load_rgb(f) for f in train_files], scales=(1.0, 0.6))
    test = grids_of(model, [load_rgb(f) for f in find_images(args.test)], scales=(1.0,))
    np.savez_compressed(args.output, train=train, test=test)
    print(f"wrote {args.output}: train {train.shape}, test {test.shape}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
