"""Typed ``Annotated`` dependencies: the service state, the caller's key and its scope."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from facegate.gallery.keys import ApiKey
from facegate.service.auth import (
    authenticate,
    require_collection,
    require_scope,
    require_unrestricted,
)
from facegate.service.problems import Problem
from facegate.service.sessions import SESSION_COOKIE, session_key
from facegate.service.state import ServiceState

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer fg_...`")
_api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="An API key, as an alternative header."
)


def get_state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.facegate
    return state


StateDep = Annotated[ServiceState, Depends(get_state)]


def current_key(
    state: StateDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    header_key: Annotated[str | None, Depends(_api_key_header)],
    request: Request,
) -> ApiKey:
    if bearer is not None:
        secret: str | None = bearer.credentials
    elif request.headers.get("authorization"):
        secret = None  # another scheme (Basic, ...): refused, not silently ignored
    elif header_key and header_key.strip():
        secret = header_key.strip()
    elif request.cookies.get(SESSION_COOKIE):
        return session_key(state, request)  # a browser signed in to the web UI
    else:
        secret = None
    return authenticate(state, secret)


KeyDep = Annotated[ApiKey, Depends(current_key)]


class _Scoped:
    def __init__(self, scope: str) -> None:
        self.scope = scope

    def __call__(self, key: KeyDep) -> ApiKey:
        require_scope(key, self.scope)
        return key


class _AnyScope:
    """A key with at least one of ``scopes`` (a read-only check that several roles need)."""

    def __init__(self, *scopes: str) -> None:
        self.scopes = scopes

    def __call__(self, key: KeyDep) -> ApiKey:
        if not any(key.allows(scope) for scope in self.scopes):
            wanted = " or ".join(repr(s) for s in self.scopes)
            raise Problem(
                403,
                "insufficient-scope",
                f"this key needs the {wanted} scope (it has: {', '.join(sorted(key.scopes))})",
                title="Forbidden",
                accepted_scopes=list(self.scopes),
            )
        return key


class _Unrestricted:
    def __call__(self, key: KeyDep) -> ApiKey:
        require_scope(key, "admin")
        require_unrestricted(key)
        return key


ReadKey = Annotated[ApiKey, Depends(_Scoped("read"))]
EnrollKey = Annotated[ApiKey, Depends(_Scoped("enroll"))]
RecognizeKey = Annotated[ApiKey, Depends(_Scoped("recognize"))]
# Detection only measures a photo (boxes, quality): enrollment screens need it too.
EnrollOrRecognizeKey = Annotated[ApiKey, Depends(_AnyScope("enroll", "recognize"))]
AdminKey = Annotated[ApiKey, Depends(_Scoped("admin"))]
GlobalAdminKey = Annotated[ApiKey, Depends(_Unrestricted())]

CollectionPath = Annotated[
    str, Path(description="The collection's name.", min_length=1, max_length=64)
]


@dataclass(frozen=True, slots=True)
class Access:
    """A key allowed to act, with one scope, on one collection."""

    key: ApiKey
    collection: str


class _InCollection:
    def __init__(self, scope: str) -> None:
        self.scope = scope

    def __call__(self, key: KeyDep, collection: CollectionPath) -> Access:
        require_scope(key, self.scope)
        require_collection(key, collection)
        return Access(key, collection)


ReadAccess = Annotated[Access, Depends(_InCollection("read"))]
EnrollAccess = Annotated[Access, Depends(_InCollection("enroll"))]
RecognizeAccess = Annotated[Access, Depends(_InCollection("recognize"))]
AdminAccess = Annotated[Access, Depends(_InCollection("admin"))]
