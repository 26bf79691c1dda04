"""Tests of the vector quantisers against hand-computed values.

The tests may use TensorFlow directly (``tf.GradientTape``); the model code
itself uses only ``keras.ops``.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from vqcodec.model.quantizer import ResidualVectorQuantizer, VectorQuantizer

npy = keras.ops.convert_to_numpy
# Keras variables' __array__ lacks numpy 2's copy keyword: harmless noise.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

# A hand-made codebook (4 codes in 2-D) and four inputs, one near each code.
CODEBOOK = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], "float32")
INPUTS = np.array([[0.1, 0.2], [0.9, -0.1], [0.2, 0.8], [0.6, 0.7]], "float32")
# Nearest codes 0, 1, 2, 3. Squared errors per vector: .05, .02, .08, .25;
# their sum .40 over 8 elements gives a mean squared error of 0.05.
EXPECTED_INDICES = [0, 1, 2, 3]
EXPECTED_MSE = 0.05


def make_vq(codebook=CODEBOOK, **kwargs):
    k, d = codebook.shape
    layer = VectorQuantizer(k, d, **kwargs)
    layer.build((None, d))
    layer.embeddings.assign(codebook)
    return layer


def brute_force_indices(x, codebook):
    flat = x.reshape(-1, codebook.shape[1])
    d = ((flat[:, None, :] - codebook[None, :, :]) ** 2).sum(-1)
    return d.argmin(1).reshape(x.shape[:-1])


def set_ema_state(layer, codebook, cluster_size=1.0):
    """Puts an EMA layer in a known, already-initialised state."""
    layer.embeddings.assign(codebook)
    layer.ema_cluster_size.assign(np.full(codebook.shape[0], cluster_size, "float32"))
    layer.ema_embedding_sum.assign(codebook * cluster_size)
    layer._ema_initialized.assign(1.0)


# -- nearest neighbour and losses ---------------------------------------------


def test_nearest_neighbour_and_output_hand_computed():
    layer = make_vq()
    indices = npy(layer.get_code_indices(INPUTS))
    assert indices.tolist() == EXPECTED_INDICES
    out = npy(layer(INPUTS))
    np.testing.assert_allclose(out, CODEBOOK[EXPECTED_INDICES], atol=1e-6)
    np.testing.assert_allclose(npy(layer.lookup(indices)), CODEBOOK[EXPECTED_INDICES])


def test_losses_hand_computed_without_ema():
    layer = make_vq(commitment_cost=0.25)
    layer(INPUTS)
    assert len(layer.losses) == 1
    # codebook loss (0.05) + 0.25 * commitment loss (0.05)
    np.testing.assert_allclose(float(layer.losses[0]), 1.25 * EXPECTED_MSE, rtol=1e-5)


def test_losses_hand_computed_with_ema():
    layer = make_vq(commitment_cost=0.4, use_ema=True)
    layer(INPUTS)  # inference: no EMA update, no data seeding
    # EMA: no codebook loss, only the commitment term
    np.testing.assert_allclose(float(layer.losses[0]), 0.4 * EXPECTED_MSE, rtol=1e-5)
    np.testing.assert_allclose(npy(layer.embeddings), CODEBOOK)


def test_quantize_vectors_returns_all_parts():
    layer = make_vq()
    out, quantized, indices, loss = layer.quantize_vectors(INPUTS)
    np.testing.assert_allclose(npy(quantized), CODEBOOK[EXPECTED_INDICES])
    np.testing.assert_allclose(npy(out), CODEBOOK[EXPECTED_INDICES], atol=1e-6)
    assert npy(indices).tolist() == EXPECTED_INDICES
    np.testing.assert_allclose(float(loss), 1.25 * EXPECTED_MSE, rtol=1e-5)


@pytest.mark.parametrize("shape", [(7, 3), (2, 5, 3), (2, 3, 4, 3)])
def test_any_input_rank(shape):
    rng = np.random.default_rng(0)
    codebook = rng.normal(size=(6, 3)).astype("float32")
    x = rng.normal(size=shape).astype("float32")
    layer = make_vq(codebook)
    out = npy(layer(x))
    assert out.shape == shape
    indices = npy(layer.get_code_indices(x))
    assert indices.shape == shape[:-1]
    np.testing.assert_array_equal(indices, brute_force_indices(x, codebook))
    np.testing.assert_allclose(out, codebook[indices], atol=1e-5)


STATE = ["embeddings", "ema_cluster_size", "ema_embedding_sum", "ema_initialized", "code_usage", "perplexity", "usage"]


@pytest.mark.parametrize("use_ema", [False, True])
def test_state_exists_at_construction_and_build_only_checks(use_ema):
    layer = VectorQuantizer(4, 2, use_ema=use_ema, initializer=keras.initializers.Constant(0.5))
    # The saved file lists the variables in creation order: that order is the format.
    assert [w.name for w in layer.weights] == [n for n in STATE if use_ema or not n.startswith("ema")]
    assert npy(layer.lookup(np.array([0, 3]))).tolist() == [[0.5, 0.5], [0.5, 0.5]]
    assert npy(layer.get_code_indices(INPUTS)).shape == (4,)
    before = list(layer.weights)
    layer.build((None, 2))
    assert layer.built and all(a is b for a, b in zip(layer.weights, before)) and len(layer.weights) == len(before)


def test_residual_state_exists_at_construction():
    rvq = ResidualVectorQuantizer(3, 8, 2, initializer=keras.initializers.RandomNormal(seed=1))
    assert not rvq.built and len(rvq.weights) == 3 * 4
    x = np.random.default_rng(0).normal(size=(5, 2)).astype("float32")
    indices = rvq.get_code_indices(x)
    assert tuple(indices.shape) == (5, 3)
    np.testing.assert_allclose(npy(rvq.lookup(indices)), npy(rvq(x)), atol=1e-5)  # the first call builds
    assert rvq.built and len(rvq.weights) == 3 * 4


def test_wrong_last_axis_rejected():
    with pytest.raises(ValueError, match="last axis 3"):
        VectorQuantizer(4, 3).build((None, 5))
    with pytest.raises(ValueError, match="last axis 3"):
        VectorQuantizer(4, 3).get_code_indices(np.zeros((2, 5), "float32"))
    with pytest.raises(ValueError, match="last axis 3"):
        ResidualVectorQuantizer(2, 4, 3)(np.zeros((2, 5), "float32"))


# -- gradients ------------------------------------------------------------------


def test_straight_through_gradient_and_codebook_gradient_without_ema():
    layer = make_vq(commitment_cost=0.25)
    x = tf.Variable(INPUTS)
    weights = tf.constant(np.arange(8, dtype="float32").reshape(4, 2))
    with tf.GradientTape(persistent=True) as tape:
        out = layer(x, training=True)
        task = tf.reduce_sum(out * weights)
        vq = tf.add_n(layer.losses)
    # Straight-through: d(task)/dx is exactly the upstream gradient.
    np.testing.assert_allclose(tape.gradient(task, x).numpy(), weights.numpy(), atol=1e-6)

    q = CODEBOOK[EXPECTED_INDICES]
    n_elements = INPUTS.size
    # Commitment term reaches the encoder: 0.25 * 2 (x - q) / N.
    np.testing.assert_allclose(
        tape.gradient(vq, x).numpy(), 0.25 * 2 * (INPUTS - q) / n_elements, rtol=1e-5, atol=1e-7
    )
    # Codebook term reaches the codebook: -2 * sum_{i -> k} (x_i - e_k) / N.
    assert layer.embeddings in layer.trainable_weights
    grad_e = tape.gradient(vq, layer.embeddings)
    grad_e = grad_e.numpy() if not hasattr(grad_e, "values") else tf.convert_to_tensor(grad_e).numpy()
    expected = np.zeros_like(CODEBOOK)
    for i, k in enumerate(EXPECTED_INDICES):
        expected[k] += -2 * (INPUTS[i] - CODEBOOK[k]) / n_elements
    np.testing.assert_allclose(grad_e, expected, rtol=1e-5, atol=1e-7)


def test_ema_codebook_not_trainable_and_gets_no_gradient():
    layer = make_vq(use_ema=True)
    assert layer.trainable_weights == []
    assert any(w is layer.embeddings for w in layer.non_trainable_weights)
    x = tf.Variable(INPUTS)
    with tf.GradientTape() as tape:
        out = layer(x, training=False)
        total = tf.reduce_sum(out) + tf.add_n(layer.losses)
    grad_x = tape.gradient(total, x).numpy()
    q = CODEBOOK[EXPECTED_INDICES]
    np.testing.assert_allclose(grad_x, 1.0 + 0.25 * 2 * (INPUTS - q) / INPUTS.size, rtol=1e-5)


# -- EMA updates ------------------------------------------------------------------


def test_ema_update_matches_formula_and_moves_codes_toward_assigned_mean():
    decay, eps = 0.5, 1e-5
    layer = make_vq(use_ema=True, ema_decay=decay, epsilon=eps)
    set_ema_state(layer, CODEBOOK)
    # Codes 0 and 1 get two inputs each, codes 2 and 3 none.
    x = np.array([[0.2, 0.1], [0.0, 0.3], [0.8, 0.2], [0.7, -0.1]], "float32")
    assert npy(layer.get_code_indices(x)).tolist() == [0, 0, 1, 1]
    layer(x, training=True)

    counts = np.array([2.0, 2.0, 0.0, 0.0])
    sums = np.array([x[0] + x[1], x[2] + x[3], [0, 0], [0, 0]])
    size = decay * 1.0 + (1 - decay) * counts
    embed_sum = decay * CODEBOOK + (1 - decay) * sums
    total = size.sum()
    smoothed = (size + eps) / (total + 4 * eps) * total
    expected = embed_sum / smoothed[:, None]
    new = npy(layer.embeddings)
    np.testing.assert_allclose(new, expected, rtol=1e-5)
    np.testing.assert_allclose(npy(layer.ema_cluster_size), size, rtol=1e-6)

    means = np.array([x[:2].mean(0), x[2:].mean(0)])
    for k in (0, 1):
        assert np.linalg.norm(new[k] - means[k]) < np.linalg.norm(CODEBOOK[k] - means[k])


def test_ema_converges_to_mean_of_assigned_vectors():
    layer = make_vq(use_ema=True, ema_decay=0.5)
    set_ema_state(layer, CODEBOOK)
    # Two inputs per code, so the assignment stays fixed while the codes move.
    x = np.concatenate([INPUTS, CODEBOOK * 0.8 + 0.1]).astype("float32")
    assignment = npy(layer.get_code_indices(x))
    assert sorted(assignment.tolist()) == [0, 0, 1, 1, 2, 2, 3, 3]
    for _ in range(30):
        layer(x, training=True)
    means = np.array([x[assignment == k].mean(0) for k in range(4)])
    np.testing.assert_allclose(npy(layer.embeddings), means, atol=1e-4)
    np.testing.assert_array_equal(npy(layer.get_code_indices(x)), assignment)


def test_ema_state_updated_only_in_training():
    layer = make_vq(use_ema=True, ema_decay=0.5)
    set_ema_state(layer, CODEBOOK)
    layer(INPUTS)
    layer(INPUTS, training=False)
    np.testing.assert_allclose(npy(layer.embeddings), CODEBOOK)
    np.testing.assert_allclose(npy(layer.ema_cluster_size), np.ones(4))


def test_ema_codebook_seeded_from_first_training_batch():
    keras.utils.set_random_seed(0)
    layer = VectorQuantizer(4, 2, use_ema=True, seed=1)
    layer.build((None, 2))
    x = np.random.default_rng(0).normal(size=(32, 2)).astype("float32") + 10.0
    layer(x, training=True)
    codebook = npy(layer.embeddings)
    # Every code starts on (or near, after one EMA step) the data, far from the init range.
    assert np.all(np.abs(codebook - 10.0) < 4.0)


# -- usage metrics and dead codes --------------------------------------------------


def test_usage_metrics_on_constructed_batch():
    layer = make_vq()
    # Assignments: code 0 twice, codes 1 and 2 once, code 3 never.
    x = np.array([[0.0, 0.1], [0.1, 0.0], [1.0, 0.1], [0.0, 0.9]], "float32")
    assert npy(layer.get_code_indices(x)).tolist() == [0, 0, 1, 2]
    layer(x, training=True)
    # probs (.5, .25, .25, 0): entropy 1.5 ln 2, perplexity 2 ** 1.5
    np.testing.assert_allclose(float(layer.perplexity), 2**1.5, rtol=1e-5)
    np.testing.assert_allclose(float(layer.usage), 0.75)
    # An evaluation call describes its own batch (all four codes used uniformly:
    # perplexity 4, usage 1) but leaves the running code-usage average alone.
    running = npy(layer.code_usage).copy()
    layer(INPUTS, training=False)
    np.testing.assert_allclose(npy(layer.code_usage), running)
    np.testing.assert_allclose(float(layer.perplexity), 4.0, rtol=1e-5)
    np.testing.assert_allclose(float(layer.usage), 1.0)


@pytest.mark.parametrize("use_ema", [False, True])
def test_dead_code_restart_revives_unused_codes(use_ema):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    live = CODEBOOK * 4.0
    dead = np.full((4, 2), 100.0, "float32")  # never nearest to any input
    codebook = np.concatenate([live, dead]).astype("float32")
    layer = VectorQuantizer(
        8, 2, use_ema=use_ema, ema_decay=0.9, dead_code_threshold=0.9, usage_decay=0.5, seed=3
    )
    layer.build((None, 2))
    if use_ema:
        set_ema_state(layer, codebook)
    else:
        layer.embeddings.assign(codebook)
    x = (live[rng.integers(0, 4, size=64)] + rng.normal(scale=0.5, size=(64, 2))).astype("float32")

    assert set(npy(layer.get_code_indices(x)).tolist()) <= {0, 1, 2, 3}
    layer(x, training=True)  # half of the usage share is gone: 4 codes fall below the threshold
    revived = npy(layer.embeddings)[4:]
    # Each restarted code now sits exactly on one of the batch's vectors.
    dist_to_data = np.min(((revived[:, None, :] - x[None]) ** 2).sum(-1), axis=1)
    np.testing.assert_allclose(dist_to_data, 0.0, atol=1e-4 if use_ema else 1e-10)

    layer(x, training=True)
    used = set(npy(layer.get_code_indices(x)).tolist())
    assert used & {4, 5, 6, 7}, "revived codes must win inputs"
    assert float(layer.usage) > 0.5
    assert float(layer.perplexity) > 4.0


def test_no_restart_when_threshold_is_zero():
    layer = make_vq(np.concatenate([CODEBOOK, np.full((4, 2), 100.0, "float32")]), usage_decay=0.0)
    for _ in range(3):
        layer(INPUTS, training=True)
    np.testing.assert_allclose(npy(layer.embeddings)[4:], 100.0)
    np.testing.assert_allclose(float(layer.usage), 0.5)


# -- residual quantiser ----------------------------------------------------------------


def test_residual_error_falls_as_stages_are_added():
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(256, 4)).astype("float32")
    rvq = ResidualVectorQuantizer(4, 16, 4, use_ema=True, ema_decay=0.8, seed=0)
    rvq.build(x.shape)
    for _ in range(10):
        rvq(x, training=True)
    errors = [float(np.mean((x - npy(rvq(x, num_stages=n))) ** 2)) for n in range(1, 5)]
    assert all(a > b for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < 0.5 * errors[0], errors
    # Default uses every stage.
    np.testing.assert_allclose(npy(rvq(x)), npy(rvq(x, num_stages=4)))


@pytest.mark.parametrize("shape", [(6, 3), (2, 4, 3), (2, 3, 3, 3)])
def test_residual_lookup_of_indices_equals_quantised_output(shape):
    rng = np.random.default_rng(1)
    x = rng.normal(size=shape).astype("float32")
    rvq = ResidualVectorQuantizer(3, 8, 3, initializer=keras.initializers.RandomNormal(seed=2))
    rvq.build(shape)
    for n in (1, 2, 3):
        indices = rvq.get_code_indices(x, num_stages=n)
        assert tuple(indices.shape) == shape[:-1] + (n,)
        out = npy(rvq(x, num_stages=n))
        np.testing.assert_allclose(npy(rvq.lookup(indices)), out, atol=1e-5)
    # Stage s quantises the residual left by the stages before it.
    idx = npy(rvq.get_code_indices(x))
    residual = x.copy()
    for s, stage in enumerate(rvq.stages):
        codebook = npy(stage.embeddings)
        np.testing.assert_array_equal(idx[..., s], brute_force_indices(residual, codebook))
        residual = residual - codebook[idx[..., s]]


def test_residual_num_stages_bounds_checked():
    rvq = ResidualVectorQuantizer(3, 8, 2)
    rvq.build((None, 2))
    x = np.zeros((4, 2), "float32")
    for bad in (0, 4, -1):
        with pytest.raises(ValueError):
            rvq(x, num_stages=bad)
        with pytest.raises(ValueError):
            rvq.get_code_indices(x, num_stages=bad)
    with pytest.raises(ValueError):
        rvq.lookup(np.zeros((4, 5), "int32"))


def test_residual_stage_dropout_gives_per_example_prefixes():
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(2).normal(size=(64, 2)).astype("float32")
    rvq = ResidualVectorQuantizer(
        3, 8, 2, stage_dropout=True, seed=5, initializer=keras.initializers.RandomNormal(seed=4)
    )
    rvq.build(x.shape)
    prefixes = np.stack([npy(rvq(x, num_stages=n)) for n in (1, 2, 3)])  # (3, B, D)
    out = npy(rvq(x, training=True))  # non-EMA: the codebooks do not move
    match = np.isclose(out[None], prefixes, atol=1e-5).all(-1)  # (3, B)
    assert match.any(0).all(), "every example must get a prefix of the stages"
    chosen = match.argmax(0)
    assert len(set(chosen.tolist())) >= 2, "stage counts must vary across the batch"
    # Without dropout, training uses every stage.
    rvq_full = ResidualVectorQuantizer(3, 8, 2, stage_dropout=False)
    rvq_full.build(x.shape)
    np.testing.assert_allclose(
        npy(rvq_full(x, training=True)), npy(rvq_full(x)), atol=1e-6
    )


def test_residual_loss_is_sum_of_stage_losses():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(10, 2)).astype("float32")
    rvq = ResidualVectorQuantizer(2, 4, 2, commitment_cost=0.25)
    rvq.build(x.shape)
    rvq.stages[0].embeddings.assign(CODEBOOK)
    rvq.stages[1].embeddings.assign(CODEBOOK * 0.25)
    rvq(x)
    q1 = CODEBOOK[brute_force_indices(x, CODEBOOK)]
    r1 = x - q1
    q2 = (CODEBOOK * 0.25)[brute_force_indices(r1, CODEBOOK * 0.25)]
    expected = 1.25 * np.mean((x - q1) ** 2) + 1.25 * np.mean((r1 - q2) ** 2)
    assert len(rvq.losses) == 1
    np.testing.assert_allclose(float(rvq.losses[0]), expected, rtol=1e-5)


def test_serialisation_round_trip_of_layers():
    vq = VectorQuantizer(8, 3, commitment_cost=0.3, use_ema=True, dead_code_threshold=0.1, seed=7)
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(vq))
    assert isinstance(clone, VectorQuantizer)
    for key in ("num_embeddings", "embedding_dim", "commitment_cost", "use_ema", "dead_code_threshold", "seed"):
        assert getattr(clone, key) == getattr(vq, key)
    rvq = ResidualVectorQuantizer(3, 8, 3, stage_dropout=False)
    clone = ResidualVectorQuantizer.from_config(rvq.get_config())
    assert clone.num_stages == 3 and clone.stage_dropout is False and len(clone.stages) == 3
    assert math.isclose(clone.commitment_cost, 0.25)
