"""Stopping and starting cameras: the API (POST /v1/cameras/{name}/stop and /start, GET
/v1/cameras/control) over real HTTP, and a real ``facegate serve`` whose supervisor stops
and starts its camera worker processes when an admin asks through the API."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from facegate.config import ServiceSettings, Settings
from facegate.events.camera_status import read_status, set_camera_stopped, stopped_cameras
from facegate.gallery.applications import ApplicationStore
from facegate.gallery.opening import open_store
from facegate.service.app import create_app
from facegate.service.state import BOOTSTRAP_KEY_FILE
from facegate.stream.supervisor import CameraSupervisor
from helpers import problem, running_server
from test_stream_serve import start_serve, wait_for

CAMERAS = [
    {"name": "door", "source": "rtsp://u:pw-door-1@127.0.0.1:9/x", "collection": "lobby"},
    {"name": "yard", "source": "rtsp://127.0.0.1:9/yard", "collection": "vault"},
]


@dataclass
class Api:
    client: httpx.Client
    applications: ApplicationStore
    secrets: dict[str, str]  # role -> secret
    key_ids: dict[str, str]

    def post(self, path: str, role: str | None = "admin") -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.secrets[role]}"} if role else {}
        return self.client.post(path, headers=headers)

    def get(self, path: str, role: str = "admin", **params: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.secrets[role]}"}
        return self.client.get(path, headers=headers, params=params)

    def wanted(self, role: str = "admin") -> dict[str, str]:
        answer = self.get("/v1/cameras/control", role)
        assert answer.status_code == 200, answer.text
        return {c["name"]: c["wanted"] for c in answer.json()["items"]}


@pytest.fixture()
def api(tmp_path: Path) -> Iterator[Api]:
    settings = Settings(data_dir=tmp_path, service=ServiceSettings(rate_limit=0), cameras=CAMERAS)
    app = create_app(settings)
    with running_server(settings, app) as base, httpx.Client(base_url=base, timeout=30) as client:
        admin = (tmp_path / BOOTSTRAP_KEY_FILE).read_text().strip()
        secrets, key_ids = {"admin": admin}, {"admin": admin.split("_")[1]}  # fg_<id>_<secret>
        for role, scopes, collections in (
            ("reader", ["read"], None),
            ("lobby_admin", ["admin"], ["lobby"]),
        ):
            made = client.post(
                "/v1/keys",
                json={"name": role, "scopes": scopes, "collections": collections},
                headers={"Authorization": f"Bearer {admin}"},
            )
            assert made.status_code == 201, made.text
            secrets[role], key_ids[role] = made.json()["secret"], made.json()["id"]
        yield Api(client, app.state.facegate.applications, secrets, key_ids)


def test_stop_and_start_record_what_is_wanted(api: Api) -> None:
    assert api.wanted() == {"door": "running", "yard": "running"}
    stopped = api.post("/v1/cameras/door/stop")
    assert stopped.status_code == 200, stopped.text
    # No supervisor runs here: the camera has not reported, and the answer says so.
    assert stopped.json() == {
        "name": "door",
        "wanted": "stopped",
        "state": "starting",
        "changed": True,
    }
    assert api.post("/v1/cameras/door/stop").json()["changed"] is False  # already stopped
    assert api.wanted() == {"door": "stopped", "yard": "running"}
    assert api.wanted("reader") == {"door": "stopped", "yard": "running"}  # read scope
    assert stopped_cameras(api.applications) == {"door"}  # what the supervisors read

    started = api.post("/v1/cameras/door/start")
    assert started.status_code == 200, started.text
    assert started.json()["wanted"] == "running" and started.json()["changed"] is True
    assert stopped_cameras(api.applications) == frozenset()


def test_only_admins_of_the_cameras_collection(api: Api) -> None:
    problem(api.post("/v1/cameras/door/stop", None), 401, "unauthorized")
    problem(api.post("/v1/cameras/door/stop", "reader"), 403, "insufficient-scope")
    problem(api.post("/v1/cameras/nowhere/stop"), 404, "unknown-camera")
    # An admin of lobby only: another collection's camera is not even named to it.
    problem(api.post("/v1/cameras/yard/stop", "lobby_admin"), 404, "unknown-camera")
    assert api.post("/v1/cameras/door/stop", "lobby_admin").status_code == 200
    assert api.wanted("lobby_admin") == {"door": "stopped"}
    assert stopped_cameras(api.applications) == {"door"}


def test_every_stop_and_start_is_audited(api: Api) -> None:
    api.post("/v1/cameras/door/stop")
    api.post("/v1/cameras/door/start", "lobby_admin")
    api.post("/v1/cameras/ghost/stop")
    records = api.get("/v1/audit", limit=10).json()["items"]
    trail = [
        (r["action"], r["outcome"], r["key_id"], r["collection"], r["detail"])
        for r in records
        if r["action"].startswith("camera.")
    ]
    admin, lobby_admin = api.key_ids["admin"], api.key_ids["lobby_admin"]
    assert trail == [  # newest first
        ("camera.stop", "unknown_camera", admin, None, {"camera": "ghost"}),
        ("camera.start", "ok", lobby_admin, "lobby", {"camera": "door", "changed": True}),
        ("camera.stop", "ok", admin, "lobby", {"camera": "door", "changed": True}),
    ]


def test_a_camera_stopped_before_serve_starts_is_not_started(tmp_path: Path) -> None:
    """The supervisor reads the database at its start: a stopped camera stays stopped
    across a restart of ``facegate serve``."""
    settings = Settings(data_dir=tmp_path, cameras=CAMERAS[:1])
    store = open_store(settings)
    try:
        set_camera_stopped(ApplicationStore(store.engine), "door", True, "test")
    finally:
        store.close()
    supervisor = CameraSupervisor(settings).start()
    try:
        assert supervisor.pids() == {"door": None}
        status = read_status(settings.camera_status_dir, "door")
        assert status is not None and status.state == "stopped" and status.pid is None
        assert "pw-door-1" not in status.source
    finally:
        supervisor.stop()


# --- a real facegate serve ---------------------------------------------------------------------
def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_serve_stops_and_starts_camera_workers(tmp_path: Path, data_root: Path) -> None:
    server, url, data_dir = start_serve(tmp_path, data_root, "rtsp://127.0.0.1:9/nothing")
    headers: dict[str, str] = {}

    def pid(name: str) -> int | None:
        status = read_status(data_dir / "cameras", name)
        return status.pid if status is not None else None

    try:
        wait_for(lambda: (data_dir / BOOTSTRAP_KEY_FILE).is_file(), 120, "the admin key")
        key = (data_dir / BOOTSTRAP_KEY_FILE).read_text(encoding="utf-8").strip()
        headers["Authorization"] = f"Bearer {key}"

        def ready() -> bool:
            try:
                return httpx.get(f"{url}/ready", timeout=5).status_code == 200
            except httpx.TransportError:
                assert server.poll() is None, server.communicate()[1]
                return False

        def camera(name: str) -> dict[str, Any]:
            answer = httpx.get(f"{url}/v1/cameras", headers=headers, timeout=10)
            assert answer.status_code == 200, answer.text
            return next(c for c in answer.json()["items"] if c["name"] == name)

        def control(name: str, verb: str) -> None:
            answer = httpx.post(f"{url}/v1/cameras/{name}/{verb}", headers=headers, timeout=10)
            assert answer.status_code == 200, answer.text

        wait_for(ready, 120, "the server")
        wait_for(lambda: camera("stage")["state"] == "streaming", 60, "the stage camera")
        wait_for(lambda: camera("door")["reconnects"] >= 1, 60, "the door camera to retry")

        # A live stream: stopped, its worker process ends, and it stays down.
        door_pid = pid("door")
        assert door_pid is not None
        control("door", "stop")
        # The worker says "stopped" as it closes; the supervisor once the process is gone.
        wait_for(lambda: pid("door") is None, 20, "the door camera to stop")
        assert camera("door")["state"] == "stopped" and gone(door_pid)
        time.sleep(3)  # several supervisor rounds: a stopped camera is not restarted
        assert camera("door")["state"] == "stopped" and pid("door") is None

        # A file camera in mid-stream: stopped, then started again from the beginning.
        stage_pid = pid("stage")
        assert stage_pid is not None
        control("stage", "stop")
        wait_for(lambda: pid("stage") is None, 20, "the stage camera to stop")
        assert camera("stage")["state"] == "stopped" and gone(stage_pid)
        analysed = camera("stage")["analysed"]
        time.sleep(1.5)
        assert camera("stage")["analysed"] == analysed  # nothing analysed while stopped
        control("stage", "start")
        wait_for(lambda: camera("stage")["state"] == "streaming", 60, "the stage camera again")
        assert pid("stage") not in (None, stage_pid)
        assert camera("stage")["restarts"] == 0  # started by an admin is not a crash

        control("door", "start")
        wait_for(
            lambda: camera("door")["state"] in ("connecting", "reconnecting") and pid("door"),
            60,
            "the door camera to run again",
        )
        assert pid("door") != door_pid
    finally:
        server.send_signal(signal.SIGINT)
        server.communicate(timeout=60)
    for name in ("stage", "door"):  # no worker outlives the server
        left = pid(name)
        assert left is None or gone(left)
