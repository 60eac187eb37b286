"""GET /v1/events/stream over real HTTP: a uvicorn server, httpx reading the stream as it
comes, events recorded with the store (as camera workers and other replicas record them)
while a client listens."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from facegate.config import ServiceSettings, Settings
from facegate.gallery.records import Event, new_id, utc_now
from facegate.gallery.sql_store import SqlStore
from facegate.service.app import create_app
from facegate.service.routes import event_stream
from facegate.service.routes.event_stream import LOOKBACK_S, EventCursor
from facegate.service.state import BOOTSTRAP_KEY_FILE
from helpers import CONSENT_JSON, problem, running_server

STREAM = "/v1/events/stream"


@dataclass
class Site:
    client: httpx.Client
    store: SqlStore
    secrets: dict[str, str]  # role -> secret
    key_ids: dict[str, str]  # role -> key id
    subjects: dict[str, str]  # name -> id

    def headers(self, role: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secrets[role]}"} if role else {}

    def record(self, kind: str, camera: str | None, collection: str | None, **more: Any) -> Event:
        """An event, recorded now, as a camera worker records it."""
        event = Event(new_id(), more.pop("at", None) or utc_now(), kind, camera, collection, **more)
        self.store.add_event(event)
        return event


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    data_dir = tmp_path_factory.mktemp("stream")
    settings = Settings(data_dir=data_dir, service=ServiceSettings(rate_limit=0))
    app = create_app(settings)
    with running_server(settings, app) as base, httpx.Client(base_url=base, timeout=30) as client:
        admin = (data_dir / BOOTSTRAP_KEY_FILE).read_text().strip()
        auth = {"Authorization": f"Bearer {admin}"}
        for name in ("lobby", "vault"):
            assert client.post("/v1/collections", json={"name": name}, headers=auth).is_success
        subjects = {}
        for name, collection in (("Ada", "lobby"), ("Bob", "vault")):
            made = client.post(
                f"/v1/collections/{collection}/subjects",
                json={"name": name, "consent": CONSENT_JSON},
                headers=auth,
            )
            assert made.status_code == 201, made.text
            subjects[name] = made.json()["id"]
        secrets, key_ids = {"admin": admin}, {}
        for role, scopes, collections in (
            ("lobby", ["read"], ["lobby"]),
            ("enroller", ["enroll"], None),
            ("doomed", ["read"], None),
        ):
            made = client.post(
                "/v1/keys",
                json={"name": role, "scopes": scopes, "collections": collections},
                headers=auth,
            )
            assert made.status_code == 201, made.text
            secrets[role], key_ids[role] = made.json()["secret"], made.json()["id"]
        yield Site(client, app.state.facegate.store, secrets, key_ids, subjects)


# --- reading the stream ----------------------------------------------------------------------
@dataclass
class Frame:
    id: str | None = None
    data: dict[str, Any] | None = None
    retry: int | None = None
    comments: list[str] = field(default_factory=list)


class Frames:
    """The frames of an open text/event-stream, parsed as a browser's EventSource does."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.iter_lines()

    def next(self) -> Frame | None:
        """The next frame; None when the server ended the stream."""
        frame, seen = Frame(), False
        for line in self._lines:
            if line == "":
                if seen:
                    return frame
                continue
            seen = True
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "":
                frame.comments.append(value)
            elif name == "id":
                frame.id = value
            elif name == "data":
                frame.data = json.loads(value)
            elif name == "retry":
                frame.retry = int(value)
        return None

    def next_event(self) -> Frame:
        """The next frame with an event (a read timeout fails the test if none comes)."""
        while True:
            frame = self.next()
            assert frame is not None, "the stream ended without the event"
            if frame.data is not None:
                return frame


@contextmanager
def listen(
    site: Site, role: str | None = "admin", headers: dict[str, str] | None = None, **params: Any
) -> Iterator[Frames]:
    """An open stream, past its first frame: the server has its starting point, so every
    event recorded from now on is one it must send."""
    with site.client.stream(
        "GET",
        STREAM,
        params=params,
        headers=site.headers(role) | (headers or {}),
        timeout=httpx.Timeout(30, read=8),
    ) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-store"
        frames = Frames(response)
        first = frames.next()
        assert first is not None and first.retry == event_stream.RETRY_MS
        assert first.comments == ["connected"]
        yield frames


# --- tests -----------------------------------------------------------------------------------
def test_an_event_recorded_while_listening_arrives_as_get_events_shows_it(site: Site) -> None:
    with listen(site) as frames:
        event = site.record(
            "identified",
            "door",
            "lobby",
            subject_id=site.subjects["Ada"],
            similarity=0.62,
            quality=0.8,
            track_id=7,
            reason="above threshold",
        )
        got = frames.next_event()
    assert got.id == event.id
    listed = site.client.get(
        "/v1/events", params={"camera": "door", "limit": 5}, headers=site.headers("admin")
    ).json()["items"]
    assert got.data == next(item for item in listed if item["id"] == event.id)
    assert got.data is not None and got.data["subject_name"] == "Ada"


def test_each_event_arrives_once_even_when_recorded_late(site: Site) -> None:
    with listen(site, camera="hall") as frames:
        listening = utc_now()  # after the stream's start
        both = [
            site.record(kind, "hall", "lobby", at=listening + timedelta(seconds=n))
            for n, kind in ((1, "track_started"), (2, "unknown"))
        ]
        assert {frames.next_event().id, frames.next_event().id} == {e.id for e in both}
        # Written a moment after its time (a slow writer, another replica's clock), after
        # newer events were sent: it still goes, and nothing goes twice.
        late = site.record("track_ended", "hall", "lobby", at=listening)
        assert frames.next_event().id == late.id
        last = site.record("track_started", "hall", "lobby")
        assert frames.next_event().id == last.id


def test_filters_narrow_the_stream(site: Site) -> None:
    with listen(site, camera="door", kind="identified") as frames:
        site.record("identified", "gate", "lobby", subject_id=site.subjects["Ada"])
        site.record("unknown", "door", "lobby")
        wanted = site.record("identified", "door", "lobby", subject_id=site.subjects["Ada"])
        assert frames.next_event().id == wanted.id
    with listen(site, subject_id=site.subjects["Bob"]) as frames:
        site.record("identified", "door", "lobby", subject_id=site.subjects["Ada"])
        wanted = site.record("identified", "yard", "vault", subject_id=site.subjects["Bob"])
        assert frames.next_event().id == wanted.id
    with listen(site, collection="vault") as frames:
        site.record("unknown", "door", "lobby")
        wanted = site.record("unknown", "yard", "vault")
        assert frames.next_event().id == wanted.id


def test_a_restricted_key_hears_only_its_collections(site: Site) -> None:
    with listen(site, "lobby") as frames:
        site.record("identified", "yard", "vault", subject_id=site.subjects["Bob"])
        site.record("unknown", None, None)  # no collection: unrestricted keys only
        wanted = site.record("unknown", "door", "lobby")
        got = frames.next_event()
    assert got.id == wanted.id
    forbidden = site.client.get(
        STREAM, params={"collection": "vault"}, headers=site.headers("lobby")
    )
    assert problem(forbidden, 403, "collection-forbidden")["collection"] == "vault"


def test_keys_and_scopes(site: Site) -> None:
    problem(site.client.get(STREAM), 401, "unauthorized")
    problem(site.client.get(STREAM, headers={"X-API-Key": "fg_nope_nope"}), 401, "unauthorized")
    problem(site.client.get(STREAM, headers=site.headers("enroller")), 403, "insufficient-scope")
    problem(
        site.client.get(STREAM, params={"kind": "smile"}, headers=site.headers("admin")),
        422,
        "validation-error",
    )


def test_last_event_id_resumes_without_a_gap_or_a_repeat(site: Site) -> None:
    with listen(site, camera="lift") as frames:
        first = site.record("track_started", "lift", "lobby")
        assert frames.next_event().id == first.id
    # Recorded while the client is away (a browser reconnects with Last-Event-ID).
    missed = [site.record(kind, "lift", "lobby") for kind in ("unknown", "track_ended")]
    with listen(site, headers={"Last-Event-ID": first.id}, camera="lift") as frames:
        got = [frames.next_event().id for _ in missed]
        live = site.record("track_started", "lift", "lobby")
        got.append(frames.next_event().id)
    assert got == [e.id for e in missed] + [live.id]


def test_since_sends_what_was_recorded_since_then_first(site: Site) -> None:
    start = utc_now()
    before = site.record("unknown", "porch", "lobby", at=start - timedelta(seconds=30))
    backlog = [
        site.record("unknown", "porch", "lobby", at=start + timedelta(milliseconds=n))
        for n in (0, 1)
    ]
    with listen(site, camera="porch", since=start.isoformat()) as frames:
        assert [frames.next_event().id, frames.next_event().id] == [e.id for e in backlog]
        live = site.record("track_ended", "porch", "lobby")
        assert frames.next_event().id == live.id
    # An unknown Last-Event-ID (erased, or swept by retention) falls back to since.
    with listen(
        site, headers={"Last-Event-ID": "0" * 32}, camera="porch", since=before.at.isoformat()
    ) as frames:
        assert frames.next_event().id == before.id


def test_heartbeats_a_capped_life_and_a_revoked_key(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(event_stream, "HEARTBEAT_S", 0.1)
    monkeypatch.setattr(event_stream, "MAX_LIFE_S", 2.5)
    with listen(site) as frames:
        beat = frames.next()
        assert beat is not None and beat.comments == ["heartbeat"]
        while frames.next() is not None:  # the server ends the stream by itself
            pass
    monkeypatch.setattr(event_stream, "MAX_LIFE_S", 3600.0)
    with listen(site, "doomed") as frames:
        revoked = site.client.delete(
            f"/v1/keys/{site.key_ids['doomed']}", headers=site.headers("admin")
        )
        assert revoked.status_code == 200, revoked.text
        while frames.next() is not None:  # ends at the next heartbeat
            pass


# --- the cursor, without HTTP ----------------------------------------------------------------
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def at(seconds: float, event_id: str) -> Event:
    return Event(event_id, T0 + timedelta(seconds=seconds), "unknown")


@pytest.mark.parametrize(
    ("start", "polls", "sent"),
    [
        # from now (T0): later events go, oldest first, each once
        ((T0, ""), [[at(2, "b"), at(1, "a")], [at(2, "b"), at(3, "c")]], [["a", "b"], ["c"]]),
        # since is inclusive
        ((T0, ""), [[at(0, "a")]], [["a"]]),
        # an event recorded late, but within LOOKBACK_S of the newest sent, still goes
        (
            (T0, ""),
            [[at(9, "n")], [at(9, "n"), at(9 - LOOKBACK_S + 0.5, "late")]],
            [["n"], ["late"]],
        ),
        # one later than that counts as sent already (the stream's bounded memory)
        ((T0, ""), [[at(9, "n")], [at(9 - LOOKBACK_S - 0.5, "lost")]], [["n"], []]),
        # resuming after (T0, "m"): ties on the time go only if they sort after it
        ((T0, "m"), [[at(0, "a"), at(0, "m"), at(0, "z"), at(1, "b")]], [["z", "b"]]),
    ],
)
def test_the_cursor_sends_each_event_once(
    start: tuple[datetime, str], polls: list[list[Event]], sent: list[list[str]]
) -> None:
    cursor = EventCursor(start)
    assert [[e.id for e in cursor.take(found)] for found in polls] == sent


def test_the_cursor_forgets_ids_far_behind_the_newest() -> None:
    cursor = EventCursor((T0, ""))
    cursor.take([at(n, f"e{n:03d}") for n in range(100)])
    assert cursor.since == T0 + timedelta(seconds=99 - LOOKBACK_S)
    assert sorted(cursor.sent) == [f"e{n:03d}" for n in range(100) if n >= 99 - LOOKBACK_S]
