"""Coding an upscaled image at the top levels: Lanczos up by s, code at level L, decode, Lanczos down.
Tuning photos only (041, 042, every fourth of train-extra; 768 px long side), beside WebP and AVIF."""
import glob, json, sys, time
import numpy as np
from PIL import Image
from vqcodec import codec
from vqcodec.comparison.codecs import WEBP, AVIF

files = ["../shared/data/train/041.png", "../shared/data/train/042.png"] + sorted(glob.glob("../shared/data/train-extra/*.png"))[::4]
model = codec.load_model()
model._ladder = tuple((l, 1.0, ()) for l in range(10))
qs = codec.quality_levels(model)
res = {}
t0 = time.time()
def psnr(ref, out):
    mse = float(np.mean((ref - np.asarray(out, np.float64)) ** 2)); return 10 * np.log10(255 ** 2 / mse)
for f in files:
    img = Image.open(f).convert("RGB")
    s = 768 / max(img.size)
    img = img.resize((round(img.width * s), round(img.height * s)), Image.LANCZOS)
    ref = np.asarray(img, np.float64); px = img.width * img.height
    for L in (7, 8, 9):
        for sc in (1.0, 1.25, 1.5, 1.75, 2.0):
            big = img if sc == 1 else img.resize((round(img.width * sc), round(img.height * sc)), Image.LANCZOS)
            data = codec.compress(big, qs[L], model, lossless=False)
            out = codec.decompress(data, model)
            out = out if sc == 1 else out.resize(img.size, Image.LANCZOS)
            res.setdefault(f"vq L{L+1} x{sc}", []).append((len(data) * 8 / px, psnr(ref, out)))
    for c, settings in ((WEBP, (80, 85, 90, 95, 98, 100)), (AVIF, (80, 85, 90, 95))):
        for q in settings:
            data = c.encode(img, q)
            res.setdefault(f"{c.key} {q}", []).append((len(data) * 8 / px, psnr(ref, c.decode(data))))
    print(f, round(time.time() - t0), flush=True)
summary = {k: (float(np.mean([a for a, b in v])), float(np.mean([b for a, b in v]))) for k, v in res.items()}
for k, (b, p) in summary.items():
    print(f"{k:16s} {b:.3f} bpp {p:.2f} dB")
json.dump({"summary": summary, "per_image": res}, open(sys.argv[1], "w"), indent=1)
