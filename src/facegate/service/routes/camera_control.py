"""Stopping and starting cameras: ``POST /v1/cameras/{name}/stop`` and ``.../start``
(admin, audited), and ``GET /v1/cameras/control`` (read).

The API never touches a camera process: those belong to the supervisor of ``facegate
serve`` (stream/), which this layer may not import and which may run on another
replica. The wish is recorded in the database (events.camera_status), and every
supervisor reads it each second and stops or starts its worker.
"""

from __future__ import annotations

import threading
from typing import Annotated

from fastapi import APIRouter, Path

from facegate.config import CameraSettings
from facegate.events.camera_status import read_status, set_camera_stopped, stopped_cameras
from facegate.gallery.keys import ApiKey
from facegate.service.auditing import Outcome, audited
from facegate.service.camera_schemas import CameraControlList, CameraControlPublic
from facegate.service.deps import AdminKey, ReadKey, StateDep
from facegate.service.problems import Problem
from facegate.service.routes.events import camera_view
from facegate.service.routes.subjects import collector
from facegate.service.state import ServiceState

router = APIRouter(prefix="/v1/cameras", tags=["cameras"])

CameraName = Annotated[
    str, Path(min_length=1, max_length=64, description="The camera's name, as configured.")
]
# The control document is read, changed and written back: one change at a time here.
_CHANGING = threading.Lock()


def visible_cameras(state: ServiceState, key: ApiKey) -> list[CameraSettings]:
    return [c for c in state.settings.cameras if key.may_use(c.collection)]


def reported_state(state: ServiceState, camera: CameraSettings) -> str:
    status = read_status(state.settings.camera_status_dir, camera.name)
    return camera_view(camera, status).state


@router.get(
    "/control",
    response_model=CameraControlList,
    summary="Which cameras (of this key's collections) an admin stopped.",
)
def camera_control(state: StateDep, key: ReadKey) -> CameraControlList:
    stopped = stopped_cameras(state.applications)
    return CameraControlList(
        items=[
            CameraControlPublic(
                name=c.name,
                wanted="stopped" if c.name in stopped else "running",
                state=reported_state(state, c),
            )
            for c in visible_cameras(state, key)
        ]
    )


def _set_stopped(state: ServiceState, key: ApiKey, name: str, stopped: bool) -> CameraControlPublic:
    # Another collection's camera is not revealed: 404 as for a name never configured.
    camera = next((c for c in visible_cameras(state, key) if c.name == name), None)

    def work(note: Outcome) -> CameraControlPublic:
        note.detail = {"camera": name}
        if camera is None:
            raise Problem(404, "unknown-camera", f"no camera named {name!r}")
        with _CHANGING:
            changed = set_camera_stopped(state.applications, name, stopped, collector(key))
        note.detail["changed"] = changed
        return CameraControlPublic(
            name=name,
            wanted="stopped" if stopped else "running",
            state=reported_state(state, camera),
            changed=changed,
        )

    action = "camera.stop" if stopped else "camera.start"
    return audited(state.audit, key, action, camera.collection if camera else None, work)


@router.post(
    "/{name}/stop",
    response_model=CameraControlPublic,
    summary="Stop a camera until it is started again (admin, audited).",
)
def stop_camera(state: StateDep, key: AdminKey, name: CameraName) -> CameraControlPublic:
    return _set_stopped(state, key, name, stopped=True)


@router.post(
    "/{name}/start",
    response_model=CameraControlPublic,
    summary="Start a camera an admin stopped (admin, audited).",
)
def start_camera(state: StateDep, key: AdminKey, name: CameraName) -> CameraControlPublic:
    return _set_stopped(state, key, name, stopped=False)
