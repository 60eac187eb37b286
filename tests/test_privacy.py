"""Privacy in the library: templates encrypted at rest, the consent ledger, retention.

Encryption and consent run on real LFW photos; retention uses synthetic unit vectors
(what is checked is which records the sweeper erases, not recognition) and an injected
clock.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from facegate.config import Settings
from facegate.errors import ConsentRequiredError, InvalidConsentError
from facegate.gallery.audit import AuditLog
from facegate.gallery.gallery import Gallery
from facegate.gallery.records import (
    Collection,
    Consent,
    ConsentGrant,
    Event,
    Subject,
    Template,
    new_id,
    utc_now,
)
from facegate.gallery.retention import RetentionSweeper
from facegate.gallery.sqlite_store import SQLiteStore
from facegate.recognition import FaceRecognizer
from helpers import TEST_CONSENT

PEOPLE = ("Colin_Powell", "Tony_Blair", "Hugo_Chavez")


def lfw(faces_root: Path, person: str, n: int) -> Path:
    return faces_root / person / f"{person}_{n:04d}.jpg"


def database_bytes(data_dir: Path) -> bytes:
    """The database, its WAL and shared-memory file, as they are on disk."""
    return b"".join(p.read_bytes() for p in sorted(data_dir.glob("gallery.sqlite3*")))


def enroll_people(recognizer: FaceRecognizer, faces_root: Path) -> list[Template]:
    templates = []
    for person in PEOPLE:
        photos = [lfw(faces_root, person, 1), lfw(faces_root, person, 2)]
        result = recognizer.enroll(
            person.replace("_", " "), photos, face="largest", consent=TEST_CONSENT, strict=False
        )
        templates += result.templates
    return templates


@pytest.mark.parametrize("encrypted", [True, False], ids=["encrypted", "plaintext-control"])
def test_no_embedding_is_on_disk_in_plaintext(
    tmp_path: Path, faces_root: Path, encrypted: bool
) -> None:
    """With encryption on, no enrolled embedding (nor its first 32 bytes) is in the database
    files. The control run with encryption off finds every one: the search can fail."""
    settings = Settings(data_dir=tmp_path / "g", encryption={"enabled": encrypted})
    recognizer = FaceRecognizer.open(settings)
    try:
        templates = enroll_people(recognizer, faces_root)
        on_disk = database_bytes(settings.data_dir)
        assert (settings.data_dir / "gallery.sqlite3-wal").exists()  # the WAL is searched too
        for name in ("gallery.sqlite3", "gallery.sqlite3-wal"):  # owner-only, like the key
            assert (settings.data_dir / name).stat().st_mode & 0o777 == 0o600
        found = [
            t.id
            for t in templates
            if t.embedding.astype("<f4").tobytes() in on_disk
            or t.embedding.astype("<f4").tobytes()[:32] in on_disk
        ]
        if encrypted:
            assert found == []
            stored = recognizer.gallery.store.subject_templates(templates[0].subject_id)
            assert {t.key_id for t in stored} == {
                json.loads(settings.data_key_path.read_text())["active"]
            }
            # ... and they decrypt to exactly what was enrolled.
            by_id = {t.id: t for t in templates}
            for t in stored:
                assert np.array_equal(t.embedding, by_id[t.id].embedding)
        else:
            assert found == [t.id for t in templates]
            assert not settings.data_key_path.exists()
        results = recognizer.identify(lfw(faces_root, "Tony_Blair", 5))
        assert any(
            r.decision.match.subject_id
            and recognizer.gallery.store.get_subject(r.decision.match.subject_id).display_name  # type: ignore[union-attr]
            == "Tony Blair"
            for r in results
        )
    finally:
        recognizer.close()


@pytest.fixture()
def recognizer(tmp_path: Path) -> Iterator[FaceRecognizer]:
    rec = FaceRecognizer.open(Settings(data_dir=tmp_path / "g"))
    yield rec
    rec.close()


def test_no_consent_no_enrollment(recognizer: FaceRecognizer, faces_root: Path) -> None:
    photo = lfw(faces_root, "Hugo_Chavez", 1)
    with pytest.raises(ConsentRequiredError, match="consent"):
        recognizer.enroll("Hugo Chavez", [photo], face="largest")
    assert recognizer.gallery.count_subjects() == 0
    # A subject on file without consent (made through the API) cannot get faces either.
    bare = Subject(id=new_id(), display_name="Bare", collection_id=recognizer.gallery.collection_id)
    recognizer.gallery.add_subject(bare, [])
    with pytest.raises(ConsentRequiredError):
        recognizer.enroll("Bare", [photo], face="largest", subject=bare)
    assert recognizer.gallery.template_counts() == {}


@pytest.mark.parametrize(
    ("grant", "message"),
    [
        (ConsentGrant("legitimate_interest", "v1", "t"), "legal_basis"),
        (ConsentGrant("explicit_consent", "  ", "t"), "notice_version"),
        (
            ConsentGrant("explicit_consent", "v1", "t", given_at=utc_now() + timedelta(days=1)),
            "future",
        ),
        (
            ConsentGrant(
                "explicit_consent",
                "v1",
                "t",
                given_at=utc_now() - timedelta(days=2),
                expires_at=utc_now() - timedelta(days=3),
            ),
            "expire after",
        ),
    ],
    ids=["unaccepted-basis", "blank-notice", "given-in-future", "expires-before-given"],
)
def test_invalid_consent_is_refused(
    recognizer: FaceRecognizer, faces_root: Path, grant: ConsentGrant, message: str
) -> None:
    photo = lfw(faces_root, "Hugo_Chavez", 1)
    with pytest.raises(InvalidConsentError, match=message):
        recognizer.enroll("Hugo Chavez", [photo], face="largest", consent=grant)
    assert recognizer.gallery.count_subjects() == 0


def test_expired_consent_stops_new_faces(recognizer: FaceRecognizer, faces_root: Path) -> None:
    gallery = recognizer.gallery
    subject = Subject(id=new_id(), display_name="Lapsed", collection_id=gallery.collection_id)
    lapsed = Consent(
        id=new_id(),
        subject_id=subject.id,
        legal_basis="explicit_consent",
        notice_version="v1",
        given_at=utc_now() - timedelta(days=10),
        collected_by="tests",
        expires_at=utc_now() - timedelta(days=1),
    )
    gallery.add_subject(subject, [], lapsed)
    photo = lfw(faces_root, "Hugo_Chavez", 1)
    with pytest.raises(ConsentRequiredError):
        recognizer.enroll("Lapsed", [photo], face="largest", subject=subject)
    renewed = recognizer.enroll(
        "Lapsed", [photo], face="largest", subject=subject, consent=TEST_CONSENT
    )
    assert len(renewed.templates) == 1
    assert [c.active(utc_now()) for c in gallery.consents(subject.id)] == [False, True]


# --- retention ---------------------------------------------------------------------------
def unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(16).astype(np.float32)
    return (v / np.linalg.norm(v)).astype(np.float32)


class Clock:
    def __init__(self) -> None:
        self.now = utc_now() + timedelta(days=2)

    def __call__(self) -> datetime:
        return self.now


def put(
    store: SQLiteStore,
    collection: str,
    name: str,
    *,
    enrolled_days_ago: float,
    now: datetime,
    template_ages: tuple[float, ...] = (),
    matched_days_ago: float | None = None,
    consent_expires_in_days: float | None = None,
) -> Subject:
    """A subject with templates of the given ages (days before ``now``) and a consent."""
    subject = Subject(
        id=new_id(),
        display_name=name,
        collection_id=collection,
        created_at=now - timedelta(days=enrolled_days_ago),
        last_matched_at=now - timedelta(days=matched_days_ago) if matched_days_ago else None,
    )
    templates = [
        Template(new_id(), subject.id, "m", unit(i), 0.9, created_at=now - timedelta(days=age))
        for i, age in enumerate(template_ages)
    ]
    consent = Consent(
        id=new_id(),
        subject_id=subject.id,
        legal_basis="explicit_consent",
        notice_version="v1",
        given_at=utc_now() - timedelta(days=1),
        collected_by="tests",
        expires_at=(
            utc_now() + timedelta(days=consent_expires_in_days)
            if consent_expires_in_days is not None
            else None
        ),
    )
    store.add_subject(subject, templates, consent)
    return subject


def test_the_sweeper_erases_what_is_past_its_time_and_nothing_else(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "g.sqlite3")
    clock = Clock()
    now = clock.now
    store.add_collection(Collection("site", "m", max_template_age_days=30, max_idle_days=90))
    store.add_collection(Collection("open", "m", max_idle_days=None))  # no limits at all
    old_and_new = put(
        store, "site", "A", enrolled_days_ago=40, now=now, template_ages=(40, 5), matched_days_ago=1
    )
    idle = put(store, "site", "B", enrolled_days_ago=100, now=now, template_ages=(20,))
    recently_matched = put(
        store, "site", "C", enrolled_days_ago=100, now=now, template_ages=(10,), matched_days_ago=10
    )
    lapsed = put(
        store,
        "site",
        "D",
        enrolled_days_ago=3,
        now=now,
        template_ages=(3,),
        consent_expires_in_days=1,
    )  # expires before the (injected) now
    lasting = put(
        store,
        "site",
        "E",
        enrolled_days_ago=3,
        now=now,
        template_ages=(3,),
        consent_expires_in_days=30,
    )
    untouched = put(store, "open", "F", enrolled_days_ago=5000, now=now, template_ages=(4000,))
    for days, snapshot in ((40, b"old-snapshot"), (10, b"mid-snapshot"), (1, b"new-snapshot")):
        store.add_event(
            Event(
                new_id(),
                now - timedelta(days=days),
                "identified",
                "door-1",
                "site",
                lasting.id,
                0.8,
                0.9,
                snapshot,
            )
        )
    kept_template = [
        t
        for t in store.subject_templates(old_and_new.id)
        if t.created_at > now - timedelta(days=30)
    ]
    audit = AuditLog(store.engine)
    sweeper = RetentionSweeper(store, audit, Settings().retention, clock=clock)

    planned_subjects, planned_templates = sweeper.due(now)
    report = sweeper.sweep()

    assert {k: sorted(v) for k, v in report.erased_subjects.items()} == {
        "idle": [idle.id],
        "consent_expired": [lapsed.id],
    }
    assert sorted(s for s, _ in planned_subjects["site"]) == sorted([idle.id, lapsed.id])
    assert len(planned_templates["site"]) == 1
    remaining = {s.id for s in store.list_subjects(1000)}
    assert remaining == {old_and_new.id, recently_matched.id, lasting.id, untouched.id}
    assert [t.id for t in store.subject_templates(old_and_new.id)] == [kept_template[0].id]
    assert len(store.subject_templates(recently_matched.id)) == 1
    assert len(store.subject_templates(untouched.id)) == 1  # a collection without limits
    events = store.list_events()
    assert len(events) == 2 and report.events_deleted == 1 and report.snapshots_deleted == 1
    assert sorted(e.snapshot or b"" for e in events) == [b"", b"new-snapshot"]

    erasures = audit.query(action="retention.erase")
    assert {tuple(e.subject_ids) for e in erasures if e.subject_ids} == {(idle.id,), (lapsed.id,)}
    assert {e.detail["reason"] for e in erasures} == {"idle", "consent_expired", "template_age"}
    assert audit.verify() is None
    # A second sweep at the same time finds nothing more.
    again = sweeper.sweep()
    assert again.erased_subjects == {} and again.erasure.templates == 0
    store.close()


def test_retention_run_command(tmp_path: Path) -> None:
    """``facegate retention run``: the dry run lists, the real run erases (real clock)."""
    data_dir = tmp_path / "g"
    settings = Settings(data_dir=data_dir)
    from facegate.gallery.opening import open_store

    store = open_store(settings)
    store.add_collection(Collection("site", "m", max_idle_days=30))
    now = utc_now()
    stale = put(store, "site", "Stale", enrolled_days_ago=60, now=now, template_ages=(60,))
    fresh = put(store, "site", "Fresh", enrolled_days_ago=1, now=now, template_ages=(1,))
    store.close()

    def run(*args: str) -> dict[str, object]:
        env = {**os.environ, "FACEGATE_DATA_DIR": str(data_dir)}
        done = subprocess.run(
            [sys.executable, "-m", "facegate", "retention", "run", *args, "--json"],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    plan = run("--dry-run")
    assert plan["collections"] == {  # type: ignore[index]
        "site": {"subjects": [{"id": stale.id, "reason": "idle"}], "templates": 0}
    }
    report = run()
    assert report["erased_subjects"] == {"idle": 1}
    store = open_store(settings)
    assert [s.id for s in store.list_subjects()] == [fresh.id]
    store.close()


def test_gallery_notes_matches_for_idle_retention(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "g.sqlite3")
    gallery = Gallery.open(store, "site", create_with_model="m")
    subject = put(store, "site", "A", enrolled_days_ago=1, now=utc_now(), template_ages=(1,))
    assert store.get_subject(subject.id).last_matched_at is None  # type: ignore[union-attr]
    gallery.note_match(subject.id)
    first = store.get_subject(subject.id).last_matched_at  # type: ignore[union-attr]
    assert first is not None and abs((utc_now() - first).total_seconds()) < 60
    gallery.note_match(subject.id)  # within the hour: no second write
    assert store.get_subject(subject.id).last_matched_at == first  # type: ignore[union-attr]
    store.close()


def test_a_database_from_an_older_facegate_is_refused_clearly(tmp_path: Path) -> None:
    import sqlite3

    from facegate.errors import SchemaError

    path = tmp_path / "gallery.sqlite3"
    with sqlite3.connect(path) as conn:  # what facegate before the privacy release made
        conn.execute("CREATE TABLE gallery_state (id INTEGER PRIMARY KEY, generation INTEGER)")
        conn.execute("INSERT INTO gallery_state VALUES (1, 7)")
    with pytest.raises(SchemaError, match="older facegate"):
        SQLiteStore(path)
    with sqlite3.connect(path) as conn:  # left as it was
        assert conn.execute("SELECT generation FROM gallery_state").fetchall() == [(7,)]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert tables == {"gallery_state"}
