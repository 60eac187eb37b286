"""API-key authentication, scopes, collection lists and the per-key rate limit."""

from __future__ import annotations

from facegate.gallery.keys import ApiKey
from facegate.service.limits import retry_after_header
from facegate.service.problems import Problem
from facegate.service.state import ServiceState

BEARER = "Bearer"


def secret_from_headers(authorization: str | None, x_api_key: str | None) -> str | None:
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return None
    if x_api_key and x_api_key.strip():
        return x_api_key.strip()
    return None


def unauthorized(detail: str) -> Problem:
    return Problem(
        401,
        "unauthorized",
        detail,
        title="Unauthorized",
        headers={"WWW-Authenticate": f'{BEARER} realm="facegate"'},
    )


def authenticate(state: ServiceState, secret: str | None) -> ApiKey:
    """The active key for ``secret`` (looked up on every request, so a revoked key fails
    at once), charged one token of its rate limit."""
    if secret is None:
        raise unauthorized("send an API key: 'Authorization: Bearer <key>' or 'X-API-Key'")
    key = state.keys.authenticate(secret)
    if key is None:
        raise unauthorized("the API key is unknown or revoked")
    return charge(state, key)


def charge(state: ServiceState, key: ApiKey) -> ApiKey:
    """Take one token of ``key``'s rate limit; 429 when it has none left."""
    wait = state.rate.take(key.id)
    if wait > 0:
        raise Problem(
            429,
            "rate-limited",
            f"too many requests for key {key.id}; retry in {wait:.1f} s",
            title="Too many requests",
            headers={"Retry-After": retry_after_header(wait)},
            retry_after=round(wait, 3),
        )
    return key


def require_scope(key: ApiKey, scope: str) -> None:
    if not key.allows(scope):
        raise Problem(
            403,
            "insufficient-scope",
            f"this key lacks the {scope!r} scope (it has: {', '.join(sorted(key.scopes))})",
            title="Forbidden",
            required_scope=scope,
        )


def require_collection(key: ApiKey, collection: str) -> None:
    if not key.may_use(collection):
        raise Problem(
            403,
            "collection-forbidden",
            f"this key may not use collection {collection!r}",
            title="Forbidden",
            collection=collection,
        )


def require_unrestricted(key: ApiKey) -> None:
    """Global resources (keys, audit, new collections) need a key not limited to some."""
    if key.collections is not None:
        raise Problem(
            403,
            "collection-forbidden",
            "this key is limited to some collections; this needs an unrestricted admin key",
            title="Forbidden",
        )
