"""Face embedders: SFace (and any ArcFace-style ONNX) through OpenCV DNN, dlib ResNet,
and a fused model that combines both scores.

Every embedder turns ``(image, faces)`` into an ``(N, D)`` float32 array. Each member
model's part of a vector is L2-normalised. Scores are linear in the template:
``score = templates @ (weights * query) + offset``, so an exact inner-product index
(FAISS) serves every model, the fused one included.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import cv2
import numpy as np
from numpy.typing import NDArray

from facegate.types import Face, FloatArray
from facegate.vision.align import align_face
from facegate.vision.registry import ModelManifest, manifest, weights_path

if TYPE_CHECKING:
    from facegate.vision.dlib_onnx import DlibResNetOnnx
    from facegate.vision.sface_onnx import SFaceOnnx


@dataclass(frozen=True, slots=True)
class ScoreSpace:
    """``score(q, t) = t . (weights * q) + offset``; weights None means plain cosine."""

    weights: FloatArray | None = None
    offset: float = 0.0

    def prepare_query(self, query: FloatArray) -> FloatArray:
        q = np.asarray(query, dtype=np.float32)
        return q if self.weights is None else (q * self.weights).astype(np.float32)

    def score(self, query: FloatArray, templates: FloatArray) -> FloatArray:
        """Scores of one ``(D,)`` query against ``(N, D)`` templates -> ``(N,)``."""
        templates = np.atleast_2d(np.asarray(templates, dtype=np.float32))
        return (templates @ self.prepare_query(query) + np.float32(self.offset)).astype(np.float32)


class Embedder(Protocol):
    model_id: str
    dim: int
    space: ScoreSpace

    def embed(self, image: NDArray[np.uint8], faces: Sequence[Face]) -> FloatArray:
        """``(N, D)`` embeddings of ``faces`` in the BGR ``image``."""
        ...

    def embed_many(self, shots: Sequence[Shot]) -> FloatArray:
        """``(N, D)`` embeddings of faces in several images (one face each), in one batch
        where the model can: a camera's best shots, each cut from its own frame."""
        ...


# A face and the BGR image it is in.
Shot = tuple[NDArray[np.uint8], Face]


def _check_bgr(image: NDArray[np.uint8]) -> None:
    # Checked here so every backend refuses alike (OpenCV's DNN would take 2 channels).
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be (H, W, 3) BGR, got {image.shape}")


def l2_normalise(vectors: NDArray[Any]) -> FloatArray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


class OnnxDnnEmbedder:
    """An ArcFace-style 112x112 ONNX embedder run by OpenCV DNN (SFace or user-supplied),
    or by onnxruntime with the same embeddings (``backend``; ``facegate.vision.sface_onnx``):
    the same blob either way, only the forward pass differs.

    ``device`` (``cpu``, ``auto``, ``cuda``: ``facegate.vision.accel``) may run the forward
    pass on a CUDA GPU instead, in batches of at most ``max_batch`` faces (``route`` says
    where it runs; ``backend`` is then unused). Same model, same embeddings, same id."""

    def __init__(
        self,
        m: ModelManifest,
        flip_average: bool = False,
        backend: str = "opencv",
        device: str = "cpu",
        max_batch: int = 256,
    ) -> None:
        from facegate.vision.accel import Route, open_session
        from facegate.vision.sface_onnx import INPUT_DIMS, OUTPUT_DIMS, SFaceOnnx, resolve_backend

        if m.kind != "embedder" or m.input_size is None:
            raise ValueError(f"model {m.id!r} is not an image embedder")
        # Flip-averaged vectors differ from plain ones: they get their own model id, so they
        # are never mixed with plain templates or judged by the plain model's thresholds.
        self.model_id = f"{m.id}-flip" if flip_average else m.id
        self._manifest = m
        self._input_size: tuple[int, int] = m.input_size
        self.flip_average = flip_average
        self.backend = resolve_backend(backend)
        self._onnx: SFaceOnnx | None = None
        self.route: Route = "cpu"
        if device != "cpu":
            what = f"embedder {m.id}"
            path = weights_path(m)
            self.route, gpu = open_session(device, path, INPUT_DIMS, OUTPUT_DIMS, what)
            if gpu is not None:
                self._onnx = SFaceOnnx(gpu, max_batch=max_batch)
        if self._onnx is not None:
            self._input_name = self._onnx.input_name
        elif self.backend == "onnxruntime":
            from facegate.vision.sface_onnx import create_sface

            self._onnx = create_sface(weights_path(m))
            self._input_name = self._onnx.input_name
        else:
            self._net = cv2.dnn.readNetFromONNX(str(weights_path(m)))
            self._input_name = self._first_input_name()
        self._lock = threading.Lock()
        probe = np.zeros((1, *m.input_size, 3), dtype=np.uint8)
        self.dim = int(self._forward([probe[0]]).shape[1])
        self.space = ScoreSpace()

    def _first_input_name(self) -> str:
        # SFace names its input "data"; other ArcFace exports use other names.
        try:
            names = self._net.getInputNames() if hasattr(self._net, "getInputNames") else []
        except cv2.error:
            names = []
        return str(names[0]) if names else "data"

    def _forward(self, crops: Sequence[NDArray[np.uint8]]) -> FloatArray:
        norm = self._manifest.normalisation
        blob = cv2.dnn.blobFromImages(
            list(crops),
            scalefactor=1.0 / norm.std,
            size=self._input_size,
            mean=(norm.mean, norm.mean, norm.mean),
            swapRB=norm.channel_order == "RGB",
            crop=False,
        )
        if self._onnx is not None:
            return self._onnx.forward(blob).reshape(len(crops), -1)
        with self._lock:
            self._net.setInput(blob, self._input_name)
            out = self._net.forward()
        return np.asarray(out, dtype=np.float32).reshape(len(crops), -1)

    def embed(self, image: NDArray[np.uint8], faces: Sequence[Face]) -> FloatArray:
        return self.embed_many([(image, face) for face in faces])

    def embed_many(self, shots: Sequence[Shot]) -> FloatArray:
        if not shots:
            return np.zeros((0, getattr(self, "dim", 0)), dtype=np.float32)
        for image, _ in shots:
            _check_bgr(image)
        crops = [align_face(image, face.landmarks) for image, face in shots]
        if not self.flip_average:
            return l2_normalise(self._forward(crops))
        both = self._forward(crops + [c[:, ::-1] for c in crops])
        n = len(crops)
        return l2_normalise(l2_normalise(both[:n]) + l2_normalise(both[n:]))


class DlibEmbedder:
    """dlib's ResNet (CC0) on chips aligned by dlib's 5-point predictor inside each box.

    ``backend``: ``dlib`` runs dlib's own forward pass; ``onnxruntime`` the same network
    converted to ONNX (``facegate.vision.dlib_onnx``), 11-14x faster on one core, with
    the same descriptors (cosine to dlib's >= 0.99999), so the model id stays ``dlib``;
    ``auto`` is onnxruntime when it (and ``onnx``) can be imported. Chips and the 5-point
    shape are dlib's either way."""

    def __init__(self, backend: str = "auto") -> None:
        import dlib  # imported here: loading dlib costs time and is not always needed

        from facegate.vision.dlib_onnx import create_dlib_resnet, resolve_backend

        self.model_id = "dlib"
        self.dim = 128
        self.space = ScoreSpace()
        self.backend = resolve_backend(backend)
        self._dlib = dlib
        self._shape = dlib.shape_predictor(str(weights_path(manifest("dlib-5pt"))))
        resnet = weights_path(manifest("dlib-resnet"))
        self._onnx: DlibResNetOnnx | None = None
        if self.backend == "onnxruntime":
            self._onnx = create_dlib_resnet(resnet)
        else:
            self._net = dlib.face_recognition_model_v1(str(resnet))
        self._lock = threading.Lock()

    def embed(self, image: NDArray[np.uint8], faces: Sequence[Face]) -> FloatArray:
        return self.embed_many([(image, face) for face in faces])

    def embed_many(self, shots: Sequence[Shot]) -> FloatArray:
        if not shots:
            return np.zeros((0, self.dim), dtype=np.float32)
        rgbs: dict[int, NDArray[np.uint8]] = {}  # one RGB copy per image
        chips = []
        for image, face in shots:
            rgb = rgbs.get(id(image))
            if rgb is None:
                rgb = rgbs[id(image)] = np.ascontiguousarray(image[:, :, ::-1])
            x1, y1, x2, y2 = (round(v) for v in face.bbox)
            shape = self._shape(rgb, self._dlib.rectangle(x1, y1, x2, y2))
            chips.append(self._dlib.get_face_chip(rgb, shape, size=150, padding=0.25))
        if self._onnx is not None:  # onnxruntime sessions are thread-safe
            return l2_normalise(self._onnx.descriptors(chips))
        with self._lock:
            vectors = self._net.compute_face_descriptor(chips)
        return l2_normalise(np.array([np.asarray(v) for v in vectors]))


class FusedEmbedder:
    """SFace + dlib: the vector is both parts side by side; the score is a weighted sum of
    each member's z-normalised cosine (statistics from calibration on LFW)."""

    def __init__(
        self,
        members: Sequence[Embedder],
        means: Sequence[float],
        stds: Sequence[float],
        weights: Sequence[float],
        model_id: str = "fused",
    ) -> None:
        if not (len(members) == len(means) == len(stds) == len(weights)):
            raise ValueError("members, means, stds and weights must have the same length")
        self.model_id = model_id
        self.members = list(members)
        self.dim = sum(m.dim for m in members)
        scale = np.concatenate(
            [
                np.full(m.dim, w / s, dtype=np.float32)
                for m, w, s in zip(members, weights, stds, strict=True)
            ]
        )
        offset = -float(sum(w * mu / s for w, mu, s in zip(weights, means, stds, strict=True)))
        self.space = ScoreSpace(weights=scale, offset=offset)

    def embed(self, image: NDArray[np.uint8], faces: Sequence[Face]) -> FloatArray:
        return self.embed_many([(image, face) for face in faces])

    def embed_many(self, shots: Sequence[Shot]) -> FloatArray:
        return np.concatenate([m.embed_many(shots) for m in self.members], axis=1)
