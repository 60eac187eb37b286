"""Core value types. Frozen, validated on construction, with documented shapes.

Boxes are always ``(x1, y1, x2, y2)`` floats in pixels. Landmarks are ``(5, 2)`` float32:
right eye, left eye (as seen in the image: the subject's right eye is on the image's left),
nose tip, right mouth corner, left mouth corner. Embeddings are ``(D,)`` float32,
L2-normalised per member model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Quality:
    """How usable a face is for recognition, 0 (useless) .. 1 (ideal), with reasons."""

    score: float
    reasons: tuple[str, ...] = ()
    details: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0.0 <= self.score <= 1.0:
            raise ValueError(f"quality score must be in [0, 1], got {self.score}")


@dataclass(frozen=True, slots=True)
class Face:
    """One detected face in one image."""

    bbox: tuple[float, float, float, float]
    landmarks: FloatArray
    score: float
    quality: Quality | None = None
    embedding: FloatArray | None = None

    def __post_init__(self) -> None:
        if len(self.bbox) != 4:
            raise ValueError(f"bbox must be (x1, y1, x2, y2), got {self.bbox!r}")
        x1, y1, x2, y2 = self.bbox
        if not (x2 > x1 and y2 > y1):
            raise ValueError(f"bbox must have x2 > x1 and y2 > y1, got {self.bbox!r}")
        if self.landmarks.shape != (5, 2):
            raise ValueError(f"landmarks must be (5, 2), got {self.landmarks.shape}")
        if not 0.0 <= self.score <= 1.0:
            raise ValueError(f"detector score must be in [0, 1], got {self.score}")
        if self.embedding is not None and self.embedding.ndim != 1:
            raise ValueError(f"embedding must be (D,), got {self.embedding.shape}")

    @property
    def width(self) -> float:
        return self.bbox[2] - self.bbox[0]

    @property
    def height(self) -> float:
        return self.bbox[3] - self.bbox[1]

    @property
    def center(self) -> tuple[float, float]:
        return ((self.bbox[0] + self.bbox[2]) / 2, (self.bbox[1] + self.bbox[3]) / 2)


@dataclass(frozen=True, slots=True)
class OperatingPoint:
    """A decision threshold chosen for a target false-match rate on calibration data."""

    model_id: str
    fmr: float
    threshold: float

    def as_dict(self) -> dict[str, float | str]:
        return {"model_id": self.model_id, "fmr": self.fmr, "threshold": self.threshold}


@dataclass(frozen=True, slots=True)
class Candidate:
    """One subject proposed by a 1:N search."""

    subject_id: str
    display_name: str
    similarity: float


@dataclass(frozen=True, slots=True)
class Match:
    """The outcome of comparing a probe with the gallery or with another face.

    ``subject_id`` is None when nothing reached the operating point (an honest "unknown").
    """

    subject_id: str | None
    similarity: float
    model_id: str


class Verdict(StrEnum):
    MATCH = "match"
    NO_MATCH = "no_match"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    match: Match
    operating_point: OperatingPoint
    reason: str
