"""SQLite (WAL) store through SQLAlchemy Core: the embedded default.

Each public method runs in one transaction, so a crash (even ``kill -9``) leaves either
the whole subject with its templates or nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import (
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine, Row

from facegate.errors import (
    DuplicateCollectionError,
    DuplicateSubjectError,
    UnknownCollectionError,
    UnknownSubjectError,
    UnknownTemplateError,
)
from facegate.gallery.records import Collection, Subject, Template, as_utc
from facegate.gallery.tables import collections, gallery_state, metadata, subjects, templates


def _set_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class SQLiteStore:
    def __init__(self, path: Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.engine: Engine = create_engine(f"sqlite:///{path}", future=True)
        event.listen(self.engine, "connect", _set_pragmas)
        metadata.create_all(self.engine)
        with self.engine.begin() as conn:
            if conn.execute(select(gallery_state.c.id)).first() is None:
                conn.execute(insert(gallery_state).values(id=1, generation=0))

    # --- conversions --------------------------------------------------------------
    @staticmethod
    def _subject(row: Row[Any]) -> Subject:
        meta = row.metadata if isinstance(row.metadata, dict) else json.loads(row.metadata or "{}")
        return Subject(
            id=row.id,
            collection_id=row.collection_id,
            display_name=row.display_name,
            external_id=row.external_id,
            metadata=meta,
            created_at=as_utc(row.created_at),
        )

    @staticmethod
    def _template(row: Row[Any]) -> Template:
        return Template(
            id=row.id,
            subject_id=row.subject_id,
            model_id=row.model_id,
            embedding=np.frombuffer(row.embedding, dtype="<f4").astype(np.float32),
            quality=row.quality,
            created_at=as_utc(row.created_at),
            source=row.source,
        )

    @staticmethod
    def _template_values(t: Template) -> dict[str, Any]:
        return {
            "id": t.id,
            "subject_id": t.subject_id,
            "model_id": t.model_id,
            "embedding": t.embedding.astype("<f4").tobytes(),
            "dim": t.embedding.shape[0],
            "quality": t.quality,
            "source": t.source,
            "created_at": t.created_at,
        }

    # --- change tracking ---------------------------------------------------------------
    @staticmethod
    def _bump(conn: Connection) -> None:
        # Bumped first in every write transaction; rolled back with it if the write fails.
        conn.execute(update(gallery_state).values(generation=gallery_state.c.generation + 1))

    def generation(self) -> int:
        """A counter that every committed write to the gallery increases."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(gallery_state.c.generation)).scalar_one())

    # --- collections -------------------------------------------------------------------
    @staticmethod
    def _collection(row: Row[Any]) -> Collection:
        return Collection(row.name, row.model_id, row.fmr, as_utc(row.created_at))

    def add_collection(self, collection: Collection) -> None:
        with self.engine.begin() as conn:
            self._bump(conn)
            if conn.execute(
                select(collections.c.name).where(collections.c.name == collection.name)
            ).first():
                raise DuplicateCollectionError(f"collection {collection.name!r} already exists")
            conn.execute(
                insert(collections).values(
                    name=collection.name,
                    model_id=collection.model_id,
                    fmr=collection.fmr,
                    created_at=collection.created_at,
                )
            )

    def get_collection(self, name: str) -> Collection | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(collections).where(collections.c.name == name)).first()
        return self._collection(row) if row else None

    def list_collections(self) -> list[Collection]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(collections).order_by(collections.c.name))
            return [self._collection(r) for r in rows]

    def remove_collection(self, name: str) -> int:
        with self.engine.begin() as conn:
            self._bump(conn)
            if not conn.execute(
                select(collections.c.name).where(collections.c.name == name)
            ).first():
                raise UnknownCollectionError(f"no collection named {name!r}")
            members = select(subjects.c.id).where(subjects.c.collection_id == name)
            conn.execute(delete(templates).where(templates.c.subject_id.in_(members)))
            removed = conn.execute(delete(subjects).where(subjects.c.collection_id == name))
            conn.execute(delete(collections).where(collections.c.name == name))
            return int(removed.rowcount or 0)

    # --- writes ------------------------------------------------------------------------
    def add_subject(self, subject: Subject, new_templates: Sequence[Template]) -> None:
        with self.engine.begin() as conn:
            self._bump(conn)
            if not conn.execute(
                select(collections.c.name).where(collections.c.name == subject.collection_id)
            ).first():
                raise UnknownCollectionError(f"no collection named {subject.collection_id!r}")
            if subject.external_id is not None:
                taken = conn.execute(
                    select(subjects.c.id).where(
                        subjects.c.collection_id == subject.collection_id,
                        subjects.c.external_id == subject.external_id,
                    )
                ).first()
                if taken:
                    raise DuplicateSubjectError(
                        f"a subject with external id {subject.external_id!r} already exists "
                        f"in collection {subject.collection_id!r}"
                    )
            conn.execute(
                insert(subjects).values(
                    id=subject.id,
                    collection_id=subject.collection_id,
                    display_name=subject.display_name,
                    external_id=subject.external_id,
                    metadata=subject.metadata,
                    created_at=subject.created_at,
                )
            )
            if new_templates:
                conn.execute(insert(templates), [self._template_values(t) for t in new_templates])

    def add_templates(self, new_templates: Sequence[Template]) -> None:
        if not new_templates:
            return
        with self.engine.begin() as conn:
            self._bump(conn)
            for subject_id in {t.subject_id for t in new_templates}:
                if not conn.execute(
                    select(subjects.c.id).where(subjects.c.id == subject_id)
                ).first():
                    raise UnknownSubjectError(f"no subject with id {subject_id!r}")
            conn.execute(insert(templates), [self._template_values(t) for t in new_templates])

    def remove_subject(self, subject_id: str) -> int:
        with self.engine.begin() as conn:
            self._bump(conn)
            if not conn.execute(select(subjects.c.id).where(subjects.c.id == subject_id)).first():
                raise UnknownSubjectError(f"no subject with id {subject_id!r}")
            removed = conn.execute(delete(templates).where(templates.c.subject_id == subject_id))
            conn.execute(delete(subjects).where(subjects.c.id == subject_id))
            return int(removed.rowcount or 0)

    def remove_template(self, template_id: str) -> Template:
        with self.engine.begin() as conn:
            self._bump(conn)
            row = conn.execute(select(templates).where(templates.c.id == template_id)).first()
            if row is None:
                raise UnknownTemplateError(f"no template with id {template_id!r}")
            conn.execute(delete(templates).where(templates.c.id == template_id))
            return self._template(row)

    # --- reads -------------------------------------------------------------------------
    def get_subject(self, subject_id: str) -> Subject | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(subjects).where(subjects.c.id == subject_id)).first()
        return self._subject(row) if row else None

    def find_subjects(
        self,
        *,
        display_name: str | None = None,
        external_id: str | None = None,
        collection_id: str | None = None,
    ) -> list[Subject]:
        query = select(subjects).order_by(subjects.c.created_at)
        if collection_id is not None:
            query = query.where(subjects.c.collection_id == collection_id)
        if display_name is not None:
            query = query.where(subjects.c.display_name == display_name)
        if external_id is not None:
            query = query.where(subjects.c.external_id == external_id)
        with self.engine.connect() as conn:
            return [self._subject(r) for r in conn.execute(query)]

    def list_subjects(
        self, limit: int = 100, offset: int = 0, collection_id: str | None = None
    ) -> list[Subject]:
        query = select(subjects).order_by(subjects.c.display_name, subjects.c.id)
        if collection_id is not None:
            query = query.where(subjects.c.collection_id == collection_id)
        with self.engine.connect() as conn:
            rows = conn.execute(query.limit(limit).offset(offset))
            return [self._subject(r) for r in rows]

    def search_subjects(
        self,
        collection_id: str,
        *,
        name_contains: str | None = None,
        external_id: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[list[Subject], int]:
        """A page of a collection's subjects and the total: ``name_contains`` matches any
        part of the display name, case-insensitively; ``external_id`` matches exactly."""
        where: list[Any] = [subjects.c.collection_id == collection_id]
        if name_contains:
            pattern = f"%{_escape_like(name_contains.lower())}%"
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
        with self.engine.connect() as conn:
            found = [self._subject(r) for r in conn.execute(page)]
            total = int(conn.execute(count).scalar_one())
        return found, total

    def update_subject(
        self,
        subject_id: str,
        *,
        display_name: str | None = None,
        external_id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Subject:
        """Change a subject's name, external id or metadata (None: unchanged)."""
        given = {"display_name": display_name, "external_id": external_id, "metadata": metadata}
        values = {column: value for column, value in given.items() if value is not None}
        with self.engine.begin() as conn:
            row = conn.execute(select(subjects).where(subjects.c.id == subject_id)).first()
            if row is None:
                raise UnknownSubjectError(f"no subject with id {subject_id!r}")
            if external_id is not None:
                taken = conn.execute(
                    select(subjects.c.id).where(
                        subjects.c.collection_id == row.collection_id,
                        subjects.c.external_id == external_id,
                        subjects.c.id != subject_id,
                    )
                ).first()
                if taken:
                    raise DuplicateSubjectError(
                        f"a subject with external id {external_id!r} already exists "
                        f"in collection {row.collection_id!r}"
                    )
            if values:
                conn.execute(update(subjects).where(subjects.c.id == subject_id).values(**values))
        found = self.get_subject(subject_id)
        assert found is not None  # updated inside the transaction above
        return found

    def count_subjects(self, collection_id: str | None = None) -> int:
        query = select(func.count()).select_from(subjects)
        if collection_id is not None:
            query = query.where(subjects.c.collection_id == collection_id)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def subject_templates(self, subject_id: str) -> list[Template]:
        query = select(templates).where(templates.c.subject_id == subject_id)
        with self.engine.connect() as conn:
            return [self._template(r) for r in conn.execute(query.order_by(templates.c.created_at))]

    def _in_collection(self, query: Any, collection_id: str | None) -> Any:
        if collection_id is None:
            return query
        members = select(subjects.c.id).where(subjects.c.collection_id == collection_id)
        return query.where(templates.c.subject_id.in_(members))

    def get_template(self, template_id: str) -> Template | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(templates).where(templates.c.id == template_id)).first()
        return self._template(row) if row else None

    def iter_templates(self, model_id: str, collection_id: str | None = None) -> Iterator[Template]:
        query = select(templates).where(templates.c.model_id == model_id).order_by(templates.c.id)
        query = self._in_collection(query, collection_id)
        with self.engine.connect() as conn:
            for row in conn.execute(query):
                yield self._template(row)

    def template_counts(self, collection_id: str | None = None) -> dict[str, int]:
        query = select(templates.c.model_id, func.count()).group_by(templates.c.model_id)
        query = self._in_collection(query, collection_id)
        with self.engine.connect() as conn:
            return {str(m): int(n) for m, n in conn.execute(query)}

    def close(self) -> None:
        self.engine.dispose()
