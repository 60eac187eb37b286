"""Quotas bound to a camera: each decided track claims the camera's quotas once, as a
``POST /v1/quotas/{name}/claim`` does for one photo, and the answer is published as a
``quota`` event (on a granted claim, the dispenser's command).

- enrolled quotas count the identified subject in the database (shared with the API and
  every replica); an unknown track is denied with ``unknown_person`` and counts nothing.
- anonymous quotas remember the track's best shot (the embedding its decision rests on) in
  this worker's memory only, for one window; their events name nobody and carry no score.

The quota document is read from the database and re-read when its version changes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

import numpy as np
from numpy.typing import NDArray

from facegate.events.model import EventKind, StreamEvent
from facegate.gallery.applications import ApplicationStore
from facegate.gallery.audit import AuditLog
from facegate.gallery.gallery import Gallery
from facegate.policy.quota import (
    QUOTAS_DOCUMENT,
    InvalidQuotaError,
    QuotaAnswer,
    QuotaCounter,
    QuotaDefinition,
    QuotaMemoryFullError,
    QuotaSet,
    quotas_from_document,
    unknown_person,
)
from facegate.policy.thresholds import operating_point

log = logging.getLogger("facegate.stream.quotas")


class CameraQuotas:
    """The quotas one camera claims. ``model_id``: the model of the camera's embeddings."""

    def __init__(
        self,
        camera: str,
        store: ApplicationStore,
        gallery: Gallery,
        model_id: str,
        clock: Callable[[], datetime],
    ) -> None:
        self.camera = camera
        self.store = store
        self.gallery = gallery
        self.model_id = model_id
        self.audit = AuditLog(store.engine)  # every claim is audited, as through the API
        self.counter = QuotaCounter(clock=clock)
        self._version: int | None = None
        self._quotas = QuotaSet()

    def quotas(self) -> QuotaSet:
        """The stored quotas, re-read when their version changed (a bad document is kept
        out); faces of anonymous quotas that are gone are forgotten."""
        document = self.store.get_document(QUOTAS_DOCUMENT)
        version = document.version if document is not None else None
        if version != self._version:
            self._version = version
            try:
                self._quotas = quotas_from_document(document.document if document else None)
            except InvalidQuotaError as error:
                log.error("quota definitions version %s not used: %s", version, error)
                self._quotas = QuotaSet()
            self.counter.apply(self._quotas)
        return self._quotas

    def claim(
        self, decision: StreamEvent, embedding: NDArray[np.float32] | None
    ) -> list[StreamEvent]:
        """Quota events for a track's decision (``identified`` or ``unknown``) and the
        embedding of its best shot (None: no usable shot, so no anonymous claim)."""
        mine = [q for q in self.quotas() if q.camera == self.camera]
        events = []
        for definition in mine:
            answer: QuotaAnswer | None = None
            if definition.mode == "anonymous":
                if embedding is not None:
                    answer = self._anonymous(definition, decision, embedding)
            elif definition.collection == decision.collection_id:
                answer = self._enrolled(definition, decision)
            # else: the camera identifies against another collection than the quota counts
            if answer is not None:
                events.append(self._event(definition, decision, answer))
        return events

    def close(self) -> None:
        """Forget every anonymous face."""
        self.counter.close()

    # --- one claim -----------------------------------------------------------------------
    def _enrolled(self, definition: QuotaDefinition, decision: StreamEvent) -> QuotaAnswer:
        subject_id = decision.subject_id
        if subject_id is not None and definition.fmr is not None:
            # The quota asks for a stricter operating point than the collection's.
            point = operating_point(self.model_id, definition.fmr)
            if decision.similarity is None or decision.similarity < point.threshold:
                subject_id = None
        if subject_id is not None and self.gallery.store.get_subject(subject_id) is None:
            subject_id = None  # erased since the track was decided
        if subject_id is None:
            answer = unknown_person(definition, self.counter.clock())
        else:
            answer = self.counter.claim_enrolled(
                self.store, definition, subject_id, quotas=self._quotas
            )
        self._audit(definition, decision, answer, subject_id)
        return answer

    def _anonymous(
        self, definition: QuotaDefinition, decision: StreamEvent, embedding: NDArray[np.float32]
    ) -> QuotaAnswer | None:
        fmr = definition.matching_fmr
        assert fmr is not None
        point = operating_point(self.model_id, fmr)
        try:
            answer = self.counter.claim_anonymous(definition, embedding, point)
        except QuotaMemoryFullError as error:
            log.warning("camera %s: %s", self.camera, error)
            return None
        self._audit(definition, decision, answer, None)  # names nobody, holds no score
        return answer

    def _audit(
        self,
        definition: QuotaDefinition,
        decision: StreamEvent,
        answer: QuotaAnswer,
        subject_id: str | None,
    ) -> None:
        self.audit.append(
            "quota.claim",
            "granted" if answer.granted else "denied",
            collection=definition.collection,
            subject_ids=[subject_id] if subject_id else [],
            detail={
                "quota": definition.name,
                "mode": definition.mode,
                "reason": answer.reason,
                "camera": self.camera,
                "track": decision.track_id,
            },
            at=answer.at,
        )

    def _event(
        self, definition: QuotaDefinition, decision: StreamEvent, answer: QuotaAnswer
    ) -> StreamEvent:
        named = definition.mode == "enrolled" and answer.reason != "unknown_person"
        return StreamEvent(
            kind=EventKind.QUOTA,
            at=answer.at,
            camera=decision.camera,
            track_id=decision.track_id,
            stream_time=decision.stream_time,
            collection_id=decision.collection_id,
            subject_id=decision.subject_id if named else None,
            subject_name=decision.subject_name if named else None,
            similarity=decision.similarity if named else None,
            quality=decision.quality,
            reason=answer.reason,
            bbox=decision.bbox,
            shot_time=decision.shot_time,
            quota=definition.name,
            allowed=answer.granted,
            retry_after_s=answer.retry_after_s,
        )
