"""The PixelCNN prior over index grids: causal, learns structure, scores in bits, samples, saves."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from vqcodec import PixelCNNPrior, VQVAEModel

npy = keras.ops.convert_to_numpy
K, H, W = 8, 6, 6


def checkerboards(n: int, seed: int) -> np.ndarray:
    """Grids of two random distinct codes in a checkerboard: ``3 + log2(7)`` bits of information each."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, K, n)
    b = (a + rng.integers(1, K, n)) % K
    ii, jj = np.indices((H, W))
    return np.where(((ii + jj) % 2 == 0)[None], a[:, None, None], b[:, None, None]).astype(np.int32)


def follows_rule(grid: np.ndarray) -> bool:
    ii, jj = np.indices(grid.shape)
    even = (ii + jj) % 2 == 0
    return bool(np.all(grid[even] == grid[0, 0]) and np.all(grid[~even] == grid[0, 1]) and grid[0, 0] != grid[0, 1])


@pytest.fixture(scope="module")
def trained_prior():
    keras.utils.set_random_seed(0)
    prior = PixelCNNPrior(K, (H, W), channels=32, num_layers=4)
    prior.compile(optimizer=keras.optimizers.Adam(3e-3))
    history = prior.fit(checkerboards(512, seed=0), batch_size=32, epochs=6, verbose=0).history
    return prior, history


def test_learns_checkerboards(trained_prior):
    prior, history = trained_prior
    # Seen on 2 CPU cores: 1.91 -> 0.17 bits per index.
    assert history["bits_per_index"][-1] < 0.3 * history["bits_per_index"][0], history
    uniform = H * W * math.log2(K)  # 108 bits
    held_out = checkerboards(64, seed=1)
    bits = prior.bits(held_out)
    assert bits.shape == (64,)
    # Seen: 6.0 bits a grid (ideal 5.8); a uniform code spends 108.
    assert bits.mean() < 0.25 * uniform, bits.mean()
    # A grid breaking the rule costs far more than one keeping it.
    broken = held_out.copy()
    broken[:, 3, 3] = (broken[:, 3, 3] + 1) % K
    assert (prior.bits(broken) > bits + 4).all()
    np.testing.assert_allclose(prior.log_prob(held_out), -bits * math.log(2), rtol=1e-9)


def test_samples_follow_the_rule_and_repeat_with_a_seed(trained_prior):
    prior, _ = trained_prior
    samples = prior.sample(32, seed=1)
    assert samples.shape == (32, H, W) and samples.dtype == np.int32
    assert samples.min() >= 0 and samples.max() < K
    # By chance a grid follows the rule with probability about 8**-34; seen: 28 of 32.
    assert sum(follows_rule(g) for g in samples) >= 20
    np.testing.assert_array_equal(prior.sample(32, seed=1), samples)
    assert not np.array_equal(prior.sample(32, seed=2), samples)
    # A low temperature follows the rule at least as well.
    assert sum(follows_rule(g) for g in prior.sample(16, seed=3, temperature=0.5)) >= 14  # seen: 16 of 16


def test_keras_round_trip(trained_prior, tmp_path):
    prior, _ = trained_prior
    path = tmp_path / "prior.keras"
    prior.save(path)
    loaded = keras.saving.load_model(path)  # registered: no custom_objects
    assert isinstance(loaded, PixelCNNPrior)
    assert loaded.grid_shape == (H, W) and loaded.num_embeddings == K
    grids = checkerboards(8, seed=2)
    np.testing.assert_array_equal(loaded.bits(grids), prior.bits(grids))
    np.testing.assert_array_equal(loaded.sample(4, seed=5), prior.sample(4, seed=5))


def test_causal_each_logit_sees_only_earlier_indices():
    keras.utils.set_random_seed(1)
    prior = PixelCNNPrior(K, (5, 7), channels=16, num_layers=3, kernel_size=5)
    grid = np.random.default_rng(0).integers(0, K, (1, 5, 7)).astype(np.int32)
    base = npy(prior(grid))
    for i, j in [(0, 0), (2, 3), (4, 6), (1, 0), (3, 6)]:
        changed = grid.copy()
        changed[0, i, j] = (changed[0, i, j] + 3) % K
        moved = np.abs(npy(prior(changed)) - base).max(axis=-1)[0]  # (5, 7)
        order = np.arange(5 * 7).reshape(5, 7)
        assert moved[order <= order[i, j]].max() == 0, (i, j)  # nothing at or before it moves
        later = order > order[i, j]
        if later.any():
            assert moved[later].max() > 0, (i, j)  # and the next positions do see it


def test_fresh_model_scores_near_uniform_and_samples():
    keras.utils.set_random_seed(2)
    prior = PixelCNNPrior(K, (H, W))
    grids = checkerboards(4, seed=3)
    uniform = H * W * math.log2(K)
    # An untrained model's logits are small: about a uniform code.
    np.testing.assert_allclose(prior.bits(grids), uniform, rtol=0.1)
    # bits is the sum of -log2 softmax at the grid's indices.
    logits = npy(prior(grids)).astype(np.float64)
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    chosen = np.take_along_axis(logp, grids[..., None], axis=-1)[..., 0]
    np.testing.assert_allclose(prior.bits(grids), -chosen.sum(axis=(1, 2)) / math.log(2), rtol=1e-5)
    assert prior.sample(2, seed=0).shape == (2, H, W)
    # Convolutional: other grid sizes are scored too.
    assert prior.bits(np.zeros((3, 4, 9), np.int32)).shape == (3,)


def test_refuses_bad_grids_in_one_line():
    prior = PixelCNNPrior(K, (H, W), channels=8, num_layers=1)
    for grids, words in [
        (np.zeros((2, H, W, 3), np.int32), "fit one prior per stage"),
        (np.zeros((H, W), np.int32), "(N, H, W)"),
        (np.full((1, H, W), K, np.int32), f"0..{K - 1}"),
    ]:
        with pytest.raises(ValueError, match=r".") as error:
            prior.bits(grids)
        assert words in str(error.value) and "\n" not in str(error.value)
    prior.compile(optimizer="adam")
    with pytest.raises(ValueError, match="fit one prior per stage"):
        prior.fit(np.zeros((4, H, W, 2), np.int32), epochs=1, verbose=0)
    with pytest.raises(ValueError, match="temperature"):
        prior.sample(1, temperature=0.0)
    with pytest.raises(ValueError, match="num_samples"):
        prior.sample(0)
    with pytest.raises(ValueError, match="grid_shape"):
        PixelCNNPrior(K, (0, 4))
    with pytest.raises(ValueError, match="kernel_size"):
        PixelCNNPrior(K, (4, 4), kernel_size=4)


def test_samples_decode_to_images():
    keras.utils.set_random_seed(4)
    encoder = keras.Sequential([keras.Input((16, 16, 1)), keras.layers.Conv2D(4, 4, strides=4)])
    decoder = keras.Sequential([keras.Input((4, 4, 4)), keras.layers.Conv2DTranspose(1, 4, strides=4)])
    model = VQVAEModel(encoder, decoder, num_embeddings=K, embedding_dim=4, seed=0)
    x = np.random.default_rng(0).random((32, 16, 16, 1)).astype("float32")
    indices = npy(model.encode_to_indices(x))
    assert indices.shape == (32, 4, 4)
    prior = PixelCNNPrior(K, indices.shape[1:], channels=16, num_layers=2)
    prior.compile(optimizer="adam")
    prior.fit(indices, batch_size=16, epochs=1, verbose=0)
    images = model.decode_from_indices(prior.sample(3, seed=0))
    assert tuple(images.shape) == (3, 16, 16, 1)


JAX_SCRIPT = r"""
import json, math
import keras
import numpy as np
from vqcodec import PixelCNNPrior

assert keras.backend.backend() == "jax", keras.backend.backend()
keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
a = rng.integers(0, 8, 512); b = (a + rng.integers(1, 8, 512)) % 8
ii, jj = np.indices((6, 6))
grids = np.where(((ii + jj) % 2 == 0)[None], a[:, None, None], b[:, None, None]).astype(np.int32)
prior = PixelCNNPrior(8, (6, 6), channels=32, num_layers=4)
prior.compile(optimizer=keras.optimizers.Adam(3e-3))
prior.fit(grids, batch_size=32, epochs=6, verbose=0)
samples = prior.sample(16, seed=1)
even = (ii + jj) % 2 == 0
rule = sum(bool((g[even] == g[0, 0]).all() and (g[~even] == g[0, 1]).all()) for g in samples)
prior.save("prior.keras")
loaded = keras.saving.load_model("prior.keras")
print("RESULT " + json.dumps({
    "bits": float(prior.bits(grids[:64]).mean()),
    "rule": rule,
    "repeat": bool(np.array_equal(prior.sample(16, seed=1), samples)),
    "round_trip": float(np.abs(loaded.bits(grids[:8]) - prior.bits(grids[:8])).max()),
}))
"""


@pytest.mark.slow
def test_prior_under_jax_backend(tmp_path):
    """The same fit, sampling and round trip with KERAS_BACKEND=jax, in a subprocess (jax is not a dependency)."""
    import importlib.util
    import json
    import os
    import subprocess
    import sys

    if importlib.util.find_spec("jax") is None:
        pytest.skip("jax is not installed")
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    proc = subprocess.run(
        [sys.executable, "-c", JAX_SCRIPT], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(next(l for l in proc.stdout.splitlines() if l.startswith("RESULT "))[len("RESULT "):])
    assert result["bits"] < 0.25 * 36 * 3, result  # seen: 6.0 bits a grid
    assert result["rule"] >= 12, result  # seen: 16 of 16
    assert result["repeat"] and result["round_trip"] == 0.0, result
