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


def test_audit_chain_verifies_and_detects_tampering(store: SQLiteStore) -> None:
    log = AuditLog(store.engine)
    for i in range(5):
        log.append("identify", "match", key_id="k1", collection="lobby", subject_ids=[f"s{i}"])
    log.append("erase", "done", collection="lobby", subject_ids=["s2"], detail={"templates": 3})
    assert log.verify() is None
    newest = log.query(limit=2)
    assert [r.action for r in newest] == ["erase", "identify"]
    assert log.query(action="erase")[0].detail == {"templates": 3}
    with sqlite3.connect(store.path) as conn:
        conn.execute("UPDATE audit_log SET outcome = 'no_match' WHERE seq = 3")
    assert log.verify() == 3


def test_deleting_an_audit_row_breaks_the_chain(store: SQLiteStore) -> None:
    log = AuditLog(store.engine)
    for _ in range(4):
        log.append("verify", "match")
    with sqlite3.connect(store.path) as conn:
        conn.execute("DELETE FROM audit_log WHERE seq = 2")
    assert log.verify() == 3
