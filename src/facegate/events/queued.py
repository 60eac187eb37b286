"""What the network sinks share: a bounded queue that ``publish`` never blocks on, the
delivery counts, and closing that stops accepting, drains for a while, then gives up."""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time

from facegate.events.model import SinkStats, StreamEvent

STOP = object()  # wakes the delivery thread when the sink closes


class QueuedSink:
    def __init__(self, name: str, queue_size: int, log: logging.Logger) -> None:
        self.name = name
        self._log = log
        self._queue: queue.Queue[object] = queue.Queue(maxsize=queue_size)
        self._lock = threading.Lock()
        self._closed = False
        self._stop = threading.Event()  # set when close() stops waiting for the queue
        self._delivered = 0
        self._pending = 0
        self._retries = 0
        self._dropped = 0
        self._dead_letters = 0
        self._last_error: str | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def publish(self, event: StreamEvent) -> None:
        with self._lock:
            if self._closed:
                self._dropped += 1
                return
            try:
                self._queue.put_nowait(event)
            except queue.Full:
                self._dropped += 1
                return
            self._pending += 1

    def stats(self) -> SinkStats:
        with self._lock:
            return SinkStats(
                name=self.name,
                delivered=self._delivered,
                pending=self._pending,
                retries=self._retries,
                dropped=self._dropped,
                dead_letters=self._dead_letters,
                last_error=self._last_error,
            )

    def close(self, timeout: float = 5.0) -> None:
        """Stop accepting, deliver what is queued for up to ``timeout`` seconds, then stop
        (what is left stays counted as pending, and is logged)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            if self._closed:
                return
            self._closed = True
        while self._thread.is_alive() and self.stats().pending and time.monotonic() < deadline:
            time.sleep(0.01)
        self._stop.set()
        # The queue may be full; the thread also checks _stop after each event.
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(STOP)
        # An attempt in flight ends on its own timeout; the thread is a daemon, so do not
        # wait for it past the caller's deadline (plus a moment to notice _stop).
        self._thread.join(max(deadline - time.monotonic(), 0.5))
        self._after_close()
        left = self.stats().pending
        if left:
            self._log.warning("%s closed with %d event(s) not delivered", self.name, left)

    def _after_close(self) -> None:
        """Release what the sink holds (a client, a connection)."""

    def _run(self) -> None:
        while not self._stop.is_set():
            item = self._queue.get()
            if item is STOP or self._stop.is_set():
                return
            assert isinstance(item, StreamEvent)
            self._deliver(item)

    def _deliver(self, event: StreamEvent) -> None:
        raise NotImplementedError
