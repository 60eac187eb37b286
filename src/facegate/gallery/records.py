"""What the gallery stores: subjects and their templates."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from facegate.types import FloatArray


def new_id() -> str:
    return uuid.uuid4().hex


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Subject:
    """A consenting, enrolled person. ``external_id`` is the caller's own key (unique)."""

    id: str
    display_name: str
    external_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: datetime = field(default_factory=utc_now)

    def __post_init__(self) -> None:
        if not self.display_name.strip():
            raise ValueError("display_name must not be empty")
        if len(self.display_name) > 200:
            raise ValueError(
                f"display_name must be at most 200 characters, got {len(self.display_name)}"
            )


@dataclass(frozen=True, slots=True)
class Template:
    """One face embedding of a subject, made by ``model_id``. Never compare across models."""

    id: str
    subject_id: str
    model_id: str
    embedding: FloatArray
    quality: float
    created_at: datetime = field(default_factory=utc_now)
    source: str | None = None  # a file name or label, never image data

    def __post_init__(self) -> None:
        if self.embedding.ndim != 1 or self.embedding.dtype != np.float32:
            raise ValueError(
                "embedding must be a (D,) float32 array, "
                f"got {self.embedding.shape} {self.embedding.dtype}"
            )
