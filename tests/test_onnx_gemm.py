"""SFace's int8 fully connected layer as onnxruntime's MatMulNBits (facegate.vision.onnx_gemm):
the file's own int8 weights, blocks, scales and zero points, and embeddings within 2e-6 in
cosine of the float graph's, on real faces."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from facegate.vision import onnx_repair, sface_onnx
from facegate.vision.onnx_gemm import int8_gemms
from facegate.vision.registry import manifest, weights_path


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    options.add_session_config_entry("session.disable_quant_qdq", "1")
    return ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def test_sface_fc_layer_runs_on_its_int8_weights() -> None:
    raw = onnx.load(str(weights_path(manifest("sface"))))
    converted = int8_gemms(raw)
    ops = [n.op_type for n in converted.graph.node]
    assert "Gemm" not in ops and ops.count("MatMulNBits") == 1
    inits = {t.name: numpy_helper.to_array(t) for t in converted.graph.initializer}
    assert "pre_fc1_weight_quantized" not in inits  # read once, as packed uint8 blocks
    packed = next(v for k, v in inits.items() if k.endswith("_int8_weights"))
    assert packed.dtype == np.uint8 and packed.shape == (128, 784, 64)
    original = numpy_helper.to_array(
        next(t for t in raw.graph.initializer if t.name == "pre_fc1_weight_quantized")
    )
    np.testing.assert_array_equal(packed.reshape(128, -1).astype(np.int16) - 128, original)

    dims = (sface_onnx.INPUT_DIMS, sface_onnx.OUTPUT_DIMS)
    float_graph = _session(onnx_repair.repair_model(raw, *dims))
    int8_graph = _session(onnx_repair.repair_model(converted, *dims))
    # Aligned-face-like input: real faces are checked end to end in test_sface_onnx.py.
    blob = np.random.default_rng(5).uniform(0, 255, (6, 3, 112, 112)).astype(np.float32)
    a = float_graph.run(None, {"data": blob})[0]
    b = int8_graph.run(None, {"data": blob})[0]
    cosine = np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cosine.min() >= 1 - 2e-6


@pytest.mark.parametrize(
    "change",
    [{"transB": 0}, {"alpha": 0.5}, {"block_axis": 0}],
    ids=["not transposed", "scaled", "blocks across the output"],
)
def test_other_gemms_are_left_alone(change: dict[str, int | float]) -> None:
    n, k, block = 4, 64, 32
    rng = np.random.default_rng(1)
    axis = int(change.get("block_axis", 1))
    q = rng.integers(-100, 100, (n, k), dtype=np.int8)
    blocks = (n, k // block) if axis == 1 else (1, k)  # axis 0: one block of all outputs
    scales = rng.uniform(0.01, 0.02, blocks).astype(np.float32)
    zeros = np.zeros(blocks, np.int8)
    weights = [
        numpy_helper.from_array(v, name) for v, name in ((q, "q"), (scales, "s"), (zeros, "z"))
    ]
    gemm_attrs = {"transB": int(change.get("transB", 1)), "alpha": float(change.get("alpha", 1.0))}
    nodes = [
        helper.make_node(
            "DequantizeLinear",
            ["q", "s", "z"],
            ["w"],
            axis=axis,
            block_size=block if axis == 1 else n,
        ),
        helper.make_node("Gemm", ["x", "w", "b"], ["y"], **gemm_attrs),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n])],
        [*weights, numpy_helper.from_array(np.zeros(n, np.float32), "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    assert [n.op_type for n in int8_gemms(model).graph.node] == ["DequantizeLinear", "Gemm"]
