"""The audit trail: who did what, when, to which collection and subjects, with what outcome.

Never an embedding or an image. Each entry carries the SHA-256 of the previous one, so an
edited or deleted row breaks the chain and ``verify`` finds the first broken link.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import String, cast, insert, select, text, update
from sqlalchemy.engine import Connection, Engine, Row

from facegate.gallery.records import as_utc, utc_now
from facegate.gallery.tables import audit_log, gallery_state

GENESIS = "0" * 64


@dataclass(frozen=True, slots=True)
class AuditRecord:
    seq: int
    at: datetime
    key_id: str | None
    collection: str | None
    action: str
    outcome: str
    subject_ids: tuple[str, ...] = ()
    detail: dict[str, Any] = field(default_factory=dict)
    prev_hash: str = GENESIS
    hash: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at.isoformat(),
            "key_id": self.key_id,
            "collection": self.collection,
            "action": self.action,
            "outcome": self.outcome,
            "subject_ids": list(self.subject_ids),
            "detail": self.detail,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


def entry_hash(prev_hash: str, body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256((prev_hash + canonical).encode()).hexdigest()


def _body(
    at: datetime,
    key_id: str | None,
    collection: str | None,
    action: str,
    outcome: str,
    subject_ids: Sequence[str],
    detail: dict[str, Any],
) -> dict[str, Any]:
    return {
        "at": as_utc(at).isoformat(),
        "key_id": key_id,
        "collection": collection,
        "action": action,
        "outcome": outcome,
        "subject_ids": list(subject_ids),
        "detail": detail,
    }


# Any constant: the key of the PostgreSQL advisory lock that serialises appends.
_APPEND_LOCK = 0x6661636567617465


def _lock_chain(conn: Connection) -> None:
    """Take the database's write lock before reading the last hash, so that appends from
    several processes (CLI, service, replicas) stay one chain instead of forking."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _APPEND_LOCK})
    else:  # SQLite: a write (changing nothing) takes the database's write lock now
        conn.execute(update(gallery_state).values(generation=gallery_state.c.generation))


class AuditLog:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = threading.Lock()  # one writer at a time keeps the chain linear

    @staticmethod
    def _record(row: Row[Any]) -> AuditRecord:
        return AuditRecord(
            seq=row.seq,
            at=as_utc(row.at),
            key_id=row.key_id,
            collection=row.collection,
            action=row.action,
            outcome=row.outcome,
            subject_ids=tuple(row.subject_ids),
            detail=dict(row.detail),
            prev_hash=row.prev_hash,
            hash=row.hash,
        )

    def append(
        self,
        action: str,
        outcome: str,
        *,
        key_id: str | None = None,
        collection: str | None = None,
        subject_ids: Sequence[str] = (),
        detail: dict[str, Any] | None = None,
        at: datetime | None = None,
    ) -> AuditRecord:
        at = at or utc_now()
        body = _body(at, key_id, collection, action, outcome, subject_ids, detail or {})
        with self._lock, self.engine.begin() as conn:
            _lock_chain(conn)
            last = conn.execute(
                select(audit_log.c.hash).order_by(audit_log.c.seq.desc()).limit(1)
            ).scalar()
            prev = last or GENESIS
            digest = entry_hash(prev, body)
            result = conn.execute(
                insert(audit_log).values(
                    at=at,
                    key_id=key_id,
                    collection=collection,
                    action=action,
                    outcome=outcome,
                    subject_ids=list(subject_ids),
                    detail=detail or {},
                    prev_hash=prev,
                    hash=digest,
                )
            )
            inserted = result.inserted_primary_key
            assert inserted is not None  # an autoincrement insert always has one
            seq = int(inserted[0])
        return AuditRecord(
            seq,
            at,
            key_id,
            collection,
            action,
            outcome,
            tuple(subject_ids),
            detail or {},
            prev,
            digest,
        )

    def query(
        self,
        *,
        action: str | None = None,
        collection: str | None = None,
        key_id: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[AuditRecord]:
        """Newest first."""
        query = select(audit_log).order_by(audit_log.c.seq.desc())
        if action is not None:
            query = query.where(audit_log.c.action == action)
        if collection is not None:
            query = query.where(audit_log.c.collection == collection)
        if key_id is not None:
            query = query.where(audit_log.c.key_id == key_id)
        if since is not None:
            query = query.where(audit_log.c.at >= since)
        with self.engine.connect() as conn:
            return [self._record(r) for r in conn.execute(query.limit(limit).offset(offset))]

    def about_subject(self, subject_id: str) -> list[AuditRecord]:
        """Every entry that names the subject, oldest first (for a subject access request)."""
        pattern = f'%"{subject_id}"%'  # ids are hex: no LIKE metacharacters
        query = (
            select(audit_log)
            .where(cast(audit_log.c.subject_ids, String).like(pattern))
            .order_by(audit_log.c.seq)
        )
        with self.engine.connect() as conn:
            found = [self._record(r) for r in conn.execute(query)]
        return [r for r in found if subject_id in r.subject_ids]

    def verify(self) -> int | None:
        """The sequence number of the first entry that was altered, moved or removed (for a
        removed one, its number), or None if the chain is intact."""
        prev, expected = GENESIS, 1
        with self.engine.connect() as conn:
            for row in conn.execute(select(audit_log).order_by(audit_log.c.seq)):
                r = self._record(row)
                if r.seq != expected:
                    return expected  # an entry is missing here
                body = _body(
                    r.at, r.key_id, r.collection, r.action, r.outcome, r.subject_ids, r.detail
                )
                if r.prev_hash != prev or r.hash != entry_hash(prev, body):
                    return r.seq
                prev, expected = r.hash, r.seq + 1
        return None
