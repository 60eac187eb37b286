"""What the applications (policy/) keep in the database: their declarative documents
(access rules, quotas), who is inside which zone (anti-passback), and the quota claims of
enrolled subjects. Rows about a subject go with the subject on erasure (foreign keys).

Anonymous quotas keep nothing here: they live in the service's memory only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Engine

from facegate.gallery.records import as_utc, utc_now
from facegate.gallery.tables import policy_documents, quota_claims, zone_presence


@dataclass(frozen=True, slots=True)
class PolicyDocument:
    name: str
    document: dict[str, Any]
    version: int
    updated_at: datetime
    updated_by: str


@dataclass(frozen=True, slots=True)
class Presence:
    subject_id: str
    zone: str
    inside: bool
    at: datetime


class ApplicationStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # --- policy documents ------------------------------------------------------------------
    def get_document(self, name: str) -> PolicyDocument | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(policy_documents).where(policy_documents.c.name == name)
            ).first()
        if row is None:
            return None
        return PolicyDocument(
            row.name, json.loads(row.document), row.version, as_utc(row.updated_at), row.updated_by
        )

    def put_document(
        self, name: str, document: dict[str, Any], updated_by: str, now: datetime | None = None
    ) -> PolicyDocument:
        """Replace the named document; its version goes up by one."""
        at = now or utc_now()
        text = json.dumps(document, sort_keys=True)
        with self.engine.begin() as conn:
            current = conn.execute(
                select(policy_documents.c.version).where(policy_documents.c.name == name)
            ).scalar()
            version = (current or 0) + 1
            values = {
                "document": text,
                "version": version,
                "updated_at": at,
                "updated_by": updated_by,
            }
            if current is None:
                conn.execute(insert(policy_documents).values(name=name, **values))
            else:
                conn.execute(
                    update(policy_documents).where(policy_documents.c.name == name).values(**values)
                )
        return PolicyDocument(name, document, version, at, updated_by)

    # --- anti-passback ---------------------------------------------------------------------
    def presence(self, subject_id: str, zone: str) -> Presence | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(zone_presence).where(
                    zone_presence.c.subject_id == subject_id, zone_presence.c.zone == zone
                )
            ).first()
        return (
            None if row is None else Presence(row.subject_id, row.zone, row.inside, as_utc(row.at))
        )

    def set_presence(self, subject_id: str, zone: str, inside: bool, at: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                delete(zone_presence).where(
                    zone_presence.c.subject_id == subject_id, zone_presence.c.zone == zone
                )
            )
            conn.execute(
                insert(zone_presence).values(subject_id=subject_id, zone=zone, inside=inside, at=at)
            )

    # --- quota claims of enrolled subjects -------------------------------------------------
    def claims_since(self, quota: str, subject_id: str, since: datetime) -> list[datetime]:
        """The subject's claims on ``quota`` at or after ``since``, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(quota_claims.c.at)
                .where(
                    quota_claims.c.quota == quota,
                    quota_claims.c.subject_id == subject_id,
                    quota_claims.c.at >= since,
                )
                .order_by(quota_claims.c.at)
            )
            return [as_utc(r.at) for r in rows]

    def add_claim(self, quota: str, subject_id: str, at: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(insert(quota_claims).values(quota=quota, subject_id=subject_id, at=at))

    def sweep_claims(self, before: datetime) -> int:
        """Forget claims older than ``before`` (no window reaches back that far)."""
        with self.engine.begin() as conn:
            gone = conn.execute(delete(quota_claims).where(quota_claims.c.at < before)).rowcount
        return int(gone or 0)

    def about_subject(self, subject_id: str) -> dict[str, list[dict[str, Any]]]:
        """The subject's zone presence and quota claims, for their export."""
        with self.engine.connect() as conn:
            presence = conn.execute(
                select(zone_presence).where(zone_presence.c.subject_id == subject_id)
            ).all()
            claims = conn.execute(
                select(quota_claims)
                .where(quota_claims.c.subject_id == subject_id)
                .order_by(quota_claims.c.at)
            ).all()
        return {
            "zone_presence": [
                {"zone": r.zone, "inside": r.inside, "at": as_utc(r.at).isoformat()}
                for r in presence
            ],
            "quota_claims": [{"quota": r.quota, "at": as_utc(r.at).isoformat()} for r in claims],
        }

    def count_claims(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(quota_claims)).scalar() or 0)
