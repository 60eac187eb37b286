"""Record events in the gallery's database (GET /v1/events reads them back).

Snapshots are sealed by the store like templates. An event about a subject erased in
the meantime is refused by the database (the subject's events go with them) and dropped.
"""

from __future__ import annotations

import logging
import threading

from facegate.events.model import SinkStats, StreamEvent
from facegate.gallery.records import Event
from facegate.gallery.sql_store import SqlStore

log = logging.getLogger("facegate.events.database")


def as_record(event: StreamEvent) -> Event:
    return Event(
        id=event.id,
        at=event.at,
        kind=str(event.kind),
        camera=event.camera,
        collection_id=event.collection_id,
        subject_id=event.subject_id,
        similarity=event.similarity,
        quality=event.quality,
        snapshot=event.snapshot,
        track_id=event.track_id,
        reason=event.reason,
        door=event.door,
        quota=event.quota,
    )


class DatabaseSink:
    name = "database"

    def __init__(self, store: SqlStore) -> None:
        self.store = store
        self._delivered = 0
        self._failed = 0
        self._last_error: str | None = None
        self._lock = threading.Lock()

    def publish(self, event: StreamEvent) -> None:
        # A local write of a few hundred bytes: done in the caller's thread.
        try:
            self.store.add_event(as_record(event))
        except Exception as error:
            with self._lock:
                self._failed += 1
                self._last_error = f"{type(error).__name__}"
            log.warning("event %s (%s) not recorded: %s", event.id, event.kind, error)
            return
        with self._lock:
            self._delivered += 1

    def stats(self) -> SinkStats:
        with self._lock:
            return SinkStats(
                self.name,
                delivered=self._delivered,
                dead_letters=self._failed,
                last_error=self._last_error,
            )

    def close(self, timeout: float = 5.0) -> None:
        """The store belongs to whoever opened it."""
