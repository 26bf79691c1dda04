"""Rewrites of an exported ONNX graph that keep its function and make onnxruntime faster and leaner.

Why: onnxruntime runs a strided ``ConvTranspose`` on the CPU as a matrix
product into a column buffer of ``C_out * k * k`` rows per input pixel, which
is slow and, at full resolution, hundreds of megabytes. The same operator is
an ordinary convolution with ``s * s * C_out`` outputs on the input grid
followed by ``DepthToSpace`` (sub-pixel convolution), which onnxruntime runs
with its blocked convolution kernels and no column buffer.
"""

from __future__ import annotations

import numpy as np

__all__ = ["subpixel_conv_transposes", "subpixel_weights"]


def _attributes(node) -> dict:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _rewritable(node, weights: dict) -> bool:
    """A 2-D ConvTranspose with a square kernel, equal strides, no padding, one group and constant weights."""
    if node.op_type != "ConvTranspose" or node.input[1] not in weights:
        return False
    if len(node.input) > 2 and node.input[2] and node.input[2] not in weights:
        return False
    a = _attributes(node)
    strides = list(a.get("strides", [1, 1]))
    kernel = list(weights[node.input[1]].shape[2:])
    return (
        len(kernel) == 2
        and kernel[0] == kernel[1]
        and len(strides) == 2
        and strides[0] == strides[1] > 1
        and a.get("group", 1) == 1
        and all(d == 1 for d in a.get("dilations", [1, 1]))
        and not any(a.get("pads", [0]))
        and not any(a.get("output_padding", [0]))
        and a.get("output_shape") is None
        and a.get("auto_pad", b"NOTSET") in (b"NOTSET", "NOTSET")
    )


def subpixel_weights(w: np.ndarray, bias: np.ndarray | None, stride: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Conv weights ``(s*s*C_out, C_in, T, T)`` and bias for a ConvTranspose of weights ``(C_in, C_out, k, k)``.

    With ``T = ceil(k / s)``: the convolution runs on the input padded by
    ``T - 1`` on every side, and output channel ``(ry * s + rx) * C_out + o``
    is output phase ``(ry, rx)`` of channel ``o`` (DepthToSpace, DCR order).
    Returns ``(weights, bias, T)``.
    """
    c_in, c_out, kh, kw = w.shape
    taps = -(-max(kh, kw) // stride)
    padded = np.zeros((c_in, c_out, taps * stride, taps * stride), w.dtype)
    padded[:, :, :kh, :kw] = w
    # phase r, tap j of the transposed conv is kernel element j * s + r; a correlation reads it reversed
    phases = padded.reshape(c_in, c_out, taps, stride, taps, stride)[:, :, ::-1, :, ::-1, :]
    conv = phases.transpose(3, 5, 1, 0, 2, 4).reshape(stride * stride * c_out, c_in, taps, taps)
    b = np.zeros(c_out, w.dtype) if bias is None else bias
    return np.ascontiguousarray(conv), np.tile(b, stride * stride).astype(w.dtype), taps


def subpixel_conv_transposes(model):
    """Replaces each rewritable ConvTranspose of ``model`` (an onnx ModelProto, changed in place); returns it.

    The replacement, Pad -> Conv -> DepthToSpace -> Slice, produces the
    ConvTranspose's output of size ``(n - 1) * s + k`` exactly, so the rest of
    the graph is untouched.
    """
    import onnx
    from onnx import helper, numpy_helper

    graph = model.graph
    weights = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    nodes = []
    for node in graph.node:
        if not _rewritable(node, weights):
            nodes.append(node)
            continue
        stride = _attributes(node)["strides"][0]
        w = weights[node.input[1]]
        bias = weights[node.input[2]] if len(node.input) > 2 and node.input[2] else None
        conv_w, conv_b, taps = subpixel_weights(w, bias, stride)
        kernel = w.shape[2]
        prefix = f"{node.name or node.output[0]}/subpixel/"

        def n(suffix: str, prefix: str = prefix) -> str:
            return prefix + suffix

        edge = taps - 1
        graph.initializer.extend([
            numpy_helper.from_array(conv_w, n("W")),
            numpy_helper.from_array(conv_b, n("B")),
            numpy_helper.from_array(np.array([0, 0, edge, edge, 0, 0, edge, edge], np.int64), n("pads")),
        ])
        nodes.append(helper.make_node("Pad", [node.input[0], n("pads")], [n("padded")], name=n("Pad")))
        nodes.append(helper.make_node("Conv", [n("padded"), n("W"), n("B")], [n("phases")], name=n("Conv"),
                                      kernel_shape=[taps, taps], strides=[1, 1]))
        excess = taps * stride - kernel  # the phase layout is longer than (n - 1) * s + k by this much
        d2s_out = n("upsampled") if excess else node.output[0]
        nodes.append(helper.make_node("DepthToSpace", [n("phases")], [d2s_out], name=n("DepthToSpace"),
                                      blocksize=stride, mode="DCR"))
        if excess:
            graph.initializer.extend([
                numpy_helper.from_array(np.array([0, 0], np.int64), n("starts")),
                numpy_helper.from_array(np.array([-excess, -excess], np.int64), n("ends")),
                numpy_helper.from_array(np.array([2, 3], np.int64), n("axes")),
            ])
            nodes.append(helper.make_node("Slice", [d2s_out, n("starts"), n("ends"), n("axes")], [node.output[0]],
                                          name=n("Slice")))
    del graph.node[:]
    graph.node.extend(nodes)
    used = {i for node in graph.node for i in node.input}
    unused = [t for t in graph.initializer if t.name not in used]
    for t in unused:
        graph.initializer.remove(t)
    onnx.checker.check_model(model)
    return model
