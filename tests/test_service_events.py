"""GET /v1/events, GET /v1/events/{id}/snapshot and GET /v1/cameras over real HTTP: events
written into the store as the camera workers write them, status files as their workers
write them, a real uvicorn server and httpx as the client."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest

from facegate.config import ServiceSettings, Settings
from facegate.events.camera_status import (
    STALE_AFTER_S,
    CameraStatus,
    status_path,
    write_status,
)
from facegate.gallery.records import Event, new_id
from facegate.gallery.sql_store import SqlStore
from facegate.service.app import create_app
from facegate.service.state import BOOTSTRAP_KEY_FILE
from helpers import CONSENT_JSON, problem, running_server

PASSWORD = "s3cret-pw"
DOOR_SOURCE = f"rtsp://u:{PASSWORD}@127.0.0.1:8554/x"
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@dataclass
class Site:
    base: str
    client: httpx.Client
    store: SqlStore
    settings: Settings
    admin: str
    keys: dict[str, str]  # role -> secret
    subjects: dict[str, str]  # name -> id
    events: list[Event]  # as written, every one

    def get(self, path: str, key: str | None = "admin", **params: Any) -> httpx.Response:
        secret = self.admin if key == "admin" else self.keys.get(key or "", None)
        headers = {"Authorization": f"Bearer {secret}"} if secret else {}
        return self.client.get(path, headers=headers, params=params)

    def ids(self, path: str = "/v1/events", key: str = "admin", **params: Any) -> list[str]:
        got = self.get(path, key, **params)
        assert got.status_code == 200, got.text
        return [item["id"] for item in got.json()["items"]]


def newest_first(events: list[Event]) -> list[str]:
    return [e.id for e in sorted(events, key=lambda e: (-e.at.timestamp(), e.id))]


def jpeg(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    ok, data = cv2.imencode(".jpg", pixels)
    assert ok
    return data.tobytes()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    data_dir = tmp_path_factory.mktemp("events")
    settings = Settings(
        data_dir=data_dir,
        service=ServiceSettings(rate_limit=0),
        cameras=[
            {"name": "door", "source": DOOR_SOURCE, "collection": "lobby"},
            {
                "name": "gate",
                "source": "rtsp://cam:pw-gate-77@10.0.0.9/main",
                "collection": "lobby",
            },
            {"name": "yard", "source": "rtsp://10.0.0.10/yard", "collection": "vault"},
            {"name": "back", "source": "0", "collection": "other"},
        ],
    )
    app = create_app(settings)
    with running_server(settings, app) as base, httpx.Client(base_url=base, timeout=60) as client:
        admin = (data_dir / BOOTSTRAP_KEY_FILE).read_text().strip()
        auth = {"Authorization": f"Bearer {admin}"}
        for name in ("lobby", "vault", "other"):
            made = client.post("/v1/collections", json={"name": name}, headers=auth)
            assert made.status_code == 201, made.text
        subjects = {}
        for name, collection in (("Ada", "lobby"), ("Bob", "vault")):
            made = client.post(
                f"/v1/collections/{collection}/subjects",
                json={"name": name, "consent": CONSENT_JSON},
                headers=auth,
            )
            assert made.status_code == 201, made.text
            subjects[name] = made.json()["id"]
        keys = {}
        for role, scopes, collections in (
            ("reader", ["read"], None),
            ("lobby", ["read"], ["lobby"]),
            ("two", ["read"], ["lobby", "vault"]),
            ("enroller", ["enroll", "recognize"], None),
            ("lobby_admin", ["admin"], ["lobby"]),
        ):
            made = client.post(
                "/v1/keys",
                json={"name": role, "scopes": scopes, "collections": collections},
                headers=auth,
            )
            assert made.status_code == 201, made.text
            keys[role] = made.json()["secret"]

        store: SqlStore = app.state.facegate.store
        ada, bob = subjects["Ada"], subjects["Bob"]
        plan: list[tuple[int, str, str | None, str | None, str | None, bytes | None]] = [
            # seconds after T0, kind, camera, collection, subject, snapshot
            (0, "track_started", "door", "lobby", None, None),
            (1, "identified", "door", "lobby", ada, jpeg(1)),
            (2, "track_ended", "door", "lobby", None, None),
            (3, "unknown", "gate", "lobby", None, jpeg(2)),
            (3, "identified", "yard", "vault", bob, None),  # same instant as the one above
            (3, "unknown", "back", "other", None, None),  # and again
            (4, "identified", "yard", "vault", bob, jpeg(3)),
            (5, "unknown", "back", "other", None, None),
            (6, "unknown", "door", "lobby", None, None),
            (7, "track_started", "yard", "vault", None, None),
            (8, "unknown", None, None, None, None),  # no collection: unrestricted keys only
            (9, "identified", "door", "lobby", ada, None),
        ]
        written = []
        for n, (seconds, kind, camera, where, subject, snapshot) in enumerate(plan):
            event = Event(
                new_id(),
                T0 + timedelta(seconds=seconds),
                kind,
                camera,
                where,
                subject,
                similarity=0.61 if subject else None,
                quality=0.8,
                snapshot=snapshot,
                track_id=n,
                reason="above threshold" if subject else None,
            )
            store.add_event(event)
            written.append(event)
        yield Site(base, client, store, settings, admin, keys, subjects, written)


# --- listing ---------------------------------------------------------------------------------
def test_every_event_newest_first_without_snapshot_bytes(site: Site) -> None:
    got = site.get("/v1/events")
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["limit"] == 100 and body["offset"] == 0
    assert [i["id"] for i in body["items"]] == newest_first(site.events)
    by_id = {e.id: e for e in site.events}
    for item in body["items"]:
        event = by_id[item["id"]]
        assert item["has_snapshot"] is (event.snapshot is not None)
        assert "snapshot" not in item
        assert item["collection"] == event.collection_id and item["kind"] == event.kind
        assert datetime.fromisoformat(item["at"]) == event.at
    identified = next(i for i in body["items"] if i["subject_id"] == site.subjects["Ada"])
    assert identified["subject_name"] == "Ada" and identified["similarity"] == pytest.approx(0.61)
    assert identified["reason"] == "above threshold"
    assert next(i for i in body["items"] if i["subject_id"] is None)["subject_name"] is None


def test_filters(site: Site) -> None:
    def expect(**where: Any) -> list[str]:
        keep = [
            e
            for e in site.events
            if all(getattr(e, field) == value for field, value in where.items())
        ]
        return newest_first(keep)

    assert site.ids(camera="door") == expect(camera="door")
    assert site.ids(subject_id=site.subjects["Bob"]) == expect(subject_id=site.subjects["Bob"])
    assert site.ids(kind="identified") == expect(kind="identified")
    assert site.ids(collection="vault") == expect(collection_id="vault")
    assert site.ids(collection="nowhere") == []
    assert site.ids(camera="door", kind="identified") == expect(camera="door", kind="identified")
    # since inclusive, until exclusive: [T0+3s, T0+5s) holds the three at 3 s and the one at 4 s
    at3, at5 = T0 + timedelta(seconds=3), T0 + timedelta(seconds=5)
    window = newest_first([e for e in site.events if at3 <= e.at < at5])
    assert len(window) == 4
    assert site.ids(since=at3.isoformat(), until=at5.isoformat()) == window
    # the same instants in another offset, and without one (taken as UTC)
    assert site.ids(since="2024-05-01T14:00:03+02:00", until="2024-05-01T14:00:05+02:00") == (
        window
    )
    assert site.ids(since="2024-05-01T12:00:03", until="2024-05-01T12:00:05") == window
    assert site.ids(since=(T0 + timedelta(seconds=9)).isoformat()) == expect(track_id=11)
    assert site.ids(until=T0.isoformat()) == []
    assert site.ids(since=at5.isoformat(), until=at3.isoformat()) == []


@pytest.mark.parametrize("key", ["admin", "two"])
def test_pages_are_stable_and_newest_first(site: Site, key: str) -> None:
    """Page by page, the listing is the whole listing: no event skipped or repeated, ties
    on the time included (for ``two``, the events of its two collections merged)."""
    whole = site.ids(key=key, limit=500)
    if key == "two":
        visible = [e for e in site.events if e.collection_id in ("lobby", "vault")]
        assert whole == newest_first(visible)
    for size in (1, 2, 3, 5):
        pages: list[str] = []
        for offset in range(0, len(whole) + size, size):
            page = site.ids(key=key, limit=size, offset=offset)
            assert len(page) <= size
            pages += page
        assert pages == whole, size
        assert site.ids(key=key, limit=size, offset=3) == whole[3 : 3 + size]  # again: same page
    assert site.ids(key=key, offset=len(whole)) == []
    assert site.ids(key=key, offset=2**63 - 1) == []
    assert (
        site.ids(key=key, kind="identified", limit=2, offset=1)
        == [i for i in whole if i in set(site.ids(key=key, kind="identified"))][1:3]
    )


def test_a_collection_restricted_key_sees_only_its_collections(site: Site) -> None:
    lobby = newest_first([e for e in site.events if e.collection_id == "lobby"])
    assert site.ids(key="lobby") == lobby
    assert site.ids(key="lobby", collection="lobby") == lobby
    assert site.ids(key="lobby", subject_id=site.subjects["Bob"]) == []
    forbidden = problem(
        site.get("/v1/events", "lobby", collection="vault"), 403, "collection-forbidden"
    )
    assert forbidden["collection"] == "vault"
    problem(site.get("/v1/events", "two", collection="other"), 403, "collection-forbidden")
    assert site.ids(key="two", collection="vault") == newest_first(
        [e for e in site.events if e.collection_id == "vault"]
    )
    cameras = site.get("/v1/cameras", "lobby").json()["items"]
    assert [c["name"] for c in cameras] == ["door", "gate"]
    assert [c["name"] for c in site.get("/v1/cameras", "two").json()["items"]] == [
        "door",
        "gate",
        "yard",
    ]


def test_scopes_and_keys(site: Site) -> None:
    for path in ("/v1/events", "/v1/cameras"):
        problem(site.get(path, "enroller"), 403, "insufficient-scope")
        problem(site.get(path, None), 401, "unauthorized")
        assert site.get(path, "reader").status_code == 200
        assert site.get(path, "lobby_admin").status_code == 200  # admin implies read
    problem(site.client.get("/v1/events", headers={"X-API-Key": "fg_nope"}), 401, "unauthorized")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"since": "garbage"}, "since"),
        ({"until": "2024-13-01"}, "until"),
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"offset": -1}, "offset"),
        ({"offset": 2**63}, "offset"),
        ({"kind": "bogus"}, "kind"),
        ({"since": "0001-01-01T00:00:00+01:00"}, "since"),  # before year 1 in UTC
        ({"until": "9999-12-31T23:59:59-01:00"}, "until"),  # after year 9999 in UTC
    ],
)
def test_bad_input_is_a_validation_problem(site: Site, params: dict[str, Any], field: str) -> None:
    body = problem(site.get("/v1/events", **params), 422, "validation-error")
    assert field in body["detail"]


# --- snapshots -------------------------------------------------------------------------------
def test_the_snapshot_is_the_exact_jpeg_for_admins_only(site: Site) -> None:
    with_snapshot = [e for e in site.events if e.snapshot is not None]
    for event in with_snapshot:
        got = site.get(f"/v1/events/{event.id}/snapshot")
        assert got.status_code == 200, got.text
        assert got.headers["content-type"] == "image/jpeg"
        assert got.headers["cache-control"] == "no-store"
        assert got.content == event.snapshot
    ada = next(e for e in with_snapshot if e.subject_id == site.subjects["Ada"])
    path = f"/v1/events/{ada.id}/snapshot"
    problem(site.get(path, "reader"), 403, "insufficient-scope")
    problem(site.get(path, "two"), 403, "insufficient-scope")
    problem(site.get(path, None), 401, "unauthorized")
    assert site.get(path, "lobby_admin").content == ada.snapshot
    # Another collection's event is not revealed to an admin limited to lobby.
    bob = next(e for e in with_snapshot if e.collection_id == "vault")
    problem(site.get(f"/v1/events/{bob.id}/snapshot", "lobby_admin"), 404, "unknown-event")
    bare = next(e for e in site.events if e.snapshot is None and e.collection_id == "lobby")
    problem(site.get(f"/v1/events/{bare.id}/snapshot"), 404, "no-snapshot")
    problem(site.get("/v1/events/nope/snapshot"), 404, "unknown-event")

    records = site.get("/v1/audit", action="event.snapshot", limit=500).json()["items"]
    ok = [r for r in records if r["outcome"] == "ok" and r["detail"]["event"] == ada.id]
    assert ok and ok[0]["subject_ids"] == [site.subjects["Ada"]] and ok[0]["collection"] == "lobby"
    outcomes = {r["outcome"] for r in records}
    assert {"ok", "unknown_event", "no_snapshot"} <= outcomes
    assert site.get("/v1/audit/verify").json()["intact"] is True


def test_openapi_describes_the_new_operations(site: Site) -> None:
    spec = site.client.get("/openapi.json").json()
    listing = spec["paths"]["/v1/events"]["get"]
    kind = next(p for p in listing["parameters"] if p["name"] == "kind")
    assert "#/components/schemas/EventKind" in json.dumps(kind)
    assert set(spec["components"]["schemas"]["EventKind"]["enum"]) == {
        "track_started",
        "identified",
        "unknown",
        "track_ended",
        "access",
        "quota",
    }
    assert {"door", "quota"} <= {p["name"] for p in listing["parameters"]}
    snapshot = spec["paths"]["/v1/events/{event_id}/snapshot"]["get"]
    assert "image/jpeg" in snapshot["responses"]["200"]["content"]
    assert "/v1/cameras" in spec["paths"]


# --- cameras ---------------------------------------------------------------------------------
def test_cameras_with_their_status_and_no_password(site: Site) -> None:
    directory = site.settings.camera_status_dir
    write_status(
        directory,
        CameraStatus(
            camera="gate",
            source="rtsp://cam:***@10.0.0.9/main",
            collection="lobby",
            state="streaming",
        ),
    )
    stale = json.loads(status_path(directory, "gate").read_text())
    old = datetime.now(UTC) - timedelta(seconds=STALE_AFTER_S + 30)
    stale["updated_at"] = old.isoformat()
    status_path(directory, "gate").write_text(json.dumps(stale))
    # A worker's report with an error that quotes the URL, password and all.
    write_status(
        directory,
        CameraStatus(
            camera="door",
            source="rtsp://u:***@127.0.0.1:8554/x",
            collection="lobby",
            state="streaming",
            fps=14.5,
            decoded=900,
            analysed=870,
            skipped=20,
            dropped=10,
            reconnects=2,
            active_tracks=1,
            restarts=1,
            events={"identified": 3, "unknown": 1},
            sinks=[{"name": "database", "delivered": 4, "last_error": None}],
            last_error=f"OSError: cannot open {DOOR_SOURCE} (timeout); password {PASSWORD}",
        ),
    )
    got = site.get("/v1/cameras", "reader")
    assert got.status_code == 200, got.text
    assert PASSWORD not in got.text and "pw-gate-77" not in got.text
    cameras = {c["name"]: c for c in got.json()["items"]}
    assert list(cameras) == ["door", "gate", "yard", "back"]  # as configured

    door = cameras["door"]
    assert door["source"] == "rtsp://u:***@127.0.0.1:8554/x" and door["collection"] == "lobby"
    assert door["state"] == "streaming" and door["fps"] == pytest.approx(14.5)
    assert (door["decoded"], door["analysed"], door["skipped"], door["dropped"]) == (
        900,
        870,
        20,
        10,
    )
    assert (door["reconnects"], door["active_tracks"], door["restarts"]) == (2, 1, 1)
    assert door["events"] == {"identified": 3, "unknown": 1}
    assert door["sinks"] == [{"name": "database", "delivered": 4, "last_error": None}]
    assert "rtsp://u:***@127.0.0.1:8554/x" in door["last_error"]
    assert abs(datetime.fromisoformat(door["updated_at"]) - datetime.now(UTC)) < timedelta(
        seconds=60
    )

    assert cameras["gate"]["state"] == "stale"
    assert cameras["gate"]["source"] == "rtsp://cam:***@10.0.0.9/main"
    for name in ("yard", "back"):  # never reported: starting, the configured source masked
        assert cameras[name]["state"] == "starting" and cameras[name]["updated_at"] is None
        assert cameras[name]["decoded"] == 0 and cameras[name]["events"] == {}
    assert cameras["yard"]["source"] == "rtsp://10.0.0.10/yard"
    assert cameras["back"]["source"] == "0"


def test_a_camera_without_a_status_file_is_starting_and_masked(site: Site) -> None:
    status_path(site.settings.camera_status_dir, "door").unlink(missing_ok=True)
    door = site.get("/v1/cameras").json()["items"][0]
    assert door["name"] == "door" and door["state"] == "starting"
    assert door["source"] == "rtsp://u:***@127.0.0.1:8554/x"
    assert PASSWORD not in json.dumps(door)


# --- erasure ---------------------------------------------------------------------------------
def test_erasing_a_subject_removes_their_events(site: Site, faces_root: Path) -> None:
    auth = {"Authorization": f"Bearer {site.admin}"}
    made = site.client.post(
        "/v1/collections/lobby/subjects",
        json={"name": "Colin Powell", "consent": CONSENT_JSON},
        headers=auth,
    )
    assert made.status_code == 201, made.text
    subject_id = made.json()["id"]
    photo = faces_root / "Colin_Powell" / "Colin_Powell_0001.jpg"
    enrolled = site.client.post(
        f"/v1/collections/lobby/subjects/{subject_id}/faces",
        files={"images": (photo.name, photo.read_bytes(), "image/jpeg")},
        data={"face": "largest"},
        headers=auth,
    )
    assert enrolled.status_code == 201, enrolled.text
    theirs = [
        Event(
            new_id(),
            T0 + timedelta(minutes=m),
            "identified",
            "door",
            "lobby",
            subject_id,
            similarity=0.7,
            snapshot=jpeg(10 + m),
        )
        for m in (1, 2)
    ]
    for event in theirs:
        site.store.add_event(event)
    listed = site.ids(subject_id=subject_id)
    assert listed == newest_first(theirs)
    assert site.get("/v1/events", subject_id=subject_id).json()["items"][0]["subject_name"] == (
        "Colin Powell"
    )
    others = site.ids(limit=500)

    gone = site.client.delete(f"/v1/collections/lobby/subjects/{subject_id}", headers=auth)
    assert gone.status_code == 204, gone.text
    assert site.ids(subject_id=subject_id) == []
    assert site.ids(limit=500) == [i for i in others if i not in listed]
    for event in theirs:
        problem(site.get(f"/v1/events/{event.id}/snapshot"), 404, "unknown-event")
