"""Liveness sessions over real HTTP on loopback: uvicorn started here, httpx as the client,
attack and genuine frame sequences made from ../shared/data (tests/liveness_media.py).

The service's liveness registry is replaced before start by one with an injected clock
(real time plus an offset the tests move forward) and a seeded random source (so that
the challenges, not their secrecy, are reproducible here)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from facegate.config import ServiceSettings, Settings
from facegate.gallery.records import utc_now
from facegate.policy.liveness import LivenessSessions, Pose
from facegate.service.app import create_app
from facegate.service.state import BOOTSTRAP_KEY_FILE
from helpers import CONSENT_JSON, problem, running_server
from liveness_media import (
    Shot,
    attack_frames,
    can_perform,
    encode_mp4,
    genuine_frames,
    jitter,
    lfw_photo,
    load,
    spoof_photo,
)

PERSON = "Tony_Blair"  # stable photos for left, right, down and the centre
COLLECTION = "lv"


class ShiftedClock:
    """Real time, plus an offset that a test may move forward."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return utc_now() + self.offset


@dataclass
class Live:
    client: httpx.Client
    admin: str
    clock: ShiftedClock
    data_dir: Path
    subjects: dict[str, str]

    def call(self, method: str, path: str, secret: str | None = None, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {secret or self.admin}", **kw.pop("headers", {})}
        return self.client.request(method, path, headers=headers, **kw)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, faces_root: Path) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("liveness")
    settings = Settings(data_dir=tmp, service=ServiceSettings(rate_limit=0))
    app = create_app(settings)
    clock = ShiftedClock()
    app.state.facegate.liveness = LivenessSessions(clock=clock, rng=random.Random(20260302))
    with running_server(settings, app) as base, httpx.Client(base_url=base, timeout=120) as c:
        admin = (tmp / BOOTSTRAP_KEY_FILE).read_text().strip()
        service = Live(c, admin, clock, tmp, {})
        assert service.call("POST", "/v1/collections", json={"name": COLLECTION}).status_code == 201
        for person, numbers in ((PERSON, (2, 8, 128)), ("Colin_Powell", (2, 8, 20))):
            made = service.call(
                "POST",
                f"/v1/collections/{COLLECTION}/subjects",
                json={"name": person.replace("_", " "), "consent": CONSENT_JSON},
            )
            assert made.status_code == 201, made.text
            service.subjects[person] = made.json()["id"]
            files = [
                (
                    "images",
                    (f"{n}.jpg", lfw_photo(faces_root, person, n).read_bytes(), "image/jpeg"),
                )
                for n in numbers
            ]
            done = service.call(
                "POST",
                f"/v1/collections/{COLLECTION}/subjects/{made.json()['id']}/faces",
                files=files,
                data={"face": "largest"},
            )
            assert done.status_code == 201, done.text
        yield service


def make_key(live: Live, scopes: list[str]) -> str:
    made = live.call("POST", "/v1/keys", json={"name": "t", "scopes": scopes})
    assert made.status_code == 201, made.text
    secret: str = made.json()["secret"]
    return secret


def new_session(live: Live, person: str | None = None, **body: Any) -> dict[str, Any]:
    """A session; with ``person``, one whose challenge that person's photos can perform."""
    for _ in range(200):
        made = live.call("POST", "/v1/liveness/sessions", json=body or None)
        assert made.status_code == 201, made.text
        session: dict[str, Any] = made.json()
        challenge = [Pose(p) for p in session["challenge"]]
        if person is None or can_perform(person, challenge):
            return session
    raise AssertionError(f"no challenge {person} can perform in 200 tries")


def send_images(
    live: Live, session_id: str, shots: list[Shot], per_request: int = 10
) -> dict[str, Any]:
    """Frames as JPEG parts, ``per_request`` at a time, until the session ends."""
    answer: dict[str, Any] = {}
    for i in range(0, len(shots), per_request):
        files = [
            ("images", (f"{j}.jpg", s.jpeg(), "image/jpeg"))
            for j, s in enumerate(shots[i : i + per_request])
        ]
        got = live.call("POST", f"/v1/liveness/sessions/{session_id}/frames", files=files)
        assert got.status_code == 200, got.text
        answer = got.json()
        if answer["status"] != "pending":
            break
    return answer


def challenge_of(session: dict[str, Any]) -> list[Pose]:
    return [Pose(p) for p in session["challenge"]]


def genuine(
    live: Live, faces_root: Path, seed: int, **kw: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    session = new_session(live, PERSON)
    shots = genuine_frames(
        faces_root, PERSON, challenge_of(session), live.clock(), random.Random(seed), **kw
    )
    return session, send_images(live, session["session_id"], shots)


def selfie(faces_root: Path, person: str = PERSON, number: int = 140) -> bytes:
    return Shot(
        jitter(load(lfw_photo(faces_root, person, number)), random.Random(number)), utc_now()
    ).jpeg()


def verify(
    live: Live, faces_root: Path, session_id: str | None, person: str = PERSON, **kw: Any
) -> httpx.Response:
    data = {"subject_id": live.subjects[person]}
    if session_id is not None:
        data["liveness_session"] = session_id
    return live.call(
        "POST",
        f"/v1/collections/{COLLECTION}/verify",
        files={"image": ("selfie.jpg", selfie(faces_root, person, **kw), "image/jpeg")},
        data=data,
    )


# --- the protocol ---------------------------------------------------------------------------
def test_a_session_is_a_random_challenge_with_a_deadline(live: Live) -> None:
    before = live.clock()
    a, b = new_session(live), new_session(live)
    assert a["session_id"] != b["session_id"] and a["session_id"].startswith("lv_")
    for made in (a, b):
        *steps, last = made["challenge"]
        assert last == "centre" and {"left", "right"} <= set(steps) and len(steps) in (3, 4)
        assert len(made["instructions"]) == len(made["challenge"])
        expires = datetime.fromisoformat(made["expires_at"])
        assert timedelta(seconds=29) < expires - before < timedelta(seconds=31)
    status = live.call("GET", f"/v1/liveness/sessions/{a['session_id']}").json()
    assert status["status"] == "pending" and status["step_index"] == 0
    assert status["next_step"] == a["challenge"][0]
    assert "embedding" not in str(status)


def test_genuine_sequence_passes_and_steps_up_verify_once(live: Live, faces_root: Path) -> None:
    session, answer = genuine(live, faces_root, seed=1)
    assert answer["status"] == "passed", answer
    assert answer["step_index"] == len(session["challenge"])
    sid = session["session_id"]
    assert live.call("GET", f"/v1/liveness/sessions/{sid}").json()["status"] == "passed"

    first = verify(live, faces_root, sid)
    assert first.status_code == 200, first.text
    assert first.json()["verdict"] == "match" and first.json()["liveness"] == "passed"

    replayed = problem(verify(live, faces_root, sid), 403, "liveness-failed")
    assert "already used" in replayed["reason"]
    assert live.call("GET", f"/v1/liveness/sessions/{sid}").json()["status"] == "used"


def test_verify_without_step_up_is_unchanged(live: Live, faces_root: Path) -> None:
    got = verify(live, faces_root, None)
    assert got.status_code == 200 and got.json()["liveness"] is None


def test_still_photo_sequence_fails(live: Live, data_root: Path) -> None:
    session = new_session(live)
    shots = attack_frames(
        spoof_photo(data_root, "print"), challenge_of(session), live.clock(), random.Random(2)
    )
    answer = send_images(live, session["session_id"], shots)
    assert answer["status"] in ("pending", "failed"), answer
    live.clock.offset += timedelta(seconds=31)
    try:
        status = live.call("GET", f"/v1/liveness/sessions/{session['session_id']}").json()
    finally:
        live.clock.offset -= timedelta(seconds=31)
    assert status["status"] in ("expired", "failed")


def test_screen_replay_video_fails(live: Live, data_root: Path, faces_root: Path) -> None:
    session = new_session(live)
    shots = attack_frames(
        spoof_photo(data_root, "screen"), challenge_of(session), live.clock(), random.Random(3)
    )
    video = encode_mp4([s.image for s in shots])
    got = live.call(
        "POST",
        f"/v1/liveness/sessions/{session['session_id']}/frames",
        files={"video": ("replay.mp4", video, "video/mp4")},
    )
    assert got.status_code == 200, got.text
    answer = got.json()
    assert answer["status"] in ("pending", "failed"), answer
    assert len(answer["frames"]) >= 10  # the video's frames were looked at
    problem(verify(live, faces_root, session["session_id"]), 403, "liveness-failed")


def test_genuine_video_passes(live: Live, faces_root: Path) -> None:
    session = new_session(live, PERSON)
    shots = genuine_frames(
        faces_root, PERSON, challenge_of(session), live.clock(), random.Random(4)
    )
    got = live.call(
        "POST",
        f"/v1/liveness/sessions/{session['session_id']}/frames",
        files={"video": ("me.mp4", encode_mp4([s.image for s in shots]), "video/mp4")},
    )
    assert got.status_code == 200, got.text
    assert got.json()["status"] == "passed", got.json()


def test_face_swap_mid_session_fails(live: Live, faces_root: Path) -> None:
    session = new_session(live, PERSON)
    challenge = challenge_of(session)
    step = challenge.index(Pose.DOWN) if Pose.DOWN in challenge else 1
    shots = genuine_frames(
        faces_root, PERSON, challenge, live.clock(), random.Random(5), swap=(step, "Tom_Ridge")
    )
    answer = send_images(live, session["session_id"], shots)
    assert answer["status"] == "failed"
    assert "the face changed" in answer["reason"]
    refused = problem(verify(live, faces_root, session["session_id"]), 403, "liveness-failed")
    assert "failed" in refused["reason"]


def test_an_expired_passed_session_does_not_vouch(live: Live, faces_root: Path) -> None:
    session, answer = genuine(live, faces_root, seed=6)
    assert answer["status"] == "passed"
    live.clock.offset += timedelta(seconds=121)
    try:
        refused = problem(verify(live, faces_root, session["session_id"]), 403, "liveness-failed")
    finally:
        live.clock.offset -= timedelta(seconds=121)
    assert "expired" in refused["reason"]


def test_a_pending_session_expires_at_its_deadline(live: Live, faces_root: Path) -> None:
    session = new_session(live, PERSON)
    shots = genuine_frames(
        faces_root, PERSON, challenge_of(session), live.clock(), random.Random(7)
    )
    live.clock.offset += timedelta(seconds=31)
    try:
        files = [("images", ("a.jpg", shots[0].jpeg(), "image/jpeg"))]
        url = f"/v1/liveness/sessions/{session['session_id']}/frames"
        closed = problem(live.call("POST", url, files=files), 409, "liveness-session-closed")
        assert closed["status_now"] == "expired"
    finally:
        live.clock.offset -= timedelta(seconds=31)


def test_another_face_cannot_use_a_passed_session(live: Live, faces_root: Path) -> None:
    session, answer = genuine(live, faces_root, seed=8)
    assert answer["status"] == "passed"
    refused = problem(
        verify(live, faces_root, session["session_id"], person="Colin_Powell", number=4),
        403,
        "liveness-failed",
    )
    assert "not the one that passed liveness" in refused["reason"]
    # ... and the attempt used it up
    again = problem(verify(live, faces_root, session["session_id"]), 403, "liveness-failed")
    assert "already used" in again["reason"]


def test_a_bound_session_vouches_only_for_its_subject(live: Live, faces_root: Path) -> None:
    bound = {"collection": COLLECTION, "subject_id": live.subjects["Colin_Powell"]}
    session = new_session(live, PERSON, **bound)
    assert (
        live.call("GET", f"/v1/liveness/sessions/{session['session_id']}").json()["subject_id"]
        == live.subjects["Colin_Powell"]
    )
    shots = genuine_frames(
        faces_root, PERSON, challenge_of(session), live.clock(), random.Random(9)
    )
    assert send_images(live, session["session_id"], shots)["status"] == "passed"
    refused = problem(verify(live, faces_root, session["session_id"]), 403, "liveness-failed")
    assert "another subject" in refused["reason"]


def test_closed_sessions_take_no_frames(live: Live, faces_root: Path) -> None:
    session, answer = genuine(live, faces_root, seed=10)
    assert answer["status"] == "passed"
    files = [("images", ("a.jpg", selfie(faces_root), "image/jpeg"))]
    url = f"/v1/liveness/sessions/{session['session_id']}/frames"
    assert (
        problem(live.call("POST", url, files=files), 409, "liveness-session-closed")["status_now"]
        == "passed"
    )


# --- bad input -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("files", "status", "slug"),
    [
        ([("images", ("x.jpg", b"\x00garbage bytes" * 20, "image/jpeg"))], 422, "not-an-image"),
        ([("images", ("empty.jpg", b"", "image/jpeg"))], 422, "empty-image"),
        ([("video", ("empty.mp4", b"", "video/mp4"))], 422, "video-source"),
        ([("video", ("x.mp4", b"not a video at all" * 10, "video/mp4"))], 422, "video-source"),
        (
            [("video", ("x.mp4", b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 200, "video/mp4"))],
            422,
            "video-source",
        ),
        ([("images", (f"{i}.jpg", b"x", "image/jpeg")) for i in range(11)], 422, "too-many-images"),
        ([("other", ("x.jpg", b"x", "image/jpeg"))], 422, "validation-error"),
        (
            [("video", ("a.mp4", b"x", "video/mp4")), ("video", ("b.mp4", b"x", "video/mp4"))],
            422,
            "validation-error",
        ),
    ],
)
def test_bad_frames_are_refused_and_change_nothing(
    live: Live, files: list[Any], status: int, slug: str
) -> None:
    session = new_session(live)
    url = f"/v1/liveness/sessions/{session['session_id']}/frames"
    problem(live.call("POST", url, files=files), status, slug)
    after = live.call("GET", f"/v1/liveness/sessions/{session['session_id']}").json()
    assert after["status"] == "pending" and after["frames_received"] == 0


def test_a_video_with_too_many_frames_is_refused(live: Live, data_root: Path) -> None:
    session = new_session(live)
    small = load(data_root / "spoof" / "image_T1.jpg")[::4, ::4]
    rng = random.Random(11)
    frames = [jitter(small, rng) for _ in range(120)]  # 12 s at 10 fps
    url = f"/v1/liveness/sessions/{session['session_id']}/frames"
    video = encode_mp4(frames)
    got = problem(
        live.call("POST", url, files={"video": ("long.mp4", video, "video/mp4")}),
        422,
        "too-many-frames",
    )
    assert "frames" in got["detail"] or "longer" in got["detail"]
    assert (
        live.call("GET", f"/v1/liveness/sessions/{session['session_id']}").json()["frames_received"]
        == 0
    )


def test_other_bad_requests(live: Live) -> None:
    session = new_session(live)
    url = f"/v1/liveness/sessions/{session['session_id']}/frames"
    problem(live.call("POST", url, json={}), 422, "validation-error")
    problem(live.call("POST", url, json={"images_base64": ["@@@"]}), 400, "invalid-base64")
    problem(
        live.call("POST", url, content=b"x", headers={"content-type": "text/plain"}),
        415,
        "unsupported-media-type",
    )
    problem(
        live.call("POST", "/v1/liveness/sessions/lv_nope/frames", json={"images_base64": []}),
        404,
        "unknown-liveness-session",
    )
    problem(live.call("GET", "/v1/liveness/sessions/lv_nope"), 404, "unknown-liveness-session")
    problem(
        live.call("POST", "/v1/liveness/sessions", json={"subject_id": "x"}),
        422,
        "validation-error",
    )
    problem(
        live.call("POST", "/v1/liveness/sessions", json={"collection": "nope"}),
        404,
        "unknown-collection",
    )
    problem(
        live.call(
            "POST", "/v1/liveness/sessions", json={"collection": COLLECTION, "subject_id": "nobody"}
        ),
        404,
        "unknown-subject",
    )
    problem(live.call("POST", "/v1/liveness/sessions", json={"extra": 1}), 422, "validation-error")


def test_json_frames_with_base64(live: Live, faces_root: Path) -> None:
    import base64

    session = new_session(live)
    body = {"images_base64": [base64.b64encode(selfie(faces_root)).decode()]}
    got = live.call("POST", f"/v1/liveness/sessions/{session['session_id']}/frames", json=body)
    assert got.status_code == 200, got.text
    assert got.json()["frames"][0]["accepted"] is True


# --- keys, scopes, audit --------------------------------------------------------------------------
def test_scopes_and_ownership(live: Live) -> None:
    reader = make_key(live, ["read"])
    problem(live.call("POST", "/v1/liveness/sessions", reader), 403, "insufficient-scope")
    problem(live.client.post("/v1/liveness/sessions"), 401, "unauthorized")
    kiosk, other = make_key(live, ["recognize"]), make_key(live, ["recognize"])
    made = live.call("POST", "/v1/liveness/sessions", kiosk)
    assert made.status_code == 201, made.text
    sid = made.json()["session_id"]
    assert live.call("GET", f"/v1/liveness/sessions/{sid}", kiosk).status_code == 200
    problem(
        live.call("GET", f"/v1/liveness/sessions/{sid}", other), 404, "unknown-liveness-session"
    )
    url = f"/v1/liveness/sessions/{sid}/frames"
    problem(
        live.call("POST", url, other, json={"images_base64": ["AAAA"]}),
        404,
        "unknown-liveness-session",
    )
    assert live.call("GET", f"/v1/liveness/sessions/{sid}").status_code == 200  # admin sees all


def test_audit_records_sessions_and_step_ups_never_frames(live: Live, faces_root: Path) -> None:
    session, answer = genuine(live, faces_root, seed=12)
    assert answer["status"] == "passed"
    assert verify(live, faces_root, session["session_id"]).status_code == 200
    items = live.call("GET", "/v1/audit", params={"limit": 500}).json()["items"]
    actions = {i["action"] for i in items}
    assert {"liveness.create", "liveness.outcome", "liveness.use"} <= actions
    text = str([i for i in items if i["action"].startswith("liveness")])
    assert session["session_id"] not in text  # the id vouches: only a digest of it is kept
    assert "embedding" not in text
    outcomes = {i["outcome"] for i in items if i["action"] == "liveness.outcome"}
    assert "passed" in outcomes and "failed" in outcomes
