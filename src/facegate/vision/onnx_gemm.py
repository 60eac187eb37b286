"""A fully connected layer whose weights are block-quantised int8 (``DequantizeLinear``
with ``block_size`` along the reduction axis, feeding ``Gemm`` with ``transB=1``) run as
onnxruntime's ``MatMulNBits`` (8 bits, the same blocks, scales and zero points), for CPU
sessions only.

Why: SFace's last layer maps 50,176 values to 128 with 6.4 M weights. As float32 that is
25.7 MB read from memory for every face (more than the cache holds); the int8 weights the
file ships are a quarter of it. With ``accuracy_level=4`` the activations are quantised to
int8 per block as well: measured on SFace, 13.9 against 14.7 ms a face on one thread, the
embeddings at cosine >= 0.999998 to the float graph's. The weights are the file's own
int8 values, not quantised again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import onnx

# onnxruntime's MatMulNBits: int8 compute (activations quantised per block at run time).
ACCURACY_LEVEL = 4


def _attributes(node: onnx.NodeProto) -> dict[str, object]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def int8_gemms(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` with each eligible ``Gemm`` as ``MatMulNBits`` + ``Add``; others
    (and ``model``) untouched. Eligible: alpha = beta = 1, no transA, transB = 1, weights
    from a ``DequantizeLinear`` of int8 initializers with blocks along the reduction axis
    that only this Gemm reads."""
    import onnx
    from onnx import helper

    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    graph = fixed.graph
    inits = {t.name: t for t in graph.initializer}
    producers = {out: node for node in graph.node for out in node.output}
    readers: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1
    nodes: list[onnx.NodeProto] = []
    dropped: set[int] = set()
    changed = False
    for node in graph.node:
        replacement = _replacement(node, inits, producers, readers)
        if replacement is None:
            nodes.append(node)
            continue
        new_nodes, new_inits, dequantize = replacement
        nodes += new_nodes
        graph.initializer.extend(new_inits)
        dropped.add(id(dequantize))
        changed = True
    if not changed:
        return fixed
    kept = [n for n in nodes if id(n) not in dropped]
    del graph.node[:]
    graph.node.extend(kept)
    if not any(o.domain == "com.microsoft" for o in fixed.opset_import):
        fixed.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    used = {name for n in graph.node for name in n.input}
    kept_inits = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept_inits)
    return fixed


def _replacement(
    node: onnx.NodeProto,
    inits: dict[str, onnx.TensorProto],
    producers: dict[str, onnx.NodeProto],
    readers: dict[str, int],
) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto], onnx.NodeProto] | None:
    from onnx import helper, numpy_helper

    if node.op_type != "Gemm" or node.domain not in ("", "ai.onnx") or len(node.input) != 3:
        return None
    a, weight, bias = node.input
    attrs = _attributes(node)
    if (
        attrs.get("alpha", 1.0) != 1.0
        or attrs.get("beta", 1.0) != 1.0
        or attrs.get("transA", 0) != 0
        or attrs.get("transB", 0) != 1
    ):
        return None
    dq = producers.get(weight)
    if dq is None or dq.op_type != "DequantizeLinear" or readers.get(weight, 0) != 1:
        return None
    dq_attrs = _attributes(dq)
    block = int(dq_attrs.get("block_size", 0))  # type: ignore[call-overload]
    if block < 16 or block & (block - 1) or int(dq_attrs.get("axis", 1)) not in (1, -1):  # type: ignore[call-overload]
        return None
    if len(dq.input) < 3 or any(name not in inits for name in dq.input):
        return None
    q, scales, zeros = (numpy_helper.to_array(inits[name]) for name in dq.input)
    if q.dtype != np.int8 or zeros.dtype != np.int8 or q.ndim != 2 or q.shape[1] % block:
        return None
    n, k = q.shape
    if scales.shape != (n, k // block) or zeros.shape != scales.shape:
        return None
    shift = np.int16(128)  # MatMulNBits' 8-bit weights and zero points are unsigned
    packed = (q.astype(np.int16) + shift).astype(np.uint8).reshape(n, k // block, block)
    zero_points = (zeros.astype(np.int16) + shift).astype(np.uint8).reshape(-1)
    prefix = f"{node.name or 'gemm'}_int8"
    new_inits = [
        numpy_helper.from_array(packed, f"{prefix}_weights"),
        numpy_helper.from_array(scales.astype(np.float32).reshape(-1), f"{prefix}_scales"),
        numpy_helper.from_array(zero_points, f"{prefix}_zero_points"),
    ]
    matmul = helper.make_node(
        "MatMulNBits",
        [a, f"{prefix}_weights", f"{prefix}_scales", f"{prefix}_zero_points"],
        [f"{prefix}_product"],
        name=f"{prefix}_matmul",
        domain="com.microsoft",
        K=k,
        N=n,
        bits=8,
        block_size=block,
        accuracy_level=ACCURACY_LEVEL,
    )
    add = helper.make_node("Add", [f"{prefix}_product", bias], list(node.output), name=prefix)
    return [matmul, add], new_inits, dq
