"""Doors bound to a camera: each decided track becomes an access decision at every door
the camera drives, published as an ``access`` event (on ``allowed``, the door's open
command). The access policy is read from the database and re-read when it changes."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from facegate.errors import PolicyError
from facegate.events.model import EventKind, StreamEvent
from facegate.gallery.applications import ApplicationStore
from facegate.gallery.audit import AuditLog
from facegate.gallery.gallery import Gallery
from facegate.policy.access import AccessPolicy
from facegate.policy.access_document import parse_access_policy
from facegate.policy.access_model import Identity, StoredPresence

log = logging.getLogger("facegate.stream.doors")
ACCESS_DOCUMENT = "access"


class CameraDoors:
    def __init__(self, camera: str, store: ApplicationStore, gallery: Gallery) -> None:
        self.camera = camera
        self.store = store
        self.gallery = gallery
        self.audit = AuditLog(store.engine)  # every decision is audited, as through the API
        self.presence = StoredPresence(store)
        self._version: int | None = None
        self._policy = AccessPolicy()

    def policy(self) -> AccessPolicy:
        """The stored policy, re-read when its version changed (a bad one is kept out)."""
        document = self.store.get_document(ACCESS_DOCUMENT)
        version = document.version if document is not None else None
        if version != self._version:
            self._version = version
            try:
                self._policy = (
                    parse_access_policy(document.document) if document else AccessPolicy()
                )
            except PolicyError as error:
                log.error("access policy version %s not used: %s", version, error)
                self._policy = AccessPolicy()
        return self._policy

    def decide(self, decision: StreamEvent, now: Callable[[], datetime]) -> list[StreamEvent]:
        """Access events for a track's decision (``identified`` or ``unknown``)."""
        policy = self.policy()
        doors = policy.doors_for_camera(self.camera)
        if not doors:
            return []
        person = None
        if decision.subject_id is not None:
            subject = self.gallery.store.get_subject(decision.subject_id)
            if subject is not None:
                person = Identity(subject.id, subject.external_id)
        answers = []
        for door in doors:
            if door.collection != decision.collection_id:
                continue  # the door identifies against another collection
            at = now()
            verdict = policy.decide(
                door.name, person, at, quality=decision.quality, presence=self.presence
            )
            self.audit.append(
                "access.decide",
                str(verdict.reason),
                collection=door.collection,
                subject_ids=[person.subject_id] if person else [],
                detail={"door": door.name, "camera": self.camera, "track": decision.track_id},
                at=at,
            )
            answers.append(
                StreamEvent(
                    kind=EventKind.ACCESS,
                    at=at,
                    camera=decision.camera,
                    track_id=decision.track_id,
                    stream_time=decision.stream_time,
                    collection_id=decision.collection_id,
                    subject_id=person.subject_id if person else None,
                    subject_name=decision.subject_name if person else None,
                    similarity=decision.similarity,
                    quality=decision.quality,
                    reason=str(verdict.reason),
                    bbox=decision.bbox,
                    shot_time=decision.shot_time,
                    door=door.name,
                    allowed=verdict.allowed,
                )
            )
        return answers
