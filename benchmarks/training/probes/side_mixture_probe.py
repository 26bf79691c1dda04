"""Side information on the frozen codes, as a mixture of the coder's own context tables.

Per level: a hyper-analysis of the code grid to side latents z at a quarter of the grid (rounded, coded by a
factorized logistic); a hyper-synthesis back to mixture logits over the 16 contexts at each position (shared by
the groups, or per cluster of 16 groups); each code's probability is the mixture, over the 16 contexts, of the
shipped tables' probabilities of that code, with logits A[own context] + side. A starts near the identity, so
the model starts at the tables' bits and side information must pay for itself. Ideal bits, side included, on
held-out photos, against the tables alone.

    python side_mixture_probe.py codes.npz LEVEL STEPS CLUSTERS Z_CHANNELS LR   (run: 5|7|9 2000|3000 4 8 3e-3)
"""
import math, sys, time, json
import numpy as np
import keras
from keras import layers, ops
import tensorflow as tf
from vqcodec import codec
from vqcodec.model.coder_price import code_bits, coder_contexts, usual_codes
from vqcodec.model.ecvq import lattice_codebook

codes = np.load(sys.argv[1]); level = int(sys.argv[2]); steps = int(sys.argv[3]); clusters = int(sys.argv[4])
zc = int(sys.argv[5]) if len(sys.argv) > 5 else 8
keras.utils.set_random_seed(0); tf.config.threading.set_intra_op_parallelism_threads(2)
model = codec.load_model(runtime="keras")
bits_table = ops.convert_to_numpy(code_bits(model.coding_counts, model.coding_offsets, 512))[level]  # (G, 16, K)
usual = ops.convert_to_numpy(usual_codes(model.coding_counts, model.coding_offsets))[level]  # (G,)
prob_table = tf.constant(np.exp2(-bits_table).astype(np.float32))  # (G, 16, K)
values = lattice_codebook(512, 1)[:, 0]
G = bits_table.shape[0]

def grids(split):
    return [codes[k] for k in sorted(codes.files, key=lambda s: int(s.split("/")[1])) if k.startswith(split + "/") and k.endswith(f"/{level}")]

def features(g):  # (B, h, w, G) int -> float inputs, contexts, per-context probs of the actual codes
    g = tf.cast(g, tf.int32)
    ctx = coder_contexts(g, tf.broadcast_to(tf.constant(usual, tf.int32)[None], (tf.shape(g)[0], G)))
    v = tf.gather(tf.constant(values), g)
    x = tf.concat([v, tf.abs(v), tf.cast(tf.not_equal(g, usual[None, None, None]), tf.float32)], -1)
    # probs of the actual code under each context: prob_table[gr, :, code] -> (B, h, w, G, 16)
    gi = tf.broadcast_to(tf.range(G)[None, None, None], tf.shape(g))
    pc = tf.gather_nd(tf.transpose(prob_table, (0, 2, 1)), tf.stack([gi, g], -1))
    return x, ctx, pc

class Side(keras.Model):
    def __init__(self):
        super().__init__()
        self.ha = [layers.Conv2D(64, 3, padding="same", activation="relu"), layers.Conv2D(64, 5, 2, padding="same", activation="relu"),
                   layers.Conv2D(zc, 5, 2, padding="same")]
        self.hs = [layers.Conv2DTranspose(64, 5, 2, padding="same", activation="relu"), layers.Conv2DTranspose(64, 5, 2, padding="same", activation="relu"),
                   layers.Conv2D(16 * clusters, 3, padding="same", kernel_initializer="zeros")]
        self.A = self.add_weight(shape=(16, 16), initializer=keras.initializers.Constant(8.0 * np.eye(16)))
        self.z_loc = self.add_weight(shape=(zc,), initializer="zeros")
        self.z_logscale = self.add_weight(shape=(zc,), initializer="zeros")

    def call(self, x, ctx, pc, training=False):
        z = x
        for l in self.ha: z = l(z)
        zq = z + tf.random.uniform(tf.shape(z), -0.5, 0.5) if training else tf.round(z)
        s = tf.exp(self.z_logscale)
        pz = tf.sigmoid((zq + 0.5 - self.z_loc) / s) - tf.sigmoid((zq - 0.5 - self.z_loc) / s)
        zbits = -tf.reduce_sum(tf.math.log(tf.maximum(pz, 1e-9)), [1, 2, 3]) / math.log(2.0)
        h = zq
        for l in self.hs: h = l(h)
        b, hh, ww = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]
        side = tf.reshape(h, (b, hh, ww, clusters, 1, 16))
        side = tf.reshape(tf.broadcast_to(side, (b, hh, ww, clusters, G // clusters, 16)), (b, hh, ww, G, 16))
        logits = tf.gather(self.A, ctx) + side
        p = tf.reduce_sum(tf.nn.softmax(logits, -1) * pc, -1)
        cbits = -tf.reduce_sum(tf.math.log(tf.maximum(p, 1e-12)), [1, 2, 3]) / math.log(2.0)
        return cbits, zbits

net = Side()
train = [g for g in grids("train") if min(g.shape[:2]) >= 32]; held = grids("held")
rng = np.random.default_rng(0)
P, B = 32, 8
def batch():
    out = []
    for _ in range(B):
        g = train[rng.integers(len(train))]; i = rng.integers(g.shape[0] - P + 1); j = rng.integers(g.shape[1] - P + 1)
        out.append(g[i:i + P, j:j + P])
    return np.stack(out)
sched = keras.optimizers.schedules.CosineDecay(float(sys.argv[6]) if len(sys.argv) > 6 else 1e-3, steps, alpha=0.05)
opt = keras.optimizers.Adam(sched)
@tf.function
def step(g):
    x, ctx, pc = features(g)
    with tf.GradientTape() as tape:
        cb, zb = net(x, ctx, pc, training=True)
        loss = tf.reduce_mean(cb + zb) / (P * P * G)
    grads = tape.gradient(loss, net.trainable_variables)
    opt.apply_gradients(zip(grads, net.trainable_variables))
    return loss
def evaluate(gs):
    t_bits = m_bits = z_bits = 0.0; n = 0
    for g in gs:
        g = g[: g.shape[0] // 4 * 4, : g.shape[1] // 4 * 4][None]
        x, ctx, pc = features(g)
        own = tf.gather(pc, ctx[..., None], batch_dims=4)[..., 0]
        t_bits += float(-tf.reduce_sum(tf.math.log(own)) / math.log(2.0))
        cb, zb = net(x, ctx, pc, training=False)
        m_bits += float(cb[0]); z_bits += float(zb[0]); n += g.size
    return t_bits / n, m_bits / n, z_bits / n
t0 = time.time(); log = []
for s in range(1, steps + 1):
    loss = float(step(batch()))
    if s % (steps // 8) == 0 or s == 1:
        t, m, z = evaluate(held)
        row = dict(step=s, train_loss=loss, held_tables=t, held_codes=m, held_side=z, change=(m + z) / t - 1, seconds=round(time.time() - t0))
        log.append(row); print(json.dumps(row), flush=True)
t, m, z = evaluate(train[::4])
print(json.dumps(dict(train_subset_tables=t, train_subset_codes=m, train_subset_side=z, change=(m + z) / t - 1)), flush=True)
