"""Probe: anchors re-chosen knowing what their activity costs the non-anchor neighbours (then non-anchors again)."""
import glob, json, sys, time
import numpy as np
from PIL import Image
import bitstream.context_model as cm
from vqcodec import codec

orig_choose = cm.ContextModel.choose

def choose_lookahead(self, candidates, distances, quality, rate_weight, rounds=1):
    candidates = np.asarray(candidates); distances = np.asarray(distances, np.float32)
    h, w, groups, n = candidates.shape
    self._check(quality, groups)
    costs = (np.float32(rate_weight) * self.code_bits(quality)).reshape(groups, -1)
    bits = self.code_bits(quality)
    board = cm._Checkerboard(h, w)
    passes = []
    for positions in board.positions:
        passes.append((positions,
            np.ascontiguousarray(candidates.reshape(h * w, groups, n)[positions].transpose(1, 0, 2)),
            np.ascontiguousarray(distances.reshape(h * w, groups, n)[positions].transpose(1, 0, 2)),
            np.arange(len(positions))))
    grid = np.zeros((h, w, groups), np.int32)
    activity = np.zeros((h, w), np.int32)
    nonanchor = (1 - board.anchor).astype(np.float32)
    for g in range(groups):
        flat = np.zeros(h * w, np.int32)
        level = self._levels(activity, g)
        usual = self.usual[quality, g]
        def run(which, extra=None):
            positions, options, spent, rows = passes[which]
            _, contexts = self._group_contexts(grid, quality, g, level, bool(which), board)
            cost = spent[g] + costs[g][contexts[:, None] * self.num_codes + options[g]]
            if extra is not None:
                cost = cost + np.float32(rate_weight) * extra[positions][:, None] * (options[g] != usual)
            flat[positions] = options[g][rows, cost.argmin(axis=1)]
            grid[..., g] = flat.reshape(h, w)
        run(0); run(1)
        for _ in range(rounds):
            cur = grid[..., g]
            act = ((cur != usual) & (board.anchor == 1)).astype(np.int32)
            nn = cm._neighbour_sum(act)
            lh = level // 2
            cb = bits[g]
            b = lambda k: cb[8 + np.minimum(np.maximum(k, 0) + lh, 7), cur]
            b_now, b_plus, b_minus = b(nn), b(nn + 1), b(nn - 1)
            d1 = cm._neighbour_sum(((b_now - b_minus) * nonanchor).astype(np.float32))
            d0 = cm._neighbour_sum(((b_plus - b_now) * nonanchor).astype(np.float32))
            extra = np.where(act == 1, d1, d0).ravel()
            run(0, extra); run(1)
        activity += grid[..., g] != usual
    return grid

files = ["../shared/data/train/041.png", "../shared/data/train/042.png"] + sorted(glob.glob("../shared/data/train-extra/*.png"))[::4]
model = codec.load_model()
model._ladder = tuple((l, 1.0, ()) for l in range(10))
qs = codec.quality_levels(model)
levels = [int(a) for a in sys.argv[1].split(",")] if len(sys.argv) > 1 else [2, 4, 6, 8, 9]
res = {"base": {}, "look": {}}
t = {"base": 0.0, "look": 0.0}
for f in files:
    img = Image.open(f).convert("RGB"); s = 768 / max(img.size)
    img = img.resize((round(img.width * s), round(img.height * s)), Image.LANCZOS)
    ref = np.asarray(img, np.float64)
    for name, fn in (("base", orig_choose), ("look", choose_lookahead)):
        cm.ContextModel.choose = fn
        for L in levels:
            t0 = time.time()
            data = codec.compress(img, qs[L], model, lossless=False)
            t[name] += time.time() - t0
            out = np.asarray(codec.decompress(data, model), np.float64)
            mse = float(np.mean((ref - out) ** 2))
            res[name].setdefault(L, []).append((len(data) * 8 / (img.width * img.height), 10 * np.log10(255**2 / mse), mse))
    print(f, flush=True)
lam = model.lambdas
for L in levels:
    b = np.array(res["base"][L]); l = np.array(res["look"][L])
    cost = lambda a: np.mean(a[:, 0] + lam[L] * 255**2 * a[:, 2])
    print(f"level {L+1}: base {b[:,0].mean():.4f} bpp {b[:,1].mean():.2f} dB | look {l[:,0].mean():.4f} bpp {l[:,1].mean():.2f} dB | bits {100*(l[:,0].mean()/b[:,0].mean()-1):+.2f}% dB {l[:,1].mean()-b[:,1].mean():+.3f} | cost {100*(cost(l)/cost(b)-1):+.2f}%")
print("encode seconds", t)
json.dump({k: {str(L): v for L, v in r.items()} for k, r in res.items()} | {"seconds": t}, open("/tmp/probe/lookahead.json", "w"), indent=1)
