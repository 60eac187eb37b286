"""Cameras: each configured camera's health (state, frame rates and counts, reconnects,
restarts, tracks, last error, events sent), its last snapshot with the face box and name,
and, for admins, stop and start (``POST /v1/cameras/{name}/stop|start`` from the page).

``cameras.js`` draws the snapshots and refreshes the page's live parts every few seconds
from this same page, so the numbers are formatted in one place."""

from __future__ import annotations

from dataclasses import dataclass

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from facegate.gallery.keys import ApiKey
from facegate.recognition import CROP_MARGIN
from facegate.service.deps import StateDep
from facegate.service.routes.camera_control import camera_control
from facegate.service.routes.events import list_cameras, list_events
from facegate.service.schemas import CameraPublic, EventPublic
from facegate.service.state import ServiceState
from facegate.web.ui import UI_PATH, UiKey, render, require_page_scope

router = APIRouter(prefix=UI_PATH, include_in_schema=False)

DECISIONS = ("identified", "unknown")  # the events that carry a best shot
SEARCHED = 100  # a camera's recent events searched for its last snapshot
# A snapshot is the face with CROP_MARGIN of its size on every side (recognition.py), so
# the face fills this part of it (less where the face touched the frame's edge).
FACE_IN_SNAPSHOT = (
    CROP_MARGIN / (1 + 2 * CROP_MARGIN),
    (1 + CROP_MARGIN) / (1 + 2 * CROP_MARGIN),
)
# What each reported state means to someone watching: (word, style).
CONDITIONS = {
    "streaming": ("up", "ok"),
    "starting": ("starting", "warn"),
    "connecting": ("starting", "warn"),
    "reconnecting": ("down", "bad"),
    "stale": ("stale", "bad"),
    "failed": ("failed", "bad"),
    "crashed": ("failed", "bad"),
    "ended": ("ended", "muted"),
    "stopped": ("stopped", "muted"),
}


@dataclass(frozen=True, slots=True)
class CameraCard:
    camera: CameraPublic
    wanted: str  # running, or stopped by an admin
    shot: EventPublic | None  # the newest decision with a snapshot
    last_decision: EventPublic | None

    @property
    def condition(self) -> tuple[str, str]:
        return CONDITIONS.get(self.camera.state, (self.camera.state, "warn"))

    @property
    def pending(self) -> str | None:
        """A stop or start asked for that the camera's worker has not followed yet."""
        stopped = self.camera.state == "stopped"
        if self.wanted == "stopped" and not stopped:
            return "stop requested"
        if self.wanted == "running" and stopped:
            return "start requested"
        return None


def camera_cards(state: ServiceState, key: ApiKey) -> list[CameraCard]:
    wanted = {c.name: c.wanted for c in camera_control(state, key).items}
    cards = []
    for camera in list_cameras(state, key).items:
        recent = list_events(state, key, camera=camera.name, limit=SEARCHED).items
        decisions = [e for e in recent if e.kind in DECISIONS]
        cards.append(
            CameraCard(
                camera,
                wanted.get(camera.name, "running"),
                next((e for e in decisions if e.has_snapshot), None),
                decisions[0] if decisions else None,
            )
        )
    return cards


@router.get("/cameras", response_class=HTMLResponse)
async def cameras_page(request: Request, state: StateDep, key: UiKey) -> HTMLResponse:
    require_page_scope(key, "read")
    cards = await anyio.to_thread.run_sync(camera_cards, state, key)
    low, high = FACE_IN_SNAPSHOT
    context = {
        "cards": cards,
        "up": sum(1 for card in cards if card.camera.state == "streaming"),
        "may_control": key.allows("admin"),
        "may_see_snapshots": key.allows("admin"),  # GET /v1/events/{id}/snapshot: admins
        "snapshots_on": state.settings.events.snapshots,
        "face_box": f"{low:.4f},{low:.4f},{high:.4f},{high:.4f}",
    }
    return render(request, state, key, "cameras.html", context)
