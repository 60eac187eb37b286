"""The dashboard: gallery size per collection, cameras up or down, events in the last
hour, the latest decisions."""

from __future__ import annotations

from datetime import timedelta

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from facegate.gallery.records import utc_now
from facegate.service.deps import StateDep
from facegate.service.routes.collections import list_collections
from facegate.service.routes.events import list_cameras, list_events
from facegate.service.schemas import EventPublic
from facegate.web.ui import UI_PATH, UiKey, render, require_page_scope

router = APIRouter(prefix=UI_PATH, include_in_schema=False)
DECISIONS = ("identified", "unknown", "access", "quota")
UP_STATES = ("streaming",)  # as the workers report it


def recent_decisions(events: list[EventPublic], limit: int = 10) -> list[EventPublic]:
    return [e for e in events if e.kind in DECISIONS][:limit]


@router.get("/", response_class=HTMLResponse)
async def dashboard(request: Request, state: StateDep, key: UiKey) -> HTMLResponse:
    require_page_scope(key, "read")

    def gather() -> dict[str, object]:
        hour_ago = utc_now() - timedelta(hours=1)
        last_hour = list_events(state, key, since=hour_ago, limit=500).items
        cameras = list_cameras(state, key).items
        return {
            "collections": list_collections(state, key).items,
            "cameras": cameras,
            "cameras_up": sum(1 for c in cameras if c.state in UP_STATES),
            "events_last_hour": len(last_hour),
            "events_capped": len(last_hour) == 500,
            "decisions": recent_decisions(list_events(state, key, limit=100).items),
        }

    context = await anyio.to_thread.run_sync(gather)
    return render(request, state, key, "dashboard.html", context)
