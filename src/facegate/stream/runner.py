"""Run one camera: open its collection, build the event sinks, analyse in a thread and
report status. Used by ``facegate watch`` and by each worker process of ``serve``."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Sequence
from datetime import UTC, datetime

from facegate.config import CameraSettings, Settings
from facegate.errors import EphemeralCollectionError
from facegate.events.camera_status import CameraStatus, mask_source, mask_urls
from facegate.events.model import EventSink
from facegate.events.publisher import Publisher
from facegate.events.sinks import build_sinks
from facegate.recognition import FaceRecognizer
from facegate.stream.capture import CaptureState
from facegate.stream.worker import CameraWorker

log = logging.getLogger("facegate.stream")
FPS_WINDOW_S = 5.0


class CameraRun:
    def __init__(
        self,
        settings: Settings,
        camera: CameraSettings,
        *,
        extra_sinks: Sequence[EventSink] = (),
        restarts: int = 0,
    ) -> None:
        self.settings = settings
        self.camera = camera
        self.restarts = restarts
        self.recognizer = FaceRecognizer.open(settings, camera.collection, create=False)
        if self.recognizer.gallery.ephemeral:
            self.recognizer.close()
            raise EphemeralCollectionError(
                f"camera {camera.name!r}: collection {camera.collection!r} is ephemeral, its "
                "faces live only in the service process; cameras need a stored collection"
            )
        store = self.recognizer.durable
        self.publisher = Publisher([*build_sinks(settings.events, store), *extra_sinks])
        self.worker = CameraWorker(
            camera, self.recognizer, self.publisher, snapshots=settings.events.snapshots
        )
        self.started_at = datetime.now(UTC).isoformat()
        self._thread = threading.Thread(target=self._run, name=f"camera {camera.name}")
        self._samples: deque[tuple[float, int]] = deque()
        self._began: float | None = None
        self._ended: float | None = None
        self.error: BaseException | None = None

    def start(self) -> CameraRun:
        self._thread.start()
        return self

    def _run(self) -> None:
        self._began = time.monotonic()
        try:
            self.worker.run(self.worker.capture_options(self.settings))
        except BaseException as error:  # reported in the status, and by the supervisor
            self.error = error
            # The message only: a traceback may quote the stream URL with its password.
            log.error(
                "camera %s stopped on an error: %s",
                self.camera.name,
                mask_urls(f"{type(error).__name__}: {error}"),
            )
        finally:
            self._ended = time.monotonic()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def stop(self) -> None:
        self.worker.stop()

    def close(self, timeout: float = 5.0) -> None:
        self.stop()
        self._thread.join(timeout)
        self.worker.close()
        self.publisher.close(timeout)
        self.recognizer.close()

    def fps(self) -> float:
        """Frames analysed per second over the last few seconds (over the whole run once
        it is over)."""
        now = time.monotonic()
        if self._ended is not None and self._began is not None:
            return self.worker.counts.frames / max(self._ended - self._began, 1e-9)
        self._samples.append((now, self.worker.counts.frames))
        while len(self._samples) > 2 and now - self._samples[0][0] > FPS_WINDOW_S:
            self._samples.popleft()
        (t0, n0), (t1, n1) = self._samples[0], self._samples[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0

    def status(self) -> CameraStatus:
        counts = self.worker.counts
        capture = self.worker.capture
        stats = capture.stats if capture is not None else None
        state = stats.state.value if stats is not None else "starting"
        if self.error is not None:
            state = CaptureState.FAILED.value
        last_error = stats.last_error if stats is not None else None
        if self.error is not None:
            last_error = mask_urls(f"{type(self.error).__name__}: {self.error}")[:300]
        return CameraStatus(
            camera=self.camera.name,
            source=mask_source(self.camera.source),
            collection=self.camera.collection,
            state=state,
            started_at=self.started_at,
            pid=os.getpid(),
            restarts=self.restarts,
            fps=round(self.fps(), 2),
            decoded=stats.decoded if stats else 0,
            analysed=counts.frames,
            skipped=stats.skipped if stats else 0,
            dropped=stats.dropped if stats else 0,
            reconnects=stats.reconnects if stats else 0,
            active_tracks=sum(1 for t in self.worker.tracker.tracks if t.confirmed),
            cuts=counts.cuts,
            events=dict(counts.events),
            sinks=[s.as_dict() for s in self.publisher.stats()],
            last_error=last_error,
        )
