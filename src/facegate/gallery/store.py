"""The storage protocol. SQLite is the embedded default; ephemeral collections live in
memory; a PostgreSQL store can follow.

Subject reads take an optional ``collection_id``; ``None`` means every collection.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from facegate.gallery.records import Collection, Consent, Erasure, Subject, Template
from facegate.types import FloatArray


class Store(Protocol):
    """Durable subjects and templates. Every method is one transaction."""

    def generation(self) -> int:
        """A counter that every committed write (from any process) increases."""
        ...

    def add_collection(self, collection: Collection) -> None: ...

    def get_collection(self, name: str) -> Collection | None: ...

    def list_collections(self) -> list[Collection]: ...

    def remove_collection(self, name: str) -> int:
        """Delete a collection with its subjects and templates; returns subjects removed."""
        ...

    def add_subject(
        self, subject: Subject, templates: Sequence[Template], consent: Consent | None = None
    ) -> None:
        """Insert a subject with its consent record and templates, all or nothing.
        Templates need an active consent record (given here or already on file)."""
        ...

    def add_templates(
        self, templates: Sequence[Template], consent: Consent | None = None
    ) -> None: ...

    def add_consent(self, consent: Consent) -> None: ...

    def subject_consents(self, subject_id: str) -> list[Consent]: ...

    def mark_matched(self, subject_ids: Sequence[str], at: datetime) -> None:
        """Note a match (for idle-time retention); not a gallery change."""
        ...

    def get_template_image(self, template_id: str) -> bytes | None: ...

    def get_subject(self, subject_id: str) -> Subject | None: ...

    def find_subjects(
        self,
        *,
        display_name: str | None = None,
        external_id: str | None = None,
        collection_id: str | None = None,
    ) -> list[Subject]: ...

    def list_subjects(
        self, limit: int = 100, offset: int = 0, collection_id: str | None = None
    ) -> list[Subject]: ...

    def search_subjects(
        self,
        collection_id: str,
        *,
        name_contains: str | None = None,
        external_id: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[list[Subject], int]:
        """A page of matching subjects and the total count."""
        ...

    def update_subject(
        self,
        subject_id: str,
        *,
        display_name: str | None = None,
        external_id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Subject: ...

    def count_subjects(self, collection_id: str | None = None) -> int: ...

    def subject_templates(self, subject_id: str) -> list[Template]: ...

    def get_template(self, template_id: str) -> Template | None: ...

    def iter_templates(self, model_id: str, collection_id: str | None = None) -> Iterator[Template]:
        """Every template of one model, for loading the vector index."""
        ...

    def template_refs(self, model_id: str, collection_id: str) -> dict[str, str]:
        """Template id -> subject id for one model in one collection (nothing decrypted)."""
        ...

    def template_counts(self, collection_id: str | None = None) -> dict[str, int]:
        """Templates per model id."""
        ...

    def erase_subject(self, subject_id: str) -> Erasure:
        """Erase a subject with everything held about them, in one transaction."""
        ...

    def remove_template(self, template_id: str) -> Template: ...

    def close(self) -> None: ...


@runtime_checkable
class DatabaseSearch(Protocol):
    """A store that can search its own vectors (PostgreSQL + pgvector) instead of a
    process-local index: every replica then sees every write at once."""

    searches_in_database: bool

    def search_templates(
        self, collection_id: str, model_id: str, query: FloatArray, k: int
    ) -> list[tuple[str, str, float]]:
        """Top ``k`` for a prepared query: (template id, subject id, inner product)."""
        ...

    def has_templates(self, collection_id: str, model_id: str) -> bool: ...
