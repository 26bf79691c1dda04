"""The sub-pixel rewrite of transposed convolutions computes the same function as onnxruntime's ConvTranspose,
and as Keras's ``padding="same"`` layer where the traced crop is dropped."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from vqcodec.runtime.onnx_graph import subpixel_conv_transposes


def _conv_transpose_model(c_in: int, c_out: int, kernel: int, stride: int, bias: bool, seed: int = 0):
    rng = np.random.default_rng(seed)
    inits = [numpy_helper.from_array(rng.normal(size=(c_in, c_out, kernel, kernel)).astype(np.float32), "w")]
    inputs = ["x", "w"]
    if bias:
        inits.append(numpy_helper.from_array(rng.normal(size=c_out).astype(np.float32), "b"))
        inputs.append("b")
    node = helper.make_node("ConvTranspose", inputs, ["up"], strides=[stride, stride], kernel_shape=[kernel, kernel])
    relu = helper.make_node("Relu", ["up"], ["y"])  # a consumer, as in a real graph
    graph = helper.make_graph(
        [node, relu], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c_in, None, None])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, c_out, None, None])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model, x):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


@pytest.mark.parametrize(
    "c_in,c_out,kernel,stride,bias",
    [(8, 6, 5, 2, True), (4, 3, 4, 2, False), (3, 5, 3, 3, True), (2, 2, 1, 2, True), (5, 4, 7, 4, False)],
)
def test_rewrite_matches_conv_transpose(c_in, c_out, kernel, stride, bias):
    original = _conv_transpose_model(c_in, c_out, kernel, stride, bias)
    rewritten = subpixel_conv_transposes(_conv_transpose_model(c_in, c_out, kernel, stride, bias))
    assert [n.op_type for n in rewritten.graph.node if n.op_type == "ConvTranspose"] == []
    assert "DepthToSpace" in [n.op_type for n in rewritten.graph.node]
    for h, w in [(1, 1), (7, 5), (16, 12)]:
        x = np.random.default_rng(h * w).normal(size=(1, c_in, h, w)).astype(np.float32)
        want, got = _run(original, x), _run(rewritten, x)
        assert got.shape == want.shape == (1, c_out, (h - 1) * stride + kernel, (w - 1) * stride + kernel)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_padded_or_grouped_conv_transposes_are_left_alone():
    model = _conv_transpose_model(4, 4, 3, 2, True)
    model.graph.node[0].attribute.append(helper.make_attribute("pads", [1, 1, 1, 1]))
    before = model.graph.SerializeToString()
    assert subpixel_conv_transposes(model).graph.SerializeToString() == before


def _traced_same_conv_transpose(c_in: int, c_out: int, kernel: int, stride: int):
    """A Keras ``padding="same"`` transposed convolution traced by tf2onnx, as ``vqcodec export`` traces the decoder."""
    import keras
    import tensorflow as tf
    import tf2onnx

    keras.utils.set_random_seed(kernel * 10 + stride)
    layer = keras.layers.Conv2DTranspose(c_out, kernel, strides=stride, padding="same", bias_initializer="random_normal")
    layer.build((None, None, None, c_in))
    fn = tf.function(lambda x: tf.transpose(layer(tf.transpose(x, (0, 2, 3, 1))), (0, 3, 1, 2)))
    spec = [tf.TensorSpec([1, c_in, None, None], tf.float32, name="x")]
    proto, _ = tf2onnx.convert.from_function(fn, input_signature=spec, opset=17)
    return proto, layer


@pytest.mark.parametrize(
    "c_in,c_out,kernel,stride", [(6, 16, 5, 2), (4, 3, 5, 2), (5, 8, 4, 2), (3, 8, 3, 2), (4, 8, 7, 4)]
)
def test_same_padded_conv_transposes_lose_their_crop(c_in, c_out, kernel, stride):
    proto, layer = _traced_same_conv_transpose(c_in, c_out, kernel, stride)
    ops_before = [n.op_type for n in proto.graph.node]
    assert "ConvTranspose" in ops_before and "Slice" in ops_before
    rewritten = subpixel_conv_transposes(proto)
    ops = [n.op_type for n in rewritten.graph.node]
    assert "ConvTranspose" not in ops
    assert "Slice" not in ops and "Pad" not in ops  # the crop is gone, and the shape arithmetic with it
    assert ops.count("Conv") == (stride * stride if c_out >= 8 else 1)
    for h, w in [(1, 1), (7, 5), (16, 12)]:
        x = np.random.default_rng(h * w).normal(size=(1, c_in, h, w)).astype(np.float32)
        want = np.transpose(np.asarray(layer(np.transpose(x, (0, 2, 3, 1)))), (0, 3, 1, 2))
        got = _run(rewritten, x)
        assert got.shape == want.shape == (1, c_out, h * stride, w * stride)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
