"""Every (level, scale) coding of the held-out train-extra photos not in the tuning set (768 px long side):
per-image bpp and MSE, to place the low operating points on photos the ladder was not chosen on."""
import glob, json, sys, time
import numpy as np
from PIL import Image
from vqcodec import codec

tuning = sorted(glob.glob("../shared/data/train-extra/*.png"))[::4]
files = [f for f in sorted(glob.glob("../shared/data/train-extra/*.png")) if f not in tuning]
model = codec.load_model()
model._ladder = tuple((l, 1.0, ()) for l in range(10))
qs = codec.quality_levels(model)
scales = (1 / 5, 1 / 4, 1 / 3, 2 / 5, 1 / 2, 2 / 3, 3 / 4, 1.0)
out = {}
t0 = time.time()
for f in files:
    img = Image.open(f).convert("RGB"); s = 768 / max(img.size)
    img = img.resize((round(img.width * s), round(img.height * s)), Image.LANCZOS)
    ref = np.asarray(img, np.float64)
    rows = {}
    for sc in scales:
        small = img if sc == 1 else img.resize((max(1, round(img.width * sc)), max(1, round(img.height * sc))), Image.LANCZOS)
        for L in range(10):
            data = codec.compress(small, qs[L], model, lossless=False)
            dec = codec.decompress(data, model)
            dec = dec if sc == 1 else dec.resize(img.size, Image.LANCZOS)
            rows[f"{L}/{sc:.4f}"] = (len(data) * 8 / (img.width * img.height), float(np.mean((ref - np.asarray(dec, np.float64)) ** 2)))
    out[f.split("/")[-1]] = rows
    print(f, round(time.time() - t0), flush=True)
    json.dump(out, open(sys.argv[1], "w"), indent=1)
