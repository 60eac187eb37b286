"""API keys: create (the secret is shown once), list, revoke. Unrestricted admins only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from facegate.service.deps import GlobalAdminKey, StateDep
from facegate.service.keyadmin import create_key, revoke_key
from facegate.service.problems import Problem
from facegate.service.schemas import KeyCreate, KeyCreated, KeyList, KeyPublic

router = APIRouter(prefix="/v1/keys", tags=["keys"])


@router.post("", response_model=KeyCreated, status_code=201, summary="Create an API key.")
def create(body: KeyCreate, state: StateDep, key: GlobalAdminKey) -> KeyCreated:
    try:
        created, secret = create_key(
            state.keys, state.audit, body.name, body.scopes, body.collections, by=key, via="api"
        )
    except ValueError as error:
        raise Problem(422, "validation-error", str(error)) from None
    return KeyCreated(**KeyPublic.of(created).model_dump(), secret=secret)


@router.get("", response_model=KeyList, summary="Every key (never a secret).")
def list_keys(state: StateDep, key: GlobalAdminKey) -> KeyList:
    return KeyList(items=[KeyPublic.of(k) for k in state.keys.list()])


@router.delete(
    "/{key_id}", response_model=KeyPublic, summary="Revoke a key: it fails from the next request."
)
def revoke(
    key_id: Annotated[str, Path(min_length=1, max_length=16)],
    state: StateDep,
    key: GlobalAdminKey,
) -> KeyPublic:
    revoked = revoke_key(state.keys, state.audit, key_id, by=key, via="api")
    state.rate.forget(key_id)
    return KeyPublic.of(revoked)
