"""Keep the first N quality levels of a variable-rate model (weights, gains and code distributions kept) and refit its coding tables.

PYTHONPATH=. python checkpoints/variable_rate/probes/drop_levels.py IN.keras OUT.keras N
"""
import sys

import keras

from vqcodec.data import find_images, load_rgb
from vqcodec.train import atomic_save
from vqcodec.train_variable_rate import fit_coding_tables, reconfigured

source, target, keep = sys.argv[1], sys.argv[2], int(sys.argv[3])
model = keras.models.load_model(source, compile=False)
kept = reconfigured(model, lambdas=model.lambdas[:keep])
train = [load_rgb(f) for f in find_images("../shared/data/train")[:-2]]  # the training photos (not the 2 held out)
fit_coding_tables(kept, train)
atomic_save(kept, target)
print(f"{target}: levels {kept.lambdas}")
