"""YuNet face detection (all faces, five landmarks) through OpenCV's FaceDetectorYN, or
through onnxruntime with the same results (``facegate.vision.yunet_onnx``), on the CPU or,
with ``device`` auto/cuda and a CUDA route installed, on the GPU
(``facegate.vision.accel``)."""

from __future__ import annotations

import threading
from typing import Any, Literal

import cv2
import numpy as np
from numpy.typing import NDArray

from facegate.types import Face
from facegate.vision.accel import Route, open_session
from facegate.vision.registry import manifest, weights_path

Backend = Literal["opencv", "onnxruntime"]
BACKENDS: tuple[Backend, ...] = ("opencv", "onnxruntime")


def resolve_backend(setting: str) -> Backend:
    """``auto`` is onnxruntime when it (and ``onnx``) can be imported, else OpenCV."""
    if setting == "auto":
        from facegate.vision.yunet_onnx import onnxruntime_available

        return "onnxruntime" if onnxruntime_available() else "opencv"
    if setting not in BACKENDS:
        raise ValueError(f"unknown detector backend {setting!r}; use auto, opencv or onnxruntime")
    return setting


class YuNetDetector:
    """Detect every face above ``score_threshold`` and at least ``min_face_size`` wide.

    Images whose longer side exceeds ``max_side`` are downscaled for detection; boxes and
    landmarks are returned in the original image's pixels. ``backend`` runs the same model
    through OpenCV's FaceDetectorYN or through onnxruntime (same faces, 1.5-1.8x as fast
    on one thread: docs/benchmarks.md); ``auto`` picks onnxruntime when importable.

    ``device`` (``cpu``, ``auto``, ``cuda``: ``facegate.vision.accel``) may put the network
    on a CUDA GPU instead (``route`` says where it runs; ``backend`` is then unused); the
    decoding of its outputs stays the same numpy code.
    """

    def __init__(
        self,
        score_threshold: float = 0.6,
        nms_threshold: float = 0.3,
        min_face_size: int = 20,
        max_side: int = 1280,
        backend: str = "opencv",
        device: str = "cpu",
    ) -> None:
        path = weights_path(manifest("yunet"))
        self.score_threshold = score_threshold
        self.min_face_size = min_face_size
        self.max_side = max_side
        self.backend: Backend = resolve_backend(backend)
        self.route: Route = "cpu"
        gpu = None
        if device != "cpu":
            from facegate.vision.yunet_onnx import INPUT_DIMS, OUTPUT_DIMS

            self.route, gpu = open_session(device, path, INPUT_DIMS, OUTPUT_DIMS, "detector yunet")
        if gpu is not None:
            from facegate.vision.yunet_onnx import YuNetOnnx

            self._onnx = YuNetOnnx(gpu, score_threshold, nms_threshold, 5000)
        elif self.backend == "onnxruntime":
            from facegate.vision.yunet_onnx import create_yunet

            self._onnx = create_yunet(path, score_threshold, nms_threshold, 5000)
        else:
            self._net = cv2.FaceDetectorYN.create(
                str(path), "", (320, 320), score_threshold, nms_threshold, 5000
            )
        self._lock = threading.Lock()  # FaceDetectorYN keeps per-call state

    def _raw(self, work: NDArray[np.uint8]) -> Any:
        """FaceDetectorYN's rows of 15 values for ``work`` (None or empty: no face)."""
        if self.route != "cpu" or self.backend == "onnxruntime":
            return self._onnx.detect(work)
        with self._lock:
            self._net.setInputSize((work.shape[1], work.shape[0]))
            _, raw = self._net.detect(work)
        return raw

    def detect(self, image: NDArray[np.uint8]) -> list[Face]:
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"image must be (H, W, 3) BGR, got {image.shape}")
        height, width = image.shape[:2]
        scale = min(1.0, self.max_side / max(height, width))
        work: NDArray[np.uint8] = image
        if scale < 1.0:
            work = cv2.resize(  # type: ignore[assignment]
                image, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA
            )
        raw = self._raw(work)
        if raw is None:
            return []
        faces = []
        for row in raw:
            x, y, w, h = (float(v) / scale for v in row[:4])
            if w < self.min_face_size:
                continue
            x1, y1 = max(0.0, x), max(0.0, y)
            x2, y2 = min(float(width), x + w), min(float(height), y + h)
            if x2 <= x1 or y2 <= y1:
                continue
            landmarks = (row[4:14].reshape(5, 2) / scale).astype(np.float32)
            score = float(min(1.0, max(0.0, row[14])))
            faces.append(Face(bbox=(x1, y1, x2, y2), landmarks=landmarks, score=score))
        # Largest first: a stable, useful order for callers that pick "the main face".
        faces.sort(key=lambda f: f.width * f.height, reverse=True)
        return faces
