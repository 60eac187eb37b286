"""What a camera worker reports: one event per change in a face track.

``track_started`` when a face has been followed for a few frames, ``identified`` or
``unknown`` once the track is decided (never both; at most once per track),
``track_ended`` when it leaves. Events name a subject only by id and display name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from facegate.gallery.records import new_id


class EventKind(StrEnum):
    TRACK_STARTED = "track_started"
    IDENTIFIED = "identified"
    UNKNOWN = "unknown"
    TRACK_ENDED = "track_ended"
    # An access decision at a door (policy/): ``door``, ``allowed`` and ``reason`` (the
    # decision code) are set; from a camera it carries the camera and track, from the API
    # ``camera`` is "api" and ``track_id`` 0. On ``allowed`` it is the door's open command.
    ACCESS = "access"
    # A quota claimed by a camera for a decided track: ``quota``, ``allowed`` (granted)
    # and ``reason`` (within_limit, limit_reached, unknown_person) are set, and
    # ``retry_after_s`` when denied for the limit. An anonymous quota's event names no
    # subject and carries no similarity. On a granted claim it is the dispenser's command.
    QUOTA = "quota"


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One event of one camera. ``at`` is timezone-aware UTC; ``stream_time`` is the
    position in the stream (seconds) of the frame that caused it.

    ``snapshot``: a JPEG of the best shot, only when snapshots are switched on; it goes to
    the database sealed like templates and is never put in webhook or MQTT payloads.
    """

    kind: EventKind
    at: datetime
    camera: str
    track_id: int
    stream_time: float
    collection_id: str | None = None
    subject_id: str | None = None
    subject_name: str | None = None
    similarity: float | None = None
    quality: float | None = None
    shots: int = 0
    reason: str | None = None
    bbox: tuple[float, float, float, float] | None = None
    shot_time: float | None = None  # stream position of the best shot (decisions only)
    door: str | None = None  # access events
    allowed: bool | None = None  # access events: the door opens; quota events: granted
    quota: str | None = None  # quota events
    retry_after_s: float | None = None  # quota events denied for the limit
    id: str = field(default_factory=new_id)
    snapshot: bytes | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.at.tzinfo is None:
            raise ValueError("event time must be timezone-aware (UTC)")
        if self.kind is EventKind.IDENTIFIED and not self.subject_id:
            raise ValueError("an identified event names its subject")
        named = (EventKind.IDENTIFIED, EventKind.ACCESS, EventKind.QUOTA)
        if self.kind not in named and self.subject_id:
            raise ValueError(f"a {self.kind} event names no subject")
        if (self.kind is EventKind.ACCESS) != (self.door is not None):
            raise ValueError("access events, and only they, name a door")
        if (self.kind is EventKind.QUOTA) != (self.quota is not None):
            raise ValueError("quota events, and only they, name a quota")

    def payload(self) -> dict[str, Any]:
        """The JSON body sent to webhooks and MQTT (no snapshot, no embedding)."""
        return {
            "id": self.id,
            "kind": str(self.kind),
            "at": self.at.isoformat(),
            "camera": self.camera,
            "track_id": self.track_id,
            "stream_time": round(self.stream_time, 3),
            "collection": self.collection_id,
            "subject_id": self.subject_id,
            "subject_name": self.subject_name,
            "similarity": None if self.similarity is None else round(self.similarity, 4),
            "quality": None if self.quality is None else round(self.quality, 4),
            "shots": self.shots,
            "reason": self.reason,
            "bbox": None if self.bbox is None else [round(v, 1) for v in self.bbox],
            "shot_time": None if self.shot_time is None else round(self.shot_time, 3),
            "door": self.door,
            "allowed": self.allowed,
            "quota": self.quota,
            "retry_after_s": None if self.retry_after_s is None else round(self.retry_after_s, 1),
        }

    def to_json(self) -> bytes:
        return json.dumps(self.payload(), separators=(",", ":"), sort_keys=True).encode()


@dataclass(frozen=True, slots=True)
class SinkStats:
    """Delivery counts of one sink: what went out, what is waiting, what was given up."""

    name: str
    delivered: int = 0
    pending: int = 0
    retries: int = 0
    dropped: int = 0  # refused because the sink's queue was full
    dead_letters: int = 0  # given up after the last retry
    last_error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "delivered": self.delivered,
            "pending": self.pending,
            "retries": self.retries,
            "dropped": self.dropped,
            "dead_letters": self.dead_letters,
            "last_error": self.last_error,
        }


class EventSink(Protocol):
    """Where events go. ``publish`` must not block the camera: a sink that talks to the
    network queues the event and delivers it from its own thread."""

    name: str

    def publish(self, event: StreamEvent) -> None: ...

    def stats(self) -> SinkStats: ...

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued (up to ``timeout`` seconds), then release resources."""
        ...
