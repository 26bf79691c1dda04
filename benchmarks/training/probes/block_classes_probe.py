"""Spatial side information on the frozen model: each block of B x B latents sends its activity class (the share of
its codes that are not their group's usual one, in C classes), and every code is coded with tables that know its
block's class as well as its context. Ideal code lengths of real grids, class maps' cost included; the same crops
and held-out photos as the forward-tables probe."""
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
train, held = [], []
for f in train_files:
    img = load(f)
    for _ in range(3):
        y, x = rng.integers(0, img.shape[0] - 256 + 1), rng.integers(0, img.shape[1] - 256 + 1)
        train.append(grids(img[y:y + 256, x:x + 256]))
held = [grids(load(f, 768)) for f in held_files]
print(f"grids: {time.time() - t0:.0f} s", file=sys.stderr, flush=True)


def symbols_of(m, grid):
    """Per group: (flat positions, contexts, window symbols) in coding order."""
    out = []
    for g, passes in enumerate(m._contexts(grid, 0)):
        flat = grid[..., g].ravel()
        pos = np.concatenate([p for p, _ in passes])
        ctx = np.concatenate([c for _, c in passes])
        out.append((pos, ctx, m._windowed(flat[pos], 0, g)))
    return out


def block_class(m, grid, block, edges):
    usual = m.usual[0]  # (G,)
    active = (grid != usual).mean(-1)  # (h, w): share of active groups
    h, w = active.shape
    hb, wb = -(-h // block), -(-w // block)
    pad = np.pad(active, ((0, hb * block - h), (0, wb * block - w)), constant_values=np.nan)
    share = np.nanmean(pad.reshape(hb, block, wb, block), axis=(1, 3))
    classes = np.searchsorted(edges, share, side="right")  # (hb, wb)
    per_pos = np.repeat(np.repeat(classes, block, 0), block, 1)[:h, :w].ravel()
    return classes, per_pos


results = {}
for q in range(model.num_qualities):
    tr, ho = [g[q] for g in train], [g[q] for g in held]
    m = ContextModel.fit([tr], K_CODES, WIDTH)
    probs = m.probabilities[0]  # (G, contexts, W + 1)
    G = probs.shape[0]
    base = sum(-np.log2(probs[g, c, s]).sum() + np.count_nonzero(s == m.width) * np.log2(K_CODES)
               for grid in ho for g, (p, c, s) in enumerate(symbols_of(m, grid)))
    row = {"single_bits": float(base)}
    for block in (4, 8):
        # class edges: quantiles of the training blocks' active shares
        usual = m.usual[0]
        raw = []
        for grid in tr:
            active = (grid != usual).mean(-1)
            h, w = active.shape
            hb, wb = -(-h // block), -(-w // block)
            pad = np.pad(active, ((0, hb * block - h), (0, wb * block - w)), constant_values=np.nan)
            raw.append(np.nanmean(pad.reshape(hb, block, wb, block), axis=(1, 3)).ravel())
        raw = np.concatenate(raw)
        for n_classes in (4, 8):
            edges = np.unique(np.quantile(raw, np.linspace(0, 1, n_classes + 1)[1:-1]))
            C = len(edges) + 1
            counts = np.zeros((C, G, probs.shape[1], probs.shape[2]))
            trans = np.ones((C + 1, C))  # class given the left block's (C = none), Laplace
            for grid in tr:
                classes, per_pos = block_class(m, grid, block, edges)
                left = np.concatenate([np.full((classes.shape[0], 1), C), classes[:, :-1]], 1)
                np.add.at(trans, (left.ravel(), classes.ravel()), 1)
                for g, (p, c, s) in enumerate(symbols_of(m, grid)):
                    np.add.at(counts, (per_pos[p], g, c, s), 1)
            for alpha in (8.0, 32.0):
                cond = (counts + alpha * probs[None]) / (counts.sum(-1, keepdims=True) + alpha)
                bits = 0.0
                tp = trans / trans.sum(1, keepdims=True)
                for grid in ho:
                    classes, per_pos = block_class(m, grid, block, edges)
                    left = np.concatenate([np.full((classes.shape[0], 1), C), classes[:, :-1]], 1)
                    bits += -np.log2(tp[left.ravel(), classes.ravel()]).sum()
                    for g, (p, c, s) in enumerate(symbols_of(m, grid)):
                        bits += -np.log2(cond[per_pos[p], g, c, s]).sum() + np.count_nonzero(s == m.width) * np.log2(K_CODES)
                row[f"B{block}_C{n_classes}_a{int(alpha)}"] = float(bits)
    results[q] = row
    print(q, {k: round(v / row["single_bits"] - 1, 4) for k, v in row.items() if k != "single_bits"}, f"{time.time() - t0:.0f} s", flush=True)
json.dump(results, open("block_classes_probe.json", "w"), indent=1)
