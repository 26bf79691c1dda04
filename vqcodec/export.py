"""``vqcodec export``: trace a model's index functions to ONNX for :class:`vqcodec.runtime.ExportedModel`.

Why tf2onnx on the model's own ``encode_to_indices``/``decode_from_indices``:
the exported graphs are the model's code, quantiser included (for a
variable-rate model the quality level is a graph input, and the encoder graph
gives ``encode_to_candidates``, whose codes the entropy coder chooses among as
the model's ``encode_to_indices`` does), so no second implementation has to be
kept in step. Transposed convolutions are then
rewritten as sub-pixel convolutions (:mod:`vqcodec.onnx_graph`), the same
function in a form onnxruntime runs faster and in less memory. Needs the
TensorFlow backend.
"""

from __future__ import annotations

import os
from pathlib import Path

from vqcodec.atomic_write import write_atomic
from vqcodec.onnx_graph import subpixel_conv_transposes
from vqcodec.runtime import METADATA_KEY, encode_metadata, export_paths, source_digest

__all__ = ["export_model"]

OPSET = 17


def export_model(model_path: str | os.PathLike) -> tuple[Path, Path]:
    """Writes ``MODEL.encode.onnx`` and ``MODEL.decode.onnx`` beside ``model_path``; returns their paths."""
    import keras

    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(f"exporting needs the TensorFlow backend (KERAS_BACKEND is {keras.backend.backend()!r})")
    import onnx
    import tensorflow as tf
    import tf2onnx

    from vqcodec import codec

    model_path = Path(model_path)
    model = codec.load_model(model_path, runtime="keras")  # the source, even where an export exists
    paths = export_paths(model_path)
    if codec.is_variable_rate(model):
        if model.context_model() is None:
            raise ValueError(f"{model_path} has no entropy-coding tables: fit them first (--evaluate-only)")
        tables = {name: keras.ops.convert_to_numpy(getattr(model, f"coding_{name}")) for name in ("counts", "offsets")}
        metadata = encode_metadata(
            codec.model_fingerprint(model), "ecvq", int(model.num_qualities), int(model.num_embeddings), codec.STRIDE,
            source_digest(model_path), tables, rate_weight=float(model.quantizer.rate_weight),
        )
        level = tf.TensorSpec([], tf.int32, name="level")
        groups = int(model.quantizer.num_groups)
        # The codes are chosen outside the graph, by the entropy coder (ExportedVariableRateModel.encode_to_indices).
        encode = tf.function(lambda x, region, q: model.encode_to_candidates(x, q, region=region))
        decode = tf.function(lambda i, q: model.decode_from_indices(i, q))
        specs = (
            [tf.TensorSpec([1, None, None, 3], tf.float32, name="image"), tf.TensorSpec([4], tf.int32, name="region"), level],
            [tf.TensorSpec([1, None, None, groups], tf.int32, name="indices"), level],
        )
    else:
        stages = int(model.num_stages)

        def with_stage_axis(indices):
            return indices[..., None] if stages == 1 else indices

        def without_stage_axis(indices):
            return indices[..., 0] if stages == 1 else indices

        encode = tf.function(
            lambda x, region: tf.cast(with_stage_axis(model.encode_to_indices(x, num_stages=stages, region=region)), tf.int32)
        )
        decode = tf.function(lambda i: model.decode_from_indices(without_stage_axis(i)))
        tables = getattr(model, "coding_tables", None)
        metadata = encode_metadata(
            codec.model_fingerprint(model), "residual", stages, int(model.num_embeddings), codec.STRIDE,
            source_digest(model_path), None if tables is None else {"tables": keras.ops.convert_to_numpy(tables)},
        )
        specs = (
            [tf.TensorSpec([1, None, None, 3], tf.float32, name="image"), tf.TensorSpec([4], tf.int32, name="region")],
            [tf.TensorSpec([1, None, None, stages], tf.int32, name="indices")],
        )
    for fn, spec, path in zip((encode, decode), specs, paths):
        proto, _ = tf2onnx.convert.from_function(fn, input_signature=spec, opset=OPSET)
        subpixel_conv_transposes(proto)
        onnx.helper.set_model_props(proto, {METADATA_KEY: metadata})
        data = proto.SerializeToString()
        write_atomic(path, lambda f: f.write(data), overwrite=True)
    return paths
