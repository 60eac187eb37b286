"""Web UI sessions: who signed in with which API key, until when.

The browser holds a random token in a cookie; the database holds only its SHA-256, the
key id and the CSRF token the session's pages send back with every change. A session
ends at its expiry, at sign-out, or when its key is revoked (the key is checked on every
request) or deleted (cascade)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Engine

from facegate.gallery.records import as_utc, utc_now
from facegate.gallery.tables import ui_sessions

MAX_TOKEN = 100  # longer cookies are not ours


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class UiSession:
    key_id: str
    csrf: str
    created_at: datetime
    expires_at: datetime


class SessionStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def open(self, key_id: str, lifetime: timedelta, now: datetime | None = None) -> str:
        """A new session for ``key_id``; returns the token for the cookie (not stored).
        Expired sessions are swept at the same time."""
        now = now or utc_now()
        token = secrets.token_urlsafe(32)
        with self.engine.begin() as conn:
            conn.execute(delete(ui_sessions).where(ui_sessions.c.expires_at <= now))
            conn.execute(
                insert(ui_sessions).values(
                    token_hash=_hash(token),
                    key_id=key_id,
                    csrf=secrets.token_urlsafe(32),
                    created_at=now,
                    expires_at=now + lifetime,
                )
            )
        return token

    def get(self, token: str, now: datetime | None = None) -> UiSession | None:
        """The live session of ``token``; None if unknown, malformed or expired."""
        if not token or len(token) > MAX_TOKEN:
            return None
        with self.engine.connect() as conn:
            row = conn.execute(
                select(ui_sessions).where(ui_sessions.c.token_hash == _hash(token))
            ).first()
        if row is None:
            return None
        found = UiSession(row.key_id, row.csrf, as_utc(row.created_at), as_utc(row.expires_at))
        return found if found.expires_at > (now or utc_now()) else None

    def close(self, token: str) -> bool:
        """End a session (sign-out); False if there was none."""
        if not token or len(token) > MAX_TOKEN:
            return False
        with self.engine.begin() as conn:
            done = conn.execute(delete(ui_sessions).where(ui_sessions.c.token_hash == _hash(token)))
        return bool(done.rowcount)
