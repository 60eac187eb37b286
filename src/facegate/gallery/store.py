"""The storage protocol. SQLite is the embedded default; a PostgreSQL store can follow.

Subject reads take an optional ``collection_id``; ``None`` means every collection.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from facegate.gallery.records import Collection, Subject, Template


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

    def add_subject(self, subject: Subject, templates: Sequence[Template]) -> None:
        """Insert a subject with its templates, all or nothing."""
        ...

    def add_templates(self, templates: Sequence[Template]) -> None: ...

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

    def template_counts(self, collection_id: str | None = None) -> dict[str, int]:
        """Templates per model id."""
        ...

    def remove_subject(self, subject_id: str) -> int:
        """Delete a subject and its templates; returns how many templates went."""
        ...

    def remove_template(self, template_id: str) -> Template: ...

    def close(self) -> None: ...
