"""Forward-adaptive coding tables on the frozen shipped model: K table sets per level, each image coded with the
set that codes it cheapest (log2 K bits of side information). Ideal code lengths (cross-entropy) of real code
grids chosen by the codec; training crops of the training photos, held-out photos never used for training."""
import glob, json, sys, time
import numpy as np
from PIL import Image
from bitstream.context_model import ContextModel
from vqcodec import codec

model = codec.load_model()
K_CODES, WIDTH = model.num_embeddings, 192
rng = np.random.default_rng(0)
train_files = sorted(glob.glob("../shared/data/train/0*.png"))[:40]
held_files = ["../shared/data/train/041.png", "../shared/data/train/042.png"] + sorted(glob.glob("../shared/data/train-extra/*.png"))[1::4]

def load(f, long_side=None):
    img = Image.open(f).convert("RGB")
    if long_side:
        s = long_side / max(img.size)
        img = img.resize((round(img.width * s) // 8 * 8, round(img.height * s) // 8 * 8), Image.LANCZOS)
    return np.asarray(img)

def grids(image):
    x = image[None].astype(np.float32) / 255
    return [np.asarray(model.encode_to_indices(x, q))[0].astype(np.int64) for q in range(model.num_qualities)]

t0 = time.time()
train = []
for f in train_files:
    img = load(f)
    for _ in range(3):
        y, x = rng.integers(0, img.shape[0] - 256 + 1), rng.integers(0, img.shape[1] - 256 + 1)
        train.append(grids(img[y:y + 256, x:x + 256]))
held = [grids(load(f, 768)) for f in held_files]
print(f"grids: {len(train)} training crops, {len(held)} held-out photos, {time.time() - t0:.0f} s", file=sys.stderr, flush=True)

def fit(gs):
    return ContextModel.fit([gs], K_CODES, WIDTH)

results = {}
for q in range(model.num_qualities):
    tr = [g[q] for g in train]
    ho = [g[q] for g in held]
    single = fit(tr)
    base = np.array([single.cross_entropy_bits(g, 0) for g in ho])
    shipped = np.array([model.context_model().cross_entropy_bits(g, q) for g in ho])
    row = {"shipped_bits": float(shipped.sum()), "single_bits": float(base.sum())}
    activity = np.array([np.mean(g != np.bincount(g.ravel()).argmax()) for g in tr])
    for k in (2, 4, 8):
        assign = np.minimum((np.argsort(np.argsort(activity)) * k) // len(tr), k - 1)
        for _ in range(4):
            models = [fit([g for g, a in zip(tr, assign) if a == c]) if (assign == c).any() else single for c in range(k)]
            costs = np.array([[m.cross_entropy_bits(g, 0) for m in models] for g in tr])
            assign = costs.argmin(1)
        held_costs = np.array([[m.cross_entropy_bits(g, 0) for m in models] for g in ho])
        adaptive = held_costs.min(1) + np.log2(k)
        row[f"K{k}_bits"] = float(adaptive.sum())
    results[q] = row
    print(q, {k: round(v / row["single_bits"] - 1, 4) for k, v in row.items()}, f"{time.time() - t0:.0f} s", flush=True)
json.dump(results, open("forward_tables_probe.json", "w"), indent=1)
