"""Resolution probe: code a downscaled image with the shipped model, upscale with Lanczos; bpp on the original."""
import json, sys, glob
import numpy as np
from PIL import Image
from vqcodec import codec
from vqcodec.metrics import psnr

files = ["../shared/data/train/041.png", "../shared/data/train/042.png"] + sorted(glob.glob("../shared/data/train-extra/*.png"))[::4]
model = codec.load_model()
scales = [1.0, 0.75, 2 / 3, 0.5, 0.4, 1 / 3]
rows = {}
for f in files:
    img = Image.open(f).convert("RGB")
    s = 768 / max(img.size)
    img = img.resize((round(img.width * s), round(img.height * s)), Image.LANCZOS)
    ref = np.asarray(img)
    for scale in scales:
        size = (max(8, round(img.width * scale)), max(8, round(img.height * scale)))
        small = img.resize(size, Image.LANCZOS) if scale != 1 else img
        for q in codec.quality_levels(model):
            data = codec.compress(small, q, model, lossless=False)
            out = codec.decompress(data, model)
            if scale != 1:
                out = out.resize(img.size, Image.LANCZOS)
            key = f"{scale:.3f}/{q}"
            rows.setdefault(key, []).append((len(data) * 8 / (img.width * img.height), psnr(ref, np.asarray(out))))
    print(f, file=sys.stderr, flush=True)
table = {k: (float(np.mean([r[0] for r in v])), float(np.mean([r[1] for r in v]))) for k, v in rows.items()}
json.dump(table, open("resolution_probe.json", "w"), indent=1)
for k, (b, p) in sorted(table.items(), key=lambda kv: kv[1][0]):
    print(f"{k:>10} {b:.4f} bpp {p:.2f} dB")
