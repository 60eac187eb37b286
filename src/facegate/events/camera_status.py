"""Camera status, written by each camera worker as a small JSON file that the service
reads for GET /v1/cameras (the two never import each other, and a status file works
the same whether the worker is a thread, a process or on another replica's disk).

The other direction, which cameras an admin stopped, goes through the database (a
``cameras`` application document): the service writes it on any replica and every
supervisor of ``facegate serve`` reads it."""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from facegate.gallery.applications import ApplicationStore

_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S+")
HEARTBEAT_S = 1.0  # how often a running worker rewrites its status
STALE_AFTER_S = 5 * HEARTBEAT_S


@dataclass
class CameraStatus:
    camera: str
    source: str  # credentials masked
    collection: str
    state: str  # starting, connecting, streaming, reconnecting, ended, stopped, failed, crashed
    updated_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    started_at: str | None = None
    pid: int | None = None
    restarts: int = 0
    fps: float = 0.0  # frames analysed per second, recent
    decoded: int = 0
    analysed: int = 0
    skipped: int = 0  # above the target rate
    dropped: int = 0  # not analysed in time
    reconnects: int = 0
    active_tracks: int = 0
    cuts: int = 0
    events: dict[str, int] = field(default_factory=dict)
    sinks: list[dict[str, Any]] = field(default_factory=list)
    last_error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CameraStatus:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def stale(self, now: datetime | None = None) -> bool:
        """Whether the worker stopped reporting while it claimed to be running."""
        if self.state in ("ended", "stopped", "failed", "crashed"):
            return False
        updated = datetime.fromisoformat(self.updated_at)
        return ((now or datetime.now(UTC)) - updated).total_seconds() > STALE_AFTER_S


def mask_source(source: str) -> str:
    """``source`` safe to show and log: the password of ``scheme://user:password@host``
    as *** (a password may itself hold '@' or '/'; a user without a password is masked
    whole)."""
    scheme, sep, rest = source.partition("://")
    # Credentials come before any query or fragment (an '@' there is not one).
    end = min((i for i in (rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    at = rest.rfind("@", 0, end)
    if not sep or at < 0:
        return source
    userinfo, host = rest[:at], rest[at + 1 :]
    user, colon, _ = userinfo.partition(":")
    if colon:
        return f"{scheme}://{user}:***@{host}"
    if "/" in userinfo or "?" in userinfo:  # an '@' in the path, not credentials
        return source
    return f"{scheme}://***@{host}"


def mask_urls(text: str) -> str:
    """``text`` (an error message, say) with the password of every URL in it as ***."""
    return _URL.sub(lambda m: mask_source(m.group(0)), text)


def status_path(directory: Path, camera: str) -> Path:
    return directory / f"{camera}.json"


def write_status(directory: Path, status: CameraStatus) -> None:
    """Replace the camera's status file atomically (a reader never sees half of it)."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    status.updated_at = datetime.now(UTC).isoformat()
    fd, temp = tempfile.mkstemp(dir=directory, prefix=f".{status.camera}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(status.as_dict(), out)
        os.replace(temp, status_path(directory, status.camera))
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def read_status(directory: Path, camera: str) -> CameraStatus | None:
    try:
        data = json.loads(status_path(directory, camera).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return CameraStatus.from_dict(data) if isinstance(data, dict) else None


def read_statuses(directory: Path, cameras: list[str]) -> list[CameraStatus]:
    """The status of each configured camera, in order; a camera that never reported
    is ``starting``."""
    found = []
    for name in cameras:
        status = read_status(directory, name)
        found.append(
            status or CameraStatus(camera=name, source="", collection="", state="starting")
        )
    return found


# --- cameras stopped by an admin (POST /v1/cameras/{name}/stop, .../start) ------------------
CONTROL_DOCUMENT = "cameras"  # an application document: {"stopped": [camera names]}


def stopped_cameras(applications: ApplicationStore) -> frozenset[str]:
    """The cameras an admin stopped (none while the document was never written)."""
    stored = applications.get_document(CONTROL_DOCUMENT)
    names = stored.document.get("stopped") if stored is not None else None
    if not isinstance(names, list):  # absent, or not written by this code
        return frozenset()
    return frozenset(n for n in names if isinstance(n, str))


def set_camera_stopped(
    applications: ApplicationStore, camera: str, stopped: bool, updated_by: str
) -> bool:
    """Mark ``camera`` stopped (or not) for the supervisors; whether that changed anything.
    Read, change, write: callers serialise their own changes."""
    current = stopped_cameras(applications)
    wanted = current | {camera} if stopped else current - {camera}
    if wanted == current:
        return False
    applications.put_document(CONTROL_DOCUMENT, {"stopped": sorted(wanted)}, updated_by)
    return True
