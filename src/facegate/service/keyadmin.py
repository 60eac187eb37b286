"""Key administration shared by the API and ``facegate keys``: every change is audited.

Kept free of the web framework, so the CLI's key commands import nothing heavy.
"""

from __future__ import annotations

from collections.abc import Sequence

from facegate.gallery.audit import AuditLog
from facegate.gallery.keys import ApiKey, KeyStore, UnknownKeyError


def create_key(
    keys: KeyStore,
    audit: AuditLog,
    name: str,
    scopes: Sequence[str],
    collections: Sequence[str] | None,
    *,
    by: ApiKey | None,
    via: str,
) -> tuple[ApiKey, str]:
    """A new key and its secret (shown once). Raises ValueError for a bad name or scope."""
    key, secret = keys.create(name, scopes, collections)
    audit.append(
        "key.create",
        "ok",
        key_id=by.id if by else None,
        detail={
            "key": key.id,
            "name": key.name,
            "scopes": sorted(key.scopes),
            "collections": None if key.collections is None else sorted(key.collections),
            "via": via,
        },
    )
    return key, secret


def revoke_key(
    keys: KeyStore, audit: AuditLog, key_id: str, *, by: ApiKey | None, via: str
) -> ApiKey:
    """Revoke a key (again is harmless); an unknown id is recorded and raised."""
    detail = {"key": key_id, "via": via}
    try:
        key = keys.revoke(key_id)
    except UnknownKeyError as error:
        audit.append("key.revoke", error.code, key_id=by.id if by else None, detail=detail)
        raise
    audit.append("key.revoke", "ok", key_id=by.id if by else None, detail=detail)
    return key
