"""API keys: random secrets shown once, stored as SHA-256 hashes, with scopes and an
optional list of collections they may touch.

A secret reads ``fg_<key id>_<random>``: the id finds the row, the hash is compared in
constant time. The secrets are 256-bit random, so a plain SHA-256 (not a slow password
hash) is enough to make a stolen database useless for calling the API.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Engine, Row

from facegate.errors import GalleryError
from facegate.gallery.records import as_utc, utc_now
from facegate.gallery.tables import api_keys

SCOPES = ("admin", "enroll", "recognize", "read")


class UnknownKeyError(GalleryError):
    code = "unknown_key"


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    name: str
    scopes: frozenset[str]
    collections: frozenset[str] | None  # None: every collection
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def allows(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes

    def may_use(self, collection: str) -> bool:
        return self.collections is None or collection in self.collections


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _validated(scopes: Iterable[str]) -> list[str]:
    chosen = sorted(set(scopes))
    unknown = [s for s in chosen if s not in SCOPES]
    if unknown or not chosen:
        raise ValueError(f"scopes must be a non-empty subset of {SCOPES}, got {chosen}")
    return chosen


class KeyStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @staticmethod
    def _key(row: Row[Any]) -> ApiKey:
        return ApiKey(
            id=row.id,
            name=row.name,
            scopes=frozenset(row.scopes),
            collections=None if row.collections is None else frozenset(row.collections),
            created_at=as_utc(row.created_at),
            revoked_at=as_utc(row.revoked_at) if row.revoked_at else None,
        )

    def create(
        self, name: str, scopes: Iterable[str], collections: Iterable[str] | None = None
    ) -> tuple[ApiKey, str]:
        """A new key and its secret. The secret is not stored and cannot be shown again."""
        if not name.strip() or len(name) > 200:
            raise ValueError("a key needs a name of 1 to 200 characters")
        key_id = secrets.token_hex(8)
        secret = f"fg_{key_id}_{secrets.token_urlsafe(32)}"
        values = {
            "id": key_id,
            "name": name,
            "secret_hash": _hash(secret),
            "scopes": _validated(scopes),
            "collections": None if collections is None else sorted(set(collections)),
            "created_at": utc_now(),
        }
        with self.engine.begin() as conn:
            conn.execute(insert(api_keys).values(**values))
        return self.get(key_id), secret

    def get(self, key_id: str) -> ApiKey:
        with self.engine.connect() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).first()
        if row is None:
            raise UnknownKeyError(f"no API key with id {key_id!r}")
        return self._key(row)

    def authenticate(self, secret: str) -> ApiKey | None:
        """The active key whose secret this is, or None."""
        parts = secret.split("_")
        if len(parts) < 3 or parts[0] != "fg" or len(secret) > 200:
            return None
        with self.engine.connect() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.id == parts[1])).first()
        if row is None or row.revoked_at is not None:
            return None
        if not hmac.compare_digest(row.secret_hash, _hash(secret)):
            return None
        return self._key(row)

    def list(self) -> list[ApiKey]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(api_keys).order_by(api_keys.c.created_at))
            return [self._key(r) for r in rows]

    def revoke(self, key_id: str) -> ApiKey:
        with self.engine.begin() as conn:
            done = conn.execute(
                update(api_keys)
                .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=utc_now())
            )
        if not done.rowcount:
            self.get(key_id)  # raises UnknownKeyError for a key that never existed
        return self.get(key_id)

    def has_active_admin(self) -> bool:
        return any(k.active and "admin" in k.scopes for k in self.list())
