"""One behaviour, two databases: the same store tests against SQLite (the embedded default)
and a real PostgreSQL 18 + pgvector server started by the session (``postgres`` fixture),
searched either by pgvector in the database or by an in-memory index of decrypted
templates (``postgres-memory``: no plaintext vector column).

Vectors are synthetic unit vectors: what is checked is storage, transactions, encryption
and search order, not face recognition.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import psycopg
import pytest
from sqlalchemy import text

from facegate.errors import (
    ConsentRequiredError,
    DataKeyError,
    DuplicateCollectionError,
    DuplicateSubjectError,
    UnknownSubjectError,
)
from facegate.gallery.audit import AuditLog
from facegate.gallery.crypto import Keyring
from facegate.gallery.gallery import Gallery
from facegate.gallery.keys import KeyStore
from facegate.gallery.migrate import head
from facegate.gallery.postgres_store import PostgresStore
from facegate.gallery.records import Collection, Event, Subject, Template, new_id, utc_now
from facegate.gallery.sql_store import SqlStore
from facegate.gallery.sqlite_store import SQLiteStore
from facegate.vision.embed import ScoreSpace
from helpers import TEST_CONSENT

DIM = 128


class Backend:
    """Opens the same database again (as another process would) and reads it raw."""

    def __init__(self, kind: str, location: str, keyring: Keyring) -> None:
        self.kind, self.location, self.keyring = kind, location, keyring

    def open(self, keyring: Keyring | bool | None = True) -> SqlStore:
        ring = self.keyring if keyring is True else (keyring or None)
        if self.kind == "sqlite":
            return SQLiteStore(Path(self.location), ring)
        return PostgresStore(self.location, ring, search_in_database=self.kind == "postgres")

    def raw(self, sql: str) -> list[tuple[object, ...]]:
        if self.kind == "sqlite":
            with sqlite3.connect(self.location) as conn:
                return list(conn.execute(sql))
        with psycopg.connect(self.location, autocommit=True) as conn:
            return list(conn.execute(sql))  # type: ignore[arg-type]


@pytest.fixture(params=["sqlite", "postgres", "postgres-memory"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    keyring = Keyring.create(tmp_path / "keys" / "data-keys.json")
    if request.param == "sqlite":
        return Backend("sqlite", str(tmp_path / "gallery.sqlite3"), keyring)
    return Backend(request.param, request.getfixturevalue("postgres_url"), keyring)


@pytest.fixture()
def store(backend: Backend) -> Iterator[SqlStore]:
    opened = backend.open()
    yield opened
    opened.close()


def unit(rng: np.random.Generator, n: int = 1) -> np.ndarray:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def add(
    store: SqlStore, collection: str, name: str, *vectors: np.ndarray, **fields: object
) -> Subject:
    subject = Subject(id=new_id(), display_name=name, collection_id=collection, **fields)  # type: ignore[arg-type]
    templates = [Template(new_id(), subject.id, "sface", v, 0.9) for v in vectors]
    store.add_subject(subject, templates, TEST_CONSENT.record(subject.id))
    return subject


def test_the_schema_is_migrated_to_the_newest_revision(backend: Backend, store: SqlStore) -> None:
    assert backend.raw("SELECT version_num FROM alembic_version") == [(head(),)]
    again = backend.open()  # opening a migrated database changes nothing
    assert again.generation() == store.generation()
    again.close()


def test_collections(store: SqlStore) -> None:
    store.add_collection(Collection("b-site", "sface", 1e-4, max_idle_days=None))
    store.add_collection(Collection("a-site", "dlib", store_images=True))
    with pytest.raises(DuplicateCollectionError):
        store.add_collection(Collection("a-site", "sface"))
    assert [c.name for c in store.list_collections()] == ["a-site", "b-site"]
    found = store.get_collection("b-site")
    assert found is not None and found.fmr == pytest.approx(1e-4) and found.max_idle_days is None
    assert store.get_collection("a-site").store_images is True  # type: ignore[union-attr]
    add(store, "a-site", "Ann", unit(np.random.default_rng(0))[0])
    assert store.remove_collection("a-site") == 1
    assert store.get_collection("a-site") is None and store.count_subjects() == 0


def test_subjects_templates_and_consent(store: SqlStore) -> None:
    rng = np.random.default_rng(1)
    store.add_collection(Collection("site", "sface"))
    before = store.generation()
    ann = add(store, "site", "Ann Example", *unit(rng, 2), external_id="e-1", metadata={"k": 1})
    assert store.generation() == before + 1
    with pytest.raises(DuplicateSubjectError):
        add(store, "site", "Other", unit(rng)[0], external_id="e-1")
    bare = Subject(id=new_id(), display_name="No Consent", collection_id="site")
    with pytest.raises(ConsentRequiredError):
        store.add_subject(bare, [Template(new_id(), bare.id, "sface", unit(rng)[0], 0.9)])
    assert store.get_subject(bare.id) is None  # all or nothing
    store.add_subject(bare, [])  # a subject without faces needs no consent yet
    with pytest.raises(ConsentRequiredError):
        store.add_templates([Template(new_id(), bare.id, "sface", unit(rng)[0], 0.9)])

    assert store.find_subjects(external_id="e-1")[0].id == ann.id
    assert store.get_subject(ann.id).metadata == {"k": 1}  # type: ignore[union-attr]
    page, total = store.search_subjects("site", name_contains="ANN")
    assert [s.id for s in page] == [ann.id] and total == 1
    renamed = store.update_subject(ann.id, display_name="Ann Renamed")
    assert renamed.display_name == "Ann Renamed"
    assert store.template_counts("site") == {"sface": 2}
    assert [c.legal_basis for c in store.subject_consents(ann.id)] == ["explicit_consent"]
    with pytest.raises(UnknownSubjectError):
        store.add_templates([Template(new_id(), "nobody", "sface", unit(rng)[0], 0.9)])


def test_templates_are_sealed_and_read_back_exactly(backend: Backend, store: SqlStore) -> None:
    rng = np.random.default_rng(2)
    store.add_collection(Collection("site", "sface"))
    vectors = unit(rng, 3)
    ann = add(store, "site", "Ann", *vectors)
    read = sorted(store.subject_templates(ann.id), key=lambda t: t.id)
    assert {t.key_id for t in read} == {backend.keyring.active}
    assert sorted(map(bytes, (v.tobytes() for v in vectors))) == sorted(
        t.embedding.astype("<f4").tobytes() for t in read
    )
    sealed = backend.raw("SELECT embedding FROM templates")
    for (blob,) in sealed:
        assert all(v.tobytes() not in bytes(blob) for v in vectors)  # type: ignore[arg-type]
    if backend.kind != "sqlite":  # the searchable plaintext copy exists only for pgvector
        searchable = backend.raw("SELECT count(*) FROM templates WHERE vector IS NOT NULL")
        assert searchable == [(3 if backend.kind == "postgres" else 0,)]
    store.close()
    with pytest.raises(DataKeyError):  # an encrypted database refuses to open without its key
        backend.open(keyring=False)


def test_erasure_removes_everything_about_the_subject(store: SqlStore) -> None:
    rng = np.random.default_rng(3)
    store.add_collection(Collection("site", "sface"))
    ann = add(store, "site", "Ann", *unit(rng, 2))
    bob = add(store, "site", "Bob", unit(rng)[0])
    store.add_event(
        Event(new_id(), utc_now(), "identified", "door", "site", ann.id, 0.8, 0.9, b"jpeg")
    )
    generation = store.generation()
    erased = store.erase_subject(ann.id)
    assert erased.as_dict() == {
        "subjects": 1,
        "templates": 2,
        "images": 0,
        "consents": 1,
        "events": 1,
    }
    assert store.generation() == generation + 1
    assert store.get_subject(ann.id) is None and store.subject_consents(ann.id) == []
    assert store.list_events() == [] and store.template_counts("site") == {"sface": 1}
    assert store.get_subject(bob.id) is not None
    with pytest.raises(UnknownSubjectError):
        store.erase_subject(ann.id)


def test_search_finds_the_same_neighbours_as_brute_force(store: SqlStore) -> None:
    """The FAISS index (SQLite) and pgvector (PostgreSQL) rank subjects as exact numpy does."""
    rng = np.random.default_rng(4)
    gallery = Gallery.open(store, "site", create_with_model="sface")
    other = Gallery.open(store, "elsewhere", create_with_model="sface")
    people = {}
    for i in range(60):
        vectors = unit(rng, 2)
        subject = Subject(id=new_id(), display_name=f"p{i}", collection_id="site")
        gallery.add_subject(
            subject,
            [Template(new_id(), subject.id, "sface", v, 0.9) for v in vectors],
            TEST_CONSENT.record(subject.id),
        )
        people[subject.id] = vectors
    stranger = Subject(id=new_id(), display_name="elsewhere", collection_id="elsewhere")
    probe_target = next(iter(people.values()))[0]
    other.add_subject(  # identical vector, other collection: must never be returned
        stranger,
        [Template(new_id(), stranger.id, "sface", probe_target, 0.9)],
        TEST_CONSENT.record(stranger.id),
    )
    for _ in range(10):
        query = unit(rng)[0]
        expected = sorted(
            ((sid, float((vs @ query).max())) for sid, vs in people.items()),
            key=lambda kv: kv[1],
            reverse=True,
        )[:5]
        found = gallery.search("sface", query, ScoreSpace(), 5)
        assert [c.subject_id for c in found] == [sid for sid, _ in expected]
        assert [c.similarity for c in found] == pytest.approx([s for _, s in expected], abs=1e-5)
    found = gallery.search("sface", probe_target, ScoreSpace(), 3)
    assert found[0].similarity == pytest.approx(1.0, abs=1e-5)
    assert stranger.id not in {c.subject_id for c in found}


def test_a_write_through_one_store_is_seen_by_another_at_once(backend: Backend) -> None:
    """Two open stores on one database stand for two processes (API replicas)."""
    rng = np.random.default_rng(5)
    first, second = backend.open(), backend.open()
    try:
        writer = Gallery.open(first, "site", create_with_model="sface")
        reader = Gallery.open(second, "site")
        vector = unit(rng)[0]
        subject = Subject(id=new_id(), display_name="Ann", collection_id="site")
        writer.add_subject(
            subject,
            [Template(new_id(), subject.id, "sface", vector, 0.9)],
            TEST_CONSENT.record(subject.id),
        )
        assert reader.search("sface", vector, ScoreSpace(), 1)[0].subject_id == subject.id
        writer.erase_subject(subject.id)
        assert reader.search("sface", vector, ScoreSpace(), 1) == []
    finally:
        first.close()
        second.close()


def test_retention_queries_and_events(store: SqlStore) -> None:
    rng = np.random.default_rng(6)
    store.add_collection(Collection("site", "sface"))
    now = utc_now()
    old = add(store, "site", "Old", unit(rng)[0], created_at=now - timedelta(days=50))
    add(store, "site", "New", unit(rng)[0])
    store.mark_matched([old.id], now - timedelta(days=40))
    assert store.subjects_due("site", now, now - timedelta(days=45)) == []
    assert store.subjects_due("site", now, now - timedelta(days=30)) == [(old.id, "idle")]
    store.add_event(Event(new_id(), now - timedelta(days=40), "unknown", "door", "site"))
    store.add_event(
        Event(new_id(), now - timedelta(days=5), "unknown", "door", "site", snapshot=b"x")
    )
    assert store.sweep_events(now - timedelta(days=30), now - timedelta(days=1)) == (1, 1)
    [left] = store.list_events()
    assert left.snapshot is None


def test_key_rotation_reseals_every_record(backend: Backend, store: SqlStore) -> None:
    from facegate.gallery.rotation import rotate_data_key

    rng = np.random.default_rng(7)
    store.add_collection(Collection("site", "sface"))
    subjects = [add(store, "site", f"p{i}", unit(rng)[0]) for i in range(5)]
    before = {s.id: store.subject_templates(s.id)[0].embedding for s in subjects}
    old = backend.keyring.active
    rotation = rotate_data_key(store, batch_size=2)
    assert rotation.resealed == 5 and rotation.retired == (old,)
    assert {r[0] for r in backend.raw("SELECT key_id FROM templates")} == {rotation.key_id}
    for s in subjects:
        assert np.array_equal(store.subject_templates(s.id)[0].embedding, before[s.id])


def test_audit_chain_and_keys(backend: Backend, store: SqlStore) -> None:
    log = AuditLog(store.engine)
    for i in range(4):
        log.append("identify", "match", collection="site", subject_ids=[f"s{i}"])
    assert log.verify() is None and [r.seq for r in log.about_subject("s2")] == [3]
    with store.engine.connect() as conn, pytest.raises(Exception, match="append-only"):
        conn.execute(text("UPDATE audit_log SET outcome = 'x'"))
    keys = KeyStore(store.engine)
    key, secret = keys.create("door", ["recognize"], ["site"])
    assert keys.authenticate(secret) == key and not keys.has_active_admin()


@pytest.mark.parametrize("url", ["mysql://user@localhost/db", "sqlite:///x.db", "not a url at all"])
def test_a_database_url_that_is_not_postgresql_is_refused(url: str, tmp_path: Path) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "facegate", "collections", "list", "--json"],
        env={
            **__import__("os").environ,
            "FACEGATE_DATA_DIR": str(tmp_path),
            "FACEGATE_DATABASE_URL": url,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 6, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
