"""Public request and response schemas. None of them carries an embedding or an image:
templates are described (id, model, quality, source), never shown."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from facegate.config import FMR_CHOICES
from facegate.gallery.audit import AuditRecord
from facegate.gallery.keys import ApiKey
from facegate.gallery.records import (
    DEFAULT_MAX_IDLE_DAYS,
    MAX_EPHEMERAL_TTL_S,
    Consent,
    ConsentGrant,
    Event,
    Subject,
    Template,
)
from facegate.recognition import FaceResult
from facegate.types import Decision, Face, OperatingPoint

COLLECTION_NAME = r"^[a-z0-9][a-z0-9_-]{0,63}$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_fmr(value: float | None) -> float | None:
    if value is not None and not any(abs(value - c) <= c * 1e-6 for c in FMR_CHOICES):
        raise ValueError(f"fmr must be one of {', '.join(f'{c:g}' for c in FMR_CHOICES)}")
    return value


FaceSelector = Literal["largest"] | int
LegalBasis = Literal["explicit_consent", "written_release", "employment"]
LEGAL_BASIS_HELP = (
    "explicit_consent (GDPR Art. 9(2)(a)), written_release (BIPA 15(b)) or employment "
    "(GDPR Art. 9(2)(b))"
)


# --- image endpoint parameters (besides the images) -----------------------------------------
class DetectParams(Strict):
    pass


class CompareParams(Strict):
    fmr: float | None = Field(None, description="Operating point: 0.01, 0.001 or 0.0001.")
    face: FaceSelector = Field("largest", description="'largest' or a face index (0 = largest).")

    _fmr = field_validator("fmr")(_check_fmr)


class IdentifyParams(Strict):
    top_k: int | None = Field(None, ge=1, le=100, description="Candidates per face.")
    fmr: float | None = Field(None, description="Override the collection's operating point.")

    _fmr = field_validator("fmr")(_check_fmr)


class VerifyParams(Strict):
    subject_id: str = Field(
        ..., min_length=1, max_length=200, description="Subject id or external id."
    )
    fmr: float | None = Field(None, description="Override the collection's operating point.")
    face: FaceSelector = Field("largest", description="'largest' or a face index (0 = largest).")
    liveness_session: str | None = Field(
        None,
        min_length=1,
        max_length=100,
        description="Step-up: a passed liveness session (POST /v1/liveness/sessions) that must "
        "vouch for this face. Used up by this request, whatever its answer; if it does not "
        "vouch, the answer is 403 liveness-failed.",
    )

    _fmr = field_validator("fmr")(_check_fmr)


class EnrollParams(Strict):
    face: FaceSelector | None = Field(
        None,
        description="Which face when a photo has several: 'largest' or an index. Default: "
        "refuse photos with several faces.",
    )
    strict: bool = Field(
        True, description="All or nothing: any refused photo fails the request, nothing saved."
    )
    consent_basis: LegalBasis | None = Field(
        None,
        description="Record the subject's consent with these faces: " + LEGAL_BASIS_HELP + ". "
        "Needed unless an active consent is on file (ephemeral collections need none).",
    )
    consent_notice_version: str | None = Field(
        None, min_length=1, max_length=100, description="The notice text version shown."
    )
    consent_given_at: datetime | None = Field(None, description="Default: now.")
    consent_expires_at: datetime | None = Field(None, description="Default: never.")

    def consent(self, collected_by: str) -> ConsentGrant | None:
        if self.consent_basis is None and self.consent_notice_version is None:
            return None
        if self.consent_basis is None or self.consent_notice_version is None:
            raise ValueError("consent needs both consent_basis and consent_notice_version")
        return ConsentGrant(
            self.consent_basis,
            self.consent_notice_version,
            collected_by,
            self.consent_given_at,
            self.consent_expires_at,
        )


# --- JSON bodies ---------------------------------------------------------------------------
class CollectionCreate(Strict):
    name: str = Field(..., pattern=COLLECTION_NAME, examples=["lobby"])
    model_id: str | None = Field(None, description="sface (default), dlib or fused.")
    fmr: float | None = Field(None, description="Default operating point: 0.01, 0.001, 0.0001.")
    store_images: bool = Field(
        False, description="Keep an encrypted face crop with each template (off: templates only)."
    )
    ephemeral: bool = Field(
        False, description="Templates in memory only, each for ttl_seconds; gone on restart."
    )
    ttl_seconds: float | None = Field(
        None, gt=0, le=MAX_EPHEMERAL_TTL_S, description="Template lifetime (ephemeral only)."
    )
    max_template_age_days: float | None = Field(
        None, gt=0, le=36500, description="Erase templates older than this. Default: no limit."
    )
    max_idle_days: float | None = Field(
        DEFAULT_MAX_IDLE_DAYS,
        gt=0,
        le=36500,
        description="Erase subjects not matched for this long (BIPA: at most 3 years). "
        "null: no limit.",
    )

    _fmr = field_validator("fmr")(_check_fmr)


class ConsentIn(Strict):
    legal_basis: LegalBasis = Field(..., description=LEGAL_BASIS_HELP)
    notice_version: str = Field(
        ..., min_length=1, max_length=100, description="The version of the notice the person saw."
    )
    given_at: datetime | None = Field(None, description="When consent was given. Default: now.")
    expires_at: datetime | None = Field(None, description="When it lapses. Default: never.")

    def grant(self, collected_by: str) -> ConsentGrant:
        return ConsentGrant(
            self.legal_basis, self.notice_version, collected_by, self.given_at, self.expires_at
        )


class ConsentPublic(BaseModel):
    id: str
    legal_basis: str
    notice_version: str
    given_at: datetime
    expires_at: datetime | None
    collected_by: str
    recorded_at: datetime
    withdrawn_at: datetime | None

    @classmethod
    def of(cls, consent: Consent) -> ConsentPublic:
        return cls.model_validate(consent.as_dict())


class ErasurePublic(BaseModel):
    subjects: int
    templates: int
    images: int
    consents: int
    events: int


class SubjectExport(BaseModel):
    """Everything held about one person: metadata, consent, template metadata, events and
    the audit entries naming them. Never an embedding."""

    format: str
    exported_at: datetime
    collection: dict[str, Any]
    subject: dict[str, Any]
    consents: list[dict[str, Any]]
    templates: list[dict[str, Any]]
    events: list[dict[str, Any]]
    audit: list[dict[str, Any]]


class SubjectCreate(Strict):
    name: str = Field(..., min_length=1, max_length=200, examples=["Ada Lovelace"])
    external_id: str | None = Field(None, min_length=1, max_length=200, examples=["emp-1815"])
    metadata: dict[str, Any] = Field(default_factory=dict)
    consent: ConsentIn | None = Field(
        None, description="The subject's consent; needed before faces can be enrolled."
    )

    @field_validator("name")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("name must not be blank")
        return value


class SubjectUpdate(Strict):
    name: str | None = Field(None, min_length=1, max_length=200)
    external_id: str | None = Field(None, min_length=1, max_length=200)
    metadata: dict[str, Any] | None = Field(None, description="Replaces the metadata.")

    @field_validator("name")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("name must not be blank")
        return value


class KeyCreate(Strict):
    name: str = Field(..., min_length=1, max_length=200, examples=["door camera"])
    scopes: list[Literal["admin", "enroll", "recognize", "read"]] = Field(
        ..., min_length=1, examples=[["recognize"]]
    )
    collections: list[str] | None = Field(
        None, description="Collections the key may use; null: every collection."
    )


# --- responses -----------------------------------------------------------------------------
class OperatingPointPublic(BaseModel):
    model_id: str
    fmr: float
    threshold: float

    @classmethod
    def of(cls, point: OperatingPoint) -> OperatingPointPublic:
        return cls(model_id=point.model_id, fmr=point.fmr, threshold=point.threshold)


class QualityPublic(BaseModel):
    score: float
    reasons: list[str]
    details: dict[str, float]


class FacePublic(BaseModel):
    bbox: list[float] = Field(..., description="x1, y1, x2, y2 in pixels.")
    landmarks: list[list[float]] = Field(
        ..., description="5 points (x, y): eyes, nose tip, mouth corners."
    )
    score: float = Field(..., description="Detector confidence 0..1.")
    quality: QualityPublic | None

    @classmethod
    def of(cls, face: Face) -> FacePublic:
        quality = None
        if face.quality is not None:
            quality = QualityPublic(
                score=face.quality.score,
                reasons=list(face.quality.reasons),
                details=dict(face.quality.details),
            )
        return cls(
            bbox=[round(v, 1) for v in face.bbox],
            landmarks=[[round(float(x), 1), round(float(y), 1)] for x, y in face.landmarks],
            score=round(face.score, 4),
            quality=quality,
        )


class DetectResponse(BaseModel):
    width: int
    height: int
    faces: list[FacePublic]


class DecisionPublic(BaseModel):
    verdict: Literal["match", "no_match", "unknown"]
    similarity: float
    operating_point: OperatingPointPublic
    reason: str

    @classmethod
    def fields_of(cls, decision: Decision) -> dict[str, Any]:
        return {
            "verdict": decision.verdict.value,
            "similarity": decision.match.similarity,
            "operating_point": OperatingPointPublic.of(decision.operating_point),
            "reason": decision.reason,
        }


class CompareResponse(DecisionPublic):
    same_person: bool


class VerifyResponse(DecisionPublic):
    subject_id: str
    name: str
    liveness: Literal["passed"] | None = Field(
        None, description="'passed' when a liveness session vouched for the face (step-up)."
    )


class CandidatePublic(BaseModel):
    subject_id: str
    name: str
    similarity: float


class SubjectRef(BaseModel):
    id: str
    name: str


class IdentifiedFace(DecisionPublic):
    face: FacePublic
    subject: SubjectRef | None = Field(..., description="The match; null when unknown.")
    candidates: list[CandidatePublic]

    @classmethod
    def of(cls, result: FaceResult) -> IdentifiedFace:
        names = {c.subject_id: c.display_name for c in result.candidates}
        subject_id = result.decision.match.subject_id
        return cls(
            **cls.fields_of(result.decision),
            face=FacePublic.of(result.face),
            subject=SubjectRef(id=subject_id, name=names.get(subject_id, ""))
            if subject_id
            else None,
            candidates=[
                CandidatePublic(
                    subject_id=c.subject_id, name=c.display_name, similarity=c.similarity
                )
                for c in result.candidates
            ],
        )


class IdentifyResponse(BaseModel):
    collection: str
    operating_point: OperatingPointPublic
    faces: list[IdentifiedFace] = Field(..., description="Every face, largest first.")


class CollectionPublic(BaseModel):
    name: str
    model_id: str
    fmr: float
    threshold: float | None
    subjects: int
    templates: int
    created_at: datetime
    store_images: bool
    ephemeral: bool
    ttl_seconds: float | None
    max_template_age_days: float | None
    max_idle_days: float | None


class CollectionList(BaseModel):
    items: list[CollectionPublic]


class TemplatePublic(BaseModel):
    id: str
    model_id: str
    quality: float
    source: str | None
    created_at: datetime

    @classmethod
    def of(cls, template: Template) -> TemplatePublic:
        return cls(
            id=template.id,
            model_id=template.model_id,
            quality=round(template.quality, 4),
            source=template.source,
            created_at=template.created_at,
        )


class SubjectPublic(BaseModel):
    id: str
    collection: str
    name: str
    external_id: str | None
    metadata: dict[str, Any]
    created_at: datetime
    templates: list[TemplatePublic] | None = Field(
        None, description="Described, never the embeddings; only on a single subject."
    )

    @classmethod
    def of(cls, subject: Subject, templates: list[Template] | None = None) -> SubjectPublic:
        return cls(
            id=subject.id,
            collection=subject.collection_id,
            name=subject.display_name,
            external_id=subject.external_id,
            metadata=subject.metadata,
            created_at=subject.created_at,
            templates=None if templates is None else [TemplatePublic.of(t) for t in templates],
        )


class SubjectPage(BaseModel):
    items: list[SubjectPublic]
    total: int
    limit: int
    offset: int


class RefusedImage(BaseModel):
    index: int
    source: str
    type: str
    detail: str
    reasons: list[str] = Field(default_factory=list)


class EnrollResponse(BaseModel):
    subject: SubjectPublic
    templates: list[TemplatePublic]
    refused: list[RefusedImage]


class KeyPublic(BaseModel):
    id: str
    name: str
    scopes: list[str]
    collections: list[str] | None
    created_at: datetime
    revoked_at: datetime | None
    active: bool

    @classmethod
    def of(cls, key: ApiKey) -> KeyPublic:
        return cls(
            id=key.id,
            name=key.name,
            scopes=sorted(key.scopes),
            collections=None if key.collections is None else sorted(key.collections),
            created_at=key.created_at,
            revoked_at=key.revoked_at,
            active=key.active,
        )


class KeyCreated(KeyPublic):
    secret: str = Field(..., description="Shown once; only its hash is stored.")


class KeyList(BaseModel):
    items: list[KeyPublic]


class AuditRecordPublic(BaseModel):
    seq: int
    at: datetime
    key_id: str | None
    collection: str | None
    action: str
    outcome: str
    subject_ids: list[str]
    detail: dict[str, Any]
    hash: str

    @classmethod
    def of(cls, record: AuditRecord) -> AuditRecordPublic:
        return cls(
            seq=record.seq,
            at=record.at,
            key_id=record.key_id,
            collection=record.collection,
            action=record.action,
            outcome=record.outcome,
            subject_ids=list(record.subject_ids),
            detail=record.detail,
            hash=record.hash,
        )


class AuditPage(BaseModel):
    items: list[AuditRecordPublic] = Field(..., description="Newest first.")
    limit: int
    offset: int


class AuditVerification(BaseModel):
    intact: bool
    first_broken_seq: int | None


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    models: list[str]
    collections: int


# --- events and cameras --------------------------------------------------------------------
class EventPublic(BaseModel):
    """One camera event, described; its snapshot only at ``/v1/events/{id}/snapshot``."""

    id: str
    at: datetime
    kind: str = Field(
        ..., description="track_started, identified, unknown, track_ended, access or quota."
    )
    camera: str | None
    collection: str | None
    subject_id: str | None
    subject_name: str | None = Field(None, description="The subject's current display name.")
    similarity: float | None
    quality: float | None
    track_id: int | None
    reason: str | None = Field(
        None,
        description="Why a track was decided so; for access and quota events the decision "
        "code (quota: within_limit, limit_reached or unknown_person).",
    )
    door: str | None = Field(None, description="Access events: the door.")
    quota: str | None = Field(None, description="Quota events: the quota a camera claimed.")
    has_snapshot: bool

    @classmethod
    def of(cls, event: Event, subject_name: str | None = None) -> EventPublic:
        return cls(
            id=event.id,
            at=event.at,
            kind=event.kind,
            camera=event.camera,
            collection=event.collection_id,
            subject_id=event.subject_id,
            subject_name=subject_name,
            similarity=event.similarity,
            quality=event.quality,
            track_id=event.track_id,
            reason=event.reason,
            door=event.door,
            quota=event.quota,
            has_snapshot=event.has_snapshot,
        )


class EventPage(BaseModel):
    items: list[EventPublic] = Field(..., description="Newest first.")
    limit: int
    offset: int


class CameraPublic(BaseModel):
    """A configured camera and what its worker last reported (never a password)."""

    name: str
    source: str = Field(..., description="The configured source, its password shown as ***.")
    collection: str
    state: str = Field(
        ...,
        description="starting (no report yet), connecting, streaming, reconnecting, ended, "
        "stopped, failed, crashed, or stale (a running worker stopped reporting).",
    )
    fps: float
    decoded: int
    analysed: int
    skipped: int
    dropped: int
    reconnects: int
    active_tracks: int
    restarts: int
    events: dict[str, int] = Field(..., description="Events sent, by kind.")
    sinks: list[dict[str, Any]] = Field(..., description="Delivery counts per event sink.")
    last_error: str | None
    updated_at: datetime | None = Field(..., description="The last report; null: none yet.")


class CameraList(BaseModel):
    items: list[CameraPublic]
