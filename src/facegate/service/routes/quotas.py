"""Quotas: named per-person limits ("3 meals per day") claimed with a photo.

``GET /v1/quotas`` (read) and ``PUT /v1/quotas`` (admin) show and replace the definitions
document (``?dry_run=true``: check it, save nothing); ``POST /v1/quotas/{name}/claim``
(recognize) answers granted or denied. Enrolled quotas identify the largest face in their
collection and count per subject in the database; anonymous ones remember the largest
face's embedding in this process only, for one window (see docs/quotas.md)."""

from __future__ import annotations

import math
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Body, Path, Query, Request, Response

from facegate.errors import EphemeralCollectionError, LowQualityError, NoFaceError
from facegate.gallery.keys import ApiKey
from facegate.policy.quota import (
    ANONYMOUS_MODEL,
    QUOTA_NAME,
    QUOTAS_DOCUMENT,
    InvalidQuotaError,
    QuotaDefinition,
    QuotaMemoryFullError,
    QuotaSet,
    check_cameras,
    check_collections,
    load_quotas,
    quotas_from_document,
    unknown_person,
)
from facegate.policy.thresholds import operating_point
from facegate.recognition import (
    MIN_PROBE_QUALITY,
    PROBE_GATE_FACTORS,
    FaceRecognizer,
    pick_face,
)
from facegate.service.auditing import Outcome, audited
from facegate.service.auth import require_collection
from facegate.service.deps import GlobalAdminKey, ReadKey, RecognizeKey, StateDep
from facegate.service.images import ImageField, read_images
from facegate.service.limits import retry_after_header
from facegate.service.openapi import image_body
from facegate.service.problems import Problem
from facegate.service.quota_schemas import (
    DOCUMENT_EXAMPLE,
    ClaimParams,
    ClaimResponse,
    QuotasPublic,
)
from facegate.service.state import ServiceState
from facegate.types import Face, Verdict

router = APIRouter(prefix="/v1/quotas", tags=["quotas"])

PROBE = (ImageField("image"),)
QuotaName = Annotated[str, Path(description="The quota's name.", pattern=QUOTA_NAME)]


def _may_use(key: ApiKey, definition: QuotaDefinition) -> bool:
    if definition.collection is None:
        return key.collections is None
    return key.may_use(definition.collection)


def _invalid(error: InvalidQuotaError) -> Problem:
    return Problem(
        422, "invalid-policy", str(error), title="Invalid policy", errors=list(error.errors)
    )


@router.get("", response_model=QuotasPublic, summary="The quota definitions this key may use.")
def list_quotas(state: StateDep, key: ReadKey) -> QuotasPublic:
    stored = state.applications.get_document(QUOTAS_DOCUMENT)
    quotas = quotas_from_document(None if stored is None else stored.document)
    return QuotasPublic(
        quotas=[q for q in quotas if _may_use(key, q)],
        version=0 if stored is None else stored.version,
        updated_at=None if stored is None else stored.updated_at,
        updated_by=None if stored is None else stored.updated_by,
    )


def checked_quotas(state: ServiceState, document: Any) -> QuotaSet:
    """``document`` as quota definitions, checked against this installation (collections,
    cameras): what a save stores. Raises InvalidQuotaError naming every problem."""
    quotas = quotas_from_document(document)
    check_collections(quotas, state.store.list_collections())
    check_cameras(quotas, {c.name: c.collection for c in state.settings.cameras})
    return quotas


@router.put(
    "",
    response_model=QuotasPublic,
    summary="Replace every quota definition (an unrestricted admin key). "
    "?dry_run=true checks without saving.",
)
def put_quotas(
    state: StateDep,
    key: GlobalAdminKey,
    document: Annotated[
        Any,
        Body(
            description='{"quotas": [definition, ...]}; see docs/quotas.md.',
            examples=[DOCUMENT_EXAMPLE],
        ),
    ],
    dry_run: Annotated[
        bool,
        Query(
            description="Check the document exactly as a save would and save nothing: 200 "
            "with the definitions a save would store (the version in force, dry_run: true), "
            "or 422 naming every problem. Not audited; no remembered face is forgotten."
        ),
    ] = False,
) -> QuotasPublic:
    if dry_run:
        try:
            quotas = checked_quotas(state, document)
        except InvalidQuotaError as error:
            raise _invalid(error) from None
        current = state.applications.get_document(QUOTAS_DOCUMENT)
        return QuotasPublic(
            quotas=list(quotas),
            version=0 if current is None else current.version,
            updated_at=None if current is None else current.updated_at,
            updated_by=None if current is None else current.updated_by,
            dry_run=True,
        )

    def work(note: Outcome) -> QuotasPublic:
        quotas = checked_quotas(state, document)
        stored = state.applications.put_document(
            QUOTAS_DOCUMENT, quotas.as_document(), f"key:{key.id}"
        )
        forgotten = state.quota_counter.apply(quotas)
        swept = state.quota_counter.sweep_enrolled(state.applications, quotas)
        note.detail = {
            "version": stored.version,
            "quotas": quotas.names,
            "anonymous_faces_forgotten": forgotten,
            "claims_swept": swept,
        }
        return QuotasPublic(
            quotas=list(quotas),
            version=stored.version,
            updated_at=stored.updated_at,
            updated_by=stored.updated_by,
        )

    try:
        return audited(state.audit, key, "quotas.update", None, work)
    except InvalidQuotaError as error:
        raise _invalid(error) from None


def _definitions(state: ServiceState) -> QuotaSet:
    try:
        return load_quotas(state.applications)
    except InvalidQuotaError as error:  # a document stored by hand, or by another version
        raise _invalid(error) from None


def _anonymous_face(state: ServiceState, data: bytes) -> Face:
    """The largest face, refused when too small, blurred or dark to be matched: a
    useless embedding would let the same person through again."""
    pipeline = state.pipeline(ANONYMOUS_MODEL)
    image = pipeline.decode(data)
    face = pick_face(pipeline.detect(image), "largest")
    quality = face.quality
    if quality is not None:
        usable = min(quality.details.get(f, 1.0) for f in PROBE_GATE_FACTORS)
        if usable < MIN_PROBE_QUALITY:
            reasons = quality.reasons or ("too small, blurred or badly exposed",)
            raise LowQualityError(
                f"the face is too small, blurred or badly exposed to be matched: "
                f"{'; '.join(reasons)}; send another frame",
                quality.score,
                reasons,
            )
    return pipeline.embed(image, [face])[0]


@router.post(
    "/{name}/claim",
    response_model=ClaimResponse,
    summary="Claim one unit of a quota for the largest face in the image: granted or denied.",
    openapi_extra=image_body(ClaimParams, PROBE, {"image_base64": "/9j/4AAQ..."}),
)
async def claim(
    name: QuotaName, request: Request, response: Response, state: StateDep, key: RecognizeKey
) -> ClaimResponse:
    quotas = await anyio.to_thread.run_sync(_definitions, state)
    definition = quotas.get(name)
    if definition is None:
        raise Problem(
            404,
            "unknown-quota",
            f"no quota named {name!r}; defined: {', '.join(quotas.names) or 'none'}",
            title="Unknown quota",
        )
    if definition.mode == "anonymous" and definition.camera is not None:
        raise Problem(
            409,
            "quota-bound-to-camera",
            f"quota {name!r} is anonymous and bound to camera {definition.camera!r}: only that "
            "camera claims it (its worker remembers the faces, this process does not)",
            title="Quota bound to a camera",
        )
    if definition.collection is not None:
        require_collection(key, definition.collection)
    elif key.collections is not None:
        raise Problem(
            403,
            "collection-forbidden",
            f"quota {name!r} names no collection, so only keys not limited to collections may "
            "claim it; give the quota a `collection` this key may use",
            title="Forbidden",
        )
    _, images = await read_images(request, ClaimParams, PROBE, state.settings.service.max_images)
    data = images["image"][0].data

    def enrolled(note: Outcome) -> ClaimResponse:
        assert definition.collection is not None
        shared = state.recognizer(definition.collection)  # 404 for an unknown collection
        if shared.gallery.ephemeral:
            raise EphemeralCollectionError(
                f"collection {definition.collection!r} is ephemeral: its subjects' claims "
                "cannot be kept; use an anonymous quota"
            )
        recognizer = shared
        if definition.fmr is not None:
            recognizer = FaceRecognizer(
                state.settings, shared.gallery, shared.pipeline, fmr=definition.fmr
            )
        results = recognizer.identify(data, 1)
        if not results:
            raise NoFaceError("no face was found in the image")
        state.metrics.faces.labels("quota").inc()
        decision = results[0].decision  # faces come largest first
        subject_id = decision.match.subject_id
        score = decision.match.similarity
        similarity = score if math.isfinite(score) else None
        note.detail = {"quota": definition.name, "mode": "enrolled"}
        if decision.verdict is Verdict.MATCH and subject_id:
            note.subject_ids = [subject_id]
            answer = state.quota_counter.claim_enrolled(
                state.applications, definition, subject_id, quotas=quotas
            )
        else:
            subject_id = None
            answer = unknown_person(definition, state.quota_counter.clock())
        note.outcome = "granted" if answer.granted else "denied"
        note.detail |= {"reason": answer.reason, "similarity": similarity}
        return ClaimResponse.of(
            definition,
            answer,
            recognizer.operating_point,
            subject_id=subject_id,
            similarity=similarity,
        )

    def anonymous(note: Outcome) -> ClaimResponse:
        # The audit entry names no subject and holds no score or embedding: only which
        # quota, the outcome and why.
        note.detail = {"quota": definition.name, "mode": "anonymous"}
        fmr = definition.matching_fmr
        assert fmr is not None
        point = operating_point(ANONYMOUS_MODEL, fmr)
        face = _anonymous_face(state, data)
        assert face.embedding is not None
        state.metrics.faces.labels("quota").inc()
        answer = state.quota_counter.claim_anonymous(definition, face.embedding, point)
        note.outcome = "granted" if answer.granted else "denied"
        note.detail["reason"] = answer.reason
        return ClaimResponse.of(definition, answer, point)

    work = enrolled if definition.mode == "enrolled" else anonymous
    try:
        answer = await state.infer(
            audited, state.audit, key, "quota.claim", definition.collection, work
        )
    except QuotaMemoryFullError as error:
        raise Problem(
            503,
            "quota-memory-full",
            str(error),
            title="Quota memory full",
            headers={"Retry-After": "60"},
        ) from None
    if not answer.granted and answer.retry_after_s is not None:
        response.headers["Retry-After"] = retry_after_header(answer.retry_after_s)
    return answer
