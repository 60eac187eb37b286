"""Audit records for service actions: who (key id), what, where, outcome, which subjects.
Never an embedding or an image. Failures are recorded too, with their problem code."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from facegate.errors import FacegateError
from facegate.gallery.audit import AuditLog
from facegate.gallery.keys import ApiKey
from facegate.service.problems import Problem

T = TypeVar("T")


@dataclass
class Outcome:
    """What an action tells the audit trail once it has run."""

    outcome: str = "ok"
    subject_ids: Sequence[str] = ()
    detail: dict[str, Any] = field(default_factory=dict)


def audited(
    audit: AuditLog,
    key: ApiKey | None,
    action: str,
    collection: str | None,
    work: Callable[[Outcome], T],
    anonymous: bool = False,
) -> T:
    """Run ``work`` (which fills in the Outcome) and append one audit record, success or
    failure. Call from a worker thread: the append is a blocking database write.
    ``anonymous`` (ephemeral collections): the record names no subject or template, so
    nothing durable links back to a passing face."""
    note = Outcome()
    try:
        result = work(note)
    except FacegateError as error:
        note.outcome = error.code
        _append(audit, key, action, collection, note, anonymous)
        raise
    except Problem as problem:
        note.outcome = problem.slug.replace("-", "_")
        _append(audit, key, action, collection, note, anonymous)
        raise
    _append(audit, key, action, collection, note, anonymous)
    return result


def _append(
    audit: AuditLog,
    key: ApiKey | None,
    action: str,
    collection: str | None,
    note: Outcome,
    anonymous: bool,
) -> None:
    audit.append(
        action,
        note.outcome,
        key_id=key.id if key else None,
        collection=collection,
        subject_ids=[] if anonymous else list(note.subject_ids),
        detail={"ephemeral": True} if anonymous else note.detail,
    )
