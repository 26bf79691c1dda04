"""Probe: the same model with coding tables over a wider window of codes (fewer escapes), tables refitted.

Nothing is trained; only ``table_width`` changes (the tables are model state,
``(levels, groups, contexts, width + 1)`` counts, so the file grows).

PYTHONPATH=. python checkpoints/variable_rate/probes/table_width.py IN.keras OUT.keras WIDTH [CROPS]
(CROPS: random 256x256 crops per training photo to fit on, default 2), then:
python -m vqcodec.train_variable_rate ../shared/data/train -o OUT.keras --holdout 2 --evaluate-only
"""
import sys

import keras

from vqcodec.data import find_images, load_rgb
from vqcodec.train import atomic_save
from vqcodec.train_variable_rate import fit_coding_tables
from vqcodec.variable_rate_model import VariableRateVQVAE

source, target, width = sys.argv[1], sys.argv[2], int(sys.argv[3])
crops = int(sys.argv[4]) if len(sys.argv) > 4 else 2
model = keras.models.load_model(source, compile=False)
config = model.get_config()
config["table_width"] = width
wider = VariableRateVQVAE.from_config(config)
wider.build((None, None, None, 3))
tables = {id(model.coding_counts), id(model.coding_offsets)}
pairs = [(t, s) for t, s in zip(wider.weights, model.weights, strict=True) if id(s) not in tables]
for t, s in pairs:
    t.assign(keras.ops.convert_to_numpy(s))
train = [load_rgb(f) for f in find_images("../shared/data/train")[:-2]]  # the training photos (not the 2 held out)
fit_coding_tables(wider, train, crops_per_image=crops)
atomic_save(wider, target)
print(f"{target}: tables over {wider.table_width} codes, fitted on {crops} crops a photo")
