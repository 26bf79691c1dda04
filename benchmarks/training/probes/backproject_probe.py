"""Downscaling for the smaller codings: Lanczos against iterative back-projection (the small image whose Lanczos
upsampling is nearest the original), each coded at the low operating points; per image bpp and MSE."""
import glob, json, sys, time
import numpy as np
from PIL import Image
from vqcodec import codec

def up(x, size):  # float RGB (h, w, 3) -> size, Lanczos per channel
    return np.stack([np.asarray(Image.fromarray(x[..., c].astype(np.float32), "F").resize(size, Image.Resampling.LANCZOS)) for c in range(3)], -1)

def down(img, size, steps):
    ref = np.asarray(img, np.float32)
    x = np.asarray(img.resize(size, Image.Resampling.LANCZOS), np.float32)
    for _ in range(steps):
        x = np.clip(x + up(ref - up(x, img.size), size), 0, 255)
    return Image.fromarray(np.round(x).astype(np.uint8))

which = sys.argv[2]
if which == "train":
    files = sorted(glob.glob("../shared/data/train/*.png"))[:40:4]
else:
    files = ["../shared/data/train/041.png", "../shared/data/train/042.png"] + sorted(glob.glob("../shared/data/train-extra/*.png"))[1::3]
model = codec.load_model()
model._ladder = tuple((l, 1.0, ()) for l in range(10))
qs = codec.quality_levels(model)
points = [(0, 1/3), (2, 1/3), (4, 1/3), (6, 1/3), (6, 1/2), (7, 1/2), (5, 3/4), (6, 2/3), (7, 2/3)]
out = {}
t0 = time.time()
for f in files:
    img = Image.open(f).convert("RGB"); s = 768 / max(img.size)
    img = img.resize((round(img.width * s), round(img.height * s)), Image.Resampling.LANCZOS)
    ref = np.asarray(img, np.float64)
    rows = {}
    for L, sc in points:
        size = (max(1, round(img.width * sc)), max(1, round(img.height * sc)))
        for steps in (0, 1, 3):
            small = down(img, size, steps)
            data = codec.compress(small, qs[L], model, lossless=False)
            dec = codec.decompress(data, model).resize(img.size, Image.Resampling.LANCZOS)
            plain = small.resize(img.size, Image.Resampling.LANCZOS)
            rows[f"{L}/{sc:.4f}/{steps}"] = (len(data) * 8 / (img.width * img.height),
                                             float(np.mean((ref - np.asarray(dec, np.float64)) ** 2)),
                                             float(np.mean((ref - np.asarray(plain, np.float64)) ** 2)))
    out[f.split("/")[-1]] = rows
    print(f, round(time.time() - t0), flush=True)
    json.dump(out, open(sys.argv[1], "w"), indent=1)
