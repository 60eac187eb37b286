"""``facegate serve`` runs the configured cameras as worker processes: a real server
process, a real camera worker reading the labelled clip at its own pace, events in the
database through GET /v1/events, status through GET /v1/cameras, and a worker killed
with SIGKILL restarted by the supervisor."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from facegate.config import Settings
from facegate.service.state import BOOTSTRAP_KEY_FILE
from stream_truth import enroll_clip_people
from test_replicas import free_port


def wait_for(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def start_serve(tmp_path: Path, data_root: Path, door_source: str) -> tuple[Any, str, Path]:
    """A real ``facegate serve`` with two cameras: "stage" reads the sample clip at its own
    pace, "door" is an RTSP address where nothing listens. The three clip people are
    enrolled first. Returns the process, its URL and its data directory."""
    data_dir = tmp_path / "data"
    enroll_clip_people(Settings(data_dir=data_dir), data_root / "video")
    clip = data_root / "video" / "short_hamilton_clip.mp4"
    config = tmp_path / "facegate.toml"
    config.write_text(
        "[[cameras]]\n"
        'name = "stage"\n'
        f"source = {json.dumps(str(clip))}\n"
        "realtime = true\n"
        "[[cameras]]\n"
        'name = "door"\n'
        f"source = {json.dumps(door_source)}\n",
        encoding="utf-8",
    )
    port = free_port()
    env = {**os.environ, "FACEGATE_DATA_DIR": str(data_dir), "FACEGATE_CONFIG": str(config)}
    server = subprocess.Popen(
        [sys.executable, "-m", "facegate", "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    return server, f"http://127.0.0.1:{port}", data_dir


def test_serve_runs_cameras_and_restarts_a_crashed_worker(tmp_path: Path, data_root: Path) -> None:
    server, url, data_dir = start_serve(
        tmp_path, data_root, "rtsp://admin:hunter22@127.0.0.1:9/nothing"
    )
    try:
        wait_for(lambda: (data_dir / BOOTSTRAP_KEY_FILE).is_file(), 120, "the admin key")
        key = (data_dir / BOOTSTRAP_KEY_FILE).read_text(encoding="utf-8").strip()
        headers = {"Authorization": f"Bearer {key}"}

        def cameras() -> dict[str, dict[str, Any]]:
            answer = httpx.get(f"{url}/v1/cameras", headers=headers, timeout=10)
            assert answer.status_code == 200, answer.text
            return {c["name"]: c for c in answer.json()["items"]}

        def ready() -> bool:
            try:
                return httpx.get(f"{url}/ready", timeout=5).status_code == 200
            except httpx.TransportError:
                assert server.poll() is None, server.communicate()[1]
                return False

        wait_for(ready, 120, "the server")
        wait_for(lambda: cameras()["stage"]["state"] == "streaming", 60, "the stage camera")
        status_file = data_dir / "cameras" / "stage.json"
        first_pid = json.loads(status_file.read_text(encoding="utf-8"))["pid"]
        os.kill(first_pid, signal.SIGKILL)

        def restarted() -> bool:
            stage = cameras()["stage"]
            return stage["restarts"] == 1 and stage["state"] in ("streaming", "ended")

        wait_for(restarted, 60, "the restarted stage worker")
        assert json.loads(status_file.read_text(encoding="utf-8"))["pid"] != first_pid

        def identified() -> set[str]:
            answer = httpx.get(
                f"{url}/v1/events",
                params={"camera": "stage", "kind": "identified", "limit": 500},
                headers=headers,
                timeout=10,
            )
            assert answer.status_code == 200, answer.text
            return {e["subject_name"] for e in answer.json()["items"]}

        names = wait_for(
            lambda: {"Lin-Manuel Miranda", "Alex Lacamoire"} <= identified() and identified(),
            60,
            "identified events from the stage camera",
        )
        assert names <= {"Lin-Manuel Miranda", "Alex Lacamoire", "Barack Obama"}

        # The unreachable camera keeps reconnecting, and its password is never shown.
        door = wait_for(
            lambda: cameras()["door"]["reconnects"] >= 1 and cameras()["door"],
            60,
            "the door camera to retry",
        )
        assert door["state"] in ("reconnecting", "connecting")
        listing = httpx.get(f"{url}/v1/cameras", headers=headers, timeout=10).text
        assert "hunter22" not in listing
    finally:
        server.send_signal(signal.SIGINT)
        _, stderr = server.communicate(timeout=60)
    assert "hunter22" not in stderr  # not in the logs either
    # No worker process outlives the server.
    for name in ("stage", "door"):
        pid = json.loads((data_dir / "cameras" / f"{name}.json").read_text())["pid"]
        if pid is not None:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
