"""Per-image choice of the coded scale at the full-size levels: for level L, code the image natively and at 3/4 and
2/3 of its size at levels L+1 and L+2, and keep the one with the least bpp + lambda_L * 255^2 * MSE (the loss level
L was trained on). Tuning photos only (as the resolution probe)."""
import glob, json
import numpy as np
from PIL import Image
from vqcodec import codec
from vqcodec.model.recipe import SHIPPED

files = ["../shared/data/train/041.png", "../shared/data/train/042.png"] + sorted(glob.glob("../shared/data/train-extra/*.png"))[::4]
model = codec.load_model()
model._ladder = tuple((l, 1.0) for l in range(10))  # native levels: quality q -> level
lam = SHIPPED.lambdas
rows = {}
for f in files:
    img = Image.open(f).convert("RGB")
    s = 768 / max(img.size)
    img = img.resize((round(img.width * s), round(img.height * s)), Image.LANCZOS)
    ref = np.asarray(img, np.float64)
    cache = {}
    def point(level, scale):
        if (level, scale) not in cache:
            small = img if scale == 1 else img.resize((round(img.width * scale), round(img.height * scale)), Image.LANCZOS)
            data = codec.compress(small, codec.quality_levels(model)[level], model, lossless=False)
            out = codec.decompress(data, model)
            out = out if scale == 1 else out.resize(img.size, Image.LANCZOS)
            mse = float(np.mean((ref - np.asarray(out, np.float64)) ** 2))
            cache[level, scale] = (len(data) * 8 / (img.width * img.height), mse)
        return cache[level, scale]
    for L in range(3, 10):
        cands = [(L, 1.0)] + [(L + d, s) for d in (1, 2) for s in (0.75, 2 / 3) if L + d < 10]
        vals = {c: point(*c) for c in cands}
        best = min(cands, key=lambda c: vals[c][0] + lam[L] * vals[c][1])
        rows.setdefault(L, []).append({"native": vals[(L, 1.0)], "chosen": vals[best], "choice": list(best)})
    print(f, flush=True)
out = {}
for L, rs in rows.items():
    psnr = lambda mse: 10 * np.log10(255 ** 2 / mse)
    n = {k: (float(np.mean([r[k][0] for r in rs])), float(np.mean([psnr(r[k][1]) for r in rs]))) for k in ("native", "chosen")}
    out[L] = {**n, "choices": [r["choice"] for r in rs]}
    print(L + 1, "native %.4f bpp %.2f dB" % n["native"], "chosen %.4f bpp %.2f dB" % n["chosen"], [tuple(r["choice"]) for r in rs])
json.dump(out, open("scale_choice_probe.json", "w"), indent=1)
