"""bitstream.context_model: exact round trips, real gains from context, integer-only determinism."""

from __future__ import annotations

import numpy as np
import pytest

from bitstream import CorruptDataError
from bitstream.context_model import BACKOFF, NUM_CONTEXTS, ContextModel


def _correlated_grids(rng: np.random.Generator, count: int, shape=(12, 16, 4), codes: int = 16):
    """Grids whose groups and neighbours share an activity level: what contexts can exploit."""
    grids = []
    for _ in range(count):
        blocks = rng.random((shape[0] // 3 + 1, shape[1] // 3 + 1)) < 0.4  # busy regions of 3x3 latents
        activity = np.kron(blocks, np.ones((3, 3), bool))[: shape[0], : shape[1]]
        busy = np.minimum(rng.geometric(0.25, shape) - 1, codes - 1)
        calm = np.minimum(rng.geometric(0.9, shape) - 1, codes - 1)
        grids.append(np.where(activity[..., None], busy, calm).astype(np.int64))
    return grids


def test_round_trip_is_exact_and_close_to_the_cross_entropy():
    rng = np.random.default_rng(0)
    model = ContextModel.fit([_correlated_grids(rng, 6), _correlated_grids(rng, 6)], 16, 16)
    for q in (0, 1):
        grid = _correlated_grids(rng, 1)[0]
        data = model.encode(grid, q)
        np.testing.assert_array_equal(model.decode(data, *grid.shape[:2], q), grid)
        assert len(data) * 8 <= model.cross_entropy_bits(grid, q) * 1.02 + 64


def test_contexts_beat_a_single_table_on_correlated_grids():
    rng = np.random.default_rng(1)
    train, test = _correlated_grids(rng, 12), _correlated_grids(rng, 4)
    model = ContextModel.fit([train], 16, 16)
    flat = ContextModel(np.broadcast_to(model.counts.sum(axis=2, keepdims=True), model.counts.shape) // NUM_CONTEXTS, model.offsets, 16)
    with_context = sum(len(model.encode(g, 0)) for g in test)
    without = sum(len(flat.encode(g, 0)) for g in test)
    assert with_context < 0.95 * without, (with_context, without)


def test_same_bytes_from_a_reloaded_model_and_odd_shapes():
    rng = np.random.default_rng(2)
    model = ContextModel.fit([_correlated_grids(rng, 3, shape=(5, 7, 3))], 16, 8)
    again = ContextModel(model.counts.astype(np.int32).copy(), model.offsets.astype(np.int32).copy(), 16)
    for shape in [(1, 1, 3), (1, 9, 3), (5, 7, 3)]:
        grid = rng.integers(0, 16, shape)
        assert model.encode(grid, 0) == again.encode(grid, 0)
        np.testing.assert_array_equal(again.decode(model.encode(grid, 0), *shape[:2], 0), grid)


def test_payload_never_undercuts_the_information_of_a_constant_grid():
    # Long runs of the likeliest code: an ANS stack coder would emit nothing for them
    # (its empty state absorbs symbols at the bottom of the table), breaking the length check.
    grids = [np.zeros((16, 16, 2), np.int64)] * 3
    model = ContextModel.fit([grids], 16, 4)
    data = model.encode(grids[0], 0)
    assert len(data) * 8 >= model.cross_entropy_bits(grids[0], 0)
    np.testing.assert_array_equal(model.decode(data, 16, 16, 0), grids[0])


def test_rejects_bad_input():
    model = ContextModel.fit([[np.zeros((2, 2, 2), np.int64)]], 4, 2)
    with pytest.raises(ValueError, match="indices"):
        model.encode(np.full((2, 2, 2), 4), 0)
    with pytest.raises(ValueError, match="groups"):
        model.encode(np.zeros((2, 2, 3), np.int64), 0)
    with pytest.raises(ValueError, match="quality"):
        model.encode(np.zeros((2, 2, 2), np.int64), 1)
    with pytest.raises(ValueError, match="counts"):
        ContextModel(np.zeros((1, 1, 3, 4)), np.zeros((1, 1)), 4)
    with pytest.raises(ValueError, match="offsets"):
        ContextModel(np.zeros((1, 1, NUM_CONTEXTS, 3)), np.full((1, 1), 3), 4)  # a window of 2 from code 3 of 4
    with pytest.raises(ValueError, match="window"):
        ContextModel(np.zeros((1, 1, NUM_CONTEXTS, 6)), np.zeros((1, 1)), 4)


def test_corrupt_payloads_are_refused_without_allocating_the_claimed_grid():
    rng = np.random.default_rng(3)
    model = ContextModel.fit([_correlated_grids(rng, 4, shape=(8, 8, 1))], 16, 4)  # one group; escapes too
    grid = _correlated_grids(rng, 1, shape=(8, 8, 1))[0]
    data = model.encode(grid, 0)
    np.testing.assert_array_equal(model.decode(data, 8, 8, 0), grid)
    for extra in (b"\x00" * 4, b"\x01\x02\x03\x04" * 3):  # words left over: refused, zeros too
        with pytest.raises(CorruptDataError, match="exact coding"):
            model.decode(data + extra, 8, 8, 0)
    with pytest.raises(CorruptDataError, match="too short"):
        model.decode(b"", 100_000, 100_000, 0)  # would be 10^10 symbols
    with pytest.raises(CorruptDataError, match="multiple of 4"):
        model.decode(data[:-1], 8, 8, 0)
    # Every cut and every flipped bit is refused: none decodes to another grid.
    for cut in range(0, len(data), 4):
        with pytest.raises(CorruptDataError):
            model.decode(data[:cut], 8, 8, 0)
    for bit in range(len(data) * 8):
        flipped = bytearray(data)
        flipped[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(CorruptDataError):
            model.decode(bytes(flipped), 8, 8, 0)


def test_the_length_message_names_a_real_minimum():
    model = ContextModel.fit([[np.zeros((4, 4, 1), np.int64)]], 4, 4)
    with pytest.raises(CorruptDataError, match=r"at least [1-9]\d* bytes"):
        model.decode(b"", 2000, 2000, 0)


def test_an_unseen_context_backs_off_to_its_groups_marginal():
    counts = np.zeros((1, 2, NUM_CONTEXTS, 4), np.int64)
    counts[0, 0, 3] = [90, 5, 5, 0]  # one context seen, mostly code 0
    counts[0, 0, 9] = [0, 0, 0, 100]  # another, always code 3
    model = ContextModel(counts, np.zeros((1, 2), np.int64), 5)  # codes 0..3 and an escape count
    marginal = np.array([90, 5, 5, 100]) + 1
    np.testing.assert_allclose(model.probabilities[0, 0, 0], marginal / marginal.sum())
    # A seen context is its counts plus BACKOFF counts' worth of the marginal.
    seen = counts[0, 0, 3] + BACKOFF * marginal / marginal.sum()
    np.testing.assert_allclose(model.probabilities[0, 0, 3], seen / seen.sum())
    # A group with no counts at all is uniform.
    np.testing.assert_allclose(model.probabilities[0, 1, 5], 0.25)


def test_same_bytes_with_one_and_two_threads(tmp_path):
    """Probabilities come from integer counts only, so the thread count of numpy's libraries changes nothing."""
    import os
    import subprocess
    import sys

    rng = np.random.default_rng(3)
    model = ContextModel.fit([_correlated_grids(rng, 4)], 16, 6)
    np.save(tmp_path / "counts.npy", model.counts)
    np.save(tmp_path / "offsets.npy", model.offsets)
    np.save(tmp_path / "grid.npy", _correlated_grids(rng, 1, shape=(24, 20, 4))[0])
    script = (
        "import sys, numpy as np; from bitstream.context_model import ContextModel; "
        "m = ContextModel(np.load(sys.argv[1]), np.load(sys.argv[1].replace('counts', 'offsets')), 16); g = np.load(sys.argv[2]); d = m.encode(g, 0); "
        "assert (m.decode(open(sys.argv[3], 'rb').read(), 24, 20, 0) == g).all() if sys.argv[3] != '-' else True; "
        "sys.stdout.buffer.write(d)"
    )
    payloads = []
    for threads, other in (("1", "-"), ("2", str(tmp_path / "one.bin"))):
        env = dict(os.environ, OMP_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
        args = [sys.executable, "-c", script, str(tmp_path / "counts.npy"), str(tmp_path / "grid.npy"), other]
        payloads.append(subprocess.run(args, env=env, capture_output=True, check=True, timeout=120).stdout)
        (tmp_path / "one.bin").write_bytes(payloads[0])
    assert payloads[0] == payloads[1] and len(payloads[0]) > 0


def test_window_covers_the_most_indices_and_escapes_code_the_rest_exactly():
    rng = np.random.default_rng(4)
    # Indices 97..103 of 256 codes, with rare outliers anywhere: a window of 7 and escapes.
    grids = [np.clip(100 + rng.integers(-3, 4, (10, 10, 2)), 0, 255) for _ in range(4)]
    for grid in grids:
        grid[rng.random(grid.shape) < 0.02] = rng.integers(0, 256)
    model = ContextModel.fit([grids], 256, 7)
    assert model.counts.shape == (1, 2, NUM_CONTEXTS, 8)
    np.testing.assert_array_equal(model.offsets, [[97, 97]])
    test = grids[0].copy()
    test[0, 0, 0], test[9, 9, 1], test[5, 5, 0] = 0, 255, 50  # outside every window
    data = model.encode(test, 0)
    np.testing.assert_array_equal(model.decode(data, 10, 10, 0), test)
    assert len(data) * 8 <= model.cross_entropy_bits(test, 0) * 1.02 + 64
    # An escape costs its own symbol plus 8 bits: more than any code inside the window.
    inside = test.copy()
    inside[0, 0, 0], inside[9, 9, 1], inside[5, 5, 0] = 100, 100, 100
    assert model.cross_entropy_bits(test, 0) > model.cross_entropy_bits(inside, 0) + 3 * 8


def test_choose_with_no_rate_weight_takes_the_nearest_candidate_first_of_equals():
    rng = np.random.default_rng(6)
    model = ContextModel.fit([_correlated_grids(rng, 4)], 16, 16)
    candidates = rng.integers(0, 16, (12, 16, 4, 3))
    distances = rng.integers(0, 3, (12, 16, 4, 3)).astype(np.float32)  # many ties
    grid = model.choose(candidates, distances, 0, 0.0)
    expected = np.take_along_axis(candidates, distances.argmin(axis=-1)[..., None], -1)[..., 0]
    np.testing.assert_array_equal(grid, expected)
    distances[..., 0] = 1e30  # ruled out, however cheap its code
    grid = model.choose(candidates, distances, 0, 100.0)
    first_only = (candidates[..., :1] != candidates[..., 1:]).all(-1)  # a code only the first candidate offers
    assert not np.any(grid[first_only] == candidates[..., 0][first_only])


def test_choose_prices_each_code_in_the_context_it_is_coded_in():
    """One group of 2 x 2: the anchors (0,0) and (1,1) come first, in the calm anchor context 0; the others
    are then priced in context 8 + (active anchor neighbours), here 8 + 2 when both anchors chose code 1."""
    grids = [np.ones((2, 2, 1), int)] * 8 + [np.zeros((2, 2, 1), int)] * 9  # busy or calm as a whole
    model = ContextModel.fit([grids], 4, 4)
    assert model.usual[0, 0] == 0
    bits = model.code_bits(0)[0]  # (contexts, codes)
    candidates = np.broadcast_to(np.array([0, 1]), (2, 2, 1, 2))
    # Anchors: code 1 is 0.3 nearer, worth it only if it costs under 0.3 / w bits more than code 0.
    w = 0.5
    anchor_gap = w * (bits[0, 1] - bits[0, 0])
    distances = np.zeros((2, 2, 1, 2), np.float32)
    distances[0, 0] = distances[1, 1] = [anchor_gap + 0.05, 0.0]  # code 1 wins by 0.05
    # The others: code 1 nearer by a margin between its price with 2 active anchors and with none.
    priced = [w * (bits[c, 1] - bits[c, 0]) for c in (8, 10)]
    assert priced[1] < priced[0]  # beside two active anchors code 1 is cheaper than beside none
    middle = (priced[0] + priced[1]) / 2
    distances[0, 1] = distances[1, 0] = [middle, 0.0]
    grid = model.choose(candidates, distances, 0, w)
    np.testing.assert_array_equal(grid[..., 0], [[1, 1], [1, 1]])
    # Calm anchors (code 0 now wins there) make the same margin too small for the others.
    distances[0, 0] = distances[1, 1] = [anchor_gap - 0.05, 0.0]
    np.testing.assert_array_equal(model.choose(candidates, distances, 0, w)[..., 0], [[0, 0], [0, 0]])


def test_code_bits_are_the_coders_bits_escapes_included():
    rng = np.random.default_rng(7)
    model = ContextModel.fit([_correlated_grids(rng, 4)], 16, 4)  # a window of 4 of 16 codes: the rest escape
    single = model.usual[0].reshape(1, 1, 4).copy()  # every group calm: every context 0
    single[0, 0, 3] = 15  # outside the last group's window
    bits = model.code_bits(0)
    assert model.cross_entropy_bits(single, 0) == pytest.approx(sum(bits[g, 0, single[0, 0, g]] for g in range(4)), rel=1e-6)
    assert bits[3, 0, 15] == pytest.approx(-np.log2(model.probabilities[0, 3, 0, 4]) + 4.0, rel=1e-6)
