"""Factories that load models once per process and reuse them (nothing loads at import)."""

from __future__ import annotations

import threading
from functools import cache

import cv2

from facegate.errors import ModelNotFoundError
from facegate.vision.accel import plan_routes
from facegate.vision.calibration import model_calibration
from facegate.vision.detect import YuNetDetector
from facegate.vision.embed import DlibEmbedder, Embedder, FusedEmbedder, OnnxDnnEmbedder
from facegate.vision.registry import manifest
from facegate.vision.sface_onnx import resolve_backend as resolve_sface_backend

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
    device: str = "cpu",
) -> YuNetDetector:
    """``device``: cpu, auto or cuda (``facegate.vision.accel``)."""
    if device != "cpu" and plan_routes(device) == ("cpu",):
        # No CUDA route here: the same (cached) detector as device="cpu".
        return get_detector(score_threshold, nms_threshold, min_face_size, max_side, backend)
    quiet_opencv()
    return YuNetDetector(score_threshold, nms_threshold, min_face_size, max_side, backend, device)


@cache
def get_embedder(
    model_id: str, flip_average: bool = False, backend: str = "opencv", device: str = "cpu"
) -> Embedder:
    """``backend`` runs SFace (and other ONNX embedders) through OpenCV's DNN or onnxruntime
    (same embeddings); ``device`` (cpu, auto, cuda: ``facegate.vision.accel``) may put them
    on a CUDA GPU instead. dlib ignores both."""
    if device != "cpu" and plan_routes(device) == ("cpu",):
        # No CUDA route here: the same (cached) embedder as device="cpu".
        return get_embedder(model_id, flip_average, backend)
    if backend == "auto":  # one cached embedder per backend actually used
        return get_embedder(model_id, flip_average, resolve_sface_backend(backend), device)
    quiet_opencv()
    with _lock:
        if model_id == "dlib":
            return DlibEmbedder()
        if model_id == "fused":
            stats = model_calibration("fused")["fusion"]
            members: list[Embedder] = [
                get_embedder("sface", flip_average, backend, device),
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
        return OnnxDnnEmbedder(found, flip_average=flip_average, backend=backend, device=device)
