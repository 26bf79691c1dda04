"""Probe: the encoder's ECVQ rate weight scaled at inference, the tables refitted to the new choices.

PYTHONPATH=. python checkpoints/variable_rate/probes/rate_weight_probe.py MODEL.keras ../shared/data/train SCALE [SCALE ...]

The decoder and the gains stay as trained; only the search's balance of
distance against bits moves. Writes probes/rate_weight_xSCALE.eval.json
(the --evaluate-only format) for validation_compare.py. The stored results
are of vqcodec 0.3's model (`git show 69984a8:checkpoints/variable_rate/model.keras`)
with the code choice and table fitting of that release (context-free bits,
one fit); the same command now scales the coder-priced choice too.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import keras

from vqcodec.data import find_images, load_rgb
from vqcodec.train_variable_rate import evaluate, fit_coding_tables, validation_images

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> None:
    source, data, scales = argv[0], argv[1], [float(s) for s in argv[2:]]
    files = find_images(data)
    train, val = files[:-2], files[-2:]
    images = [load_rgb(f) for f in train]
    val_images = validation_images(val)
    for scale in scales:
        model = keras.models.load_model(source, compile=False)
        model.quantizer.rate_weight *= scale
        context_model = fit_coding_tables(model, images)
        result = evaluate(model, val_images, context_model)
        result["rate_weight"] = model.quantizer.rate_weight
        (HERE / f"rate_weight_x{scale:g}.eval.json").write_text(json.dumps(result, indent=1))
        print(scale, [(round(r["bpp"], 4), round(r["psnr"], 2)) for r in result["levels"]], flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
