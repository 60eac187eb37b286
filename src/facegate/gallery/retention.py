"""The retention sweeper: erase what is past its time, and say so in the audit trail.

Per collection: templates older than ``max_template_age_days``; subjects not matched for
``max_idle_days`` (counted from enrollment if never matched); subjects whose every consent
record has expired or been withdrawn. Globally: events older than ``event_days`` and
snapshots older than ``snapshot_days``. The clock is injected so tests can move time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from facegate.config import RetentionSettings
from facegate.errors import UnknownSubjectError
from facegate.gallery.audit import AuditLog
from facegate.gallery.records import Erasure, utc_now
from facegate.gallery.sql_store import SqlStore

Clock = Callable[[], datetime]


@dataclass
class SweepReport:
    at: datetime
    erased_subjects: dict[str, list[str]] = field(default_factory=dict)  # reason -> ids
    erasure: Erasure = field(default_factory=Erasure)
    events_deleted: int = 0
    snapshots_deleted: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "erased_subjects": {k: len(v) for k, v in self.erased_subjects.items()},
            "erased": self.erasure.as_dict(),
            "events_deleted": self.events_deleted,
            "snapshots_deleted": self.snapshots_deleted,
        }


class RetentionSweeper:
    def __init__(
        self,
        store: SqlStore,
        audit: AuditLog,
        settings: RetentionSettings,
        clock: Clock = utc_now,
    ) -> None:
        self.store = store
        self.audit = audit
        self.settings = settings
        self.clock = clock

    def due(self, now: datetime) -> tuple[dict[str, list[tuple[str, str]]], dict[str, list[str]]]:
        """What a sweep at ``now`` would erase: subjects (with reasons) and templates, per
        durable collection."""
        subjects: dict[str, list[tuple[str, str]]] = {}
        templates: dict[str, list[str]] = {}
        for collection in self.store.list_collections():
            if collection.ephemeral:
                continue
            idle_before = (
                now - timedelta(days=collection.max_idle_days)
                if collection.max_idle_days is not None
                else None
            )
            subjects[collection.name] = self.store.subjects_due(collection.name, now, idle_before)
            if collection.max_template_age_days is not None:
                before = now - timedelta(days=collection.max_template_age_days)
                templates[collection.name] = self.store.templates_created_before(
                    collection.name, before
                )
        return subjects, templates

    def sweep(self) -> SweepReport:
        now = self.clock()
        report = SweepReport(now)
        subjects_due, templates_due = self.due(now)
        for collection, due in subjects_due.items():
            for subject_id, reason in due:
                try:
                    erased = self.store.erase_subject(subject_id)
                except UnknownSubjectError:
                    continue  # erased meanwhile
                report.erasure += erased
                report.erased_subjects.setdefault(reason, []).append(subject_id)
                self.audit.append(
                    "retention.erase",
                    "ok",
                    collection=collection,
                    subject_ids=[subject_id],
                    detail={"reason": reason, **erased.as_dict()},
                )
        for collection, template_ids in templates_due.items():
            if not template_ids:
                continue
            erased = self.store.erase_templates(template_ids)
            report.erasure += erased
            self.audit.append(
                "retention.erase",
                "ok",
                collection=collection,
                detail={"reason": "template_age", **erased.as_dict()},
            )
        report.events_deleted, report.snapshots_deleted = self.store.sweep_events(
            now - timedelta(days=self.settings.event_days),
            now - timedelta(days=self.settings.snapshot_days),
        )
        if report.events_deleted or report.snapshots_deleted:
            self.audit.append(
                "retention.events",
                "ok",
                detail={
                    "events_deleted": report.events_deleted,
                    "snapshots_deleted": report.snapshots_deleted,
                },
            )
        return report
