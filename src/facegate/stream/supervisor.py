"""``facegate serve`` runs each configured camera in its own process (one slow or
crashing camera never stalls the API or the other cameras) and restarts a process that
dies, with growing delays. Workers report through status files (events.camera_status).
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import threading
import time
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
    write_status,
)
from facegate.stream.capture import source_kind
from facegate.stream.runner import CameraRun

log = logging.getLogger("facegate.stream.supervisor")
EXIT_FINISHED = 0  # a file camera read to its end: not restarted
EXIT_CONFIG = 78  # the camera cannot run as configured: not restarted


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


class CameraSupervisor:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._context = multiprocessing.get_context("spawn")  # no inherited threads or locks
        self._slots = [_Slot(c) for c in settings.cameras]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="camera supervisor", daemon=True)

    def start(self) -> CameraSupervisor:
        if self._slots:
            for slot in self._slots:
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
        while not self._stop.wait(0.5):
            for slot in self._slots:
                self._check(slot)

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

    def _mark_crashed(self, slot: _Slot, code: int | None, delay: float) -> None:
        directory = self.settings.camera_status_dir
        status = read_status(directory, slot.camera.name) or CameraStatus(
            slot.camera.name, mask_source(slot.camera.source), slot.camera.collection, "crashed"
        )
        status.state = "crashed"
        status.restarts = slot.restarts
        status.last_error = f"worker process exited with code {code}; restarting in {delay:.0f} s"
        write_status(directory, status)
        log.warning("camera %s: %s", slot.camera.name, status.last_error)

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
