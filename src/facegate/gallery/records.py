"""What the gallery stores: collections, subjects and their templates."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from facegate.config import FMR_CHOICES
from facegate.types import FloatArray

DEFAULT_COLLECTION = "default"
# BIPA section 15(a): destroy biometric identifiers within 3 years of the last interaction.
DEFAULT_MAX_IDLE_DAYS = 3 * 365.0
MAX_EPHEMERAL_TTL_S = 7 * 24 * 3600.0
# GDPR Art. 9(2)(a) explicit consent, BIPA 15(b) written release, GDPR Art. 9(2)(b)
# employment law; anything else is not a basis facegate accepts for enrolment.
LEGAL_BASES = ("explicit_consent", "written_release", "employment")
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
    store_images: bool = False  # keep an encrypted face crop per template (opt-in)
    ephemeral: bool = False  # templates only in memory, each for ttl_seconds
    ttl_seconds: float | None = None
    max_template_age_days: float | None = None  # erase templates older than this
    max_idle_days: float | None = DEFAULT_MAX_IDLE_DAYS  # erase subjects unmatched this long

    def __post_init__(self) -> None:
        if not _COLLECTION_NAME.match(self.name):
            raise ValueError(
                "collection name must be 1-64 characters of a-z, 0-9, '_' or '-', "
                f"starting with a letter or digit; got {self.name!r}"
            )
        if not any(abs(self.fmr - c) <= c * 1e-6 for c in FMR_CHOICES):
            raise ValueError(f"fmr must be one of {FMR_CHOICES}, got {self.fmr}")
        if self.ephemeral:
            if self.ttl_seconds is None or not 0 < self.ttl_seconds <= MAX_EPHEMERAL_TTL_S:
                raise ValueError(
                    f"an ephemeral collection needs ttl_seconds in (0, {MAX_EPHEMERAL_TTL_S:g}]"
                )
            if self.store_images:
                raise ValueError("an ephemeral collection cannot store images")
        elif self.ttl_seconds is not None:
            raise ValueError("ttl_seconds applies to ephemeral collections only")
        for name in ("max_template_age_days", "max_idle_days"):
            days = getattr(self, name)
            if days is not None and not 0 < days <= 36500:
                raise ValueError(f"{name} must be in (0, 36500] days, got {days}")


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
    last_matched_at: datetime | None = None

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
    # The face crop (JPEG), kept only where the collection opts in; encrypted at rest.
    image: bytes | None = field(default=None, repr=False, compare=False)
    key_id: str | None = None  # the data key that seals it at rest (None: plaintext)

    def __post_init__(self) -> None:
        if self.embedding.ndim != 1 or self.embedding.dtype != np.float32:
            raise ValueError(
                "embedding must be a (D,) float32 array, "
                f"got {self.embedding.shape} {self.embedding.dtype}"
            )


@dataclass(frozen=True, slots=True)
class Consent:
    """One consent record: on what basis, under which notice, when, by whom, until when."""

    id: str
    subject_id: str
    legal_basis: str
    notice_version: str
    given_at: datetime
    collected_by: str
    expires_at: datetime | None = None
    recorded_at: datetime = field(default_factory=utc_now)
    withdrawn_at: datetime | None = None

    def __post_init__(self) -> None:
        if self.legal_basis not in LEGAL_BASES:
            raise ValueError(
                f"legal_basis must be one of {', '.join(LEGAL_BASES)}; got {self.legal_basis!r}"
            )
        if not 0 < len(self.notice_version.strip()) <= 100:
            raise ValueError("notice_version must name the notice text shown (1-100 characters)")
        if not 0 < len(self.collected_by) <= 100:
            raise ValueError("collected_by must name who collected the consent")
        given = as_utc(self.given_at)
        if given > self.recorded_at + timedelta(minutes=5):
            raise ValueError("consent cannot be given in the future")
        if self.expires_at is not None and as_utc(self.expires_at) <= given:
            raise ValueError("a consent must expire after it was given")

    def active(self, now: datetime) -> bool:
        if self.withdrawn_at is not None:
            return False
        return self.expires_at is None or as_utc(self.expires_at) > now

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "legal_basis": self.legal_basis,
            "notice_version": self.notice_version,
            "given_at": as_utc(self.given_at).isoformat(),
            "expires_at": as_utc(self.expires_at).isoformat() if self.expires_at else None,
            "collected_by": self.collected_by,
            "recorded_at": as_utc(self.recorded_at).isoformat(),
            "withdrawn_at": as_utc(self.withdrawn_at).isoformat() if self.withdrawn_at else None,
        }


@dataclass(frozen=True, slots=True)
class ConsentGrant:
    """What a caller says about consent when enrolling; becomes a Consent record."""

    legal_basis: str
    notice_version: str
    collected_by: str
    given_at: datetime | None = None
    expires_at: datetime | None = None

    def record(self, subject_id: str) -> Consent:
        now = utc_now()
        return Consent(
            id=new_id(),
            subject_id=subject_id,
            legal_basis=self.legal_basis,
            notice_version=self.notice_version,
            given_at=as_utc(self.given_at) if self.given_at else now,
            collected_by=self.collected_by,
            expires_at=as_utc(self.expires_at) if self.expires_at else None,
            recorded_at=now,
        )


@dataclass(frozen=True, slots=True)
class Erasure:
    """What one erasure removed (counts only: the audit keeps this, never the data)."""

    subjects: int = 0
    templates: int = 0
    images: int = 0
    consents: int = 0
    events: int = 0

    def __add__(self, other: Erasure) -> Erasure:
        return Erasure(
            self.subjects + other.subjects,
            self.templates + other.templates,
            self.images + other.images,
            self.consents + other.consents,
            self.events + other.events,
        )

    def as_dict(self) -> dict[str, int]:
        return {
            "subjects": self.subjects,
            "templates": self.templates,
            "images": self.images,
            "consents": self.consents,
            "events": self.events,
        }


@dataclass(frozen=True, slots=True)
class Event:
    """Something a camera saw (recorded by the stream workers)."""

    id: str
    at: datetime
    kind: str
    camera: str | None = None
    collection_id: str | None = None
    subject_id: str | None = None
    similarity: float | None = None
    quality: float | None = None
    snapshot: bytes | None = field(default=None, repr=False, compare=False)
    track_id: int | None = None
    reason: str | None = None
    door: str | None = None
    quota: str | None = None
    has_snapshot: bool = False  # as stored (snapshot may be left sealed in listings)

    def __post_init__(self) -> None:
        if self.snapshot is not None:
            object.__setattr__(self, "has_snapshot", True)
