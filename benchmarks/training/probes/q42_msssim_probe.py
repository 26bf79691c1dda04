"""bpp, MSE and MS-SSIM of the codings around quality 42 on the training photos and the held-out photos (768 px)."""
import glob, json, sys, time
import numpy as np
from PIL import Image
from vqcodec import codec
from vqcodec.metrics import ms_ssim

files = sorted(glob.glob("../shared/data/train/*.png"))[:40] + ["../shared/data/train/041.png", "../shared/data/train/042.png"] + sorted(glob.glob("../shared/data/train-extra/*.png"))
model = codec.load_model()
model._ladder = tuple((l, 1.0, ()) for l in range(10))
qs = codec.quality_levels(model)
out = {}; t0 = time.time()
for f in files:
    img = Image.open(f).convert("RGB"); s = 768 / max(img.size)
    img = img.resize((round(img.width * s), round(img.height * s)), Image.LANCZOS)
    ref = np.asarray(img)
    rows = {}
    for L, sc in ((6, 1 / 2), (7, 1 / 2), (5, 2 / 3), (4, 1.0), (5, 3 / 4)):
        small = img if sc == 1 else img.resize((round(img.width * sc), round(img.height * sc)), Image.LANCZOS)
        data = codec.compress(small, qs[L], model, lossless=False)
        dec = codec.decompress(data, model)
        dec = np.asarray(dec if sc == 1 else dec.resize(img.size, Image.LANCZOS))
        rows[f"{L}/{sc:.4f}"] = (len(data) * 8 / (img.width * img.height), float(np.mean((ref.astype(np.float64) - dec) ** 2)), float(ms_ssim(ref, dec)[0]))
    out[f.split("/")[-2] + "/" + f.split("/")[-1]] = rows
    print(f, round(time.time() - t0), flush=True)
json.dump(out, open(sys.argv[1], "w"), indent=1)
