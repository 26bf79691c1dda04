"""EntropyConstrainedVQ and VariableRateVQVAE: assignment, rate gradients, rate control, save/load."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from vqcodec.model.transforms import build_decoder, build_encoder
from vqcodec.model.ecvq import CANDIDATE_WINDOW, EntropyConstrainedVQ, lattice_codebook
from vqcodec.model.variable_rate import VariableRateVQVAE


def _scalar_quantizer(rate_weight: float) -> EntropyConstrainedVQ:
    """One quality, one group, codes [0, -1, 1] with probabilities [1/2, 1/4, 1/4], gain 1."""
    layer = EntropyConstrainedVQ(num_qualities=1, num_embeddings=3, embedding_dim=1, rate_weight=rate_weight)
    layer.logits.assign(np.log([[[0.5, 0.25, 0.25]]]).astype("float32"))
    layer.log_gains.assign(np.zeros((1, 1), "float32"))
    return layer


def _tiny_model(
    seed: int = 0, code_dim: int = 2, lambdas=(0.01, 0.1), gain_range=(1.0, 16.0), learn_codebooks: bool = True,
    learned_reconstruction: bool = False,
) -> VariableRateVQVAE:
    keras.utils.set_random_seed(seed)
    model = VariableRateVQVAE(
        build_encoder(8, 4, 1), build_decoder(8, 4, 1), num_embeddings=9, embedding_dim=4, code_dim=code_dim,
        lambdas=lambdas, gain_range=gain_range, learn_codebooks=learn_codebooks,
        learned_reconstruction=learned_reconstruction, seed=seed,
    )
    return model


def test_lattice_codebook_is_nearest_integer_points():
    assert lattice_codebook(3, 1)[:, 0].tolist() == [0.0, -1.0, 1.0]
    square = lattice_codebook(9, 2)
    assert sorted(map(tuple, square.tolist())) == sorted((i, j) for i in (-1.0, 0.0, 1.0) for j in (-1.0, 0.0, 1.0))
    assert len({tuple(p) for p in lattice_codebook(256, 4).tolist()}) == 256


def test_ecvq_assignment_matches_hand_computed_costs():
    # u = 0.9: distances 0.81 / 3.61 / 0.01, bits 1 / 2 / 2.
    #   rate_weight 0 -> nearest code 1 (index 2); rate_weight 1 -> 1.81 < 2.01: code 0 (index 0).
    # u = 1.2: 1.44 + 1 = 2.44 > 0.04 + 2 = 2.04 -> index 2 even with the rate term.
    u = np.array([[[[0.9]], [[1.2]], [[-0.6]]]], "float32")  # (1, 3, 1, 1)
    plain = np.asarray(_scalar_quantizer(0.0).get_code_indices(u, 0))[0, :, 0, 0]
    ecvq = np.asarray(_scalar_quantizer(1.0).get_code_indices(u, 0))[0, :, 0, 0]
    assert plain.tolist() == [2, 2, 1]
    assert ecvq.tolist() == [0, 2, 0]  # -0.6: 0.36 + 1 = 1.36 < 0.16 + 2 = 2.16


def test_rate_never_rises_with_the_rate_weight():
    rng = np.random.default_rng(0)
    latents = (rng.standard_normal((2, 6, 6, 8)) * 3).astype("float32")
    totals = []
    for weight in (0.0, 0.5, 2.0, 8.0):
        layer = EntropyConstrainedVQ(num_qualities=1, num_embeddings=16, embedding_dim=8, code_dim=2, rate_weight=weight)
        _, bits = layer(latents, quality=0, training=False)
        totals.append(float(np.sum(bits)))
    assert all(b <= a + 1e-4 for a, b in zip(totals, totals[1:])), totals
    assert totals[-1] < 0.7 * totals[0], totals


@pytest.mark.parametrize("lattice", [False, True], ids=["learned-2d", "fixed-1d-windowed"])
def test_rate_gradient_reaches_the_code_probabilities_and_the_encoder_side(lattice):
    if lattice:
        layer = EntropyConstrainedVQ(num_qualities=2, num_embeddings=16, embedding_dim=4, learn_codebooks=False)
        assert layer.windowed
    else:
        layer = EntropyConstrainedVQ(num_qualities=2, num_embeddings=9, embedding_dim=4, code_dim=2)
    latents = tf.Variable(np.random.default_rng(1).standard_normal((2, 3, 3, 4)).astype("float32"))
    with tf.GradientTape() as tape:
        _, bits = layer(latents, quality=np.array([0, 1]), training=True)
        rate = tf.reduce_sum(bits)
    grads = tape.gradient(rate, [layer.logits, layer.log_gains, latents])
    grad_logits, grad_gains, grad_latents = (tf.convert_to_tensor(g) for g in grads)  # dense, not IndexedSlices
    assert np.abs(grad_logits.numpy()).sum() > 0
    # Both qualities used -> both rows of logits get a gradient.
    assert np.all(np.abs(grad_logits.numpy()).sum(axis=(1, 2)) > 0)
    assert np.abs(grad_gains.numpy()).sum() > 0
    assert np.abs(grad_latents.numpy()).sum() > 0


def test_bits_are_minus_log2_of_the_chosen_codes_probability():
    layer = _scalar_quantizer(1.0)
    u = np.array([[[[0.1]], [[1.3]]]], "float32")
    _, bits = layer(u, quality=0, training=False)
    assert float(bits[0]) == pytest.approx(1.0 + 2.0, abs=1e-5)


def test_dead_codes_are_revived_onto_recent_latents():
    layer = EntropyConstrainedVQ(num_qualities=1, num_embeddings=4, embedding_dim=1, dead_code_threshold=0.5, usage_decay=0.0, seed=0)
    latents = np.full((1, 4, 4, 1), 0.1, "float32")
    layer(latents, quality=0, training=True)  # every input picks code 0: codes 1..3 are dead
    before = np.asarray(layer.codebooks).copy()
    assert layer.revive_dead_codes() == 3
    after = np.asarray(layer.codebooks)
    assert after[0, 0, 0] == before[0, 0, 0]
    np.testing.assert_allclose(after[0, 1:, 0], 0.1 * math.exp(np.asarray(layer.log_gains)[0, 0]), rtol=1e-5)



def test_refitted_code_distributions_are_the_chosen_codes_frequencies():
    layer = EntropyConstrainedVQ(num_qualities=2, num_embeddings=9, embedding_dim=2, gain_range=(1.0, 4.0))
    latents = np.random.default_rng(0).laplace(0.0, 0.7, (3, 8, 8, 2)).astype("float32")
    chosen = [np.asarray(layer.get_code_indices(latents, q)).reshape(-1, 2) for q in range(2)]

    def mean_bits(q: int) -> float:
        _, bits = layer(latents, quality=q, training=False)
        return float(np.mean(bits))

    before = [mean_bits(q) for q in range(2)]
    layer.refit_code_distributions(latents, smoothing=0.5)
    probs = keras.ops.convert_to_numpy(keras.ops.softmax(layer.logits, axis=-1))
    for q in range(2):
        for g in range(2):
            counts = np.bincount(chosen[q][:, g], minlength=9) + 0.5
            np.testing.assert_allclose(probs[q, g], counts / counts.sum(), rtol=1e-5)
        # the chosen codes' own frequencies code them in fewer bits than the start's flat-ish guess
        layer_codes = np.asarray(layer.get_code_indices(latents, q)).reshape(-1, 2)
        log_p = np.log2(probs[q][np.arange(2), layer_codes]).sum(axis=1)
        assert -log_p.sum() / 3 < before[q]

def test_fresh_model_public_methods_work_without_build():
    # Networks without keras.Input: nothing is built until the first call.
    encoder = keras.Sequential([keras.layers.Conv2D(4, 3, strides=8, padding="same")])
    decoder = keras.Sequential([keras.layers.Conv2DTranspose(3, 8, strides=8, padding="same")])
    model = VariableRateVQVAE(encoder, decoder, num_embeddings=9, embedding_dim=4, code_dim=2, lambdas=(0.01, 0.1))
    assert not model.built
    x = np.random.default_rng(0).random((2, 16, 16, 3)).astype("float32")
    latents = model.encode(x)
    assert tuple(latents.shape) == (2, 2, 2, 4)
    assert tuple(model.quantize_latents(latents, 1).shape) == (2, 2, 2, 4)
    assert tuple(model.decode(latents).shape) == (2, 16, 16, 3)
    indices = model.encode_to_indices(x, 0)
    assert tuple(indices.shape) == (2, 2, 2, 2)
    candidates, distances = model.encode_to_candidates(x, 0)
    assert tuple(candidates.shape) == tuple(distances.shape) == (2, 2, 2, 2, 9)
    assert tuple(model.decode_from_indices(indices, 0).shape) == (2, 16, 16, 3)
    core = np.asarray(model.encode_to_indices(x, 0, region=np.array([1, 2, 0, 1], np.int32)))
    np.testing.assert_array_equal(core, np.asarray(indices)[:, 1:2, 0:1])
    with pytest.raises(ValueError, match="quality"):
        model(x)


def test_model_from_built_transforms_is_fully_built_after_construction_and_load(tmp_path):
    # A trainer builds whatever is unbuilt with an inference call (no quality), which this model refuses.
    model = _tiny_model()
    assert model.built and model.quantizer.built
    path = tmp_path / "vr.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.built and loaded.quantizer.built


def test_decode_from_indices_equals_decoding_the_quantised_latents():
    model = _tiny_model()
    x = np.random.default_rng(0).random((1, 16, 16, 3)).astype("float32")
    via_indices = np.asarray(model.decode_from_indices(model.encode_to_indices(x, 1), 1))
    via_latents = np.asarray(model(x, quality=1))
    np.testing.assert_allclose(via_indices, via_latents, atol=1e-5)


def test_training_lowers_the_loss_and_higher_lambda_spends_more_bits():
    # Equal gains at the start: only the lambdas (through training) can separate the two rates.
    model = _tiny_model(lambdas=(0.001, 1.0), gain_range=(1.0, 1.0))
    x0 = np.random.default_rng(5).random((4, 16, 16, 3)).astype("float32")
    before = [float(np.sum(model.quantizer(model.encode(x0), quality=q, training=False)[1])) for q in (0, 1)]
    assert before[0] == pytest.approx(before[1])
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    x = np.random.default_rng(2).random((16, 16, 16, 3)).astype("float32")
    x = (x + np.roll(x, 1, axis=1) + np.roll(x, 1, axis=2)) / 3  # some spatial correlation
    history = model.fit(x, batch_size=8, epochs=30, verbose=0, shuffle=False)
    losses = history.history["loss"]
    assert losses[-1] < 0.8 * losses[0], losses
    bits = [float(np.sum(model.quantizer(model.encode(x), quality=q, training=False)[1])) for q in (0, 1)]
    assert bits[1] > bits[0], bits


def test_indices_and_pixels_survive_save_and_load(tmp_path):
    model = _tiny_model(seed=3)
    x = np.random.default_rng(3).random((1, 24, 16, 3)).astype("float32")
    path = tmp_path / "vr.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    for q in (0, 1):
        a, b = np.asarray(model.encode_to_indices(x, q)), np.asarray(loaded.encode_to_indices(x, q))
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(np.asarray(model.decode_from_indices(a, q)), np.asarray(loaded.decode_from_indices(b, q)))


def _reconstructing_quantizer() -> EntropyConstrainedVQ:
    """Two qualities, two channels, the 1-D lattice -2 .. 2 (indices 0, -1, 1, -2, 2), gains 1 and 2."""
    layer = EntropyConstrainedVQ(
        num_qualities=2, num_embeddings=5, embedding_dim=2, learn_codebooks=False, learned_reconstruction=True
    )
    layer.log_gains.assign(np.log([[1.0, 1.0], [2.0, 2.0]]).astype("float32"))
    return layer


def test_learned_reconstruction_starts_as_each_codes_own_value_and_then_follows_the_formula():
    layer = _reconstructing_quantizer()
    indices = np.array([[[[0, 2], [3, 4]]]], "int32")  # values (0, 1) and (-2, 2)
    np.testing.assert_allclose(np.asarray(layer.lookup(indices, 1)), [[[[0.0, 0.5], [-1.0, 1.0]]]])
    # Quality 1, channel 0: offset 0.25, scale 2; channel 1: offset -0.5, scale 1. Then divided by the gain 2.
    layer.reconstruction_offsets.assign(np.array([[9.0, 9.0], [0.25, -0.5]], "float32"))
    layer.reconstruction_log_scales.assign(np.array([[0.0, 0.0], [math.log(2.0), 0.0]], "float32"))
    expected = [[[[0.0, (1 + 0.5) / 2], [(-2 + 0.25) * 2 / 2, (2 + 0.5) / 2]]]]
    np.testing.assert_allclose(np.asarray(layer.lookup(indices, 1)), expected, rtol=1e-6)
    # Quality 0's huge offsets move every nonzero code, never zero; the codes chosen do not depend on them.
    at_q0 = np.asarray(layer.lookup(indices, 0))[0, 0]
    assert at_q0[0, 0] == 0.0 and at_q0[0, 1] == pytest.approx(1.0 - 9.0) and at_q0[1, 0] == pytest.approx(-2.0 + 9.0)
    latents = np.array([[[[0.2, 1.1], [-1.7, 1.9]]]], "float32")
    fresh = _reconstructing_quantizer()
    for q in (0, 1):
        np.testing.assert_array_equal(np.asarray(layer.get_code_indices(latents, q)), np.asarray(fresh.get_code_indices(latents, q)))
    # Training's forward pass decodes the chosen codes the same way.
    quantized, _ = layer(latents, quality=1, training=False)
    np.testing.assert_allclose(np.asarray(quantized), np.asarray(layer.lookup(layer.get_code_indices(latents, 1), 1)), rtol=1e-6)


def test_a_model_saved_before_the_option_loads_without_it(tmp_path):
    """A .keras file whose config has no learned_reconstruction key (saved before it existed) loads as before."""
    import json
    import zipfile

    model = _tiny_model(seed=7, code_dim=1, learn_codebooks=False)
    path, old = tmp_path / "new.keras", tmp_path / "old.keras"
    model.save(path)
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(old, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                del config["config"]["learned_reconstruction"]
                data = json.dumps(config).encode()
            dst.writestr(item, data)
    assert b"learned_reconstruction" not in zipfile.ZipFile(old).read("config.json")
    loaded = keras.models.load_model(old)
    assert not loaded.quantizer.learned_reconstruction and loaded.quantizer.reconstruction_weights() == []
    for a, b in zip(model.weights, loaded.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_distortion_gradient_reaches_the_learned_reconstruction():
    layer = _reconstructing_quantizer()
    latents = tf.constant(np.random.default_rng(4).standard_normal((2, 3, 3, 2)).astype("float32") * 2)
    target = tf.constant(np.random.default_rng(5).standard_normal((2, 3, 3, 2)).astype("float32"))
    with tf.GradientTape() as tape:
        quantized, _ = layer(latents, quality=np.array([0, 1]), training=True)
        loss = tf.reduce_sum(tf.square(quantized - target))
    grads = tape.gradient(loss, layer.reconstruction_weights())
    assert all(np.all(np.abs(tf.convert_to_tensor(g).numpy()).sum(axis=1) > 0) for g in grads)


def test_learned_reconstruction_survives_save_and_load_and_changes_the_fingerprint(tmp_path):
    from vqcodec.codec import model_fingerprint

    plain = _tiny_model(seed=6, code_dim=1, learn_codebooks=False)
    model = _tiny_model(seed=6, code_dim=1, learn_codebooks=False, learned_reconstruction=True)
    assert [w.name for w in plain.quantizer.weights] == [w.name for w in model.quantizer.weights if "reconstruction" not in w.name]
    assert len(model.decoding_weights()) == len(plain.decoding_weights()) + 2
    before = model_fingerprint(model)
    model.quantizer.reconstruction_offsets.assign(np.full((2, 4), 0.1, "float32"))
    path = tmp_path / "recon.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.quantizer.learned_reconstruction
    assert model_fingerprint(loaded) != before
    x = np.random.default_rng(6).random((1, 16, 16, 3)).astype("float32")
    indices = np.asarray(loaded.encode_to_indices(x, 1))
    np.testing.assert_array_equal(indices, np.asarray(model.encode_to_indices(x, 1)))
    np.testing.assert_array_equal(np.asarray(loaded.decode_from_indices(indices, 1)), np.asarray(model.decode_from_indices(indices, 1)))


def test_fixed_lattice_codebooks_stay_put():
    """With learn_codebooks=False the codebook is the lattice for good: not trained, never revived, kept in the config."""
    layer = EntropyConstrainedVQ(num_qualities=2, num_embeddings=5, embedding_dim=2, learn_codebooks=False, seed=0)
    trainable = {id(w) for w in layer.trainable_weights}
    assert id(layer.codebooks) not in trainable and id(layer.logits) in trainable
    layer.code_usage.assign(np.zeros((2, 5), "float32"))  # every code looks dead
    assert layer.revive_dead_codes() == 0
    np.testing.assert_array_equal(np.asarray(layer.codebooks), np.broadcast_to(lattice_codebook(5, 1), (2, 5, 1)))
    clone = EntropyConstrainedVQ.from_config(layer.get_config())
    assert clone.learn_codebooks is False and all(w is not clone.codebooks for w in clone.trainable_weights)


def test_level_weights_scale_each_level_s_lagrangian():
    """The loss weights level q by (lambda_q / geometric mean) ** -power: 1, 1 at power 0; 10, 0.1 a decade apart at 1."""
    model = _tiny_model(lambdas=(0.001, 0.1))
    assert model.level_weights() == pytest.approx([1.0, 1.0])
    heavy = VariableRateVQVAE.from_config({**model.get_config(), "level_weight_power": 1.0})
    assert heavy.level_weights() == pytest.approx([10.0, 0.1])
    x = np.zeros((2, 16, 16, 3), "float32")
    y_pred = {
        "image": np.full((2, 16, 16, 3), 0.1, "float32"),
        "bits": np.array([256.0, 512.0], "float32"),  # 1 and 2 bpp
        "quality": np.array([0, 1], "int32"),
    }
    lagrangian = np.array([1.0, 2.0]) + np.array([0.001, 0.1]) * 255.0**2 * 0.01
    for m, weights in ((model, [1.0, 1.0]), (heavy, [10.0, 0.1])):
        m(x, training=True)  # the quantiser's own losses, which compute_loss adds
        loss = float(m.compute_loss(x=x, y_pred=y_pred)) - sum(float(v) for v in m.losses)
        assert loss == pytest.approx(float(np.mean(np.array(weights) * lagrangian)), rel=1e-5)
        assert float(m.loss_tracker.result()) == pytest.approx(float(lagrangian.mean()), rel=1e-5)  # reported unweighted


def test_reconfigured_keeps_learned_levels_and_extends_the_ladder():
    from vqcodec.train.trainer import reconfigured

    model = _tiny_model(seed=4, lambdas=(0.01, 0.1))
    model.build((None, None, None, 3))
    q = model.quantizer
    q.log_gains.assign(np.stack([np.full(4, 0.5), np.full(4, 1.5)]).astype("float32"))
    x = np.random.default_rng(4).random((1, 24, 16, 3)).astype("float32")
    copy = reconfigured(model, lambdas=(0.001, 0.01, 0.1), rate_weight=0.25)
    assert copy.lambdas == (0.001, 0.01, 0.1) and copy.quantizer.rate_weight == 0.25
    gains = np.asarray(copy.quantizer.log_gains)
    np.testing.assert_allclose(gains[1:], np.asarray(q.log_gains), rtol=1e-6)
    np.testing.assert_allclose(gains[0], -0.5, rtol=1e-5)  # one decade below: extrapolated by one more step
    np.testing.assert_array_equal(np.asarray(copy.quantizer.logits)[0], np.asarray(q.logits)[0])
    # The transforms are the same: unchanged levels decode the same indices to the same pixels.
    a = np.asarray(model.encode_to_indices(x, 1))
    np.testing.assert_allclose(np.asarray(copy.decode_from_indices(a, 2)), np.asarray(model.decode_from_indices(a, 1)), atol=1e-6)
    assert copy.get_config()["rate_weight"] == 0.25
    # More codes: the old ones keep their place, the new ones are the next lattice points and start rarer.
    wider = reconfigured(model, num_embeddings=16)
    np.testing.assert_array_equal(np.asarray(wider.quantizer.codebooks)[:, :9], np.asarray(q.codebooks))
    np.testing.assert_array_equal(np.asarray(wider.quantizer.codebooks)[0], lattice_codebook(16, 2))
    logits = np.asarray(wider.quantizer.logits)
    assert logits[..., 9:].max() < np.asarray(q.logits).min()



def test_reconfigured_keeps_the_learned_reconstruction():
    from vqcodec.train.trainer import reconfigured

    model = _tiny_model(seed=4, code_dim=1, learn_codebooks=False, learned_reconstruction=True)
    model.build((None, None, None, 3))
    q = model.quantizer
    q.reconstruction_offsets.assign(np.stack([np.full(4, 0.1), np.full(4, 0.3)]).astype("float32"))
    q.reconstruction_log_scales.assign(np.stack([np.full(4, -0.02), np.full(4, 0.04)]).astype("float32"))
    copy = reconfigured(model, lambdas=(0.001, 0.01, 0.1), rate_weight=0.5)
    assert copy.quantizer.learned_reconstruction
    offsets, scales = (np.asarray(w) for w in copy.quantizer.reconstruction_weights())
    np.testing.assert_allclose(offsets[1:], np.asarray(q.reconstruction_offsets), rtol=1e-6)
    np.testing.assert_allclose(offsets[0], 0.1, rtol=1e-6)  # a new level: the nearest level's
    np.testing.assert_allclose(scales[1:], np.asarray(q.reconstruction_log_scales), rtol=1e-6)
    x = np.random.default_rng(4).random((1, 24, 16, 3)).astype("float32")
    a = np.asarray(model.encode_to_indices(x, 1))
    np.testing.assert_allclose(np.asarray(copy.decode_from_indices(a, 2)), np.asarray(model.decode_from_indices(a, 1)), atol=1e-6)
    # Switched on for a model without it: each code decodes to its own value, as before.
    plain = _tiny_model(seed=4, code_dim=1, learn_codebooks=False)
    switched = reconfigured(plain, learned_reconstruction=True)
    assert switched.quantizer.learned_reconstruction and not plain.quantizer.learned_reconstruction
    a = np.asarray(plain.encode_to_indices(x, 1))
    np.testing.assert_array_equal(np.asarray(switched.decode_from_indices(a, 1)), np.asarray(plain.decode_from_indices(a, 1)))


@pytest.mark.parametrize("rate_weight", [0.25, 1.0])
def test_windowed_search_of_a_fixed_lattice_equals_the_full_search(rate_weight):
    """A fixed 1-D lattice searches WINDOW codes either side of the rounded latent, and zero: same choice as all K."""
    rng = np.random.default_rng(5)
    layer = EntropyConstrainedVQ(num_qualities=2, num_embeddings=256, embedding_dim=8, learn_codebooks=False, rate_weight=rate_weight)
    assert layer.windowed
    index = np.arange(256)
    values = np.where(index % 2, -(index + 1) // 2, index // 2)
    for scale in (0.3, 3.0):  # a peaked and a broad refitted distribution (smoothing 0.1 of 1e5 counts)
        counts = np.exp(-np.abs(values) / scale) * 1e5 + 0.1
        logits = np.log(counts / counts.sum()) + rng.normal(0, 0.5, (2, 8, 256))
        layer.logits.assign(logits.astype("float32"))
        layer.log_gains.assign(np.log(rng.uniform(1, 14, (2, 8))).astype("float32"))
        x = rng.laplace(0, 1.5, (3, 6, 5, 8)).astype("float32")
        for q in (0, 1):
            quality = layer.quality_vector(x, q)
            u, _ = layer._scaled_groups(x, quality)
            full, _ = layer._assign(u, layer._code_bits(quality, 4))
            np.testing.assert_array_equal(np.asarray(layer.get_code_indices(x, q)), np.asarray(full))
            # Training sees the same bits: those of the chosen codes.
            _, bits = layer(x, quality=quality, training=True)
            chosen_bits = np.take_along_axis(np.asarray(layer._code_bits(quality, 4)), np.asarray(full)[..., None], -1)
            np.testing.assert_allclose(np.asarray(bits), chosen_bits.reshape(3, -1).sum(1), rtol=1e-5)


def test_code_candidates_are_the_window_around_the_rounded_latent_then_zero():
    """16 codes (-8 .. 7), window of 2: off-lattice values are index 0 at distance 1e30; gains scale first."""
    assert CANDIDATE_WINDOW == 2
    layer = EntropyConstrainedVQ(num_qualities=2, num_embeddings=16, embedding_dim=1, learn_codebooks=False)
    layer.log_gains.assign(np.log([[1.0], [2.0]]).astype("float32"))
    x = np.array([0.3, 7.4, -8.6, 3.7], "float32").reshape(1, 4, 1, 1)  # at quality 1: 0.6, 14.8, -17.2, 7.4
    index = lambda v: 2 * v if v >= 0 else -2 * v - 1  # noqa: E731 - the lattice order 0, -1, 1, -2, ...
    expect = {
        0: [([-2, -1, 0, 1, 2, 0], 0.3), ([5, 6, 7, None, None, 0], 7.4), ([None, None, -8, -7, -6, 0], -8.6), ([2, 3, 4, 5, 6, 0], 3.7)],
        1: [([-1, 0, 1, 2, 3, 0], 0.6), ([5, 6, 7, None, None, 0], 14.8), ([None, None, -8, -7, -6, 0], -17.2), ([5, 6, 7, None, None, 0], 7.4)],
    }
    for q, rows in expect.items():
        codes, distances = (np.asarray(t).reshape(4, 6) for t in layer.code_candidates(x, q))
        for (values, u), c, d in zip(rows, codes, distances):
            assert c.tolist() == [0 if v is None else index(v) for v in values]
            np.testing.assert_allclose(d, [1e30 if v is None else (u - v) ** 2 for v in values], rtol=1e-5)
    # Learned 2-D codebooks: every code is a candidate.
    square = EntropyConstrainedVQ(num_qualities=1, num_embeddings=9, embedding_dim=2, code_dim=2)
    square.log_gains.assign(np.zeros((1, 2), "float32"))
    codes, distances = (np.asarray(t) for t in square.code_candidates(np.array([[[[0.2, -1.1]]]], "float32"), 0))
    assert codes.shape == distances.shape == (1, 1, 1, 1, 9) and codes.ravel().tolist() == list(range(9))
    np.testing.assert_allclose(distances.ravel(), ((np.array([0.2, -1.1]) - lattice_codebook(9, 2)) ** 2).sum(1), rtol=1e-5)


def test_with_tables_the_model_chooses_codes_by_the_coders_bits():
    """encode_to_indices = the context model's choice among encode_to_candidates; without tables, the quantiser's."""
    from bitstream.context_model import ContextModel

    model = _tiny_model(code_dim=1, learn_codebooks=False)
    x = np.random.default_rng(8).random((2, 24, 32, 3)).astype("float32")
    plain = np.asarray(model.encode_to_indices(x, 1))
    np.testing.assert_array_equal(plain, np.asarray(model.quantizer.get_code_indices(model.encode(x), 1)))
    fitted = ContextModel.fit([[g for g in plain]] * 2, 9, 9)
    model.set_coding_tables(fitted.counts, fitted.offsets)
    chosen = np.asarray(model.encode_to_indices(x, 1))
    candidates, distances = (np.asarray(t) for t in model.encode_to_candidates(x, 1))
    for i in range(2):
        np.testing.assert_array_equal(chosen[i], fitted.choose(candidates[i], distances[i], 1, model.quantizer.rate_weight))
    core = np.asarray(model.encode_to_indices(x, 1, region=np.array([1, 3, 0, 2], np.int32)))
    assert core.shape == (2, 2, 2, 4)
