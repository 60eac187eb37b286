"""The storage protocol. SQLite is the embedded default; a PostgreSQL store can follow."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

from facegate.gallery.records import Subject, Template


class Store(Protocol):
    """Durable subjects and templates. Every method is one transaction."""

    def add_subject(self, subject: Subject, templates: Sequence[Template]) -> None:
        """Insert a subject with its templates, all or nothing."""
        ...

    def add_templates(self, templates: Sequence[Template]) -> None: ...

    def get_subject(self, subject_id: str) -> Subject | None: ...

    def find_subjects(
        self, *, display_name: str | None = None, external_id: str | None = None
    ) -> list[Subject]: ...

    def list_subjects(self, limit: int = 100, offset: int = 0) -> list[Subject]: ...

    def count_subjects(self) -> int: ...

    def subject_templates(self, subject_id: str) -> list[Template]: ...

    def iter_templates(self, model_id: str) -> Iterator[Template]:
        """Every template of one model, for loading the vector index."""
        ...

    def template_counts(self) -> dict[str, int]:
        """Templates per model id."""
        ...

    def remove_subject(self, subject_id: str) -> int:
        """Delete a subject and its templates; returns how many templates went."""
        ...

    def remove_template(self, template_id: str) -> Template: ...

    def close(self) -> None: ...
