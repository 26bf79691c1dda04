"""Rewrites of an exported ONNX graph that keep its function and make onnxruntime faster and leaner.

Why: onnxruntime runs a strided ``ConvTranspose`` on the CPU as a matrix
product into a column buffer of ``C_out * k * k`` rows per input pixel, which
is slow and, at full resolution, hundreds of megabytes. The same operator is
an ordinary convolution with ``s * s * C_out`` outputs on the input grid
followed by ``DepthToSpace`` (sub-pixel convolution), which onnxruntime runs
with its blocked convolution kernels and no column buffer.

A transposed convolution with ``padding="same"`` is traced as that
operator followed by a crop (``Slice``) and a zero ``Pad`` that are
computed from shapes at run time: two more copies of the largest tensors.
Where that pattern follows, the convolution computes the cropped phases
directly, so ``DepthToSpace`` gives the layer's output and the crop goes.
"""

from __future__ import annotations

import numpy as np

__all__ = ["subpixel_conv_transposes", "subpixel_weights", "cropped_subpixel_phases"]


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


#: Output channels from which each output phase gets a convolution of its own, with only its
#: taps (25 of the 36 a shared 3x3 window has, for a 5x5 kernel and stride 2): the decoder
#: ran 12-15% faster; split too, its last layer (3 outputs a phase) made it 10% slower.
PHASE_SPLIT_MIN_CHANNELS = 8


def _axis_taps(stride: int, crop: int, kernel: int) -> list[list[tuple[int, int]]]:
    """For every output phase ``p`` of one axis, its ``(kernel tap j, relative input row d)`` pairs.

    Output row ``i * s + p`` is full row ``(i + a) * s + b`` with
    ``p + crop = a * s + b``: taps ``j = b + t * s`` read input row ``i + a - t``.
    """
    phases = []
    for p in range(stride):
        a, b = divmod(p + crop, stride)
        phases.append([(j, a - (j - b) // stride) for j in range(b, kernel, stride)])
    return phases


def cropped_subpixel_phases(
    w: np.ndarray, bias: np.ndarray | None, stride: int, crop: int
) -> list[tuple[np.ndarray, np.ndarray, list[int]]]:
    """Convolutions giving ``ConvTranspose(x)[crop : crop + s * n]`` (per spatial axis), one per output phase.

    For a ConvTranspose of weights ``(C_in, C_out, k, k)``: in DepthToSpace's
    (DCR) order, every phase's ``(weights (C_out, C_in, rows, cols), bias,
    ONNX pads [top, left, bottom, right])``; each has exactly ``n`` positions.
    """
    c_in, c_out, kh, kw = w.shape
    k = max(kh, kw)
    padded = np.zeros((c_in, c_out, k, k), w.dtype)
    padded[:, :, :kh, :kw] = w
    b = np.zeros(c_out, w.dtype) if bias is None else bias
    taps = _axis_taps(stride, crop, k)
    # each phase's window of input rows, widened to hold row 0 so that no pad is negative
    span = [(min(0, *(d for _, d in t)), max(0, *(d for _, d in t))) for t in taps]
    phases = []
    for py in range(stride):
        for px in range(stride):
            (top, bottom), (left, right) = span[py], span[px]
            conv = np.zeros((c_out, c_in, bottom - top + 1, right - left + 1), w.dtype)
            for jy, dy in taps[py]:
                for jx, dx in taps[px]:
                    conv[:, :, dy - top, dx - left] = padded[:, :, jy, jx].T
            phases.append((conv, b, [-top, -left, bottom, right]))
    return phases


def _merged(phases) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """The phases' convolutions as one, over the union of their windows (zero taps elsewhere)."""
    before = [max(p[2][axis] for p in phases) for axis in (0, 1)]
    after = [max(p[2][axis + 2] for p in phases) for axis in (0, 1)]
    c_out, c_in = phases[0][0].shape[:2]
    conv = np.zeros((len(phases), c_out, c_in, before[0] + after[0] + 1, before[1] + after[1] + 1), phases[0][0].dtype)
    for i, (w, _, pads) in enumerate(phases):
        y, x = before[0] - pads[0], before[1] - pads[1]
        conv[i, :, :, y : y + w.shape[2], x : x + w.shape[3]] = w
    bias = np.concatenate([p[1] for p in phases])
    return conv.reshape(len(phases) * c_out, c_in, *conv.shape[3:]), bias, before + after


def _same_crop(node, consumers: dict):
    """The (Slice, Pad) pair a ``padding="same"`` transposed convolution is traced with, or None.

    The pair crops ``(k - s) // 2`` rows and columns from the start to ``s``
    times the input's size and pads by zero; any other consumer of the
    operator's output than a ``Shape`` (which only computes the crop) rules
    the rewrite out.
    """
    users = consumers.get(node.output[0], [])
    slices = [u for u in users if u.op_type == "Slice" and u.input[0] == node.output[0]]
    if len(slices) != 1 or any(u.op_type not in ("Slice", "Shape") for u in users):
        return None
    pads = [u for u in consumers.get(slices[0].output[0], []) if u.op_type == "Pad"]
    if len(consumers.get(slices[0].output[0], [])) != 1 or len(pads) != 1:
        return None
    return slices[0], pads[0]


def _prune(graph) -> None:
    """Removes nodes none of whose outputs is used (the crop's shape arithmetic, once the crop is gone)."""
    outputs = {o.name for o in graph.output}
    while True:
        used = {i for node in graph.node for i in node.input} | outputs
        dead = [node for node in graph.node if not any(o in used for o in node.output)]
        if not dead:
            return
        for node in dead:
            graph.node.remove(node)


def subpixel_conv_transposes(model):
    """Replaces each rewritable ConvTranspose of ``model`` (an onnx ModelProto, changed in place); returns it.

    Followed by a ``padding="same"`` crop (:func:`_same_crop`): Conv ->
    DepthToSpace, giving the crop's output, and the crop goes. Otherwise
    Pad -> Conv -> DepthToSpace -> Slice, giving the ConvTranspose's output
    of size ``(n - 1) * s + k``. Either way the rest of the graph is untouched.
    """
    import onnx
    from onnx import helper, numpy_helper

    graph = model.graph
    weights = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    removed = set()
    nodes = []
    for node in graph.node:
        if id(node) in removed:
            continue
        if not _rewritable(node, weights):
            nodes.append(node)
            continue
        stride = _attributes(node)["strides"][0]
        w = weights[node.input[1]]
        bias = weights[node.input[2]] if len(node.input) > 2 and node.input[2] else None
        kernel = w.shape[2]
        prefix = f"{node.name or node.output[0]}/subpixel/"

        def n(suffix: str, prefix: str = prefix) -> str:
            return prefix + suffix

        crop = _same_crop(node, consumers) if kernel >= stride else None  # a smaller kernel is padded, not cropped
        if crop is not None:
            phases = cropped_subpixel_phases(w, bias, stride, (kernel - stride) // 2)
            if w.shape[1] < PHASE_SPLIT_MIN_CHANNELS:
                phases = [_merged(phases)]
            outputs = []
            for i, (conv_w, conv_b, pads) in enumerate(phases):
                graph.initializer.extend([numpy_helper.from_array(conv_w, n(f"W{i}")), numpy_helper.from_array(conv_b, n(f"B{i}"))])
                outputs.append(n(f"phase{i}"))
                nodes.append(helper.make_node("Conv", [node.input[0], n(f"W{i}"), n(f"B{i}")], [outputs[-1]], name=n(f"Conv{i}"),
                                              kernel_shape=list(conv_w.shape[2:]), strides=[1, 1], pads=pads))
            if len(outputs) > 1:
                nodes.append(helper.make_node("Concat", outputs, [n("phases")], name=n("Concat"), axis=1))
            nodes.append(helper.make_node("DepthToSpace", [n("phases") if len(outputs) > 1 else outputs[0]],
                                          [crop[1].output[0]], name=n("DepthToSpace"), blocksize=stride, mode="DCR"))
            removed.update(id(c) for c in crop)
            continue
        conv_w, conv_b, taps = subpixel_weights(w, bias, stride)
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
    _prune(graph)
    used = {i for node in graph.node for i in node.input}
    unused = [t for t in graph.initializer if t.name not in used]
    for t in unused:
        graph.initializer.remove(t)
    onnx.checker.check_model(model)
    return model
