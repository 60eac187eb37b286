"""Collections: gallery namespaces (a site, a tenant), each pinned to one model.

``PATCH /v1/collections/{c}`` changes what may change after creation (operating point,
image keeping, retention limits); every process applies it at its next request (see
``ServiceState.recognizer``)."""

from __future__ import annotations

import dataclasses

from fastapi import APIRouter, Response

from facegate.errors import ConfigError, UnknownCollectionError
from facegate.gallery.records import Collection
from facegate.policy.thresholds import operating_point
from facegate.service.auditing import Outcome, audited
from facegate.service.collection_schemas import CollectionUpdate
from facegate.service.deps import AdminAccess, GlobalAdminKey, ReadAccess, ReadKey, StateDep
from facegate.service.problems import Problem
from facegate.service.schemas import CollectionCreate, CollectionList, CollectionPublic
from facegate.service.state import ServiceState

router = APIRouter(prefix="/v1/collections", tags=["collections"])


def collection_view(state: ServiceState, collection: Collection) -> CollectionPublic:
    try:
        threshold: float | None = operating_point(collection.model_id, collection.fmr).threshold
    except ConfigError:
        threshold = None
    gallery = state.recognizer(collection.name).gallery  # ephemeral counts live in memory
    return CollectionPublic(
        name=collection.name,
        model_id=collection.model_id,
        fmr=collection.fmr,
        threshold=threshold,
        subjects=gallery.count_subjects(),
        templates=sum(gallery.template_counts().values()),
        created_at=collection.created_at,
        store_images=collection.store_images,
        ephemeral=collection.ephemeral,
        ttl_seconds=collection.ttl_seconds,
        max_template_age_days=collection.max_template_age_days,
        max_idle_days=collection.max_idle_days,
    )


def get_collection(state: ServiceState, name: str) -> Collection:
    found = state.store.get_collection(name)
    if found is None:
        raise UnknownCollectionError(f"no collection named {name!r}")
    return found


@router.get("", response_model=CollectionList, summary="Collections this key may use.")
def list_collections(state: StateDep, key: ReadKey) -> CollectionList:
    return CollectionList(
        items=[
            collection_view(state, c) for c in state.store.list_collections() if key.may_use(c.name)
        ]
    )


@router.post(
    "",
    response_model=CollectionPublic,
    status_code=201,
    summary="Create a collection pinned to a model, with a default operating point.",
)
def create_collection(
    body: CollectionCreate, state: StateDep, key: GlobalAdminKey
) -> CollectionPublic:
    model_id = body.model_id or state.settings.model
    fmr = body.fmr if body.fmr is not None else state.settings.fmr

    def work(note: Outcome) -> Collection:
        note.detail = {"model_id": model_id, "fmr": fmr, "ephemeral": body.ephemeral}
        operating_point(model_id, fmr)  # refuse an uncalibrated model or rate before writing
        try:
            collection = Collection(
                name=body.name,
                model_id=model_id,
                fmr=fmr,
                store_images=body.store_images,
                ephemeral=body.ephemeral,
                ttl_seconds=body.ttl_seconds,
                max_template_age_days=body.max_template_age_days,
                max_idle_days=body.max_idle_days,
            )
        except ValueError as error:
            raise Problem(422, "validation-error", str(error)) from None
        state.pipeline(model_id)  # load the model now: a broken one fails here, not later
        state.store.add_collection(collection)
        state.recognizer(collection.name)
        return collection

    created = audited(state.audit, key, "collection.create", body.name, work)
    return collection_view(state, created)


@router.get("/{collection}", response_model=CollectionPublic, summary="One collection.")
def read_collection(state: StateDep, access: ReadAccess) -> CollectionPublic:
    return collection_view(state, get_collection(state, access.collection))


@router.patch(
    "/{collection}",
    response_model=CollectionPublic,
    summary="Change a collection's operating point, image keeping or retention limits "
    "(in force from the next request).",
)
def update_collection(
    body: CollectionUpdate, state: StateDep, access: AdminAccess
) -> CollectionPublic:
    changes = body.changes()

    def work(note: Outcome) -> Collection:
        current = get_collection(state, access.collection)
        note.detail = {
            name: {"from": getattr(current, name), "to": value} for name, value in changes.items()
        }
        try:  # the same checks as at creation (an ephemeral collection keeps no images...)
            changed = dataclasses.replace(current, **changes)
        except ValueError as error:
            raise Problem(422, "validation-error", str(error)) from None
        operating_point(changed.model_id, changed.fmr)  # refuse an uncalibrated rate
        state.store.update_collection(changed, list(changes))
        state.recognizer(changed.name)  # this process follows at once
        return changed

    changed = audited(state.audit, access.key, "collection.update", access.collection, work)
    return collection_view(state, changed)


@router.delete(
    "/{collection}",
    status_code=204,
    response_class=Response,
    summary="Delete a collection with every subject and template in it.",
)
def delete_collection(state: StateDep, access: AdminAccess) -> Response:
    def work(note: Outcome) -> None:
        get_collection(state, access.collection)
        removed = state.store.remove_collection(access.collection)
        state.forget(access.collection)
        note.detail = {"removed_subjects": removed}

    audited(state.audit, access.key, "collection.delete", access.collection, work)
    return Response(status_code=204)
