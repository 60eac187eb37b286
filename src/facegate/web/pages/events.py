"""Events: the recent events that match the filters (camera, person, outcome, time range),
then the new ones live: ``events.js`` opens ``GET /v1/events/stream`` with the same
filters and puts each new event at the top."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import urlencode

import anyio.to_thread
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from facegate.events.model import EventKind
from facegate.gallery.records import utc_now
from facegate.policy.access_model import AccessReason
from facegate.service.deps import StateDep
from facegate.service.routes.events import list_cameras, list_events
from facegate.service.schemas import EventPublic
from facegate.web.ui import UI_PATH, UiKey, render, require_page_scope

router = APIRouter(prefix=UI_PATH, include_in_schema=False)

SHOWN = 100  # events listed on the page
SCANNED = 500  # recent events read for the pickers, and to sort access decisions
FilterText = Annotated[str, Query(max_length=100)]


@dataclass(frozen=True, slots=True)
class Outcome:
    """A choice of the outcome filter: a kind of event, for access also how it went."""

    label: str
    kind: EventKind
    allowed: bool | None = None  # access: the door opened (None: either way)

    def matches(self, event: EventPublic) -> bool:
        if self.allowed is None:
            return True
        return (event.reason == AccessReason.ALLOWED.value) is self.allowed


OUTCOMES = {
    "identified": Outcome("Identified", EventKind.IDENTIFIED),
    "unknown": Outcome("Unknown face", EventKind.UNKNOWN),
    "access-allowed": Outcome("Access allowed", EventKind.ACCESS, allowed=True),
    "access-denied": Outcome("Access denied", EventKind.ACCESS, allowed=False),
    "quota": Outcome("Quota claim", EventKind.QUOTA),
    "track_started": Outcome("Track started", EventKind.TRACK_STARTED),
    "track_ended": Outcome("Track ended", EventKind.TRACK_ENDED),
}


def parse_time(text: str, name: str, problems: list[str]) -> datetime | None:
    """A time typed in the form (``2024-05-01T12:00``, taken as UTC), or None."""
    if not text.strip():
        return None
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        problems.append(f"{name}: not a date and time (YYYY-MM-DD HH:MM), ignored")
        return None
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


KIND_LABELS = {
    "track_started": "Track started",
    "identified": "Identified",
    "unknown": "Unknown face",
    "track_ended": "Track ended",
    "access": "Access",
    "quota": "Quota",
}


def people_seen(events: list[EventPublic]) -> dict[str, str]:
    """Subject id -> display name, of the people the recent events name."""
    return {e.subject_id: e.subject_name or e.subject_id for e in events if e.subject_id}


def person_choices(seen: dict[str, str]) -> list[tuple[str, str]]:
    """(what the person field gets, what the list shows), by name: the name where it is
    unique among the people seen, else the subject id."""
    names = [name.casefold() for name in seen.values()]
    choices = [
        (name if names.count(name.casefold()) == 1 else subject, f"{name} · {subject}")
        for subject, name in seen.items()
    ]
    return sorted(choices, key=lambda choice: choice[1].casefold())


def subject_of(person: str, seen: dict[str, str]) -> str | None:
    """The subject id the person field means: an id, or a name seen recently."""
    text = person.strip()
    if not text:
        return None
    by_name = {name.casefold(): subject for subject, name in seen.items()}
    return by_name.get(text.casefold(), text)


@router.get("/events", response_class=HTMLResponse)
async def events_page(
    request: Request,
    state: StateDep,
    key: UiKey,
    camera: FilterText = "",
    person: FilterText = "",
    outcome: FilterText = "",
    since: FilterText = "",
    until: FilterText = "",
) -> HTMLResponse:
    require_page_scope(key, "read")
    problems: list[str] = []
    chosen = OUTCOMES.get(outcome)
    if outcome and chosen is None:
        problems.append(f"outcome: {outcome!r} is not one of the choices, ignored")
    start = parse_time(since, "since", problems)
    end = parse_time(until, "until", problems)

    def gather() -> dict[str, object]:
        recent = list_events(state, key, limit=SCANNED).items
        seen = people_seen(recent)
        on_camera, subject = camera.strip() or None, subject_of(person, seen)
        kind = chosen.kind if chosen else None
        found = list_events(
            state,
            key,
            camera=on_camera,
            subject_id=subject,
            kind=kind,
            since=start,
            until=end,
            limit=SCANNED,
        ).items
        shown = [e for e in found if chosen is None or chosen.matches(e)][:SHOWN]
        cameras = {c.name for c in list_cameras(state, key).items}
        cameras |= {e.camera for e in recent if e.camera}
        # The live feed carries on from the newest event listed (the page skips repeats).
        live_since = shown[0].at if shown else max(utc_now(), start or utc_now())
        stream = {"camera": on_camera, "subject_id": subject, "kind": kind}
        query = {k: str(v) for k, v in stream.items() if v is not None}
        return {
            "events": shown,
            "cameras": sorted(cameras),
            "people": person_choices(seen),
            "stream_url": "/v1/events/stream?"
            + urlencode(query | {"since": live_since.isoformat()}),
        }

    context = await anyio.to_thread.run_sync(gather)
    context |= {
        "outcomes": OUTCOMES,
        "kind_labels": KIND_LABELS,
        "filters": {
            "camera": camera,
            "person": person,
            "outcome": outcome if chosen else "",
            "since": since,
            "until": until,
        },
        "problems": problems,
        "live": end is None,  # a range that ends is history: nothing new can join it
        "allowed": "" if chosen is None or chosen.allowed is None else str(chosen.allowed).lower(),
        "shown_max": SHOWN,
    }
    return render(request, state, key, "events.html", context)
