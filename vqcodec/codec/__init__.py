"""The codec: images <-> ``.vqc`` files with a codec model (numpy, Pillow, constriction; Keras only on demand).

- :mod:`~vqcodec.codec.coding`: compress, decompress, read the index grid;
- :mod:`~vqcodec.codec.loading`: the shipped model, ``.keras`` files and their exports, fingerprints;
- :mod:`~vqcodec.codec.interface`: what the codec needs of a model;
- :mod:`~vqcodec.codec.tiling`, :mod:`~vqcodec.codec.targets`, :mod:`~vqcodec.codec.lossless`,
  :mod:`~vqcodec.codec.images`: the parts of coding one image;
- :mod:`~vqcodec.codec.batch`: many files and folders in parallel;
- :mod:`~vqcodec.codec.pillow_plugin`: ``Image.open("x.vqc")``.
"""

from vqcodec.codec.coding import compress, decompress, describe_coding, indices_of, read_indices
from vqcodec.codec.images import load_image
from vqcodec.codec.loading import InvalidModelError, default_model_path, load_model, model_fingerprint, quality_levels
from vqcodec.codec.targets import TargetNotMetError, TargetNotMetWarning

__all__ = [
    "compress",
    "decompress",
    "describe_coding",
    "indices_of",
    "read_indices",
    "load_image",
    "load_model",
    "default_model_path",
    "model_fingerprint",
    "quality_levels",
    "InvalidModelError",
    "TargetNotMetError",
    "TargetNotMetWarning",
]
