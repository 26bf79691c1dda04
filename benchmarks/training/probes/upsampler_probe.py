"""Probe: a small learned upsampler after the downscaled operating points, against Lanczos.
Pairs: training photos (train/001-040 and train-extra minus the tuning ones) at 768 px long side, coded at the
ladder's downscaled points, decoded, Lanczos-upsampled -> original. Evaluated on the tuning photos."""
import glob, json, os, sys, time
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import numpy as np
from PIL import Image
import keras
from vqcodec import codec

rng = np.random.default_rng(0)
keras.utils.set_random_seed(0)
extra = sorted(glob.glob("../shared/data/train-extra/*.png"))
tune = ["../shared/data/train/041.png", "../shared/data/train/042.png"] + extra[::4]
train = sorted(glob.glob("../shared/data/train/0[0-3]*.png")) + [f for f in extra if f not in tune]
train = [f for f in train if f not in tune]
model = codec.load_model()
points = [p for p in model.operating_points() if p[1] < 1]
qs = codec.quality_levels(model)
print(len(train), "train", len(tune), "tune", points, flush=True)

def load(f):
    img = Image.open(f).convert("RGB"); s = 768 / max(img.size)
    return img.resize((round(img.width * s), round(img.height * s)), Image.LANCZOS)

def pairs(files):
    out = []
    for f in files:
        img = load(f)
        for i, p in enumerate(model.operating_points()):
            if p[1] >= 1: continue
            data = codec.compress(img, qs[i], model, lossless=False)
            up = codec.decompress(data, model)
            out.append((i, len(data) * 8 / (img.width * img.height), np.asarray(up), np.asarray(img)))
    return out

t0 = time.time()
tr = pairs(train); print("train pairs", len(tr), round(time.time() - t0), flush=True)
te = pairs(tune); print("tune pairs", len(te), round(time.time() - t0), flush=True)

C = int(sys.argv[1]) if len(sys.argv) > 1 else 32
D = int(sys.argv[2]) if len(sys.argv) > 2 else 4
steps = int(sys.argv[3]) if len(sys.argv) > 3 else 3000
inp = keras.Input((None, None, 3))
x = keras.layers.Rescaling(1 / 255.0)(inp)
h = x
for _ in range(D):
    h = keras.layers.Conv2D(C, 3, padding="same", activation="relu")(h)
r = keras.layers.Conv2D(3, 3, padding="same", kernel_initializer="zeros")(h)
net = keras.Model(inp, keras.layers.Add()([x, r]))
opt = keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(1e-3, steps))
net.compile(opt, "mse")
P, B = 64, 16
def batch():
    X, Y = [], []
    for _ in range(B):
        _, _, a, b = tr[rng.integers(len(tr))]
        y0, x0 = rng.integers(a.shape[0] - P), rng.integers(a.shape[1] - P)
        X.append(a[y0:y0 + P, x0:x0 + P]); Y.append(b[y0:y0 + P, x0:x0 + P])
    return np.float32(X), np.float32(Y) / 255.0
t1 = time.time()
for s in range(steps):
    X, Y = batch(); l = net.train_on_batch(X, Y)
    if s % 500 == 0: print(s, l, round(time.time() - t1), flush=True)
print("train s", round(time.time() - t1), flush=True)
res = {}
def psnr(a, b): return 10 * np.log10(255 ** 2 / np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
t2 = time.time()
for i, b, a, y in te:
    out = np.clip(np.round(net.predict_on_batch(np.float32(a[None]))[0] * 255), 0, 255).astype(np.uint8)
    res.setdefault(i, []).append((b, psnr(a, y), psnr(out, y)))
print("eval s", round(time.time() - t2), flush=True)
summary = {}
for i, v in sorted(res.items()):
    v = np.array(v); summary[i] = v.mean(0).tolist()
    print("point", i + 1, model.operating_points()[i][:2], "bpp %.4f lanczos %.2f learned %.2f (+%.2f)" % (*v.mean(0), v[:, 2].mean() - v[:, 1].mean()))
json.dump({"C": C, "D": D, "steps": steps, "summary": summary}, open(f"/tmp/probe/upsampler_C{C}_D{D}.json", "w"), indent=1)
net.save(f"/tmp/probe/upsampler_C{C}_D{D}.keras")
