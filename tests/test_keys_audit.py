"""API keys (hashed, scoped, revocable) and the hash-chained audit trail."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from facegate.gallery.audit import AuditLog
from facegate.gallery.keys import KeyStore, UnknownKeyError
from facegate.gallery.sqlite_store import SQLiteStore


@pytest.fixture()
def store(tmp_path: Path) -> SQLiteStore:
    return SQLiteStore(tmp_path / "g.sqlite3")


def test_a_key_is_shown_once_and_stored_hashed(store: SQLiteStore) -> None:
    keys = KeyStore(store.engine)
    key, secret = keys.create("door camera", ["recognize"], collections=["lobby"])
    assert secret.startswith(f"fg_{key.id}_") and len(secret) > 40
    assert keys.authenticate(secret) == key
    with sqlite3.connect(store.path) as conn:
        stored = conn.execute("SELECT secret_hash FROM api_keys").fetchone()[0]
    assert secret not in stored and len(stored) == 64


@pytest.mark.parametrize(
    "guess",
    ["", "fg_", "fg_nokey_x", "not-a-key", "fg_{id}_wrong", "fg_{id}_{rest}x", "x" * 5000],
)
def test_wrong_secrets_fail(store: SQLiteStore, guess: str) -> None:
    keys = KeyStore(store.engine)
    key, secret = keys.create("k", ["read"])
    rest = secret.split("_", 2)[2]
    assert keys.authenticate(guess.format(id=key.id, rest=rest)) is None


def test_scopes_and_collections(store: SQLiteStore) -> None:
    keys = KeyStore(store.engine)
    door, _ = keys.create("door", ["recognize"], collections=["lobby"])
    admin, _ = keys.create("admin", ["admin"])
    assert door.allows("recognize") and not door.allows("enroll")
    assert door.may_use("lobby") and not door.may_use("garage")
    assert admin.allows("enroll") and admin.may_use("anything")
    for scopes in ([], ["root"], ["read", "superuser"]):
        with pytest.raises(ValueError):
            keys.create("bad", scopes)


def test_revocation_is_immediate(store: SQLiteStore) -> None:
    keys = KeyStore(store.engine)
    key, secret = keys.create("temp", ["admin"])
    assert keys.has_active_admin()
    revoked = keys.revoke(key.id)
    assert not revoked.active and keys.authenticate(secret) is None
    assert not keys.has_active_admin()
    with pytest.raises(UnknownKeyError):
        keys.revoke("0000000000000000")


def tamper(store: SQLiteStore, *statements: str) -> None:
    """Change the audit table behind facegate's back, as someone with the database file
    could: first drop the triggers that make it append-only."""
    with sqlite3.connect(store.path) as conn:
        conn.execute("DROP TRIGGER audit_log_no_update")
        conn.execute("DROP TRIGGER audit_log_no_delete")
        for statement in statements:
            conn.execute(statement)


def filled(store: SQLiteStore) -> AuditLog:
    log = AuditLog(store.engine)
    for i in range(5):
        log.append("identify", "match", key_id="k1", collection="lobby", subject_ids=[f"s{i}"])
    log.append("erase", "done", collection="lobby", subject_ids=["s2"], detail={"templates": 3})
    assert log.verify() is None
    return log


def test_audit_log_is_append_only_in_the_database(store: SQLiteStore) -> None:
    filled(store)
    for statement in ("UPDATE audit_log SET outcome = 'x'", "DELETE FROM audit_log"):
        with sqlite3.connect(store.path) as conn, pytest.raises(sqlite3.IntegrityError):
            conn.execute(statement)


def test_audit_queries(store: SQLiteStore) -> None:
    log = filled(store)
    newest = log.query(limit=2)
    assert [r.action for r in newest] == ["erase", "identify"]
    assert log.query(action="erase")[0].detail == {"templates": 3}
    assert [r.seq for r in log.about_subject("s2")] == [3, 6]


@pytest.mark.parametrize(
    ("statements", "broken"),
    [
        (["UPDATE audit_log SET outcome = 'no_match' WHERE seq = 3"], 3),
        (["UPDATE audit_log SET subject_ids = '[\"s9\"]' WHERE seq = 4"], 4),
        (["DELETE FROM audit_log WHERE seq = 2"], 2),
        (["DELETE FROM audit_log WHERE seq = 1"], 1),
        # Reordering: rows 2 and 4 swap places (every column but seq).
        (
            [
                "UPDATE audit_log SET seq = 100 WHERE seq = 2",
                "UPDATE audit_log SET seq = 2 WHERE seq = 4",
                "UPDATE audit_log SET seq = 4 WHERE seq = 100",
            ],
            2,
        ),
    ],
    ids=["edit-outcome", "edit-subjects", "delete-middle", "delete-first", "reorder"],
)
def test_tampering_fails_verification_at_exactly_that_row(
    store: SQLiteStore, statements: list[str], broken: int
) -> None:
    log = filled(store)
    tamper(store, *statements)
    assert log.verify() == broken
