"""PATCH /v1/collections/{c} over real HTTP: a new operating point is used by the very next
identify, in this process and in a second service on the same database; bad values are
refused and change nothing; only admins of that collection may; every change is audited.
Real photos, real models."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from facegate.config import ServiceSettings, Settings
from facegate.policy.thresholds import operating_point
from facegate.service.app import create_app
from facegate.service.state import BOOTSTRAP_KEY_FILE, ServiceState
from helpers import CONSENT_JSON, lfw_photo, problem, running_server

PERSON = "Colin_Powell"
STRICT = operating_point("sface", 1e-4).threshold
DEFAULT = operating_point("sface", 1e-3).threshold


@dataclass
class Service:
    client: httpx.Client
    state: ServiceState
    keys: dict[str, str]  # role -> secret
    key_ids: dict[str, str]  # role -> key id
    faces_root: Path
    subject_id: str = ""

    def call(self, method: str, path: str, role: str = "admin", **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.keys[role]}"}
        return self.client.request(method, path, headers=headers, **kw)

    def patch(self, collection: str, body: Any, role: str = "admin") -> httpx.Response:
        return self.call("PATCH", f"/v1/collections/{collection}", role, json=body)

    def collection(self, name: str) -> dict[str, Any]:
        got = self.call("GET", f"/v1/collections/{name}")
        assert got.status_code == 200, got.text
        body: dict[str, Any] = got.json()
        return body

    def audit(self) -> list[dict[str, Any]]:
        got = self.call("GET", "/v1/audit", params={"action": "collection.update", "limit": 500})
        assert got.status_code == 200, got.text
        items: list[dict[str, Any]] = got.json()["items"]
        return items


def identify(client: httpx.Client, secret: str, faces_root: Path, n: int = 2) -> dict[str, Any]:
    photo = lfw_photo(faces_root, PERSON, n)
    got = client.post(
        "/v1/collections/lobby/identify",
        headers={"Authorization": f"Bearer {secret}"},
        files={"image": (photo.name, photo.read_bytes(), "image/jpeg")},
    )
    assert got.status_code == 200, got.text
    body: dict[str, Any] = got.json()
    return body


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        data_dir=tmp_path_factory.mktemp("collection-update"),
        service=ServiceSettings(rate_limit=0),
    )


@pytest.fixture(scope="module")
def service(settings: Settings, faces_root: Path) -> Iterator[Service]:
    app = create_app(settings)
    with running_server(settings, app) as base, httpx.Client(base_url=base, timeout=120) as client:
        admin = (settings.data_dir / BOOTSTRAP_KEY_FILE).read_text().strip()
        running = Service(client, app.state.facegate, {"admin": admin}, {}, faces_root)
        for body in (
            {"name": "lobby"},
            {"name": "annex"},
            {"name": "kiosk", "ephemeral": True, "ttl_seconds": 600},
        ):
            made = running.call("POST", "/v1/collections", json=body)
            assert made.status_code == 201, made.text
        for role, scopes, collections in (
            ("staff", ["read", "recognize", "enroll"], None),  # everything but admin
            ("lobby-admin", ["admin"], ["lobby"]),
        ):
            made = running.call(
                "POST",
                "/v1/keys",
                json={"name": role, "scopes": scopes, "collections": collections},
            )
            assert made.status_code == 201, made.text
            running.keys[role] = made.json()["secret"]
            running.key_ids[role] = made.json()["id"]
        subject = running.call(
            "POST",
            "/v1/collections/lobby/subjects",
            json={"name": "Colin Powell", "consent": CONSENT_JSON},
        )
        assert subject.status_code == 201, subject.text
        running.subject_id = subject.json()["id"]
        enroll(running, 1)
        yield running


def enroll(service: Service, n: int) -> str:
    photo = lfw_photo(service.faces_root, PERSON, n)
    done = service.call(
        "POST",
        f"/v1/collections/lobby/subjects/{service.subject_id}/faces",
        files={"image": (photo.name, photo.read_bytes(), "image/jpeg")},
    )
    assert done.status_code == 201, done.text
    template_id: str = done.json()["templates"][0]["id"]
    return template_id


@pytest.fixture(autouse=True)
def default_lobby(service: Service) -> Iterator[None]:
    """Every test starts, and leaves, the lobby as created."""
    yield
    restored = service.patch(
        "lobby",
        {"fmr": 1e-3, "store_images": False, "max_idle_days": 1095, "max_template_age_days": None},
    )
    assert restored.status_code == 200, restored.text


def test_a_new_operating_point_is_used_by_the_next_identify(service: Service) -> None:
    before = identify(service.client, service.keys["staff"], service.faces_root)
    assert before["operating_point"] == {"model_id": "sface", "fmr": 1e-3, "threshold": DEFAULT}

    changed = service.patch("lobby", {"fmr": 1e-4})
    assert changed.status_code == 200, changed.text
    assert changed.json()["fmr"] == 1e-4 and changed.json()["threshold"] == STRICT

    after = identify(service.client, service.keys["staff"], service.faces_root)
    assert after["operating_point"] == {"model_id": "sface", "fmr": 1e-4, "threshold": STRICT}
    assert service.collection("lobby")["threshold"] == STRICT


def test_a_second_service_on_the_same_database_follows_at_once(
    service: Service, settings: Settings
) -> None:
    """A replica whose recognizer is already loaded reads the change at its next request
    (the store's generation counter tells it something changed)."""
    replica = create_app(settings)
    with running_server(settings, replica) as base, httpx.Client(base_url=base, timeout=120) as c:
        assert (
            identify(c, service.keys["staff"], service.faces_root)["operating_point"]["fmr"] == 1e-3
        )
        assert service.patch("lobby", {"fmr": 1e-2}).status_code == 200
        point = identify(c, service.keys["staff"], service.faces_root)["operating_point"]
        assert point["fmr"] == 1e-2
        assert point["threshold"] == operating_point("sface", 1e-2).threshold


def test_keeping_images_applies_to_the_next_enrollment(service: Service) -> None:
    store = service.state.store
    without = enroll(service, 3)
    assert store.get_template_image(without) is None
    assert service.patch("lobby", {"store_images": True}).json()["store_images"] is True
    kept = enroll(service, 4)
    assert store.get_template_image(kept) is not None  # a face crop, encrypted at rest


def test_null_lifts_a_retention_limit_and_fields_left_out_stay(service: Service) -> None:
    changed = service.patch("lobby", {"max_idle_days": None, "max_template_age_days": 90})
    assert changed.status_code == 200, changed.text
    shown = service.collection("lobby")
    assert shown["max_idle_days"] is None and shown["max_template_age_days"] == 90
    assert shown["fmr"] == 1e-3 and shown["store_images"] is False  # not in the request


@pytest.mark.parametrize(
    ("collection", "body", "field"),
    [
        ("lobby", {"fmr": 0.5}, "fmr must be one of 0.01, 0.001, 0.0001"),
        ("lobby", {"fmr": None}, "fmr cannot be null"),
        ("lobby", {"store_images": None}, "store_images cannot be null"),
        ("lobby", {}, "give at least one of"),
        ("lobby", {"max_idle_days": 0}, "max_idle_days"),
        ("lobby", {"max_template_age_days": 40000}, "max_template_age_days"),
        ("lobby", {"model_id": "dlib"}, "model_id"),  # pinned at creation
        ("kiosk", {"ttl_seconds": 60}, "ttl_seconds"),  # fixed at creation too
        ("kiosk", {"store_images": True}, "an ephemeral collection cannot store images"),
    ],
)
def test_bad_values_are_refused_and_change_nothing(
    service: Service, collection: str, body: dict[str, Any], field: str
) -> None:
    before = service.collection(collection)
    refused = service.patch(collection, body)
    assert field in problem(refused, 422, "validation-error")["detail"]
    assert service.collection(collection) == before


def test_only_admins_of_the_collection_may(service: Service) -> None:
    before = service.collection("annex")
    problem(service.patch("lobby", {"fmr": 1e-4}, "staff"), 403, "insufficient-scope")
    problem(service.patch("annex", {"fmr": 1e-4}, "lobby-admin"), 403, "collection-forbidden")
    assert service.collection("annex") == before
    assert service.collection("lobby")["fmr"] == 1e-3
    # A restricted admin may change its own collection.
    assert service.patch("lobby", {"fmr": 1e-4}, "lobby-admin").json()["fmr"] == 1e-4
    problem(service.patch("nowhere", {"fmr": 1e-4}), 404, "unknown-collection")
    unauthenticated = service.client.patch("/v1/collections/lobby", json={"fmr": 1e-4})
    problem(unauthenticated, 401, "unauthorized")


def test_every_change_is_audited_with_what_changed(service: Service) -> None:
    assert service.patch("lobby", {"fmr": 1e-4, "max_idle_days": 30}, "lobby-admin").is_success
    newest = service.audit()[0]
    assert newest["outcome"] == "ok" and newest["collection"] == "lobby"
    assert newest["key_id"] == service.key_ids["lobby-admin"]
    assert newest["detail"] == {
        "fmr": {"from": 1e-3, "to": 1e-4},
        "max_idle_days": {"from": 1095, "to": 30},
    }
    problem(service.patch("kiosk", {"store_images": True}), 422, "validation-error")
    assert service.audit()[0]["outcome"] == "validation_error"
    verified = service.call("GET", "/v1/audit/verify")
    assert verified.json() == {"intact": True, "first_broken_seq": None}


def test_the_openapi_document_describes_the_update(service: Service) -> None:
    spec = service.client.get("/openapi.json").json()
    patch = spec["paths"]["/v1/collections/{collection}"]["patch"]
    schema = patch["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert schema.endswith("/CollectionUpdate")
    fields = spec["components"]["schemas"]["CollectionUpdate"]["properties"]
    assert set(fields) == {"fmr", "store_images", "max_template_age_days", "max_idle_days"}
