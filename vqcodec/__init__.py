"""vqcodec: a learned image codec built on a Keras 3 residual VQ-VAE.

Attributes are imported lazily so that ``import vqcodec`` (and the CLI's
``--help`` and ``info``) stay instant: Keras and TensorFlow load only when a
model or the codec is first used.
"""

from __future__ import annotations

import importlib
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.7.0"

# Registers .vqc with Pillow, so that after ``import vqcodec`` Image.open("x.vqc")
# decodes (Pillow + numpy only; the model loads on first decode).
from vqcodec import pillow_plugin as _pillow_plugin  # noqa: E402,F401

_LAZY = {
    "VectorQuantizer": "vqcodec.quantizer",
    "ResidualVectorQuantizer": "vqcodec.quantizer",
    "VQVAEModel": "vqcodec.model",
    "VariableRateVQVAE": "vqcodec.variable_rate_model",
    "EntropyConstrainedVQ": "vqcodec.ecvq",
    "GDN": "vqcodec.layers",
    "ResidualBlock": "vqcodec.layers",
    "build_image_vqvae": "vqcodec.architecture",
    "compress": "vqcodec.codec",
    "compress_files": "vqcodec.batch",
    "decompress_files": "vqcodec.batch",
    "plan_folder": "vqcodec.batch",
    "decompress": "vqcodec.codec",
    "load_model": "vqcodec.codec",
    "quality_levels": "vqcodec.codec",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'vqcodec' has no attribute {name!r}")


def __dir__():
    return __all__
