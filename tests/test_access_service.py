"""The access endpoints over real HTTP: a uvicorn server, LFW people enrolled with consent
through the API, a settable clock on the service state, the events they publish (the
database and MQTT) and the audit trail."""

from __future__ import annotations

import base64
import json
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from paho.mqtt.client import Client, MQTTMessage
from paho.mqtt.enums import CallbackAPIVersion

from brokers import MOSQUITTO, MosquittoBroker, wait_until
from facegate.config import EventSettings, MqttSettings, ServiceSettings, Settings
from facegate.policy.access_document import parse_access_policy
from facegate.service.app import create_app
from facegate.service.state import BOOTSTRAP_KEY_FILE, ServiceState
from helpers import CONSENT_JSON, problem, running_server

BERLIN = ZoneInfo("Europe/Berlin")
MONDAY_NOON = datetime(2026, 3, 23, 12, 0, tzinfo=BERLIN)
MONDAY_2AM = datetime(2026, 3, 23, 2, 0, tzinfo=BERLIN)
RESIDENTS = {"Hugo_Chavez": "res-hc", "Colin_Powell": "res-cp"}  # person -> external id
CLEANER = ("Jennifer_Capriati", "cl-jc")
STRANGER = "Abel_Pacheco"  # never enrolled

POLICY: dict[str, Any] = {
    "doors": [
        {"name": "lobby", "collection": "staff", "min_quality": 0.2},
        {
            "name": "front-in",
            "collection": "staff",
            "camera": "cam-front",
            "zone": "building",
            "direction": "in",
            "anti_passback": True,
        },
        {"name": "front-out", "collection": "staff", "zone": "building", "direction": "out"},
        {"name": "vault", "collection": "staff", "liveness_required": True},
    ],
    "groups": [
        {"name": "residents", "members": list(RESIDENTS.values())},
        {"name": "cleaners", "members": [CLEANER[1]]},
    ],
    "schedules": [
        {
            "name": "hours",
            "timezone": "Europe/Berlin",
            "windows": [{"days": ["mon-sun"], "start": "06:00", "end": "23:00"}],
        },
        {
            "name": "evenings",
            "timezone": "Europe/Berlin",
            "windows": [{"days": ["mon-fri"], "start": "18:00", "end": "22:00"}],
        },
    ],
    "rules": [
        {
            "id": "residents",
            "effect": "allow",
            "doors": ["*"],
            "who": ["residents"],
            "schedule": "hours",
        },
        {"effect": "allow", "doors": ["lobby"], "who": ["cleaners"], "schedule": "evenings"},
        {"id": "exit", "effect": "allow", "doors": ["front-out"], "who": ["*"]},
    ],
}


@dataclass
class Clock:
    """The service's clock, moved by the tests."""

    now: datetime = MONDAY_NOON

    def __call__(self) -> datetime:
        return self.now.astimezone(UTC)


class Subscriber:
    """Records what arrives under ``facegate/doors/#``."""

    def __init__(self, host: str, port: int) -> None:
        self.messages: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        subscribed = threading.Event()
        self.client = Client(callback_api_version=CallbackAPIVersion.VERSION2)
        self.client.on_connect = lambda c, *_: c.subscribe("facegate/doors/#", qos=1)
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(host, port)
        self.client.loop_start()
        assert subscribed.wait(5), "the subscriber did not subscribe"

    def _on_message(self, client: Client, userdata: Any, message: MQTTMessage) -> None:
        with self._lock:
            self.messages.append((message.topic, json.loads(message.payload)))

    def received(self) -> list[tuple[str, dict[str, Any]]]:
        with self._lock:
            return list(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@dataclass
class Site:
    client: httpx.Client
    clock: Clock
    keys: dict[str, str]  # role -> secret
    subjects: dict[str, str]  # person -> subject id
    faces_root: Path
    subscriber: Subscriber | None
    policy_version: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def call(self, method: str, path: str, role: str = "admin", **kw: Any) -> httpx.Response:
        secret = self.keys[role]
        headers = {"Authorization": f"Bearer {secret}"} if secret else {}
        return self.client.request(method, path, headers=headers | kw.pop("headers", {}), **kw)

    def photo(self, person: str, n: int) -> bytes:
        return (self.faces_root / person / f"{person}_{n:04d}.jpg").read_bytes()

    def decide(
        self, door: str, person: str, n: int = 4, role: str = "door", **data: str
    ) -> httpx.Response:
        return self.call(
            "POST",
            f"/v1/access/{door}/decide",
            role,
            files={"image": ("probe.jpg", self.photo(person, n), "image/jpeg")},
            data=data,
        )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, faces_root: Path) -> Iterator[Site]:
    data_dir = tmp_path_factory.mktemp("access")
    broker = None
    if MOSQUITTO.is_file() or shutil.which("mosquitto"):
        broker = MosquittoBroker(tmp_path_factory.mktemp("mosquitto"))
        broker.start()
    settings = Settings(
        data_dir=data_dir,
        service=ServiceSettings(rate_limit=0),
        cameras=[{"name": "cam-front", "source": "rtsp://10.0.0.5/front", "collection": "staff"}],
        events=EventSettings(
            mqtt=None if broker is None else MqttSettings(host=broker.host, port=broker.port)
        ),
    )
    app = create_app(settings)
    state: ServiceState = app.state.facegate
    clock = Clock()
    state.clock = clock
    subscriber = None
    try:
        with (
            running_server(settings, app) as base,
            httpx.Client(base_url=base, timeout=120) as client,
        ):
            keys = {"admin": (data_dir / BOOTSTRAP_KEY_FILE).read_text().strip(), "none": ""}
            site = Site(client, clock, keys, {}, faces_root, None)
            for name in ("staff", "other"):
                assert site.call("POST", "/v1/collections", json={"name": name}).status_code == 201
            people = {**RESIDENTS, CLEANER[0]: CLEANER[1]}
            for person, external in people.items():
                made = site.call(
                    "POST",
                    "/v1/collections/staff/subjects",
                    json={
                        "name": person.replace("_", " "),
                        "external_id": external,
                        "consent": CONSENT_JSON,
                    },
                )
                assert made.status_code == 201, made.text
                site.subjects[person] = made.json()["id"]
                files = [
                    ("images", (f"{n}.jpg", site.photo(person, n), "image/jpeg")) for n in (1, 2, 3)
                ]
                done = site.call(
                    "POST",
                    f"/v1/collections/staff/subjects/{site.subjects[person]}/faces",
                    files=files,
                    data={"face": "largest"},
                )
                assert done.status_code == 201, done.text
            for role, scopes, collections in (
                ("reader", ["read"], None),
                ("door", ["recognize"], ["staff"]),
                ("elsewhere", ["recognize"], ["other"]),
                ("staff-admin", ["admin"], ["staff"]),
            ):
                made = site.call(
                    "POST",
                    "/v1/keys",
                    json={"name": role, "scopes": scopes, "collections": collections},
                )
                assert made.status_code == 201, made.text
                keys[role] = made.json()["secret"]
            put = site.call("PUT", "/v1/access/policy", json=POLICY)
            assert put.status_code == 200, put.text
            site.policy_version = put.json()["version"]
            if broker is not None:
                subscriber = Subscriber(broker.host, broker.port)
                site.subscriber = subscriber
            yield site
    finally:
        if subscriber is not None:
            subscriber.close()
        if broker is not None:
            broker.stop()


@pytest.fixture(autouse=True)
def noon(site: Site) -> Iterator[None]:
    site.clock.now = MONDAY_NOON
    yield
    site.clock.now = MONDAY_NOON


def access_events(site: Site, door: str) -> list[dict[str, Any]]:
    got = site.call("GET", "/v1/events", "reader", params={"kind": "access", "door": door})
    assert got.status_code == 200, got.text
    items: list[dict[str, Any]] = got.json()["items"]
    return items


# --- the policy document -------------------------------------------------------------------
def test_the_policy_is_stored_normalised_and_versioned(site: Site) -> None:
    got = site.call("GET", "/v1/access/policy", "reader")
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["version"] == site.policy_version >= 1
    assert body["policy"] == parse_access_policy(POLICY).to_document()
    assert body["updated_by"].startswith("key:")
    assert datetime.fromisoformat(body["updated_at"]) == MONDAY_NOON  # the state's clock


@pytest.mark.parametrize(
    ("change", "messages"),
    [
        (
            {"doors": [{"name": "lobby", "collection": "staff", "direction": "sideways"}]},
            ["doors[0].direction"],
        ),
        (
            {"rules": [{"effect": "allow", "doors": ["lobby"], "who": ["*"], "schedule": "naps"}]},
            ["rules[0].schedule: unknown schedule 'naps'"],
        ),
        (
            {"doors": [{"name": "gate", "collection": "visitors"}]},
            ["doors[0].collection: no collection named 'visitors'"],
        ),
        (
            {"doors": [{"name": "gate", "collection": "staff", "camera": "cam-back"}]},
            ["doors[0].camera: no camera named 'cam-back' in the settings (cameras: cam-front)"],
        ),
        (
            {"doors": [{"name": "gate", "collection": "other", "camera": "cam-front"}]},
            ["doors[0].camera: camera 'cam-front' identifies against collection 'staff'"],
        ),
        (
            {
                "schedules": [
                    {
                        "name": "s",
                        "timezone": "Europe/Berlin",
                        "windows": [{"days": ["mon"], "start": "25:00", "end": "26:00"}],
                    }
                ],
                "doors": [{"name": "gate", "collection": "Staff"}],
            },
            [
                "schedules[0].windows[0].start: expected a time of day HH:MM",
                "schedules[0].windows[0].end: expected a time of day HH:MM",
                "doors[0].collection: expected a collection name",
            ],
        ),
    ],
)
def test_a_bad_policy_is_refused_naming_the_fields(
    site: Site, change: dict[str, Any], messages: list[str]
) -> None:
    got = site.call("PUT", "/v1/access/policy", json={**POLICY, **change})
    body = problem(got, 422, "invalid-policy")
    for message in messages:
        assert message in body["detail"], body
        assert any(message in e for e in body["errors"]), body
    # Nothing changed.
    assert site.call("GET", "/v1/access/policy").json()["version"] == site.policy_version


def test_a_body_that_is_not_json_is_refused(site: Site) -> None:
    got = site.call(
        "PUT", "/v1/access/policy", content=b"doors = []", headers={"content-type": "text/plain"}
    )
    assert got.status_code == 422, got.text
    assert site.call("GET", "/v1/access/policy").json()["version"] == site.policy_version


# --- dry runs ---------------------------------------------------------------------------------
def policy_audit(site: Site) -> list[dict[str, Any]]:
    got = site.call("GET", "/v1/audit", params={"action": "access.policy.update", "limit": 500})
    assert got.status_code == 200, got.text
    items: list[dict[str, Any]] = got.json()["items"]
    return items


def test_a_dry_run_of_a_good_policy_answers_what_a_save_would_store_and_saves_nothing(
    site: Site,
) -> None:
    before, audited = site.call("GET", "/v1/access/policy").json(), policy_audit(site)
    garage = {**POLICY, "doors": [*POLICY["doors"], {"name": "garage", "collection": "staff"}]}
    got = site.call("PUT", "/v1/access/policy", params={"dry_run": "true"}, json=garage)
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["dry_run"] is True and before["dry_run"] is False
    assert body["policy"] == parse_access_policy(garage).to_document()  # normalised, as saved
    assert body["version"] == site.policy_version  # the version still in force
    assert site.call("GET", "/v1/access/policy").json() == before
    assert policy_audit(site) == audited  # nothing changed, nothing to audit


def test_a_dry_run_of_a_bad_policy_names_every_problem_and_saves_nothing(site: Site) -> None:
    before, audited = site.call("GET", "/v1/access/policy").json(), policy_audit(site)
    bad = {
        **POLICY,
        "doors": [
            {"name": "gate", "collection": "visitors"},  # checked against the installation
            {"name": "side", "collection": "staff", "direction": "sideways"},
        ],
    }
    got = site.call("PUT", "/v1/access/policy", params={"dry_run": "true"}, json=bad)
    body = problem(got, 422, "invalid-policy")
    for message in ("doors[0].collection: no collection named 'visitors'", "doors[1].direction"):
        assert any(message in e for e in body["errors"]), body
    assert site.call("GET", "/v1/access/policy").json() == before
    assert policy_audit(site) == audited


# --- decisions ------------------------------------------------------------------------------
def test_a_resident_in_schedule_is_allowed_and_the_door_hears_it(site: Site) -> None:
    got = site.decide("lobby", "Hugo_Chavez")
    assert got.status_code == 200, got.text
    answer = got.json()
    assert answer["allowed"] is True and answer["reason"] == "allowed"
    assert answer["subject_id"] == site.subjects["Hugo_Chavez"]
    assert answer["subject_name"] == "Hugo Chavez"
    assert (answer["rule"], answer["rule_id"]) == (0, "residents")
    assert answer["similarity"] >= answer["operating_point"]["threshold"]
    assert answer["operating_point"]["fmr"] == pytest.approx(1e-3)
    assert 0 < answer["quality"] <= 1 and answer["collection"] == "staff"
    assert datetime.fromisoformat(answer["at"]) == MONDAY_NOON
    assert "embedding" not in got.text

    events = access_events(site, "lobby")
    event = next(e for e in events if e["id"] == answer["event_id"])
    assert event["kind"] == "access" and event["reason"] == "allowed"
    assert event["subject_id"] == site.subjects["Hugo_Chavez"]
    assert event["camera"] == "api" and event["collection"] == "staff"
    assert datetime.fromisoformat(event["at"]) == MONDAY_NOON

    if site.subscriber is None:
        pytest.skip("mosquitto is not installed: the MQTT half of this test did not run")
    subscriber = site.subscriber
    topic = "facegate/doors/lobby/decisions"
    assert wait_until(
        lambda: any(p["id"] == answer["event_id"] for _, p in subscriber.received()),
        timeout=10,
    )
    sent = [(t, p) for t, p in subscriber.received() if p["id"] == answer["event_id"]]
    assert [t for t, _ in sent] == [topic]  # one message, on the door's topic
    assert sent[0][1]["allowed"] is True and sent[0][1]["door"] == "lobby"
    assert sent[0][1]["reason"] == "allowed"


def test_json_base64_works_too(site: Site) -> None:
    image = base64.b64encode(site.photo("Colin_Powell", 5)).decode()
    got = site.call("POST", "/v1/access/lobby/decide", "door", json={"image_base64": image})
    assert got.status_code == 200, got.text
    assert got.json()["reason"] == "allowed"
    assert got.json()["subject_id"] == site.subjects["Colin_Powell"]


def test_a_stranger_is_an_unknown_person(site: Site) -> None:
    got = site.decide("lobby", STRANGER, 2)
    assert got.status_code == 200, got.text
    answer = got.json()
    assert (answer["allowed"], answer["reason"]) == (False, "unknown_person")
    assert (
        answer["subject_id"] is None and answer["subject_name"] is None and answer["rule"] is None
    )
    event = next(e for e in access_events(site, "lobby") if e["id"] == answer["event_id"])
    assert event["reason"] == "unknown_person" and event["subject_id"] is None


def test_outside_the_schedule(site: Site) -> None:
    site.clock.now = MONDAY_2AM
    got = site.decide("lobby", "Colin_Powell")
    answer = got.json()
    assert (answer["allowed"], answer["reason"], answer["rule"]) == (False, "outside_schedule", 0)
    assert "Mon 2026-03-23 02:00 Europe/Berlin" in answer["detail"]
    assert datetime.fromisoformat(answer["at"]) == MONDAY_2AM
    # The cleaner: evenings only, and only at the lobby.
    assert site.decide("lobby", CLEANER[0]).json()["reason"] == "outside_schedule"
    site.clock.now = datetime(2026, 3, 23, 19, 0, tzinfo=BERLIN)
    assert site.decide("lobby", CLEANER[0]).json()["reason"] == "allowed"
    assert site.decide("front-in", CLEANER[0]).json()["reason"] == "not_in_group"


def test_anti_passback_through_the_api(site: Site) -> None:
    steps = [  # (door, photo, reason), a minute apart
        ("front-in", 4, "allowed"),
        ("front-in", 5, "anti_passback"),  # in again, without an exit
        ("front-out", 6, "allowed"),
        ("front-in", 7, "allowed"),
    ]
    sent = {}
    for minute, (door, n, reason) in enumerate(steps):
        site.clock.now = MONDAY_NOON + timedelta(minutes=minute)
        got = site.decide(door, "Colin_Powell", n)
        assert got.status_code == 200, got.text
        assert got.json()["reason"] == reason, (door, n, got.json())
        sent[got.json()["event_id"]] = reason
    recorded = {
        e["id"]: e["reason"]
        for door in ("front-in", "front-out")
        for e in access_events(site, door)
        if e["id"] in sent
    }
    assert recorded == sent
    # Presence is per person: another resident walks in.
    assert site.decide("front-in", "Hugo_Chavez", 5).json()["reason"] == "allowed"


def test_liveness_is_required_where_the_door_says(site: Site) -> None:
    for data in ({}, {"liveness_session": "not-a-passed-session"}):
        got = site.decide("vault", "Hugo_Chavez", **data)
        assert got.status_code == 200, got.text
        assert got.json()["reason"] == "liveness_required", got.json()
        assert got.json()["allowed"] is False


def test_no_face_is_a_problem_and_no_event(site: Site, faceless_jpg: Path) -> None:
    before = len(access_events(site, "lobby"))
    got = site.call(
        "POST",
        "/v1/access/lobby/decide",
        "door",
        files={"image": ("roof.jpg", faceless_jpg.read_bytes(), "image/jpeg")},
    )
    problem(got, 422, "no-face")
    assert len(access_events(site, "lobby")) == before


def test_unknown_doors_and_bad_requests(site: Site) -> None:
    body = problem(site.decide("back-door", "Hugo_Chavez"), 404, "unknown-door")
    assert "front-in" in body["detail"]
    problem(site.decide("a/b", "Hugo_Chavez"), 404, "not-found")
    problem(site.decide("lobby", "Hugo_Chavez", color="red"), 422, "validation-error")
    got = site.call("POST", "/v1/access/lobby/decide", "door", json={})
    problem(got, 422, "validation-error")


# --- keys and scopes ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path", "role", "status", "slug"),
    [
        ("GET", "/v1/access/policy", "none", 401, "unauthorized"),
        ("GET", "/v1/access/policy", "door", 403, "insufficient-scope"),  # recognize only
        ("GET", "/v1/access/policy", "staff-admin", 403, "collection-forbidden"),
        ("PUT", "/v1/access/policy", "reader", 403, "insufficient-scope"),
        ("PUT", "/v1/access/policy", "door", 403, "insufficient-scope"),
        ("PUT", "/v1/access/policy", "staff-admin", 403, "collection-forbidden"),
        ("PUT", "/v1/access/policy?dry_run=true", "reader", 403, "insufficient-scope"),
        ("PUT", "/v1/access/policy?dry_run=true", "staff-admin", 403, "collection-forbidden"),
        ("POST", "/v1/access/lobby/decide", "reader", 403, "insufficient-scope"),
        ("POST", "/v1/access/lobby/decide", "elsewhere", 403, "collection-forbidden"),
        ("POST", "/v1/access/lobby/decide", "none", 401, "unauthorized"),
    ],
)
def test_scopes(site: Site, method: str, path: str, role: str, status: int, slug: str) -> None:
    kw: dict[str, Any] = {}
    if method == "PUT":
        kw["json"] = POLICY
    elif method == "POST":
        kw["files"] = {"image": ("p.jpg", site.photo("Hugo_Chavez", 4), "image/jpeg")}
    problem(site.call(method, path, role, **kw), status, slug)
    assert site.call("GET", "/v1/access/policy").json()["version"] == site.policy_version


def test_a_recognize_key_decides_and_an_admin_key_too(site: Site) -> None:
    for role in ("door", "admin", "staff-admin"):
        got = site.decide("lobby", "Hugo_Chavez", 6, role=role)
        assert got.status_code == 200, (role, got.text)
        assert got.json()["reason"] == "allowed"


# --- the audit trail ------------------------------------------------------------------------
def test_every_decision_is_audited_and_the_chain_verifies(site: Site) -> None:
    bad = site.call("PUT", "/v1/access/policy", json={"doors": [{"name": "x"}]})
    problem(bad, 422, "invalid-policy")
    answer = site.decide("lobby", STRANGER, 3).json()
    records = site.call(
        "GET", "/v1/audit", params={"action": "access.decide", "limit": 500}
    ).json()["items"]
    newest = records[0]
    assert newest["detail"]["door"] == "lobby" and newest["detail"]["reason"] == "unknown_person"
    assert newest["detail"]["event"] == answer["event_id"] and newest["collection"] == "staff"
    assert newest["outcome"] == "unknown_person" and newest["subject_ids"] == []
    reasons = {r["detail"].get("reason") for r in records}
    assert {"allowed", "unknown_person"} <= reasons
    assert "embedding" not in json.dumps(records)
    updates = site.call("GET", "/v1/audit", params={"action": "access.policy.update"}).json()
    assert {"ok", "invalid_policy"} <= {r["outcome"] for r in updates["items"]}
    verified = site.call("GET", "/v1/audit/verify")
    assert verified.json() == {"intact": True, "first_broken_seq": None}


def test_openapi_describes_the_access_operations(site: Site) -> None:
    spec = site.client.get("/openapi.json").json()
    decide = spec["paths"]["/v1/access/{door}/decide"]["post"]
    assert {"multipart/form-data", "application/json"} <= set(decide["requestBody"]["content"])
    assert {"get", "put"} <= set(spec["paths"]["/v1/access/policy"])
