"""Quotas over real HTTP, on real photos: an anonymous quota that remembers faces in
memory only, for one window; an enrolled quota counted per subject in the database; the
definitions document; scopes.

Time is moved by setting the running service's quota clock (same process)."""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from facegate.config import ServiceSettings, Settings
from facegate.policy.quota import ANONYMOUS_MODEL
from facegate.policy.thresholds import operating_point
from facegate.service.app import create_app
from facegate.service.state import BOOTSTRAP_KEY_FILE, ServiceState
from facegate.vision.pipeline import FacePipeline
from helpers import CONSENT_JSON, problem, running_server
from helpers import lfw_photo as photo

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
SNACK = {"name": "snack", "limit": 1, "window_s": 540, "mode": "anonymous"}


# --- the server ----------------------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def at(self, seconds: float) -> None:
        self.now = T0 + timedelta(seconds=seconds)


@dataclass
class Service:
    data_dir: Path
    admin: str
    client: httpx.Client
    state: ServiceState
    clock: Clock

    def call(self, method: str, path: str, secret: str | None = None, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {secret or self.admin}", **kw.pop("headers", {})}
        return self.client.request(method, path, headers=headers, **kw)

    def put_quotas(self, *quotas: dict[str, Any]) -> dict[str, Any]:
        done = self.call("PUT", "/v1/quotas", json={"quotas": list(quotas)})
        assert done.status_code == 200, done.text
        body: dict[str, Any] = done.json()
        return body

    def claim(
        self, quota: str, image: Path, secret: str | None = None, *, multipart: bool = False
    ) -> httpx.Response:
        if multipart:
            files = {"image": (image.name, image.read_bytes(), "image/jpeg")}
            return self.call("POST", f"/v1/quotas/{quota}/claim", secret, files=files)
        return self.call(
            "POST", f"/v1/quotas/{quota}/claim", secret, json={"image_base64": b64(image)}
        )

    def make_key(self, scopes: list[str], collections: list[str] | None = None) -> str:
        made = self.call(
            "POST", "/v1/keys", json={"name": "t", "scopes": scopes, "collections": collections}
        )
        assert made.status_code == 201, made.text
        secret: str = made.json()["secret"]
        return secret

    def audit(self, **params: Any) -> list[dict[str, Any]]:
        got = self.call("GET", "/v1/audit", params={"limit": 500, **params})
        assert got.status_code == 200, got.text
        items: list[dict[str, Any]] = got.json()["items"]
        return items


@contextlib.contextmanager
def serve(data_dir: Path) -> Iterator[Service]:
    config = Settings(data_dir=data_dir, service=ServiceSettings(rate_limit=0))
    app = create_app(config)
    with running_server(config, app) as base, httpx.Client(base_url=base, timeout=120) as client:
        admin = (data_dir / BOOTSTRAP_KEY_FILE).read_text().strip()
        state: ServiceState = app.state.facegate
        clock = Clock()
        state.quota_counter.clock = clock
        yield Service(data_dir, admin, client, state, clock)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with serve(tmp_path_factory.mktemp("quotas")) as running:
        yield running


# --- helpers -------------------------------------------------------------------------------------


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def answer(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert "embedding" not in response.text
    if body["granted"] or body["retry_after_s"] is None:
        assert "retry-after" not in response.headers
    else:
        assert int(response.headers["retry-after"]) >= body["retry_after_s"]
    return body


def enroll(service: Service, collection: str, faces_root: Path, person: str) -> str:
    made = service.call(
        "POST",
        f"/v1/collections/{collection}/subjects",
        json={"name": person.replace("_", " "), "consent": CONSENT_JSON},
    )
    assert made.status_code == 201, made.text
    subject_id: str = made.json()["id"]
    done = service.call(
        "POST",
        f"/v1/collections/{collection}/subjects/{subject_id}/faces",
        json={"image_base64": b64(photo(faces_root, person, 1)), "face": "largest"},
    )
    assert done.status_code == 201, done.text
    return subject_id


def make_collection(service: Service, name: str, **options: Any) -> None:
    made = service.call("POST", "/v1/collections", json={"name": name, **options})
    assert made.status_code == 201, made.text


def every_file(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


def middle(data: bytes, size: int) -> bytes:
    start = (len(data) - size) // 2
    return data[start : start + size]


# --- anonymous ------------------------------------------------------------------------------------
def test_anonymous_quota_on_real_photos_leaves_nothing_behind(
    tmp_path_factory: pytest.TempPathFactory, faces_root: Path
) -> None:
    data_dir = tmp_path_factory.mktemp("anonymous")
    colin = [photo(faces_root, "Colin_Powell", n) for n in (1, 2, 3)]
    hugo = photo(faces_root, "Hugo_Chavez", 1)
    threshold = operating_point(ANONYMOUS_MODEL, 1e-4).threshold
    with serve(data_dir) as service:
        stored = service.put_quotas(SNACK | {"description": "1 item per person per 9 minutes"})
        assert stored["version"] == 1 and stored["quotas"][0]["fmr"] is None

        counter = service.state.quota_counter
        remembered: set[bytes] = set()

        def remember() -> None:  # what the service holds now: embeddings, no name, no id
            memory = counter._memories["snack"]
            remembered.update(
                memory.vectors[i].astype("<f4").tobytes() for i in range(memory.count)
            )

        first = answer(service.claim("snack", colin[0]))
        remember()
        assert first["granted"] and first["reason"] == "within_limit"
        assert (first["mode"], first["remaining"], first["subject_id"]) == ("anonymous", 0, None)
        assert first["operating_point"]["fmr"] == 1e-4
        assert first["operating_point"]["threshold"] == pytest.approx(threshold)

        service.clock.at(60)  # the same person, another photo, inside the window: denied
        again = answer(service.claim("snack", colin[1], multipart=True))
        assert not again["granted"] and again["reason"] == "limit_reached"
        assert again["retry_after_s"] == pytest.approx(480.0)
        assert again["similarity"] >= threshold and again["subject_id"] is None

        service.clock.at(61)  # a different person: granted
        other = answer(service.claim("snack", hugo))
        assert other["granted"] and other["similarity"] is None
        remember()

        service.clock.at(540)  # the same person once the window has passed: granted
        later = answer(service.claim("snack", colin[2]))
        assert later["granted"], later
        remember()
        assert len(remembered) == 3 and counter.faces("snack") == 2  # the first one left
        memory = counter._memories["snack"]
        # ... and what the pipeline makes of each photo (the denied one included).
        pipeline = FacePipeline(ANONYMOUS_MODEL)
        computed = []
        for path in [*colin, hugo]:
            image = pipeline.decode(path.read_bytes())
            face = pipeline.embed(image, pipeline.detect(image)[:1])[0]
            assert face.embedding is not None
            computed += [face.embedding.astype("<f4").tobytes(), face.embedding.tobytes()]
        vectors = [*remembered, *computed]

        # The audit says which quota, what outcome, never who.
        entries = service.audit(action="quota.claim")
        assert [e["outcome"] for e in reversed(entries)] == [
            "granted",
            "denied",
            "granted",
            "granted",
        ]
        for entry in entries:
            assert entry["subject_ids"] == [] and entry["collection"] is None
            assert set(entry["detail"]) <= {"quota", "mode", "reason"}, entry
            assert entry["detail"]["mode"] == "anonymous"

        service.clock.at(540 + 540)
        assert service.state.quota_counter.faces() == 0  # gone after the window
        assert not memory.vectors.any()  # zeroed, not just dropped

        def nothing_on_disk() -> None:
            files = every_file(data_dir)
            assert data_dir / "gallery.sqlite3" in files
            for path, data in files.items():
                for vector in vectors:
                    assert vector not in data and middle(vector, 32) not in data, path

        nothing_on_disk()
    nothing_on_disk()
    assert counter.faces() == 0 and not counter._memories


def test_a_face_less_photo_is_refused_not_granted(
    service: Service, faces_root: Path, faceless_jpg: Path, two_face_png: Path
) -> None:
    service.put_quotas(SNACK | {"name": "faceless"})
    problem(service.claim("faceless", faceless_jpg), 422, "no-face")
    assert service.state.quota_counter.faces("faceless") == 0
    assert service.audit(action="quota.claim")[0]["outcome"] == "no_face"
    # Several faces: the largest one claims.
    assert answer(service.claim("faceless", two_face_png))["granted"]
    problem(
        service.call("POST", "/v1/quotas/faceless/claim", json={"image_base64": ""}),
        422,
        "empty-image",
    )
    assert service.state.quota_counter.faces("faceless") == 1


def test_an_unknown_quota_is_404(service: Service, faces_root: Path) -> None:
    body = problem(
        service.claim("nope", photo(faces_root, "Colin_Powell", 1)), 404, "unknown-quota"
    )
    assert "nope" in body["detail"]
    problem(
        service.claim("Not-A-Name", photo(faces_root, "Colin_Powell", 1)), 422, "validation-error"
    )


def test_an_anonymous_quota_bound_to_a_camera_is_claimed_only_by_it(
    service: Service, faces_root: Path
) -> None:
    # Stored while the camera was configured (this service runs no cameras).
    service.state.applications.put_document(
        "quotas", {"quotas": [SNACK | {"name": "kiosk", "camera": "kiosk-cam"}]}, "tests"
    )
    body = problem(
        service.claim("kiosk", photo(faces_root, "Colin_Powell", 1)), 409, "quota-bound-to-camera"
    )
    assert "kiosk-cam" in body["detail"]
    assert service.state.quota_counter.faces("kiosk") == 0
    refused = service.call(
        "PUT", "/v1/quotas", json={"quotas": [SNACK, SNACK | {"name": "b", "camera": "no/"}]}
    )
    assert "quotas[1].camera" in problem(refused, 422, "invalid-policy")["detail"]
    refused = service.call("PUT", "/v1/quotas", json={"quotas": [SNACK | {"camera": "cam"}]})
    assert "no camera named 'cam'" in problem(refused, 422, "invalid-policy")["detail"]


# --- enrolled -------------------------------------------------------------------------------------
def test_enrolled_quota_counts_per_subject_and_survives_a_restart(
    tmp_path_factory: pytest.TempPathFactory, faces_root: Path
) -> None:
    data_dir = tmp_path_factory.mktemp("enrolled")
    meals = {
        "name": "meals",
        "limit": 1,
        "window_s": 3600,
        "mode": "enrolled",
        "collection": "staff",
    }
    with serve(data_dir) as service:
        make_collection(service, "staff")
        colin = enroll(service, "staff", faces_root, "Colin_Powell")
        jacques = enroll(service, "staff", faces_root, "Jacques_Chirac")
        service.put_quotas(meals)

        granted = answer(service.claim("meals", photo(faces_root, "Colin_Powell", 2)))
        assert granted["granted"] and (granted["subject_id"], granted["remaining"]) == (colin, 0)
        assert granted["similarity"] >= granted["operating_point"]["threshold"]

        service.clock.at(600)
        denied = answer(service.claim("meals", photo(faces_root, "Colin_Powell", 3)))
        assert not denied["granted"] and denied["reason"] == "limit_reached"
        assert denied["subject_id"] == colin and denied["retry_after_s"] == pytest.approx(3000)

        other = answer(service.claim("meals", photo(faces_root, "Jacques_Chirac", 2)))
        assert other["granted"] and other["subject_id"] == jacques  # counted per subject

        stranger = answer(service.claim("meals", photo(faces_root, "Hugo_Chavez", 1)))
        assert not stranger["granted"] and stranger["reason"] == "unknown_person"
        assert stranger["subject_id"] is None and stranger["retry_after_s"] is None
        assert service.state.applications.count_claims() == 2  # the stranger counted nothing

        entries = service.audit(action="quota.claim", collection="staff")
        assert [(e["outcome"], e["subject_ids"]) for e in reversed(entries)] == [
            ("granted", [colin]),
            ("denied", [colin]),
            ("granted", [jacques]),
            ("denied", []),
        ]
        assert entries[0]["detail"]["reason"] == "unknown_person"

    with serve(data_dir) as service:  # a restart keeps the definitions and the claims
        assert service.call("GET", "/v1/quotas").json()["quotas"][0]["name"] == "meals"
        service.clock.at(1200)
        after = answer(service.claim("meals", photo(faces_root, "Colin_Powell", 4)))
        assert not after["granted"] and after["retry_after_s"] == pytest.approx(2400)
        service.clock.at(3600)
        assert answer(service.claim("meals", photo(faces_root, "Colin_Powell", 4)))["granted"]
        assert service.state.applications.count_claims() == 3

        # Erasing the subject erases their claims.
        erased = service.call("DELETE", f"/v1/collections/staff/subjects/{colin}")
        assert erased.status_code == 204, erased.text
        apps = service.state.applications
        assert apps.claims_since("meals", colin, T0 - timedelta(days=1)) == []
        assert apps.count_claims() == 1  # Jacques's


def test_an_enrolled_quota_on_a_collection_with_a_stricter_fmr(
    service: Service, faces_root: Path
) -> None:
    make_collection(service, "canteen")
    enroll(service, "canteen", faces_root, "Colin_Powell")
    service.put_quotas(
        SNACK | {"name": "lunch", "mode": "enrolled", "collection": "canteen", "fmr": 0.0001}
    )
    got = answer(service.claim("lunch", photo(faces_root, "Colin_Powell", 2)))
    assert got["granted"] and got["operating_point"]["fmr"] == 1e-4


# --- the definitions document ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("document", "fields"),
    [
        ({"quotas": [SNACK | {"limit": 0}]}, ["quotas[0].limit"]),
        ({"quotas": [SNACK | {"window_s": 0}]}, ["quotas[0].window_s"]),
        ({"quotas": [SNACK | {"fmr": 0.5}]}, ["quotas[0].fmr"]),
        ({"quotas": [SNACK, SNACK]}, ["quotas[1].name"]),
        ({"quotas": [SNACK | {"mode": "enrolled"}]}, ["quotas[0].collection"]),
        (
            {"quotas": [SNACK | {"mode": "enrolled", "collection": "ghost"}]},
            ["quotas[0].collection"],
        ),
        ({"quotas": [SNACK | {"limits": 2}]}, ["quotas[0].limits"]),
        ({"quota": []}, ["quota"]),
        ([SNACK], ["document"]),
    ],
)
def test_bad_definitions_are_refused_and_change_nothing(
    service: Service, document: Any, fields: list[str]
) -> None:
    before = service.call("GET", "/v1/quotas").json()
    body = problem(service.call("PUT", "/v1/quotas", json=document), 422, "invalid-policy")
    for field in fields:
        assert field in body["detail"] and any(field in e for e in body["errors"]), body
    assert service.call("GET", "/v1/quotas").json() == before
    assert service.audit(action="quotas.update")[0]["outcome"] == "invalid_policy"


def test_definitions_are_versioned_and_audited(service: Service) -> None:
    first = service.put_quotas(SNACK)
    second = service.put_quotas(SNACK, SNACK | {"name": "water", "limit": 2})
    assert second["version"] == first["version"] + 1
    shown = service.call("GET", "/v1/quotas").json()
    assert [q["name"] for q in shown["quotas"]] == ["snack", "water"]
    assert shown["updated_by"].startswith("key:") and shown["version"] == second["version"]
    entry = service.audit(action="quotas.update")[0]
    assert entry["outcome"] == "ok" and entry["detail"]["quotas"] == ["snack", "water"]


def test_a_dry_run_checks_like_a_save_and_changes_nothing(
    service: Service, faces_root: Path
) -> None:
    service.put_quotas(SNACK | {"name": "dry"})
    assert answer(service.claim("dry", photo(faces_root, "Colin_Powell", 1)))["granted"]
    before, audited = service.call("GET", "/v1/quotas").json(), service.audit()

    water = {"quotas": [SNACK | {"name": "water", "limit": 2}]}  # "dry" left out
    good = service.call("PUT", "/v1/quotas", params={"dry_run": "true"}, json=water)
    assert good.status_code == 200, good.text
    assert good.json()["dry_run"] is True and before["dry_run"] is False
    assert [q["name"] for q in good.json()["quotas"]] == ["water"]
    assert good.json()["version"] == before["version"]

    for quotas, fields in (
        (
            [SNACK | {"limit": 0}, SNACK | {"name": "tea", "window_s": -1}],
            ["[0].limit", "[1].window_s"],
        ),
        ([SNACK | {"mode": "enrolled", "collection": "ghost"}], ["quotas[0].collection"]),
    ):
        refused = service.call(
            "PUT", "/v1/quotas", params={"dry_run": "true"}, json={"quotas": quotas}
        )
        body = problem(refused, 422, "invalid-policy")
        assert len(body["errors"]) == len(fields), body
        for field in fields:
            assert any(field in e for e in body["errors"]), body

    assert service.call("GET", "/v1/quotas").json() == before
    assert service.audit() == audited
    assert service.state.quota_counter.faces("dry") == 1  # a save would have forgotten it
    reader = service.make_key(["read"])
    refused = service.call("PUT", "/v1/quotas", reader, params={"dry_run": "true"}, json=water)
    problem(refused, 403, "insufficient-scope")


def test_removing_a_quota_forgets_its_faces(service: Service, faces_root: Path) -> None:
    service.put_quotas(SNACK | {"name": "gone"})
    assert answer(service.claim("gone", photo(faces_root, "Colin_Powell", 1)))["granted"]
    assert service.state.quota_counter.faces("gone") == 1
    service.put_quotas(SNACK)
    assert service.state.quota_counter.faces("gone") == 0
    problem(service.claim("gone", photo(faces_root, "Colin_Powell", 1)), 404, "unknown-quota")


# --- scopes ---------------------------------------------------------------------------------------
def test_scopes_and_collections(service: Service, faces_root: Path) -> None:
    make_collection(service, "desk")
    make_collection(service, "kiosk")
    service.put_quotas(
        SNACK,
        SNACK | {"name": "kiosk-snack", "collection": "kiosk"},
        SNACK | {"name": "desk-meals", "mode": "enrolled", "collection": "desk"},
    )
    face = photo(faces_root, "Colin_Powell", 1)
    reader = service.make_key(["read"])
    kiosk = service.make_key(["recognize", "read"], ["kiosk"])
    kiosk_admin = service.make_key(["admin"], ["kiosk"])
    anywhere = service.make_key(["recognize"])

    assert service.call("GET", "/v1/quotas", reader).status_code == 200
    problem(
        service.call("PUT", "/v1/quotas", reader, json={"quotas": []}), 403, "insufficient-scope"
    )
    problem(service.claim("snack", face, reader), 403, "insufficient-scope")
    problem(service.call("GET", "/v1/quotas", anywhere), 403, "insufficient-scope")
    problem(
        service.call("PUT", "/v1/quotas", kiosk_admin, json={"quotas": []}),
        403,
        "collection-forbidden",
    )
    assert service.client.get("/v1/quotas").status_code == 401

    # A key limited to collections sees and claims only quotas of those collections.
    listed = service.call("GET", "/v1/quotas", kiosk).json()["quotas"]
    assert [q["name"] for q in listed] == ["kiosk-snack"]
    assert answer(service.claim("kiosk-snack", face, kiosk))["granted"]
    problem(service.claim("desk-meals", face, kiosk), 403, "collection-forbidden")
    problem(service.claim("snack", face, kiosk), 403, "collection-forbidden")
    assert answer(service.claim("snack", face, anywhere))["granted"]


def test_the_openapi_document_describes_the_quota_routes(service: Service) -> None:
    spec = service.client.get("/openapi.json").json()
    assert {"get", "put"} <= set(spec["paths"]["/v1/quotas"])
    claim = spec["paths"]["/v1/quotas/{name}/claim"]["post"]
    assert "multipart/form-data" in claim["requestBody"]["content"]
    assert "embedding" not in json.dumps(spec["components"]["schemas"]["ClaimResponse"])
