"""Subjects inside a collection, and their face templates (enroll, delete)."""

from __future__ import annotations

import dataclasses
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from facegate.errors import (
    EphemeralCollectionError,
    FacegateError,
    InvalidConsentError,
    UnknownSubjectError,
    UnknownTemplateError,
)
from facegate.gallery.export import subject_export
from facegate.gallery.gallery import Gallery
from facegate.gallery.keys import ApiKey
from facegate.gallery.records import Consent, ConsentGrant, Subject, Template, new_id
from facegate.service.auditing import Outcome, audited
from facegate.service.deps import Access, AdminAccess, EnrollAccess, ReadAccess, StateDep
from facegate.service.images import ImageField, read_images
from facegate.service.openapi import image_body
from facegate.service.problems import Problem, from_facegate, problem_type, slug_of
from facegate.service.schemas import (
    ConsentIn,
    ConsentPublic,
    EnrollParams,
    EnrollResponse,
    ErasurePublic,
    RefusedImage,
    SubjectCreate,
    SubjectExport,
    SubjectPage,
    SubjectPublic,
    SubjectUpdate,
    TemplatePublic,
)
from facegate.service.state import ServiceState

router = APIRouter(prefix="/v1/collections/{collection}/subjects", tags=["subjects"])

SubjectId = Annotated[str, Path(min_length=1, max_length=64, description="The subject's id.")]
ENROLL_IMAGES = (ImageField("images", multiple=True, aliases=("image",)),)


def consent_record(grant: ConsentGrant | None, subject_id: str) -> Consent | None:
    try:
        return grant.record(subject_id) if grant else None
    except ValueError as error:
        raise InvalidConsentError(f"invalid consent: {error}") from None


def collector(key: ApiKey | None) -> str:
    return f"key:{key.id}" if key else "service"


def own_subject(gallery: Gallery, subject_id: str) -> Subject:
    subject = gallery.store.get_subject(subject_id)
    if subject is None or subject.collection_id != gallery.collection_id:
        raise UnknownSubjectError(
            f"no subject with id {subject_id!r} in collection {gallery.collection_id!r}"
        )
    return subject


@router.get("", response_model=SubjectPage, summary="Subjects, paginated; search by name.")
def list_subjects(
    state: StateDep,
    access: ReadAccess,
    name: Annotated[str | None, Query(max_length=200, description="Part of the name.")] = None,
    external_id: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,  # SQLite integers are 64-bit
) -> SubjectPage:
    gallery = state.recognizer(access.collection).gallery  # 404 for an unknown collection
    found, total = gallery.search_subjects(
        name_contains=name, external_id=external_id, limit=limit, offset=offset
    )
    return SubjectPage(
        items=[SubjectPublic.of(s) for s in found], total=total, limit=limit, offset=offset
    )


@router.post("", response_model=SubjectPublic, status_code=201, summary="Create a subject.")
def create_subject(body: SubjectCreate, state: StateDep, access: EnrollAccess) -> SubjectPublic:
    def work(note: Outcome) -> Subject:
        gallery = state.recognizer(access.collection).gallery
        subject = Subject(
            id=new_id(),
            display_name=body.name,
            external_id=body.external_id,
            metadata=body.metadata,
            collection_id=access.collection,
        )
        note.subject_ids = [subject.id]
        grant = body.consent.grant(collector(access.key)) if body.consent else None
        record = None if gallery.ephemeral else consent_record(grant, subject.id)
        note.detail = {"consent": record.id if record else None}
        gallery.add_subject(subject, [], record)
        return subject

    anonymous = state.is_ephemeral(access.collection)
    created = audited(state.audit, access.key, "subject.create", access.collection, work, anonymous)
    return SubjectPublic.of(created, [])


@router.get("/{subject_id}", response_model=SubjectPublic, summary="One subject and templates.")
def read_subject(state: StateDep, access: ReadAccess, subject_id: SubjectId) -> SubjectPublic:
    gallery = state.recognizer(access.collection).gallery
    subject = own_subject(gallery, subject_id)
    return SubjectPublic.of(subject, gallery.store.subject_templates(subject.id))


@router.patch(
    "/{subject_id}", response_model=SubjectPublic, summary="Update name, external id, metadata."
)
def update_subject_route(
    body: SubjectUpdate, state: StateDep, access: EnrollAccess, subject_id: SubjectId
) -> SubjectPublic:
    changes = body.model_dump(exclude_unset=True)
    if any(changes.get(k, "") is None for k in ("name", "metadata")):
        raise Problem(422, "validation-error", "name and metadata cannot be null")

    def work(note: Outcome) -> Subject:
        note.subject_ids = [subject_id]
        note.detail = {"fields": sorted(changes)}
        gallery = state.recognizer(access.collection).gallery
        return gallery.update_subject(
            subject_id,
            display_name=changes.get("name"),
            external_id=changes.get("external_id"),
            metadata=changes.get("metadata"),
        )

    anonymous = state.is_ephemeral(access.collection)
    updated = audited(state.audit, access.key, "subject.update", access.collection, work, anonymous)
    gallery = state.recognizer(access.collection).gallery
    return SubjectPublic.of(updated, gallery.subject_templates(updated.id))


def erase(state: ServiceState, access: Access, subject_id: str, action: str) -> ErasurePublic:
    """Erase a subject with everything held about them; the audit keeps the counts."""

    def work(note: Outcome) -> ErasurePublic:
        note.subject_ids = [subject_id]
        erased = state.recognizer(access.collection).gallery.erase_subject(subject_id)
        note.detail = erased.as_dict()
        return ErasurePublic(**erased.as_dict())

    anonymous = state.is_ephemeral(access.collection)
    return audited(state.audit, access.key, action, access.collection, work, anonymous)


@router.delete(
    "/{subject_id}",
    status_code=204,
    response_class=Response,
    summary="Erase a subject: templates, stored images, consent records, events, in one go.",
)
def delete_subject(state: StateDep, access: EnrollAccess, subject_id: SubjectId) -> Response:
    erase(state, access, subject_id, "subject.erase")
    return Response(status_code=204)


@router.post(
    "/{subject_id}/consent",
    response_model=ConsentPublic,
    status_code=201,
    summary="Record the subject's consent (needed before faces can be enrolled).",
)
def add_consent(
    body: ConsentIn, state: StateDep, access: EnrollAccess, subject_id: SubjectId
) -> ConsentPublic:
    def work(note: Outcome) -> Consent:
        note.subject_ids = [subject_id]
        gallery = state.recognizer(access.collection).gallery
        if gallery.ephemeral:
            raise EphemeralCollectionError(
                f"collection {access.collection!r} is ephemeral: it keeps no consent records"
            )
        own_subject(gallery, subject_id)
        record = consent_record(body.grant(collector(access.key)), subject_id)
        assert record is not None
        note.detail = {"consent": record.id, "legal_basis": record.legal_basis}
        gallery.add_consent(record)
        return record

    anonymous = state.is_ephemeral(access.collection)
    record = audited(state.audit, access.key, "consent.record", access.collection, work, anonymous)
    return ConsentPublic.of(record)


@router.post(
    "/{subject_id}/consent/withdraw",
    response_model=ErasurePublic,
    summary="Withdraw consent: the subject and all their biometric data are erased.",
)
def withdraw_consent(state: StateDep, access: EnrollAccess, subject_id: SubjectId) -> ErasurePublic:
    return erase(state, access, subject_id, "consent.withdraw")


@router.get(
    "/{subject_id}/export",
    response_model=SubjectExport,
    summary="Everything held about the subject (subject access request), as JSON.",
)
def export_subject(state: StateDep, access: AdminAccess, subject_id: SubjectId) -> SubjectExport:
    def work(note: Outcome) -> SubjectExport:
        note.subject_ids = [subject_id]
        gallery = state.recognizer(access.collection).gallery
        return SubjectExport.model_validate(subject_export(gallery, state.audit, subject_id))

    anonymous = state.is_ephemeral(access.collection)
    return audited(state.audit, access.key, "subject.export", access.collection, work, anonymous)


@router.post(
    "/{subject_id}/faces",
    response_model=EnrollResponse,
    status_code=201,
    summary="Enroll one or more photos of the subject (all or nothing unless strict=false).",
    openapi_extra=image_body(
        EnrollParams, ENROLL_IMAGES, {"images_base64": ["/9j/4AAQ..."], "face": "largest"}
    ),
)
async def enroll_faces(
    request: Request, state: StateDep, access: EnrollAccess, subject_id: SubjectId
) -> EnrollResponse:
    params, images = await read_images(
        request, EnrollParams, ENROLL_IMAGES, state.settings.service.max_images
    )
    uploads = images["images"]
    try:
        grant = params.consent(collector(access.key))
    except ValueError as error:
        raise Problem(422, "invalid-consent", str(error)) from None

    def work(note: Outcome) -> EnrollResponse:
        note.subject_ids = [subject_id]
        recognizer = state.recognizer(access.collection)
        subject = own_subject(recognizer.gallery, subject_id)
        prepared: list[Template] = []
        refused: list[RefusedImage] = []
        first: Problem | None = None
        for index, upload in enumerate(uploads):
            try:
                template = recognizer.prepare_template(upload.data, subject.id, params.face)
            except FacegateError as error:
                problem = from_facegate(error, image_index=index, source=upload.name)
                if params.strict:
                    raise problem from None
                first = first or problem
                refused.append(
                    RefusedImage(
                        index=index,
                        source=upload.name,
                        type=problem_type(slug_of(error.code)),
                        detail=str(error),
                        reasons=list(getattr(error, "reasons", ())),
                    )
                )
                continue
            prepared.append(dataclasses.replace(template, source=upload.name))
        state.metrics.faces.labels("enroll").inc(len(prepared))
        if not prepared:
            assert first is not None
            raise first
        ephemeral = recognizer.gallery.ephemeral
        recognizer.gallery.add_templates(
            prepared, None if ephemeral else consent_record(grant, subject.id)
        )
        note.detail = {"templates": [t.id for t in prepared], "refused": len(refused)}
        return EnrollResponse(
            subject=SubjectPublic.of(subject),
            templates=[TemplatePublic.of(t) for t in prepared],
            refused=refused,
        )

    anonymous = state.is_ephemeral(access.collection)
    return await state.infer(
        audited, state.audit, access.key, "enroll", access.collection, work, anonymous
    )


@router.delete(
    "/{subject_id}/faces/{template_id}",
    status_code=204,
    response_class=Response,
    summary="Delete one template of the subject.",
)
def delete_template(
    state: StateDep,
    access: EnrollAccess,
    subject_id: SubjectId,
    template_id: Annotated[str, Path(min_length=1, max_length=64)],
) -> Response:
    def work(note: Outcome) -> None:
        note.subject_ids = [subject_id]
        note.detail = {"template": template_id}
        gallery = state.recognizer(access.collection).gallery
        found = gallery.store.get_template(template_id)
        if found is None or found.subject_id != subject_id:
            raise UnknownTemplateError(
                f"subject {subject_id!r} has no template with id {template_id!r}"
            )
        gallery.remove_template(template_id)

    anonymous = state.is_ephemeral(access.collection)
    audited(state.audit, access.key, "template.delete", access.collection, work, anonymous)
    return Response(status_code=204)
