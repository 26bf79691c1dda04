"""The codes the codec chooses for the training photos and the held-out photos at a few levels (768 px long side),
for side_mixture_probe.py: python side_mixture_codes.py codes.npz 5,7,9"""
import glob, sys, numpy as np, time
from PIL import Image
from vqcodec import codec

model = codec.load_model(runtime="keras")
levels = [int(v) for v in sys.argv[2].split(",")]
train = sorted(glob.glob("../shared/data/train/*.png"))[:40]
held = ["../shared/data/train/041.png", "../shared/data/train/042.png"] + sorted(glob.glob("../shared/data/train-extra/*.png"))
out = {}
t0 = time.time()
for name, files in (("train", train), ("held", held)):
    for i, f in enumerate(files):
        img = Image.open(f).convert("RGB"); s = 768 / max(img.size)
        img = img.resize((round(img.width * s), round(img.height * s)), Image.Resampling.LANCZOS)
        x = np.asarray(img, np.float32)[: img.height // 32 * 32, : img.width // 32 * 32][None] / 255.0
        lat = model.encode(x)
        for q in levels:
            out[f"{name}/{i}/{q}"] = np.asarray(model.latents_to_indices(lat, q))[0].astype(np.int16)
        print(name, i, round(time.time() - t0), flush=True)
np.savez_compressed(sys.argv[1], **out)
