"""``facegate serve`` runs each configured camera in its own process (one slow or
crashing camera never stalls the API or the other cameras) and restarts a process that
dies, with growing delays. Workers report through status files (events.camera_status).

An admin may stop a camera and start it again through the API (``POST
/v1/cameras/{name}/stop``), which only records the wish in the database: the supervisor
reads it every second and stops or starts the worker process, so it works from any
replica of the API and survives a restart of ``serve``.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from types import FrameType

from facegate.config import CameraSettings, Settings
from facegate.events.camera_status import (
    HEARTBEAT_S,
    CameraStatus,
    mask_source,
    mask_urls,
    read_status,
    stopped_cameras,
    write_status,
)
from facegate.gallery.applications import ApplicationStore
from facegate.gallery.opening import open_store
from facegate.gallery.sql_store import SqlStore
from facegate.stream.capture import source_kind
from facegate.stream.runner import CameraRun

log = logging.getLogger("facegate.stream.supervisor")
EXIT_FINISHED = 0  # a file camera read to its end: not restarted
EXIT_CONFIG = 78  # the camera cannot run as configured: not restarted
WATCH_S = 0.5  # how often worker processes are looked at
CONTROL_POLL_S = 1.0  # how often the cameras stopped by an admin are read
STOP_GRACE_S = 10.0  # a worker asked to stop is killed if it has not exited by then


def camera_process(settings: Settings, camera: CameraSettings, restarts: int) -> None:
    """The body of one worker process: run the camera, write its status every second."""
    stop = threading.Event()

    def on_term(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C goes to serve, which stops us
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    directory = settings.camera_status_dir
    try:
        run = CameraRun(settings, camera, restarts=restarts).start()
    except Exception as error:
        status = CameraStatus(
            camera.name,
            mask_source(camera.source),
            camera.collection,
            "failed",
            restarts=restarts,
            last_error=mask_urls(f"{type(error).__name__}: {error}")[:300],
        )
        write_status(directory, status)
        log.error("camera %s cannot start: %s", camera.name, status.last_error)
        raise SystemExit(EXIT_CONFIG) from None
    try:
        while run.running and not stop.wait(HEARTBEAT_S):
            write_status(directory, run.status())
    finally:
        run.close()
        write_status(directory, run.status())
    if run.error is not None:
        raise SystemExit(1)


@dataclass
class _Slot:
    camera: CameraSettings
    process: BaseProcess | None = None
    restarts: int = 0
    next_start: float = 0.0
    done: bool = False
    held: bool = False  # stopped by an admin: not run until started again
    held_since: float = 0.0
    reported_stopped: bool = False


class StoppedByAdmin:
    """Which cameras an admin stopped, read from the database that the API writes. The
    store is opened on first use; while the database cannot be read, the last answer
    stands (a database outage neither stops nor starts a camera)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._store: SqlStore | None = None
        self._last: frozenset[str] = frozenset()
        self._failing = False

    def __call__(self) -> frozenset[str]:
        try:
            if self._store is None:
                self._store = open_store(self.settings)
            self._last = stopped_cameras(ApplicationStore(self._store.engine))
        except Exception as error:  # any driver error: keep running as we are
            if not self._failing:
                log.warning("cannot read which cameras are stopped (%s); retrying", error)
            self._failing = True
        else:
            if self._failing:
                log.info("reading which cameras are stopped again")
            self._failing = False
        return self._last

    def close(self) -> None:
        if self._store is not None:
            self._store.close()


class CameraSupervisor:
    def __init__(
        self, settings: Settings, stopped: Callable[[], frozenset[str]] | None = None
    ) -> None:
        """``stopped``: the names of the cameras an admin stopped (default: read from the
        database, see StoppedByAdmin)."""
        self.settings = settings
        self._context = multiprocessing.get_context("spawn")  # no inherited threads or locks
        self._slots = [_Slot(c) for c in settings.cameras]
        self._stopped = stopped or StoppedByAdmin(settings)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="camera supervisor", daemon=True)

    def start(self) -> CameraSupervisor:
        if self._slots:
            held = self._stopped()
            for slot in self._slots:
                if slot.camera.name in held:
                    self._hold(slot)
                else:
                    self._launch(slot)
            self._thread.start()
        return self

    def pids(self) -> dict[str, int | None]:
        return {s.camera.name: s.process.pid if s.process else None for s in self._slots}

    def _launch(self, slot: _Slot) -> None:
        slot.process = self._context.Process(
            target=camera_process,
            args=(self.settings, slot.camera, slot.restarts),
            name=f"facegate camera {slot.camera.name}",
            daemon=True,
        )
        slot.process.start()
        log.info("camera %s started (pid %s)", slot.camera.name, slot.process.pid)

    def _watch(self) -> None:
        held, next_read = frozenset[str](), 0.0
        while not self._stop.wait(WATCH_S):
            if time.monotonic() >= next_read:
                held, next_read = self._stopped(), time.monotonic() + CONTROL_POLL_S
            for slot in self._slots:
                if slot.camera.name in held:
                    self._hold(slot)
                elif slot.held:
                    self._release(slot)
                else:
                    self._check(slot)

    def _hold(self, slot: _Slot) -> None:
        """Keep a camera an admin stopped down: SIGTERM its worker (which closes the stream
        and writes a last status), SIGKILL it after STOP_GRACE_S, then report it stopped."""
        if not slot.held:
            slot.held, slot.held_since, slot.next_start = True, time.monotonic(), 0.0
            slot.reported_stopped = False
            log.info("camera %s stopped by an admin", slot.camera.name)
            if slot.process is not None and slot.process.is_alive():
                slot.process.terminate()
        process = slot.process
        if process is not None and process.is_alive():
            if time.monotonic() - slot.held_since > STOP_GRACE_S:
                process.kill()
            return
        if not slot.reported_stopped:
            self._mark_stopped(slot)
            slot.process, slot.reported_stopped = None, True

    def _release(self, slot: _Slot) -> None:
        """Run a camera an admin started again (a file is read from its start)."""
        process = slot.process
        if process is not None and process.is_alive():  # still stopping: start once it is gone
            if time.monotonic() - slot.held_since > STOP_GRACE_S:
                process.kill()
            return
        slot.held, slot.done, slot.next_start = False, False, 0.0
        log.info("camera %s started by an admin", slot.camera.name)
        # Until the new worker reports, it is starting, not still stopped.
        write_status(self.settings.camera_status_dir, self._status(slot, "starting"))
        self._launch(slot)

    def _check(self, slot: _Slot) -> None:
        process = slot.process
        if slot.done or process is None:
            return
        if process.is_alive():
            return
        code = process.exitcode
        if slot.next_start == 0.0:  # first look at this exit
            finished = code == EXIT_FINISHED and source_kind(slot.camera.source).value == "file"
            if finished or code == EXIT_CONFIG:
                slot.done = True
                log.info("camera %s exited (%s); not restarted", slot.camera.name, code)
                return
            delay = min(2.0**slot.restarts, self.settings.stream.restart_max_s)
            slot.next_start = time.monotonic() + delay
            self._mark_crashed(slot, code, delay)
            return
        if time.monotonic() >= slot.next_start:
            slot.restarts += 1
            slot.next_start = 0.0
            self._launch(slot)

    def _status(self, slot: _Slot, state: str) -> CameraStatus:
        """The camera's last report (counts kept) in a new state, or a new one."""
        camera = slot.camera
        status = read_status(self.settings.camera_status_dir, camera.name) or CameraStatus(
            camera.name, mask_source(camera.source), camera.collection, state
        )
        status.state = state
        status.restarts = slot.restarts
        return status

    def _mark_crashed(self, slot: _Slot, code: int | None, delay: float) -> None:
        status = self._status(slot, "crashed")
        status.last_error = f"worker process exited with code {code}; restarting in {delay:.0f} s"
        write_status(self.settings.camera_status_dir, status)
        log.warning("camera %s: %s", slot.camera.name, status.last_error)

    def _mark_stopped(self, slot: _Slot) -> None:
        status = self._status(slot, "stopped")
        status.pid, status.fps, status.active_tracks, status.last_error = None, 0.0, 0, None
        write_status(self.settings.camera_status_dir, status)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        for slot in self._slots:
            if slot.process is not None and slot.process.is_alive():
                slot.process.terminate()
        deadline = time.monotonic() + timeout
        for slot in self._slots:
            if slot.process is not None:
                slot.process.join(max(0.0, deadline - time.monotonic()))
                if slot.process.is_alive():
                    slot.process.kill()
        if isinstance(self._stopped, StoppedByAdmin):
            self._stopped.close()
