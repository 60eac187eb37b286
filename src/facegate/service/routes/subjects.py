"""Subjects inside a collection, and their face templates (enroll, delete)."""

from __future__ import annotations

import dataclasses
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from facegate.errors import FacegateError, UnknownSubjectError, UnknownTemplateError
from facegate.gallery.gallery import Gallery
from facegate.gallery.records import Subject, Template, new_id
from facegate.service.auditing import Outcome, audited
from facegate.service.deps import EnrollAccess, ReadAccess, StateDep
from facegate.service.images import ImageField, read_images
from facegate.service.openapi import image_body
from facegate.service.problems import Problem, from_facegate, problem_type, slug_of
from facegate.service.schemas import (
    EnrollParams,
    EnrollResponse,
    RefusedImage,
    SubjectCreate,
    SubjectPage,
    SubjectPublic,
    SubjectUpdate,
    TemplatePublic,
)

router = APIRouter(prefix="/v1/collections/{collection}/subjects", tags=["subjects"])

SubjectId = Annotated[str, Path(min_length=1, max_length=64, description="The subject's id.")]
ENROLL_IMAGES = (ImageField("images", multiple=True, aliases=("image",)),)


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
        gallery.add_subject(subject, [])
        return subject

    created = audited(state.audit, access.key, "subject.create", access.collection, work)
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

    updated = audited(state.audit, access.key, "subject.update", access.collection, work)
    return SubjectPublic.of(updated, state.store.subject_templates(updated.id))


@router.delete(
    "/{subject_id}",
    status_code=204,
    response_class=Response,
    summary="Delete a subject and every template (erasure).",
)
def delete_subject(state: StateDep, access: EnrollAccess, subject_id: SubjectId) -> Response:
    def work(note: Outcome) -> None:
        note.subject_ids = [subject_id]
        removed = state.recognizer(access.collection).gallery.remove_subject(subject_id)
        note.detail = {"removed_templates": removed}

    audited(state.audit, access.key, "subject.delete", access.collection, work)
    return Response(status_code=204)


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
        recognizer.gallery.add_templates(prepared)
        note.detail = {"templates": [t.id for t in prepared], "refused": len(refused)}
        return EnrollResponse(
            subject=SubjectPublic.of(subject),
            templates=[TemplatePublic.of(t) for t in prepared],
            refused=refused,
        )

    return await state.infer(audited, state.audit, access.key, "enroll", access.collection, work)


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

    audited(state.audit, access.key, "template.delete", access.collection, work)
    return Response(status_code=204)
