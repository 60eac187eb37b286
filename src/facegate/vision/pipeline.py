"""The vision pipeline: bytes -> decoded image -> faces with quality and embeddings."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from facegate.config import VisionSettings
from facegate.types import Face
from facegate.vision.decode import decode_image, read_image_bytes
from facegate.vision.embed import Embedder
from facegate.vision.models import get_detector, get_embedder
from facegate.vision.quality import assess_quality


class FacePipeline:
    """Decode, detect, assess and embed with one detector and one embedding model."""

    def __init__(self, model_id: str = "sface", settings: VisionSettings | None = None) -> None:
        self.settings = settings or VisionSettings()
        s = self.settings
        self.detector = get_detector(
            s.detection_threshold,
            s.nms_threshold,
            s.min_face_size,
            s.max_detection_side,
            s.detector_backend,
            s.device,
        )
        self.embedder: Embedder = get_embedder(
            model_id, s.flip_average, s.embedder_backend, s.device
        )
        self.model_id = self.embedder.model_id

    def decode(self, data: bytes) -> NDArray[np.uint8]:
        return decode_image(data, self.settings.max_pixels)

    def load(self, path: Path) -> NDArray[np.uint8]:
        return self.decode(read_image_bytes(Path(path), self.settings.max_bytes))

    def detect(self, image: NDArray[np.uint8]) -> list[Face]:
        """Faces (largest first) with their quality, not yet embedded."""
        return [
            dataclasses.replace(f, quality=assess_quality(image, f))
            for f in self.detector.detect(image)
        ]

    def embed(self, image: NDArray[np.uint8], faces: Sequence[Face]) -> list[Face]:
        """The same faces with embeddings, computed in one batch."""
        vectors = self.embedder.embed(image, faces)
        return [dataclasses.replace(f, embedding=v) for f, v in zip(faces, vectors, strict=True)]

    def analyze(self, image: NDArray[np.uint8]) -> list[Face]:
        return self.embed(image, self.detect(image))


def central_face(faces: Sequence[Face], width: int, height: int) -> Face | None:
    """The face nearest the image centre (ties broken by size): the labelled one in
    centred photo sets such as LFW."""
    if not faces:
        return None
    cx, cy = width / 2, height / 2
    return min(
        faces,
        key=lambda f: ((f.center[0] - cx) ** 2 + (f.center[1] - cy) ** 2) / max(f.width, 1.0),
    )
