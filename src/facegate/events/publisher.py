"""Fan one camera's events out to every sink; a failing sink never stops the others."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from facegate.events.model import EventSink, SinkStats, StreamEvent

log = logging.getLogger("facegate.events")


class Publisher:
    def __init__(self, sinks: Sequence[EventSink] = ()) -> None:
        self.sinks = list(sinks)
        self.published = 0
        self.errors: dict[str, int] = {}

    def publish(self, event: StreamEvent) -> None:
        self.published += 1
        for sink in self.sinks:
            try:
                sink.publish(event)
            except Exception:  # one broken sink must not cost the others their event
                self.errors[sink.name] = self.errors.get(sink.name, 0) + 1
                log.exception("event sink %s failed on a %s event", sink.name, event.kind)

    def stats(self) -> list[SinkStats]:
        return [sink.stats() for sink in self.sinks]

    def close(self, timeout: float = 5.0) -> None:
        for sink in self.sinks:
            try:
                sink.close(timeout)
            except Exception:
                log.exception("event sink %s failed to close", sink.name)
