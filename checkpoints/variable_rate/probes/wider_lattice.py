"""Probe: the same model with a wider lattice (more codes, so the fine levels' large latents are not clipped), tables refitted.

The extra codes (values beyond -128 .. 127) get a probability below every
old code's (``reconfigured``); nothing is trained.

PYTHONPATH=. python checkpoints/variable_rate/probes/wider_lattice.py IN.keras OUT.keras CODES
then: python -m vqcodec.train_variable_rate ../shared/data/train -o OUT.keras --holdout 2 --evaluate-only
"""
import sys

import keras

from vqcodec.data import find_images, load_rgb
from vqcodec.train import atomic_save
from vqcodec.train_variable_rate import fit_coding_tables, reconfigured

source, target, codes = sys.argv[1], sys.argv[2], int(sys.argv[3])
model = keras.models.load_model(source, compile=False)
wider = reconfigured(model, num_embeddings=codes)
train = [load_rgb(f) for f in find_images("../shared/data/train")[:-2]]  # the training photos (not the 2 held out)
fit_coding_tables(wider, train)
atomic_save(wider, target)
print(f"{target}: {wider.num_embeddings} codes")
