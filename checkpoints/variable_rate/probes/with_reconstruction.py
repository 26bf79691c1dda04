"""Puts a learned reconstruction (``decoder_finetune.py --reconstruction``'s ``.reconstruction.npz``) into a model.

PYTHONPATH=. python checkpoints/variable_rate/probes/with_reconstruction.py MODEL.keras RECON.npz OUT.keras

OUT is MODEL with ``learned_reconstruction=True``, its offsets and log
scales set from RECON (``shrink`` and ``log_scale``, per level and channel);
every other weight, and the coding tables, are MODEL's.
"""

from __future__ import annotations

import sys

import keras
import numpy as np

from vqcodec.train_variable_rate import reconfigured


def main(argv: list[str]) -> int:
    source, learned, output = argv
    model = keras.saving.load_model(source)
    if model.quantizer.learned_reconstruction:
        sys.exit(f"{source} already has a learned reconstruction (decoder_finetune.py trained it in place)")
    out = reconfigured(model, learned_reconstruction=True)
    with np.load(learned) as values:
        out.quantizer.reconstruction_offsets.assign(values["shrink"].astype(np.float32))
        out.quantizer.reconstruction_log_scales.assign(values["log_scale"].astype(np.float32))
    out.set_coding_tables(model.coding_counts, model.coding_offsets)  # the codes do not change, so they still fit
    out.save(output)
    print(f"{output}: {source} with the learned reconstruction of {learned}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
