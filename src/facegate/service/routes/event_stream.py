"""``GET /v1/events/stream``: new events as Server-Sent Events, as they are recorded, with
the filters of ``GET /v1/events``.

Events are written by camera worker processes, by other replicas and by the API itself;
the database is the one place they all meet, so each stream polls it (every POLL_S, in a
worker thread) instead of listening inside this process. A stream sends each event once,
oldest first, with the event's id as the SSE ``id``: a client that reconnects with
``Last-Event-ID`` (browsers do it by themselves) carries on where it stopped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated

import anyio
import anyio.to_thread
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from facegate.gallery.keys import ApiKey, UnknownKeyError
from facegate.gallery.records import Event, utc_now
from facegate.service.auth import require_collection
from facegate.service.deps import ReadKey, StateDep
from facegate.service.routes.events import (
    CameraFilter,
    CollectionFilter,
    DoorFilter,
    KindFilter,
    QuotaFilter,
    SubjectFilter,
    as_utc_query,
    subject_names,
)
from facegate.service.schemas import EventPublic
from facegate.service.sessions import SESSION_COOKIE, session_of
from facegate.service.state import ServiceState

log = logging.getLogger(__name__)
router = APIRouter()

POLL_S = 1.0  # how often the database is asked for new events
HEARTBEAT_S = 15.0  # a comment line this often keeps proxies from closing an idle stream
MAX_LIFE_S = 3600.0  # then the stream ends and the client reconnects (key checks anew)
RETRY_MS = 3000  # how long a browser waits before it reconnects
# Events are recorded a little after their time (another process, another replica's
# clock): each poll looks this far behind the newest event sent, so a late one still goes.
LOOKBACK_S = 5.0
PAGE = 200  # events per query, newest first ...
MAX_PAGES = 5  # ... and at most this many queries per poll (a longer backlog is cut)


@dataclass
class EventCursor:
    """Which events a stream has sent: every one at or before ``floor`` (time, id), and
    those in ``sent`` (the ids above the floor, with their times)."""

    floor: tuple[datetime, str]
    sent: dict[str, datetime] = field(default_factory=dict)

    @property
    def since(self) -> datetime:
        return self.floor[0]

    def take(self, found: Iterable[Event]) -> list[Event]:
        """The events of ``found`` not sent yet, oldest first (ties by id), now counted
        as sent."""
        fresh = {e.id: e for e in found if (e.at, e.id) > self.floor and e.id not in self.sent}
        ordered = sorted(fresh.values(), key=lambda e: (e.at, e.id))
        self.sent.update((e.id, e.at) for e in ordered)
        self._raise_floor()
        return ordered

    def _raise_floor(self) -> None:
        """Forget ids further than LOOKBACK_S behind the newest event sent: anything that
        old counts as sent, so memory and each poll's query stay small."""
        if not self.sent:
            return
        cutoff = max(self.sent.values()) - timedelta(seconds=LOOKBACK_S)
        if cutoff > self.floor[0]:
            self.floor = (cutoff, "")  # "" sorts before every id: events at cutoff still go
            self.sent = {i: at for i, at in self.sent.items() if at >= cutoff}


@dataclass(frozen=True)
class EventFilter:
    """The filters of GET /v1/events that a stream applies."""

    camera: str | None = None
    subject_id: str | None = None
    kind: str | None = None
    door: str | None = None
    quota: str | None = None
    collection: str | None = None


def starting_cursor(
    state: ServiceState, last_event_id: str | None, since: datetime | None
) -> EventCursor:
    """After the client's last event if it is known; else from ``since`` (inclusive);
    else from now."""
    if last_event_id:
        last = state.store.get_event(last_event_id)
        if last is not None:
            return EventCursor((last.at, last.id))
    return EventCursor((since or utc_now(), ""))


def poll(
    state: ServiceState, key: ApiKey, where: EventFilter, cursor: EventCursor
) -> list[EventPublic]:
    """The matching events recorded since the last poll, oldest first."""
    allowed = None if key.collections is None else sorted(key.collections)
    found: list[Event] = []
    for page in range(MAX_PAGES):
        batch = state.store.list_events(
            where.subject_id,
            PAGE,
            camera=where.camera,
            kind=where.kind,
            door=where.door,
            quota=where.quota,
            collection_id=where.collection,
            collection_ids=allowed,  # a restricted key sees only its collections' events
            since=cursor.since,
            offset=page * PAGE,
            snapshots=False,
        )
        found += batch
        if len(batch) < PAGE:
            break
    fresh = cursor.take(found)
    names = subject_names(state.store, fresh)
    return [EventPublic.of(e, names.get(e.subject_id or "")) for e in fresh]


def still_allowed(state: ServiceState, request: Request, key: ApiKey) -> bool:
    """Whether the stream's key is still active and, for a browser, its session open."""
    try:
        if not state.keys.get(key.id).active:
            return False
    except UnknownKeyError:
        return False
    by_header = request.headers.get("authorization") or request.headers.get("x-api-key")
    if by_header or not request.cookies.get(SESSION_COOKIE):
        return True
    return session_of(state, request) is not None


def frame(event: EventPublic) -> str:
    return f"id: {event.id}\ndata: {event.model_dump_json()}\n\n"


async def frames(
    request: Request, state: ServiceState, key: ApiKey, where: EventFilter, cursor: EventCursor
) -> AsyncIterator[str]:
    started = last_beat = time.monotonic()
    yield f"retry: {RETRY_MS}\n: connected\n\n"
    while time.monotonic() - started < MAX_LIFE_S and not await request.is_disconnected():
        beat = time.monotonic() - last_beat >= HEARTBEAT_S
        try:
            events = await anyio.to_thread.run_sync(poll, state, key, where, cursor)
            if beat and not await anyio.to_thread.run_sync(still_allowed, state, request, key):
                return
        except Exception:  # the database went away: end; the client reconnects and resumes
            log.exception("event stream: reading the events failed; closing the stream")
            return
        for event in events:
            yield frame(event)
        if beat:
            last_beat = time.monotonic()
            yield ": heartbeat\n\n"
        await anyio.sleep(POLL_S)


@router.get(
    "/v1/events/stream",
    response_class=StreamingResponse,
    tags=["events"],
    summary="New events as Server-Sent Events (text/event-stream), as they are recorded.",
    responses={
        200: {
            "description": "An endless stream: `id:` the event id, `data:` the event as in "
            "GET /v1/events; a `: heartbeat` comment every 15 s.",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        }
    },
)
async def event_stream(
    request: Request,
    state: StateDep,
    key: ReadKey,
    camera: CameraFilter = None,
    subject_id: SubjectFilter = None,
    kind: KindFilter = None,
    door: DoorFilter = None,
    quota: QuotaFilter = None,
    collection: CollectionFilter = None,
    since: Annotated[
        datetime | None,
        Query(description="ISO 8601, inclusive: also send the events recorded since then."),
    ] = None,
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            max_length=64,
            description="Resume after this event (sent by browsers when they reconnect).",
        ),
    ] = None,
) -> StreamingResponse:
    if collection is not None:
        require_collection(key, collection)
    where = EventFilter(
        camera, subject_id, kind.value if kind is not None else None, door, quota, collection
    )
    start = as_utc_query(since, "since")
    cursor = await anyio.to_thread.run_sync(starting_cursor, state, last_event_id, start)
    return StreamingResponse(
        frames(request, state, key, where, cursor),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},  # no proxy buffering
    )
