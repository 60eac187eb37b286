"""The store of an ephemeral collection: subjects and templates in process memory only,
each template gone ``ttl_seconds`` after it was enrolled, everything gone on restart.

Nothing here touches a file or a log. A subject lives as long as its newest template
(or one TTL from its creation, if it never had one).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from facegate.errors import (
    DuplicateSubjectError,
    EphemeralCollectionError,
    UnknownSubjectError,
    UnknownTemplateError,
)
from facegate.gallery.records import Collection, Consent, Erasure, Subject, Template, utc_now

Clock = Callable[[], datetime]


class MemoryStore:
    """The Store protocol, for one ephemeral collection."""

    def __init__(self, collection: Collection, clock: Clock = utc_now) -> None:
        assert collection.ephemeral and collection.ttl_seconds is not None
        self.collection = collection
        self.ttl = timedelta(seconds=collection.ttl_seconds)
        self.clock = clock
        self._subjects: dict[str, Subject] = {}
        self._templates: dict[str, Template] = {}
        self._generation = 0
        self._lock = threading.RLock()

    # --- expiry --------------------------------------------------------------------------
    def purge(self, now: datetime | None = None) -> Erasure:
        """Drop templates past their TTL, and subjects with no template left that are
        themselves older than the TTL (a new subject gets one TTL to receive faces)."""
        now = now or self.clock()
        with self._lock:
            expired = [t.id for t in self._templates.values() if t.created_at + self.ttl <= now]
            for template_id in expired:
                del self._templates[template_id]
            holders = {t.subject_id for t in self._templates.values()}
            orphans = [
                s.id
                for s in self._subjects.values()
                if s.id not in holders and s.created_at + self.ttl <= now
            ]
            for subject_id in orphans:
                del self._subjects[subject_id]
            if expired or orphans:
                self._generation += 1
            return Erasure(subjects=len(orphans), templates=len(expired))

    def _live(self) -> None:
        self.purge()

    # --- the Store protocol ------------------------------------------------------------
    def generation(self) -> int:
        self._live()
        return self._generation

    def add_collection(self, collection: Collection) -> None:
        raise EphemeralCollectionError("an ephemeral store holds one collection")

    def remove_collection(self, name: str) -> int:
        raise EphemeralCollectionError("remove an ephemeral collection from the durable store")

    def get_collection(self, name: str) -> Collection | None:
        return self.collection if name == self.collection.name else None

    def list_collections(self) -> list[Collection]:
        return [self.collection]

    def add_subject(
        self, subject: Subject, templates: Sequence[Template], consent: Consent | None = None
    ) -> None:
        # No consent record is kept: it would be a durable trace of a passing face.
        with self._lock:
            self._live()
            if subject.external_id is not None and self.find_subjects(
                external_id=subject.external_id
            ):
                raise DuplicateSubjectError(
                    f"a subject with external id {subject.external_id!r} already exists"
                )
            self._subjects[subject.id] = subject
            for t in templates:
                self._templates[t.id] = t
            self._generation += 1

    def add_templates(self, templates: Sequence[Template], consent: Consent | None = None) -> None:
        with self._lock:
            self._live()
            for t in templates:
                if t.subject_id not in self._subjects:
                    raise UnknownSubjectError(f"no subject with id {t.subject_id!r}")
            for t in templates:
                self._templates[t.id] = t
            self._generation += 1

    def add_consent(self, consent: Consent) -> None:
        self.get_subject(consent.subject_id)  # nothing durable to record against

    def subject_consents(self, subject_id: str) -> list[Consent]:
        return []

    def get_subject(self, subject_id: str) -> Subject | None:
        with self._lock:
            self._live()
            return self._subjects.get(subject_id)

    def _all(self) -> list[Subject]:
        with self._lock:
            self._live()
            return sorted(self._subjects.values(), key=lambda s: (s.display_name, s.id))

    def find_subjects(
        self,
        *,
        display_name: str | None = None,
        external_id: str | None = None,
        collection_id: str | None = None,
    ) -> list[Subject]:
        return [
            s
            for s in self._all()
            if (display_name is None or s.display_name == display_name)
            and (external_id is None or s.external_id == external_id)
        ]

    def list_subjects(
        self, limit: int = 100, offset: int = 0, collection_id: str | None = None
    ) -> list[Subject]:
        return self._all()[offset : offset + limit]

    def search_subjects(
        self,
        collection_id: str,
        *,
        name_contains: str | None = None,
        external_id: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[list[Subject], int]:
        found = [
            s
            for s in self.find_subjects(external_id=external_id)
            if not name_contains or name_contains.lower() in s.display_name.lower()
        ]
        return found[offset : offset + limit], len(found)

    def update_subject(
        self,
        subject_id: str,
        *,
        display_name: str | None = None,
        external_id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Subject:
        with self._lock:
            old = self.get_subject(subject_id)
            if old is None:
                raise UnknownSubjectError(f"no subject with id {subject_id!r}")
            new = Subject(
                id=old.id,
                display_name=display_name if display_name is not None else old.display_name,
                external_id=external_id if external_id is not None else old.external_id,
                collection_id=old.collection_id,
                metadata=metadata if metadata is not None else old.metadata,
                created_at=old.created_at,
            )
            self._subjects[subject_id] = new
            return new

    def count_subjects(self, collection_id: str | None = None) -> int:
        return len(self._all())

    def subject_templates(self, subject_id: str) -> list[Template]:
        with self._lock:
            self._live()
            found = [t for t in self._templates.values() if t.subject_id == subject_id]
        return sorted(found, key=lambda t: t.created_at)

    def get_template(self, template_id: str) -> Template | None:
        with self._lock:
            self._live()
            return self._templates.get(template_id)

    def iter_templates(self, model_id: str, collection_id: str | None = None) -> Iterator[Template]:
        with self._lock:
            self._live()
            found = [t for t in self._templates.values() if t.model_id == model_id]
        yield from sorted(found, key=lambda t: t.id)

    def template_refs(self, model_id: str, collection_id: str) -> dict[str, str]:
        return {t.id: t.subject_id for t in self.iter_templates(model_id)}

    def template_counts(self, collection_id: str | None = None) -> dict[str, int]:
        counts: dict[str, int] = {}
        with self._lock:
            self._live()
            for t in self._templates.values():
                counts[t.model_id] = counts.get(t.model_id, 0) + 1
        return counts

    def erase_subject(self, subject_id: str) -> Erasure:
        with self._lock:
            if self._subjects.pop(subject_id, None) is None:
                raise UnknownSubjectError(f"no subject with id {subject_id!r}")
            gone = [t for t in self._templates.values() if t.subject_id == subject_id]
            for t in gone:
                del self._templates[t.id]
            self._generation += 1
            return Erasure(subjects=1, templates=len(gone))

    def remove_template(self, template_id: str) -> Template:
        with self._lock:
            template = self._templates.pop(template_id, None)
            if template is None:
                raise UnknownTemplateError(f"no template with id {template_id!r}")
            self._generation += 1
            return template

    def mark_matched(self, subject_ids: Sequence[str], at: datetime) -> None:
        """Matches do not extend an ephemeral template's life."""

    def get_template_image(self, template_id: str) -> bytes | None:
        return None

    def close(self) -> None:
        with self._lock:
            self._subjects.clear()
            self._templates.clear()
