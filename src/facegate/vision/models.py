"""Factories that load models once per process and reuse them (nothing loads at import)."""

from __future__ import annotations

import threading
from functools import cache

import cv2

from facegate.errors import ModelNotFoundError
from facegate.vision.calibration import model_calibration
from facegate.vision.detect import YuNetDetector
from facegate.vision.embed import DlibEmbedder, Embedder, FusedEmbedder, OnnxDnnEmbedder
from facegate.vision.registry import manifest

MODEL_IDS = ("sface", "dlib", "fused")
_lock = threading.RLock()  # get_embedder("fused") loads its members


def quiet_opencv() -> None:
    """OpenCV logs harmless DNN backend warnings on stderr; keep only errors."""
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


def single_thread() -> None:
    """Pin OpenCV (and so detection and SFace) to one thread, for fair per-core figures."""
    cv2.setNumThreads(1)


@cache
def get_detector(
    score_threshold: float = 0.6,
    nms_threshold: float = 0.3,
    min_face_size: int = 20,
    max_side: int = 1280,
    backend: str = "opencv",
) -> YuNetDetector:
    quiet_opencv()
    return YuNetDetector(score_threshold, nms_threshold, min_face_size, max_side, backend)


@cache
def get_embedder(model_id: str, flip_average: bool = False, backend: str = "opencv") -> Embedder:
    """``backend`` runs SFace (and other ONNX embedders) through OpenCV's DNN or onnxruntime
    (same embeddings); dlib ignores it."""
    quiet_opencv()
    with _lock:
        if model_id == "dlib":
            return DlibEmbedder()
        if model_id == "fused":
            stats = model_calibration("fused")["fusion"]
            members: list[Embedder] = [
                get_embedder("sface", flip_average, backend),
                get_embedder("dlib"),
            ]
            return FusedEmbedder(
                members,
                means=[stats["sface"]["impostor_mean"], stats["dlib"]["impostor_mean"]],
                stds=[stats["sface"]["impostor_std"], stats["dlib"]["impostor_std"]],
                weights=[stats["sface"]["weight"], stats["dlib"]["weight"]],
                model_id="fused-flip" if flip_average else "fused",
            )
        found = manifest(model_id)
        if found.kind != "embedder" or found.id == "dlib-resnet":
            raise ModelNotFoundError(
                f"{model_id!r} is not an embedding model; use sface, dlib, fused or a "
                "registered ONNX embedder"
            )
        return OnnxDnnEmbedder(found, flip_average=flip_average, backend=backend)
