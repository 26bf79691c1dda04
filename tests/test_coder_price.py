"""vqcodec.model.coder_price: the coder's contexts and bits in keras.ops, rule for rule those of bitstream.context_model."""

from __future__ import annotations

import numpy as np
from keras import ops

from bitstream.context_model import NUM_CONTEXTS, ContextModel
from vqcodec.model.coder_price import code_bits, coder_contexts, usual_codes


def _grids(rng: np.random.Generator, count: int, shape=(9, 11, 5), codes: int = 12) -> list[np.ndarray]:
    """Grids with busy and calm regions, so every activity level and neighbour count occurs."""
    out = []
    for _ in range(count):
        busy = rng.random(shape[:2]) < 0.5
        spread = np.where(busy[..., None], rng.geometric(0.3, shape), rng.geometric(0.85, shape)) - 1
        out.append(np.minimum(spread, codes - 1).astype(np.int64))
    return out


def _fitted(rng, codes=12, width=8):
    return ContextModel.fit([_grids(rng, 6), _grids(rng, 6)], codes, width)


def test_contexts_are_the_coders():
    rng = np.random.default_rng(0)
    model = _fitted(rng)
    grids = _grids(rng, 3)
    for q in (0, 1):
        usual = ops.convert_to_numpy(usual_codes(model.counts, model.offsets))
        np.testing.assert_array_equal(usual, model.usual)
        got = ops.convert_to_numpy(coder_contexts(np.stack(grids), np.broadcast_to(usual[q], (3, usual.shape[1]))))
        for grid, contexts in zip(grids, got):
            expected = np.zeros(grid.shape, np.int64)
            for g, passes in enumerate(model._contexts(grid, q)):
                for positions, ctx in passes:
                    expected[..., g].reshape(-1)[positions] = ctx
            np.testing.assert_array_equal(contexts, expected)
    assert len(np.unique(got)) >= NUM_CONTEXTS // 2  # the grids reach most contexts, so the check means something


def test_bits_are_the_coders_and_sum_to_its_cross_entropy():
    rng = np.random.default_rng(1)
    model = _fitted(rng)
    bits = ops.convert_to_numpy(code_bits(model.counts, model.offsets, model.num_codes))
    assert bits.shape == (2, model.num_groups, NUM_CONTEXTS, model.num_codes)
    for q in (0, 1):
        np.testing.assert_allclose(bits[q], model.code_bits(q), rtol=1e-5)
        grid = _grids(rng, 1)[0]
        grid[0, 0, 0] = model.num_codes - 1  # one code far outside most windows: the escape's price
        contexts = ops.convert_to_numpy(coder_contexts(grid[None], model.usual[q][None]))[0]
        g = np.broadcast_to(np.arange(grid.shape[-1]), grid.shape)
        total = bits[q][g, contexts, grid].sum()
        np.testing.assert_allclose(total, model.cross_entropy_bits(grid, q), rtol=1e-5)


def _model_with_tables():
    import keras

    from vqcodec.model.transforms import build_decoder, build_encoder
    from vqcodec.model.variable_rate import VariableRateVQVAE

    keras.utils.set_random_seed(0)
    model = VariableRateVQVAE(
        build_encoder(8, 4, 1), build_decoder(8, 4, 1), num_embeddings=9, embedding_dim=4,
        lambdas=(0.01, 0.1), learn_codebooks=False, rate_weight=1.0, gain_range=(1.0, 16.0),
        learned_reconstruction=False, seed=0,
    )
    x = np.random.default_rng(8).random((4, 32, 32, 3)).astype("float32")
    grids = [[g for g in np.asarray(model.encode_to_indices(x, q))] for q in range(2)]
    fitted = ContextModel.fit(grids, 9, 9)
    model.set_coding_tables(fitted.counts, fitted.offsets)
    return model, x, fitted


def test_training_at_the_coders_price_charges_what_the_coder_spends():
    """The rate of a training pass at the coder's price is the coder's ideal length of the codes the codec
    chooses (codes chosen in one pass here, in the coder's order there), far from the learned price."""
    model, x, fitted = _model_with_tables()
    quality = np.array([0, 1, 1, 0], "int32")
    latents = model.encode(x)
    _, priced = model.quantizer(latents, quality=quality, training=True, coder=model.coder_price(quality))
    _, learned = model.quantizer(latents, quality=quality, training=True)
    spent = [fitted.cross_entropy_bits(np.asarray(model.encode_to_indices(x[i : i + 1], int(q)))[0], int(q))
             for i, q in enumerate(quality)]
    np.testing.assert_allclose(ops.convert_to_numpy(priced), spent, rtol=0.02)
    assert np.abs(ops.convert_to_numpy(learned) - spent).max() > 40  # so the match above is not the learned price's


def test_the_coders_price_trains_the_encoder_side_and_the_learned_distribution():
    import tensorflow as tf

    model, x, _ = _model_with_tables()
    quality = np.array([0, 1, 1, 0], "int32")
    latents = tf.Variable(ops.convert_to_numpy(model.encode(x)))
    layer = model.quantizer
    with tf.GradientTape() as tape:
        _, bits = layer(latents, quality=quality, training=True, coder=model.coder_price(quality))
        rate = tf.reduce_sum(bits)
    grads = [tf.convert_to_tensor(g) for g in tape.gradient(rate, [layer.logits, layer.log_gains, latents])]
    assert all(np.abs(g.numpy()).sum() > 0 for g in grads)
