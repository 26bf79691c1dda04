"""Shared pytest fixtures, and a fixed numerical set-up for every test.

Training tests assert on numbers, and TensorFlow's results depend on how many
threads split each reduction. The thread counts are fixed here (before
TensorFlow is imported; subprocesses inherit them) and every test starts from
the same seeds, so a test sees the same numbers on any machine with the same
CPU features.
"""

from __future__ import annotations

import os
import random

# Before TensorFlow is first imported: it reads these once, at start-up.
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "2")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "2")
os.environ.setdefault("OMP_NUM_THREADS", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

SEED = 0


@pytest.fixture(autouse=True)
def _seed_everything():
    """Python's, NumPy's, TensorFlow's and Keras' global generators start from SEED in every test."""
    import keras

    random.seed(SEED)
    np.random.seed(SEED)
    keras.utils.set_random_seed(SEED)


def _build_tiny_model(seed: int, path):
    """A tiny untrained codec model with fitted coding tables, saved to ``path``."""
    import bitstream
    import keras

    from vqcodec import build_image_vqvae

    keras.utils.set_random_seed(seed)  # the layers' initial weights, not only the quantiser's draws
    model = build_image_vqvae(
        channels=8, embedding_dim=4, num_stages=3, num_embeddings=16, res_blocks=1, seed=seed
    )
    rng = np.random.default_rng(seed)
    x = rng.random((4, 32, 32, 3), dtype=np.float32)
    indices = np.asarray(model.encode_to_indices(x, num_stages=3))  # (4, 4, 4, 3)
    grids = [np.moveaxis(g, -1, 0) for g in indices]
    tables = bitstream.CodingTables.fit(grids, 3, 16)
    model.set_coding_tables(tables.to_array())
    model.save(str(path))
    return str(path)


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory):
    """Path of a tiny 3-stage, 16-code codec model (.keras) with coding tables."""
    return _build_tiny_model(0, tmp_path_factory.mktemp("tiny_model") / "tiny.keras")


@pytest.fixture(scope="session")
def other_tiny_model_path(tmp_path_factory):
    """Like ``tiny_model_path`` but another seed: a different model (fingerprint)."""
    return _build_tiny_model(1, tmp_path_factory.mktemp("tiny_model_other") / "tiny_other.keras")
