"""Shared pytest fixtures."""

from __future__ import annotations

import numpy as np
import pytest


def _build_tiny_model(seed: int, path):
    """A tiny untrained codec model with fitted coding tables, saved to ``path``."""
    import bitstream
    from vqcodec import build_image_vqvae

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
