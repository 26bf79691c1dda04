"""GDN and ResidualBlock: the layer contract Keras relies on to save and restore them.

Modelled on Keras' own ``run_layer_test``: build, call, ``get_config`` /
``from_config``, and save/load inside a model, each giving identical outputs.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from vqcodec.model.layers import GDN, ResidualBlock

npy = keras.ops.convert_to_numpy
SHAPE = (2, 6, 5, 4)  # batch, height, width, channels

CASES = {
    "gdn": (GDN, {"name": "gdn"}, 2),
    "igdn": (GDN, {"inverse": True, "name": "igdn"}, 2),
    "residual_block": (ResidualBlock, {"filters": 4, "name": "res"}, 4),
}


def _inputs(seed=0):
    return np.random.default_rng(seed).normal(size=SHAPE).astype("float32")


def _randomise(layer, seed=1):
    """Weights off their initial values, so a restore that re-initialises cannot pass."""
    rng = np.random.default_rng(seed)
    for w in layer.weights:
        w.assign(rng.uniform(0.5, 1.5, size=w.shape).astype("float32"))


@pytest.mark.parametrize("case", list(CASES))
def test_build_call_and_weights(case):
    cls, kwargs, n_weights = CASES[case]
    layer = cls(**kwargs)
    layer.build(SHAPE)
    assert layer.built and len(layer.trainable_weights) == n_weights
    x = _inputs()
    y = npy(layer(x))
    assert y.shape == SHAPE and np.all(np.isfinite(y))
    assert tuple(layer.compute_output_shape(SHAPE)) == SHAPE


def test_gdn_matches_its_formula_and_inverse_multiplies():
    x = _inputs()
    forward, inverse = GDN(), GDN(inverse=True)
    forward.build(SHAPE)
    inverse.build(SHAPE)
    _randomise(forward)
    _randomise(inverse)
    beta, gamma = (npy(w) for w in forward.weights)
    norm = beta**2 + 1e-6 + np.abs(x) @ gamma**2
    np.testing.assert_allclose(npy(forward(x)), x / norm, rtol=1e-5)
    np.testing.assert_allclose(npy(inverse(x)), x * norm, rtol=1e-5)


@pytest.mark.parametrize("case", list(CASES))
def test_config_round_trip_gives_identical_outputs(case):
    cls, kwargs, _ = CASES[case]
    layer = cls(**kwargs)
    layer.build(SHAPE)
    _randomise(layer)
    config = layer.get_config()
    clone = cls.from_config(config)
    assert clone.get_config() == config
    clone.build(SHAPE)
    clone.set_weights(layer.get_weights())
    x = _inputs()
    np.testing.assert_array_equal(npy(clone(x)), npy(layer(x)))
    # The registered name resolves without custom_objects.
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(revived) is cls and revived.get_config() == config


@pytest.mark.parametrize("case", list(CASES))
def test_save_and_load_inside_a_model(case, tmp_path):
    cls, kwargs, _ = CASES[case]
    layer = cls(**kwargs)
    model = keras.Sequential([keras.Input(SHAPE[1:]), layer])
    _randomise(layer)
    x = _inputs()
    expected = npy(model(x))
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    restored = loaded.layers[0]
    assert type(restored) is cls and restored.get_config() == layer.get_config()
    for a, b in zip(layer.weights, restored.weights):
        np.testing.assert_array_equal(npy(a), npy(b))
    np.testing.assert_array_equal(npy(loaded(x)), expected)
