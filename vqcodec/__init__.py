"""vqcodec: a learned image codec. A VQ-VAE maps an image to grids of code indices; an entropy coder packs them.

The codec (:mod:`vqcodec.codec`) needs numpy, Pillow, constriction and
onnxruntime only: ``compress``, ``decompress``, ``load_model`` and the
others here. The model API (``vqcodec.VQVAEModel``, ``VectorQuantizer``,
``VariableRateVQVAE``, ..., from the modules of :mod:`vqcodec.model`) and
training (:mod:`vqcodec.train`) need Keras, installed by the ``train`` extra;
those names load on first use, so ``import vqcodec`` never imports TensorFlow.
"""

from __future__ import annotations

import importlib
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.8.2"

# Registers .vqc with Pillow, so that after ``import vqcodec`` Image.open("x.vqc")
# decodes (Pillow + numpy only; the model loads on first decode).
from vqcodec.codec import pillow_plugin as _pillow_plugin  # noqa: E402,F401

#: The codec's API: light, listed by ``dir()`` and ``help()``.
_CODEC = {
    "compress": "vqcodec.codec.coding",
    "decompress": "vqcodec.codec.coding",
    "indices_of": "vqcodec.codec.coding",
    "read_indices": "vqcodec.codec.coding",
    "load_model": "vqcodec.codec.loading",
    "quality_levels": "vqcodec.codec.loading",
    "model_fingerprint": "vqcodec.codec.loading",
    "compress_files": "vqcodec.codec.batch",
    "decompress_files": "vqcodec.codec.batch",
    "plan_folder": "vqcodec.codec.batch",
    "compare": "vqcodec.comparison.budget",
}
#: The model API: needs the ``train`` extra; loaded on first use and kept out of ``dir()``, so ``help(vqcodec)``
#: does not import Keras.
_MODEL = {
    "VectorQuantizer": "vqcodec.model.quantizer",
    "ResidualVectorQuantizer": "vqcodec.model.quantizer",
    "VQVAEModel": "vqcodec.model.vqvae",
    "PixelCNNPrior": "vqcodec.model.prior",
    "VariableRateVQVAE": "vqcodec.model.variable_rate",
    "EntropyConstrainedVQ": "vqcodec.model.ecvq",
    "GDN": "vqcodec.model.layers",
    "ResidualBlock": "vqcodec.model.layers",
    "build_codec_model": "vqcodec.model.variable_rate",
}

__all__ = sorted(_CODEC) + ["__version__"]


def __getattr__(name: str):
    if name in _CODEC:
        module = importlib.import_module(_CODEC[name])
    elif name in _MODEL:
        from vqcodec.extras import require

        require("keras", "train", f"vqcodec.{name}")
        module = importlib.import_module(_MODEL[name])
    else:
        raise AttributeError(f"module 'vqcodec' has no attribute {name!r}")
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
