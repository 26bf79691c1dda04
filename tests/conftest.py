"""Shared pytest fixtures, and a fixed numerical set-up for every test.

Training tests assert on numbers, and TensorFlow's results depend on how many
threads split each reduction. The thread counts are fixed here (before
TensorFlow is imported; subprocesses inherit them) and every test starts from
the same seeds, so a test sees the same numbers on any machine with the same
CPU features. Keras is seeded only where a test module has imported it: the
bitstream and CLI-argument tests never load it.
"""

from __future__ import annotations

import os
import random
import sys

# Before TensorFlow is first imported: it reads these once, at start-up.
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "2")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "2")
os.environ.setdefault("OMP_NUM_THREADS", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

SEED = 0


@pytest.fixture(autouse=True)
def _seed_everything():
    """Python's, NumPy's and (where loaded) Keras' global generators start from SEED in every test."""
    random.seed(SEED)
    np.random.seed(SEED)
    if "keras" in sys.modules:
        sys.modules["keras"].utils.set_random_seed(SEED)


def smooth_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth uint8 RGB photo-like test image with a little noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    c = rng.random((3, 3))
    img = np.stack([c[k, 0] + c[k, 1] * np.sin(6 * xx + 3 * k) * np.cos(4 * yy + c[k, 2]) for k in range(3)], -1)
    img = img - img.min()
    return np.clip(img / img.max() * 255 + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)


def build_tiny_model(path, seed: int = 0, ladder=None, lambdas=(0.001, 0.01, 0.1)) -> str:
    """A tiny untrained codec model of the shipped design, coding tables fitted, saved to ``path``.

    Three levels; 4 latent channels coded as 4 groups of 16 lattice codes; tables fitted on smooth images.
    ``ladder``: its operating points (None: the three levels at full size); ``lambdas``: its levels'
    rate-distortion trade-offs.
    """
    import keras

    from vqcodec.model.recipe import Recipe
    from vqcodec.model.variable_rate import build_codec_model
    from vqcodec.train.evaluation import refit_coding_tables

    keras.utils.set_random_seed(seed)  # the layers' initial weights, not only the quantiser's draws
    recipe = Recipe(channels=8, embedding_dim=4, res_blocks=1, num_embeddings=16, lambdas=tuple(lambdas),
                    gain_range=(1.0, 16.0), table_width=8)
    model = build_codec_model(recipe, seed=seed, ladder=ladder)
    refit_coding_tables(model, np.stack([smooth_image(48, 64, s) for s in range(4)]), rounds=2)
    model.save(str(path))
    return str(path)


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory):
    """Path of a tiny three-level codec model (.keras) with coding tables."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny_model") / "tiny.keras", seed=0)


@pytest.fixture(scope="session")
def other_tiny_model_path(tmp_path_factory):
    """Like ``tiny_model_path`` but another seed: a different model (fingerprint)."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny_model_other") / "tiny_other.keras", seed=1)
