"""Privacy by design over real HTTP: erasure that leaves no bytes behind, consent
withdrawal, subject export, ephemeral (memory-only) collections and opt-in face images.

Each scenario shares one in-process uvicorn server (module scope); the tests read the
database files themselves (read-only) to check what is, and is not, on disk."""

from __future__ import annotations

import base64
import contextlib
import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import cv2
import httpx
import numpy as np
import pytest

from facegate.config import ServiceSettings, Settings
from facegate.gallery.memory_store import MemoryStore
from facegate.gallery.opening import open_store
from facegate.gallery.records import Collection, Subject, Template
from facegate.service.app import create_app
from facegate.service.state import BOOTSTRAP_KEY_FILE, ServiceState
from helpers import CONSENT_JSON, problem, running_server
from helpers import lfw_photo as photo

Sliceable = TypeVar("Sliceable", bytes, str)
DB_FILES = ("gallery.sqlite3", "gallery.sqlite3-wal", "gallery.sqlite3-shm")


# --- the server ----------------------------------------------------------------------------
@dataclass
class Service:
    base: str
    data_dir: Path
    admin: str
    client: httpx.Client
    state: ServiceState  # the running app's state, in this process

    @property
    def admin_key_id(self) -> str:
        return self.admin.split("_")[1]  # secrets are fg_<key id>_<random>

    def call(self, method: str, path: str, secret: str | None = None, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {secret or self.admin}", **kw.pop("headers", {})}
        return self.client.request(method, path, headers=headers, **kw)


@contextlib.contextmanager
def serve(data_dir: Path, **settings: Any) -> Iterator[Service]:
    """A running server over ``data_dir``, with a handle on its state (same process)."""
    config = Settings(data_dir=data_dir, service=ServiceSettings(rate_limit=0), **settings)
    app = create_app(config)
    with running_server(config, app) as base, httpx.Client(base_url=base, timeout=120) as client:
        assert client.get("/health").json() == {"status": "ok"}
        admin = (data_dir / BOOTSTRAP_KEY_FILE).read_text().strip()
        yield Service(base, data_dir, admin, client, app.state.facegate)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with serve(tmp_path_factory.mktemp("privacy")) as running:
        yield running


# --- helpers -------------------------------------------------------------------------------


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def make_collection(service: Service, name: str, **options: Any) -> dict[str, Any]:
    made = service.call("POST", "/v1/collections", json={"name": name, **options})
    assert made.status_code == 201, made.text
    body: dict[str, Any] = made.json()
    return body


def enroll(
    service: Service,
    collection: str,
    faces_root: Path,
    person: str,
    photos: tuple[int, ...],
    consent: bool = True,
) -> str:
    """A new subject for ``person`` with one template per photo; returns the subject id."""
    body: dict[str, Any] = {"name": person.replace("_", " ")}
    if consent:
        body["consent"] = CONSENT_JSON
    made = service.call("POST", f"/v1/collections/{collection}/subjects", json=body)
    assert made.status_code == 201, made.text
    subject_id: str = made.json()["id"]
    # LFW photos often show other people behind the subject: take the largest face.
    done = service.call(
        "POST",
        f"/v1/collections/{collection}/subjects/{subject_id}/faces",
        json={
            "images_base64": [b64(photo(faces_root, person, n)) for n in photos],
            "face": "largest",
        },
    )
    assert done.status_code == 201, done.text
    assert len(done.json()["templates"]) == len(photos) and done.json()["refused"] == []
    return subject_id


def identify(service: Service, collection: str, image: Path) -> list[dict[str, Any]]:
    got = service.call(
        "POST", f"/v1/collections/{collection}/identify", json={"image_base64": b64(image)}
    )
    assert got.status_code == 200, got.text
    faces: list[dict[str, Any]] = got.json()["faces"]
    assert faces
    return faces


def best_match(faces: list[dict[str, Any]]) -> str | None:
    """The subject id matched for the central (most similar) face, or None."""
    central = max(faces, key=lambda f: f["similarity"])
    return central["subject"]["id"] if central["verdict"] == "match" else None


def names_nobody(faces: list[dict[str, Any]], subject_id: str) -> None:
    for face in faces:
        assert face["verdict"] == "unknown" or face["subject"]["id"] != subject_id, face
        assert subject_id not in [c["subject_id"] for c in face["candidates"]], face


def raw_files(data_dir: Path) -> dict[str, bytes]:
    """The bytes of the database, its WAL and shared memory (those that exist)."""
    return {name: (data_dir / name).read_bytes() for name in DB_FILES if (data_dir / name).exists()}


def read_only(data_dir: Path) -> contextlib.closing[sqlite3.Connection]:
    uri = f"file:{data_dir / 'gallery.sqlite3'}?mode=ro"
    return contextlib.closing(sqlite3.connect(uri, uri=True))


def middle(data: Sliceable, size: int) -> Sliceable:
    """``size`` items from the middle of ``data``."""
    start = (len(data) - size) // 2
    return data[start : start + size]


def audit(service: Service, **params: Any) -> list[dict[str, Any]]:
    got = service.call("GET", "/v1/audit", params={"limit": 500, **params})
    assert got.status_code == 200, got.text
    items: list[dict[str, Any]] = got.json()["items"]
    return items


def audit_intact(service: Service) -> None:
    verified = service.call("GET", "/v1/audit/verify")
    assert verified.status_code == 200, verified.text
    assert verified.json() == {"intact": True, "first_broken_seq": None}


# --- erasure -------------------------------------------------------------------------------
# person -> the photos enrolled (good quality, frontal); photos 5 and 6 are probes.
ERASURE_PEOPLE = {"Colin_Powell": (2, 4), "Tony_Blair": (2, 3), "Hugo_Chavez": (1, 2)}


def test_erasure_leaves_nothing_behind(service: Service, faces_root: Path) -> None:
    make_collection(service, "erasure")
    ids = {p: enroll(service, "erasure", faces_root, p, ERASURE_PEOPLE[p]) for p in ERASURE_PEOPLE}
    victim = ids["Tony_Blair"]
    data_dir = service.data_dir

    # The victim's templates as stored: ciphertexts, each with the data key that sealed it.
    with read_only(data_dir) as conn:
        rows = conn.execute(
            "SELECT id, embedding, key_id FROM templates WHERE subject_id = ?", (victim,)
        ).fetchall()
    sealed = {template_id: bytes(blob) for template_id, blob, _ in rows}
    active_key = json.loads((data_dir / "keys" / "data-keys.json").read_text())["active"]
    assert len(sealed) == 2 and {key_id for _, _, key_id in rows} == {active_key}

    # ... and in plaintext, as the store opens them with the data key.
    store = open_store(Settings(data_dir=data_dir))
    try:
        plain = {t.id: t.embedding.astype("<f4").tobytes() for t in store.subject_templates(victim)}
    finally:
        store.close()
    assert plain.keys() == sealed.keys()
    for template_id, vector in plain.items():
        assert len(vector) == 128 * 4
        assert len(sealed[template_id]) == 12 + len(vector) + 16  # nonce + ciphertext + tag
        assert vector not in sealed[template_id]
        assert middle(vector, 32) not in sealed[template_id]
    for name, data in raw_files(data_dir).items():
        for vector in plain.values():
            assert vector not in data and middle(vector, 64) not in data, name

    # The ciphertexts are in the files now (so that their absence below means something).
    held = b"".join(raw_files(data_dir).values())
    assert all(blob in held for blob in sealed.values())

    assert service.call("DELETE", f"/v1/collections/erasure/subjects/{victim}").status_code == 204

    # No longer recognised, not even as a candidate.
    names_nobody(identify(service, "erasure", photo(faces_root, "Tony_Blair", 5)), victim)

    # No byte of the template left in the files, neither in plaintext nor sealed.
    files = raw_files(data_dir)
    assert "gallery.sqlite3" in files
    for name, data in files.items():
        for vector in plain.values():
            assert vector not in data and middle(vector, 64) not in data, name
        for blob in sealed.values():
            assert blob not in data and middle(blob, 32) not in data, name
    with read_only(data_dir) as conn:
        for table in ("templates", "consents", "template_images", "subjects"):
            column = "id" if table == "subjects" else "subject_id"
            count = conn.execute(f"SELECT count(*) FROM {table} WHERE {column} = ?", (victim,))
            assert count.fetchone()[0] == 0, table

    problem(
        service.call("GET", f"/v1/collections/erasure/subjects/{victim}/export"),
        404,
        "unknown-subject",
    )
    audit_intact(service)
    erasures = [r for r in audit(service, action="subject.erase") if victim in r["subject_ids"]]
    assert len(erasures) == 1
    counts = erasures[0]["detail"]
    assert erasures[0]["outcome"] == "ok" and erasures[0]["collection"] == "erasure"
    assert counts["subjects"] == 1 and counts["templates"] >= 1 and counts["consents"] == 1
    trail = json.dumps(audit(service))
    for vector in [*plain.values(), *sealed.values()]:
        assert middle(vector.hex(), 32) not in trail
        assert middle(base64.b64encode(vector).decode(), 24) not in trail

    # Everyone else is still recognised.
    for person in ("Colin_Powell", "Hugo_Chavez"):
        assert best_match(identify(service, "erasure", photo(faces_root, person, 5))) == ids[person]


def test_withdrawing_consent_erases(service: Service, faces_root: Path) -> None:
    make_collection(service, "withdraw")
    keep = enroll(service, "withdraw", faces_root, "Andre_Agassi", (1, 2))
    leaving = enroll(service, "withdraw", faces_root, "David_Beckham", (1, 4))
    base = "/v1/collections/withdraw/subjects"
    assert best_match(identify(service, "withdraw", photo(faces_root, "David_Beckham", 5))) == (
        leaving
    )

    withdrawn = service.call("POST", f"{base}/{leaving}/consent/withdraw")
    assert withdrawn.status_code == 200, withdrawn.text
    assert withdrawn.json() == {
        "subjects": 1,
        "templates": 2,
        "images": 0,
        "consents": 1,
        "events": 0,
    }
    problem(service.call("GET", f"{base}/{leaving}"), 404, "unknown-subject")
    problem(service.call("POST", f"{base}/{leaving}/consent/withdraw"), 404, "unknown-subject")
    names_nobody(identify(service, "withdraw", photo(faces_root, "David_Beckham", 5)), leaving)
    names_nobody(identify(service, "withdraw", photo(faces_root, "David_Beckham", 6)), leaving)
    assert best_match(identify(service, "withdraw", photo(faces_root, "Andre_Agassi", 4))) == keep
    entry = next(r for r in audit(service, action="consent.withdraw") if r["outcome"] == "ok")
    assert entry["subject_ids"] == [leaving] and entry["detail"]["consents"] == 1
    assert service.call("GET", "/v1/collections/withdraw").json()["subjects"] == 1


# --- subject access ------------------------------------------------------------------------
def test_export_gives_everything_held(service: Service, faces_root: Path) -> None:
    make_collection(service, "export")
    subject_id = enroll(service, "export", faces_root, "Gray_Davis", (1, 2))
    base = f"/v1/collections/export/subjects/{subject_id}"

    got = service.call("GET", f"{base}/export")
    assert got.status_code == 200, got.text
    export = got.json()
    assert export["format"].startswith("facegate-subject-export/")
    assert export["collection"]["name"] == "export"
    assert export["subject"]["id"] == subject_id
    assert export["subject"]["display_name"] == "Gray Davis"

    [consent] = export["consents"]
    assert consent["legal_basis"] == CONSENT_JSON["legal_basis"]
    assert consent["notice_version"] == CONSENT_JSON["notice_version"]
    assert consent["collected_by"] == f"key:{service.admin_key_id}"
    assert consent["withdrawn_at"] is None

    shown = service.call("GET", base).json()["templates"]
    assert [t["id"] for t in export["templates"]] == [t["id"] for t in shown]
    by_id = {t["id"]: t for t in shown}
    for template in export["templates"]:
        assert template["model_id"] == "sface" == by_id[template["id"]]["model_id"]
        assert template["quality"] == pytest.approx(by_id[template["id"]]["quality"], abs=1e-4)
        assert template["encrypted_with_key"]
        assert template["face_image_jpeg_base64"] is None  # the collection keeps no images

    def no_embedding(node: Any) -> None:
        if isinstance(node, dict):
            assert not {"embedding", "embeddings", "vector"} & set(node), node.keys()
            for value in node.values():
                no_embedding(value)
        elif isinstance(node, list):
            assert not (len(node) >= 128 and all(isinstance(v, float) for v in node))
            for value in node:
                no_embedding(value)

    no_embedding(export)
    actions = [r["action"] for r in export["audit"]]
    assert {"subject.create", "enroll"} <= set(actions)
    assert all(subject_id in r["subject_ids"] for r in export["audit"])

    # Subject access is for admins only; an unknown subject is a 404.
    reader = service.call("POST", "/v1/keys", json={"name": "reader", "scopes": ["read"]})
    assert reader.status_code == 201, reader.text
    secret = reader.json()["secret"]
    assert service.call("GET", base, secret=secret).status_code == 200
    problem(service.call("GET", f"{base}/export", secret=secret), 403, "insufficient-scope")
    problem(
        service.call("GET", "/v1/collections/export/subjects/nobody/export"),
        404,
        "unknown-subject",
    )
    # The export itself is audited, naming the subject.
    exports = audit(service, action="subject.export", collection="export")
    assert any(r["subject_ids"] == [subject_id] and r["outcome"] == "ok" for r in exports)


# --- opt-in face images --------------------------------------------------------------------
def test_store_images_opt_in(service: Service, faces_root: Path) -> None:
    assert make_collection(service, "photos", store_images=True)["store_images"] is True
    assert make_collection(service, "plain")["store_images"] is False
    with_image = enroll(service, "photos", faces_root, "Carlos_Menem", (1,))
    without = enroll(service, "plain", faces_root, "Bill_Gates", (1,))

    [template] = service.call("GET", f"/v1/collections/photos/subjects/{with_image}/export").json()[
        "templates"
    ]
    jpeg = base64.b64decode(template["face_image_jpeg_base64"])
    picture = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert picture is not None and min(picture.shape[:2]) > 20
    for name, data in raw_files(service.data_dir).items():
        assert middle(jpeg, 64) not in data, name  # sealed at rest
    with read_only(service.data_dir) as conn:
        stored = conn.execute(
            "SELECT key_id, length(data), data FROM template_images WHERE template_id = ?",
            (template["id"],),
        ).fetchall()
    assert len(stored) == 1 and stored[0][0] == template["encrypted_with_key"]
    assert stored[0][1] == 12 + len(jpeg) + 16  # nonce + ciphertext + tag
    # The sealed crop spans overflow pages: look for it in 64-byte pieces.
    pieces = [bytes(stored[0][2])[i : i + 64] for i in range(0, stored[0][1] - 63, 64)]
    held = b"".join(raw_files(service.data_dir).values())
    assert sum(piece in held for piece in pieces) > len(pieces) // 2

    [plain] = service.call("GET", f"/v1/collections/plain/subjects/{without}/export").json()[
        "templates"
    ]
    assert plain["face_image_jpeg_base64"] is None
    with read_only(service.data_dir) as conn:
        rows = conn.execute(
            "SELECT count(*) FROM template_images WHERE subject_id = ? OR template_id = ?",
            (without, plain["id"]),
        ).fetchone()[0]
    assert rows == 0

    # Erasure takes the image with the template.
    erased = service.call("POST", f"/v1/collections/photos/subjects/{with_image}/consent/withdraw")
    assert erased.status_code == 200 and erased.json()["images"] == 1, erased.text
    with read_only(service.data_dir) as conn:
        assert conn.execute("SELECT count(*) FROM template_images").fetchone()[0] == 0
    for name, data in raw_files(service.data_dir).items():
        assert middle(jpeg, 64) not in data, name
        assert not any(piece in data for piece in pieces), name


# --- ephemeral collections -----------------------------------------------------------------
def every_file(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_ephemeral_collection_is_memory_only(
    tmp_path_factory: pytest.TempPathFactory, faces_root: Path
) -> None:
    data_dir = tmp_path_factory.mktemp("ephemeral")
    person, name = "Colin_Powell", "Kiosk Visitor 5e1f"
    with serve(data_dir) as service:
        made = make_collection(service, "kiosk", ephemeral=True, ttl_seconds=600)
        assert made["ephemeral"] is True and made["ttl_seconds"] == 600
        created = service.call("POST", "/v1/collections/kiosk/subjects", json={"name": name})
        assert created.status_code == 201, created.text
        subject_id = created.json()["id"]
        done = service.call(  # no consent: nothing durable is kept to record it against
            "POST",
            f"/v1/collections/kiosk/subjects/{subject_id}/faces",
            json={"image_base64": b64(photo(faces_root, person, 1)), "face": "largest"},
        )
        assert done.status_code == 201, done.text
        assert best_match(identify(service, "kiosk", photo(faces_root, person, 2))) == subject_id
        assert service.call("GET", "/v1/collections/kiosk").json()["templates"] == 1

        gallery = service.state.recognizer("kiosk").gallery
        assert isinstance(gallery.store, MemoryStore)
        vectors = [
            t.embedding.astype("<f4").tobytes() for t in gallery.store.iter_templates("sface")
        ]
        assert len(vectors) == 1 and len(vectors[0]) == 128 * 4

        entries = audit(service, collection="kiosk")
        assert {"collection.create", "subject.create", "enroll", "identify"} <= {
            r["action"] for r in entries
        }
        assert all(r["subject_ids"] == [] for r in entries)
        assert subject_id not in json.dumps(audit(service))

        def nothing_on_disk() -> None:
            files = every_file(data_dir)
            assert data_dir / "gallery.sqlite3" in files
            for path, data in files.items():
                for vector in vectors:
                    assert vector not in data and middle(vector, 64) not in data, path
                assert subject_id.encode() not in data, path
                assert name.encode() not in data, path

        nothing_on_disk()
    nothing_on_disk()

    # A restart forgets every face; the collection itself is durable.
    with serve(data_dir) as service:
        shown = service.call("GET", "/v1/collections/kiosk")
        assert shown.status_code == 200, shown.text
        assert shown.json()["ephemeral"] is True and shown.json()["ttl_seconds"] == 600
        assert (shown.json()["subjects"], shown.json()["templates"]) == (0, 0)
        problem(
            service.call("GET", f"/v1/collections/kiosk/subjects/{subject_id}"),
            404,
            "unknown-subject",
        )
        problem(
            service.call(
                "POST",
                "/v1/collections/kiosk/identify",
                json={"image_base64": b64(photo(faces_root, person, 2))},
            ),
            409,
            "empty-gallery",
        )
        nothing_on_disk()


def test_ephemeral_templates_expire() -> None:
    ttl = 60.0
    start = datetime(2025, 1, 1, 12, tzinfo=UTC)
    now = [start]
    store = MemoryStore(
        Collection("kiosk", "sface", ephemeral=True, ttl_seconds=ttl), lambda: now[0]
    )

    def template(subject_id: str) -> Template:
        vector = np.full(128, 1 / np.sqrt(128), np.float32)
        return Template(f"t-{subject_id}", subject_id, "sface", vector, 0.9, created_at=now[0])

    visitor = Subject("visitor", "Visitor", collection_id="kiosk", created_at=now[0])
    store.add_subject(visitor, [template("visitor")])
    assert store.get_template("t-visitor") is not None
    assert store.template_counts() == {"sface": 1}

    # Created at 30 s, enrolled (as the API does: create, then add faces) at 50 s.
    now[0] = start + timedelta(seconds=30)
    late = Subject("late", "Late", collection_id="kiosk", created_at=now[0])
    store.add_subject(late, [])
    now[0] = start + timedelta(seconds=50)
    store.add_templates([template("late")])
    before = store.generation()

    now[0] = start + timedelta(seconds=ttl + 1)
    assert store.get_template("t-visitor") is None
    assert store.get_subject("visitor") is None
    assert store.generation() != before
    assert store.get_subject("late") is not None and store.get_template("t-late") is not None
    assert store.count_subjects() == 1 and store.template_counts() == {"sface": 1}

    # Past its own TTL (30 + 60 s) the late subject lives on with its template (50 + 60 s).
    now[0] = start + timedelta(seconds=30 + ttl + 5)
    assert store.get_subject("late") is not None
    after = store.generation()
    now[0] = start + timedelta(seconds=50 + ttl)
    assert store.get_template("t-late") is None and store.get_subject("late") is None
    assert store.generation() != after and store.count_subjects() == 0

    # A subject never given a face lives one TTL from its creation.
    waiting = Subject("waiting", "Waiting", collection_id="kiosk", created_at=now[0])
    store.add_subject(waiting, [])
    now[0] += timedelta(seconds=ttl - 1)
    assert store.get_subject("waiting") is not None
    now[0] += timedelta(seconds=1)
    assert store.get_subject("waiting") is None
    assert list(store.iter_templates("sface")) == []


@pytest.fixture(scope="module")
def visitor(service: Service, faces_root: Path) -> tuple[str, str]:
    """Ephemeral collection ``lobby``: one subject with one face; (subject id, template id)."""
    make_collection(service, "lobby", ephemeral=True, ttl_seconds=600)
    subject_id = enroll(service, "lobby", faces_root, "Colin_Powell", (4,), consent=False)
    [template] = service.call("GET", f"/v1/collections/lobby/subjects/{subject_id}").json()[
        "templates"
    ]
    return subject_id, template["id"]


def test_ephemeral_audit_names_no_one_whatever_the_action(
    service: Service, visitor: tuple[str, str]
) -> None:
    subject_id, template_id = visitor
    base = f"/v1/collections/lobby/subjects/{subject_id}"
    assert service.call("PATCH", base, json={"metadata": {"desk": 2}}).status_code == 200
    problem(service.call("POST", f"{base}/consent", json=CONSENT_JSON), 409, "ephemeral-collection")
    assert service.call("DELETE", f"{base}/faces/{template_id}").status_code == 204
    entries = audit(service, collection="lobby")
    assert {"subject.update", "template.delete"} <= {r["action"] for r in entries}
    assert all(r["subject_ids"] == [] for r in entries), entries
    assert subject_id not in json.dumps(entries) and template_id not in json.dumps(entries)


def test_patching_an_ephemeral_subject_shows_its_templates(
    service: Service, faces_root: Path
) -> None:
    make_collection(service, "desk", ephemeral=True, ttl_seconds=600)
    subject_id = enroll(service, "desk", faces_root, "Hugo_Chavez", (1,), consent=False)
    base = f"/v1/collections/desk/subjects/{subject_id}"
    held = service.call("GET", base).json()["templates"]
    assert len(held) == 1
    patched = service.call("PATCH", base, json={"name": "Renamed"})
    assert patched.status_code == 200, patched.text
    assert patched.json()["templates"] == held


def test_the_service_sweeps_on_its_schedule(tmp_path: Path, faces_root: Path) -> None:
    """The sweeper inside ``serve`` (every 0.2 s here) erases a subject past its idle limit
    (3 s) without anyone asking, and audits it; a subject in a collection without
    limits stays."""
    with serve(tmp_path / "g", retention={"sweep_interval_s": 0.2}) as running:
        make_collection(running, "brief", max_idle_days=3 / 86400)
        make_collection(running, "lasting", max_idle_days=None)
        brief = enroll(running, "brief", faces_root, "Hugo_Chavez", (1,))
        lasting = enroll(running, "lasting", faces_root, "Hugo_Chavez", (1,))
        deadline = datetime.now(UTC) + timedelta(seconds=30)
        while running.call("GET", f"/v1/collections/brief/subjects/{brief}").status_code != 404:
            assert datetime.now(UTC) < deadline, "the scheduled sweep never erased the subject"
            time.sleep(0.1)
        erased = audit(running, action="retention.erase")
        assert [e["subject_ids"] for e in erased] == [[brief]]
        assert erased[0]["detail"]["reason"] == "idle" and erased[0]["key_id"] is None
        assert running.call("GET", f"/v1/collections/lasting/subjects/{lasting}").status_code == 200
