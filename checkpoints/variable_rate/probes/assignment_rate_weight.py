"""Probe: the ECVQ assignment's rate weight at inference, code distributions refitted, real range-coded bits on the validation set.

python checkpoints/variable_rate/probes/assignment_rate_weight.py MODEL.keras 1.0,0.25,0.5,0.12 OUT.json
"""
import json, sys, time
import numpy as np, keras
from bitstream.context_model import ContextModel
from vqcodec.data import find_images, load_rgb
from vqcodec.metrics import psnr
from vqcodec.train_variable_rate import random_crops, validation_images
model_path = sys.argv[1]
weights = [float(w) for w in sys.argv[2].split(",")]
out = sys.argv[3]
m = keras.models.load_model(model_path, compile=False)
q = m.quantizer
files = find_images("../shared/data/train")
train, val = files[:-2], files[-2:]
imgs = [load_rgb(f) for f in train]
refit = random_crops(imgs, 1, 128, 0).astype(np.float32) / 255
ctx = random_crops(imgs, 2, 256, 0).astype(np.float32) / 255
enc = lambda a: np.concatenate([keras.ops.convert_to_numpy(m.encode(a[i:i+8])) for i in range(0, len(a), 8)])
lat_refit, lat_ctx = enc(refit), enc(ctx)
vals = validation_images(val)
lat_val = [keras.ops.convert_to_numpy(m.encode(v[None].astype(np.float32) / 255)) for v in vals]
results = {}
for rw in weights:
    t = time.time()
    q.rate_weight = rw
    q.refit_code_distributions(lat_refit)
    grids = [[keras.ops.convert_to_numpy(q.get_code_indices(lat_ctx[i:i+1], k))[0].astype(np.int64) for i in range(len(lat_ctx))] for k in range(q.num_qualities)]
    cm = ContextModel.fit(grids, q.num_embeddings, q.num_embeddings)
    rows = []
    for k in range(q.num_qualities):
        bpps, ps = [], []
        for v, lat in zip(vals, lat_val):
            grid = keras.ops.convert_to_numpy(q.get_code_indices(lat, k))[0].astype(np.int64)
            data = cm.encode(grid, k)
            rec = keras.ops.convert_to_numpy(m.decode_from_indices(grid[None], k))[0]
            ps.append(psnr(v, np.clip(np.round(rec * 255), 0, 255)))
            bpps.append(len(data) * 8 / (v.shape[0] * v.shape[1]))
        rows.append({"quality": k, "bpp": float(np.mean(bpps)), "psnr": float(np.mean(ps))})
        print(f"rw {rw} q{k}: {rows[-1]['bpp']:.3f} bpp {rows[-1]['psnr']:.2f} dB", flush=True)
    results[str(rw)] = rows
    print(f"rw {rw} took {time.time()-t:.0f} s", flush=True)
    json.dump(results, open(out, "w"), indent=1)
