"""What the cameras saw and how they are doing: events (filtered, paginated, newest first),
an event's snapshot (admins only, audited) and the configured cameras with their status."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from pydantic import ValidationError

from facegate.config import CameraSettings
from facegate.events.camera_status import CameraStatus, mask_source, mask_urls, read_status
from facegate.events.model import EventKind
from facegate.gallery.records import Event
from facegate.gallery.sql_store import SqlStore
from facegate.service.auditing import Outcome, audited
from facegate.service.auth import require_collection
from facegate.service.deps import AdminKey, ReadKey, StateDep
from facegate.service.problems import Problem
from facegate.service.schemas import CameraList, CameraPublic, EventPage, EventPublic

router = APIRouter()

EventId = Annotated[str, Path(min_length=1, max_length=64, description="The event's id.")]
JPEG_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The snapshot, a JPEG.",
        "content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}},
    },
    404: {"description": "No such event (for this key), or it has no snapshot."},
}


# --- events ----------------------------------------------------------------------------------
# The filters of GET /v1/events, shared with the live stream (GET /v1/events/stream).
CameraFilter = Annotated[str | None, Query(max_length=100)]
SubjectFilter = Annotated[str | None, Query(max_length=64)]
KindFilter = Annotated[EventKind | None, Query(description="The kind of event.")]
DoorFilter = Annotated[str | None, Query(max_length=64, description="Access events: the door.")]
QuotaFilter = Annotated[str | None, Query(max_length=64, description="Quota events: the quota.")]
CollectionFilter = Annotated[str | None, Query(max_length=64)]


def as_utc_query(value: datetime | None, name: str) -> datetime | None:
    """A query time in UTC (a time without an offset is taken as UTC)."""
    if value is None:
        return None
    try:
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    except OverflowError:
        raise Problem(
            422,
            "validation-error",
            f"{name}: out of range once converted to UTC",
            title="Request validation failed",
        ) from None


def subject_names(store: SqlStore, found: list[Event]) -> dict[str, str]:
    """The current display names of the subjects the events name (one lookup each)."""
    names = {}
    for subject_id in {e.subject_id for e in found if e.subject_id is not None}:
        subject = store.get_subject(subject_id)
        if subject is not None:
            names[subject_id] = subject.display_name
    return names


@router.get(
    "/v1/events", response_model=EventPage, tags=["events"], summary="Camera events, newest first."
)
def list_events(
    state: StateDep,
    key: ReadKey,
    camera: CameraFilter = None,
    subject_id: SubjectFilter = None,
    kind: KindFilter = None,
    door: DoorFilter = None,
    quota: QuotaFilter = None,
    collection: CollectionFilter = None,
    since: Annotated[datetime | None, Query(description="ISO 8601, inclusive.")] = None,
    until: Annotated[datetime | None, Query(description="ISO 8601, exclusive.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,  # SQLite integers are 64-bit
) -> EventPage:
    if collection is not None:
        require_collection(key, collection)
    allowed = None if key.collections is None else sorted(key.collections)
    found = state.store.list_events(
        subject_id,
        limit,
        camera=camera,
        kind=kind.value if kind is not None else None,
        door=door,
        quota=quota,
        collection_id=collection,
        collection_ids=allowed,  # a restricted key sees only its collections' events
        since=as_utc_query(since, "since"),
        until=as_utc_query(until, "until"),
        offset=offset,
        snapshots=False,  # the listing only says whether there is one
    )
    names = subject_names(state.store, found)
    items = [EventPublic.of(e, names.get(e.subject_id or "")) for e in found]
    return EventPage(items=items, limit=limit, offset=offset)


@router.get(
    "/v1/events/{event_id}/snapshot",
    response_class=Response,
    responses=JPEG_RESPONSE,
    tags=["events"],
    summary="The event's snapshot (JPEG); admins only, audited.",
)
def event_snapshot(state: StateDep, key: AdminKey, event_id: EventId) -> Response:
    event = state.store.get_event(event_id)
    visible = event is not None and (
        key.collections is None
        or (event.collection_id is not None and key.may_use(event.collection_id))
    )
    collection = event.collection_id if event is not None and visible else None

    def work(note: Outcome) -> bytes:
        note.detail = {"event": event_id}
        if event is None or not visible:  # another collection's events are not revealed
            raise Problem(404, "unknown-event", f"no event with id {event_id!r}")
        note.subject_ids = [event.subject_id] if event.subject_id else []
        if event.snapshot is None:
            raise Problem(404, "no-snapshot", f"event {event_id!r} has no snapshot")
        return event.snapshot

    anonymous = collection is not None and state.is_ephemeral(collection)
    jpeg = audited(state.audit, key, "event.snapshot", collection, work, anonymous)
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


# --- cameras ---------------------------------------------------------------------------------
def _password(source: str) -> str | None:
    _, sep, rest = source.partition("://")
    userinfo = rest[: rest.rfind("@")] if sep and "@" in rest else ""
    _, colon, password = userinfo.partition(":")
    return password if colon and password else None


def redact(text: str | None, password: str | None) -> str | None:
    """``text`` (an error message) with any URL's password and the camera's own as ***."""
    if text is None:
        return None
    text = mask_urls(text)
    if password and len(password) >= 4:  # shorter: too likely to match innocent text
        text = text.replace(password, "***")
    return text


def _redacted(value: Any, password: str | None) -> Any:
    if isinstance(value, str):
        return redact(value, password)
    if isinstance(value, dict):
        return {k: _redacted(v, password) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v, password) for v in value]
    return value


def camera_view(camera: CameraSettings, status: CameraStatus | None) -> CameraPublic:
    """The camera as configured, with its worker's last report (None: none yet)."""
    password = _password(camera.source)
    base = {
        "name": camera.name,
        "source": mask_source(camera.source),
        "collection": camera.collection,
    }
    if status is not None:
        try:
            stale = status.stale()
            return CameraPublic(
                **base,
                state="stale" if stale else status.state,
                fps=status.fps,
                decoded=status.decoded,
                analysed=status.analysed,
                skipped=status.skipped,
                dropped=status.dropped,
                reconnects=status.reconnects,
                active_tracks=status.active_tracks,
                restarts=status.restarts,
                events=dict(status.events),
                sinks=_redacted(list(status.sinks), password),
                last_error=redact(status.last_error, password),
                updated_at=as_utc_query(datetime.fromisoformat(status.updated_at), "updated_at"),
            )
        except (TypeError, ValueError, ValidationError, Problem):
            pass  # a report this version cannot read: shown as no report
    return CameraPublic(
        **base,
        state="starting",
        fps=0.0,
        decoded=0,
        analysed=0,
        skipped=0,
        dropped=0,
        reconnects=0,
        active_tracks=0,
        restarts=0,
        events={},
        sinks=[],
        last_error=None,
        updated_at=None,
    )


@router.get(
    "/v1/cameras",
    response_model=CameraList,
    tags=["cameras"],
    summary="The configured cameras (of this key's collections) and their status.",
)
def list_cameras(state: StateDep, key: ReadKey) -> CameraList:
    directory = state.settings.camera_status_dir
    return CameraList(
        items=[
            camera_view(c, read_status(directory, c.name))
            for c in state.settings.cameras
            if key.may_use(c.collection)
        ]
    )
