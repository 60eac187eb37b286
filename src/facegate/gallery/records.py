"""What the gallery stores: collections, subjects and their templates."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from facegate.config import FMR_CHOICES
from facegate.types import FloatArray

DEFAULT_COLLECTION = "default"
_COLLECTION_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def new_id() -> str:
    return uuid.uuid4().hex


def utc_now() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """SQLite returns naive datetimes; everything facegate stores is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Collection:
    """A gallery namespace (a site, a tenant), pinned to one model and a default operating point."""

    name: str
    model_id: str
    fmr: float = 1e-3
    created_at: datetime = field(default_factory=utc_now)

    def __post_init__(self) -> None:
        if not _COLLECTION_NAME.match(self.name):
            raise ValueError(
                "collection name must be 1-64 characters of a-z, 0-9, '_' or '-', "
                f"starting with a letter or digit; got {self.name!r}"
            )
        if not any(abs(self.fmr - c) <= c * 1e-6 for c in FMR_CHOICES):
            raise ValueError(f"fmr must be one of {FMR_CHOICES}, got {self.fmr}")


def check_subject_fields(
    display_name: str | None, external_id: str | None, metadata: dict[str, Any] | None
) -> None:
    """Raise ValueError for a field no subject may have (None: not given)."""
    if display_name is not None and not 0 < len(display_name.strip()) <= 200:
        raise ValueError(f"display_name must have 1 to 200 characters, got {len(display_name)}")
    if external_id is not None and not 0 < len(external_id.strip()) <= 200:
        raise ValueError(f"external_id must have 1 to 200 characters, got {len(external_id)}")
    if metadata is not None:
        try:
            json.dumps(metadata)
        except (TypeError, ValueError) as error:
            raise ValueError(f"metadata must be JSON: {error}") from error


@dataclass(frozen=True, slots=True)
class Subject:
    """A consenting, enrolled person. ``external_id`` is the caller's own key, unique
    within the subject's collection."""

    id: str
    display_name: str
    external_id: str | None = None
    collection_id: str = DEFAULT_COLLECTION
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: datetime = field(default_factory=utc_now)

    def __post_init__(self) -> None:
        check_subject_fields(self.display_name, self.external_id, self.metadata)


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
