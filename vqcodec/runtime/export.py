"""``vqcodec export``: trace a model's index functions to ONNX for :class:`vqcodec.runtime.onnx_model.ExportedModel`.

Why tf2onnx on the model's own ``encode_to_indices``/``decode_from_indices``:
the exported graphs are the model's code, quantiser included (the
quality level is a graph input, and the encoder graph gives
``encode_to_candidates``, whose codes the entropy coder chooses among as the
model's ``encode_to_indices`` does), so no second implementation has to be
kept in step. Transposed convolutions are then
rewritten as sub-pixel convolutions (:mod:`vqcodec.runtime.onnx_graph`), the same
function in a form onnxruntime runs faster and in less memory. Needs the
TensorFlow backend.
"""

from __future__ import annotations

import os
from pathlib import Path

from vqcodec.atomic_write import write_atomic
from vqcodec.extras import require
from vqcodec.model.recipe import STRIDE
from vqcodec.runtime.onnx_graph import subpixel_conv_transposes
from vqcodec.runtime.onnx_model import METADATA_KEY, encode_metadata, export_paths, source_digest

__all__ = ["export_model"]

OPSET = 17


def export_model(model_path: str | os.PathLike) -> tuple[Path, Path]:
    """Writes ``MODEL.encode.onnx`` and ``MODEL.decode.onnx`` beside ``model_path``; returns their paths."""
    keras = require("keras", "train", "exporting a model")
    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(f"exporting needs the TensorFlow backend (KERAS_BACKEND is {keras.backend.backend()!r})")
    onnx = require("onnx", "export", "exporting a model")
    tf2onnx = require("tf2onnx", "export", "exporting a model")
    import tensorflow as tf

    from vqcodec.codec.loading import load_model

    model_path = Path(model_path)
    model = load_model(model_path, runtime="keras")  # the source, even where an export exists
    paths = export_paths(model_path)
    if model.context_model() is None:
        raise ValueError(f"{model_path} has no entropy-coding tables: fit them first (vqcodec train --evaluate-only)")
    tables = {name: keras.ops.convert_to_numpy(getattr(model, f"coding_{name}")) for name in ("counts", "offsets")}
    metadata = encode_metadata(
        model.fingerprint(), int(model.num_qualities), int(model.num_embeddings), STRIDE,
        source_digest(model_path), tables, rate_weight=float(model.quantizer.rate_weight),
        ladder=model.operating_points(), lambdas=list(model.lambdas),
    )
    level = tf.TensorSpec([], tf.int32, name="level")
    groups = int(model.quantizer.num_groups)
    # The codes are chosen outside the graph, by the entropy coder (ExportedModel.encode_to_indices).
    encode = tf.function(lambda x, region, q: model.encode_to_candidates(x, q, region=region))
    decode = tf.function(lambda i, q: model.decode_from_indices(i, q))
    specs = (
        [tf.TensorSpec([1, None, None, 3], tf.float32, name="image"), tf.TensorSpec([4], tf.int32, name="region"), level],
        [tf.TensorSpec([1, None, None, groups], tf.int32, name="indices"), level],
    )
    for fn, spec, path in zip((encode, decode), specs, paths):
        proto, _ = tf2onnx.convert.from_function(fn, input_signature=spec, opset=OPSET)
        subpixel_conv_transposes(proto)
        onnx.helper.set_model_props(proto, {METADATA_KEY: metadata})
        data = proto.SerializeToString()
        write_atomic(path, lambda f: f.write(data), overwrite=True)
    return paths
