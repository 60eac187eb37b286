"""Subject search and metadata updates the Store protocol does not offer yet.

A stop-gap over the SQLite store's tables (requested from the gallery layer as
``Store.search_subjects`` and ``Store.update_subject``); the vector index is unaffected,
since it maps templates to subject ids and names are read at search time.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update

from facegate.errors import DuplicateSubjectError, UnknownSubjectError
from facegate.gallery.records import Subject
from facegate.gallery.sqlite_store import SQLiteStore
from facegate.gallery.tables import subjects


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search_subjects(
    store: SQLiteStore,
    collection: str,
    *,
    name: str | None,
    external_id: str | None,
    limit: int,
    offset: int,
) -> tuple[list[Subject], int]:
    """A page of a collection's subjects by name, and the total: ``name`` matches any part
    of the display name, case-insensitively; ``external_id`` matches exactly."""
    where: list[Any] = [subjects.c.collection_id == collection]
    if name:
        pattern = f"%{_escape_like(name.lower())}%"
        where.append(func.lower(subjects.c.display_name).like(pattern, escape="\\"))
    if external_id is not None:
        where.append(subjects.c.external_id == external_id)
    page = (
        select(subjects)
        .where(*where)
        .order_by(subjects.c.display_name, subjects.c.id)
        .limit(limit)
        .offset(offset)
    )
    count = select(func.count()).select_from(subjects).where(*where)
    with store.engine.connect() as conn:
        found = [store._subject(r) for r in conn.execute(page)]
        total = int(conn.execute(count).scalar_one())
    return found, total


def update_subject(
    store: SQLiteStore, collection: str, subject_id: str, changes: dict[str, Any]
) -> Subject:
    """Change a subject's display name, external id or metadata, in one transaction."""
    columns = {"name": "display_name", "external_id": "external_id", "metadata": "metadata"}
    values = {columns[k]: v for k, v in changes.items() if k in columns}
    with store.engine.begin() as conn:
        row = conn.execute(
            select(subjects.c.id).where(
                subjects.c.id == subject_id, subjects.c.collection_id == collection
            )
        ).first()
        if row is None:
            raise UnknownSubjectError(
                f"no subject with id {subject_id!r} in collection {collection!r}"
            )
        new_external = values.get("external_id")
        if new_external is not None:
            taken = conn.execute(
                select(subjects.c.id).where(
                    subjects.c.collection_id == collection,
                    subjects.c.external_id == new_external,
                    subjects.c.id != subject_id,
                )
            ).first()
            if taken:
                raise DuplicateSubjectError(
                    f"a subject with external id {new_external!r} already exists "
                    f"in collection {collection!r}"
                )
        if values:
            conn.execute(update(subjects).where(subjects.c.id == subject_id).values(**values))
    found = store.get_subject(subject_id)
    assert found is not None
    return found
