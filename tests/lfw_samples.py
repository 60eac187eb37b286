"""LFW sample faces for the backend comparison tests: the central face of one photo per
person, found by the ordinary pipeline with OpenCV's YuNet."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from facegate.config import VisionSettings
from facegate.types import Face
from facegate.vision.pipeline import FacePipeline, central_face

Sample = tuple[str, NDArray[np.uint8], Face]


def central_faces(
    faces_root: Path,
    people: int,
    *,
    start: int = 0,
    step: int = 60,
    device: Literal["auto", "cpu", "cuda"] = "auto",
) -> list[Sample]:
    """(file name, image, central face) of the first photo of every ``step``-th person
    (sorted by name, from the ``start``-th), ``people`` people in all; photos where the
    detector finds no face are left out, so the list may be shorter."""
    settings = VisionSettings(detector_backend="opencv", device=device)
    pipeline = FacePipeline(settings=settings)
    chosen = sorted(p for p in faces_root.iterdir() if p.is_dir())[start::step][:people]
    found: list[Sample] = []
    for person in chosen:
        path = sorted(person.glob("*.jpg"))[0]
        image = pipeline.load(path)
        face = central_face(pipeline.detect(image), image.shape[1], image.shape[0])
        if face is not None:
            found.append((path.name, image, face))
    return found
