"""The store over SQLAlchemy Core, shared by SQLite (the embedded default) and PostgreSQL.

Each public method runs in one transaction, so a crash (even ``kill -9``) leaves either
the whole subject with its templates or nothing. The subclasses add what their database
needs: SQLite its file and pragmas, PostgreSQL its searchable vector column.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import (
    Table,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine, Row

from facegate.errors import (
    ConsentRequiredError,
    DataKeyError,
    DuplicateCollectionError,
    DuplicateSubjectError,
    UnknownCollectionError,
    UnknownSubjectError,
    UnknownTemplateError,
)
from facegate.gallery.crypto import Keyring, image_aad, snapshot_aad, template_aad
from facegate.gallery.migrate import upgrade
from facegate.gallery.records import (
    Collection,
    Consent,
    Erasure,
    Event,
    Subject,
    Template,
    as_utc,
    utc_now,
)
from facegate.gallery.tables import (
    collections,
    consents,
    data_keys,
    events,
    gallery_state,
    store_meta,
    subjects,
    template_images,
    templates,
)

# Tables whose rows may be sealed with a data key, the sealed column, its associated data.
_SEALED_COLUMNS: tuple[tuple[Table, str, Callable[[Row[Any]], bytes]], ...] = (
    (templates, "embedding", lambda r: template_aad(r.id, r.subject_id, r.model_id)),
    (template_images, "data", lambda r: image_aad(r.template_id, r.subject_id)),
    (events, "snapshot", lambda r: snapshot_aad(r.id)),
)
SEALED_TABLES = tuple(table for table, _, _ in _SEALED_COLUMNS)


log = logging.getLogger(__name__)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class SqlStore:
    """``keyring``: seal templates, images and snapshots with it. Without one, records are
    written in plaintext, and a store that holds sealed records refuses to open.
    ``label``: how errors name the database (a path, a URL without its password)."""

    def __init__(self, engine: Engine, keyring: Keyring | None, label: str) -> None:
        self.engine = engine
        self.keyring = keyring
        self.label = label
        try:
            upgrade(self.engine, label)
            self.check_keys()
        except Exception:
            self.engine.dispose()
            raise

    def check_keys(self) -> None:
        """Refuse a store whose sealed records this keyring cannot open."""
        with self.engine.begin() as conn:
            known = {r.key_id: r.check_value for r in conn.execute(select(data_keys))}
            in_use = self._key_ids_in_use(conn)
            if self.keyring is None:
                if known or in_use:
                    raise DataKeyError(
                        f"{self.label} holds encrypted templates (data keys "
                        f"{', '.join(sorted(set(known) | in_use))}) and no data key was given"
                    )
                return
            for key_id, check in known.items():
                if self.keyring.has(key_id) and not self.keyring.matches_check(key_id, check):
                    raise DataKeyError(
                        f"data key {key_id!r} from {self.keyring.source.describe()} is not the "
                        f"key that encrypted {self.label}"
                    )
            missing = sorted(k for k in in_use if not self.keyring.has(k))
            if missing:
                raise DataKeyError(
                    f"{self.label} holds records sealed with data key(s) {', '.join(missing)}, "
                    f"which {self.keyring.source.describe()} does not have"
                )
            for key_id in self.keyring.key_ids:
                if key_id not in known:
                    conn.execute(
                        insert(data_keys).values(
                            key_id=key_id,
                            check_value=self.keyring.key_check(key_id),
                            added_at=utc_now(),
                        )
                    )

    @staticmethod
    def _key_ids_in_use(conn: Connection) -> set[str]:
        found: set[str] = set()
        for table in SEALED_TABLES:
            rows = conn.execute(
                select(table.c.key_id).where(table.c.key_id.is_not(None)).distinct()
            )
            found.update(r.key_id for r in rows)
        return found

    # --- sealing ---------------------------------------------------------------------
    def _seal(self, plaintext: bytes, aad: bytes) -> tuple[str | None, bytes]:
        if self.keyring is None:
            return None, plaintext
        return self.keyring.seal(plaintext, aad)

    def _unseal(self, key_id: str | None, blob: bytes, aad: bytes) -> bytes:
        if key_id is None:
            return bytes(blob)
        if self.keyring is None:
            raise DataKeyError("this record is encrypted and the store was opened without a key")
        return self.keyring.open(key_id, bytes(blob), aad)

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
            last_matched_at=as_utc(row.last_matched_at) if row.last_matched_at else None,
        )

    def _template(self, row: Row[Any]) -> Template:
        aad = template_aad(row.id, row.subject_id, row.model_id)
        raw = self._unseal(row.key_id, row.embedding, aad)
        return Template(
            id=row.id,
            subject_id=row.subject_id,
            model_id=row.model_id,
            embedding=np.frombuffer(raw, dtype="<f4").astype(np.float32),
            quality=row.quality,
            created_at=as_utc(row.created_at),
            source=row.source,
            key_id=row.key_id,
        )

    def _template_values(self, t: Template) -> dict[str, Any]:
        aad = template_aad(t.id, t.subject_id, t.model_id)
        key_id, blob = self._seal(t.embedding.astype("<f4").tobytes(), aad)
        return {
            "id": t.id,
            "subject_id": t.subject_id,
            "model_id": t.model_id,
            "embedding": blob,
            "key_id": key_id,
            "dim": t.embedding.shape[0],
            "quality": t.quality,
            "source": t.source,
            "created_at": t.created_at,
        }

    def _insert_templates(self, conn: Connection, new_templates: Sequence[Template]) -> None:
        if not new_templates:
            return
        conn.execute(insert(templates), [self._template_values(t) for t in new_templates])
        for t in new_templates:
            if t.image is None:
                continue
            key_id, blob = self._seal(t.image, image_aad(t.id, t.subject_id))
            conn.execute(
                insert(template_images).values(
                    template_id=t.id,
                    subject_id=t.subject_id,
                    media_type="image/jpeg",
                    data=blob,
                    key_id=key_id,
                )
            )

    # --- consent -----------------------------------------------------------------------
    @staticmethod
    def _consent(row: Row[Any]) -> Consent:
        def opt(value: Any) -> Any:
            return as_utc(value) if value is not None else None

        return Consent(
            id=row.id,
            subject_id=row.subject_id,
            legal_basis=row.legal_basis,
            notice_version=row.notice_version,
            given_at=as_utc(row.given_at),
            collected_by=row.collected_by,
            expires_at=opt(row.expires_at),
            recorded_at=as_utc(row.recorded_at),
            withdrawn_at=opt(row.withdrawn_at),
        )

    @staticmethod
    def _insert_consent(conn: Connection, consent: Consent) -> None:
        conn.execute(insert(consents).values(**asdict(consent)))  # fields are the columns

    def _require_consent(self, conn: Connection, subject_ids: set[str]) -> None:
        now = utc_now()
        for subject_id in subject_ids:
            rows = conn.execute(select(consents).where(consents.c.subject_id == subject_id))
            if not any(self._consent(r).active(now) for r in rows):
                raise ConsentRequiredError(
                    f"subject {subject_id!r} has no active consent record: record the "
                    "subject's consent (legal basis, notice version) before enrolling faces"
                )

    def add_consent(self, consent: Consent) -> None:
        with self.engine.begin() as conn:
            if not conn.execute(
                select(subjects.c.id).where(subjects.c.id == consent.subject_id)
            ).first():
                raise UnknownSubjectError(f"no subject with id {consent.subject_id!r}")
            self._insert_consent(conn, consent)

    def subject_consents(self, subject_id: str) -> list[Consent]:
        query = select(consents).where(consents.c.subject_id == subject_id)
        with self.engine.connect() as conn:
            return [self._consent(r) for r in conn.execute(query.order_by(consents.c.recorded_at))]

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
        return Collection(
            row.name,
            row.model_id,
            row.fmr,
            as_utc(row.created_at),
            store_images=bool(row.store_images),
            ephemeral=bool(row.ephemeral),
            ttl_seconds=row.ttl_seconds,
            max_template_age_days=row.max_template_age_days,
            max_idle_days=row.max_idle_days,
        )

    def add_collection(self, collection: Collection) -> None:
        with self.engine.begin() as conn:
            self._bump(conn)
            if conn.execute(
                select(collections.c.name).where(collections.c.name == collection.name)
            ).first():
                raise DuplicateCollectionError(f"collection {collection.name!r} already exists")
            conn.execute(insert(collections).values(**asdict(collection)))

    def update_collection(self, changed: Collection, fields: Sequence[str]) -> None:
        """Write ``fields`` of a collection (checked by the caller: ``changed`` is a valid
        Collection). The generation goes up in the same transaction, so every process
        re-reads the settings at its next request."""
        values = {name: getattr(changed, name) for name in fields}
        with self.engine.begin() as conn:
            self._bump(conn)
            done = conn.execute(
                update(collections).where(collections.c.name == changed.name).values(**values)
            )
            if not done.rowcount:  # deleted meanwhile; the transaction rolls back
                raise UnknownCollectionError(f"no collection named {changed.name!r}")

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
            for table in (events, template_images, consents, templates):
                conn.execute(delete(table).where(table.c.subject_id.in_(members)))
            removed = conn.execute(delete(subjects).where(subjects.c.collection_id == name))
            conn.execute(delete(collections).where(collections.c.name == name))
        self.compact()
        return int(removed.rowcount or 0)

    # --- writes ------------------------------------------------------------------------
    def add_subject(
        self, subject: Subject, new_templates: Sequence[Template], consent: Consent | None = None
    ) -> None:
        """The subject, its consent record and its templates, all or nothing. Templates
        need an active consent: no consent, no enrollment."""
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
                    last_matched_at=subject.last_matched_at,
                )
            )
            if consent is not None:
                self._insert_consent(conn, consent)
            if new_templates:
                self._require_consent(conn, {subject.id})
                self._insert_templates(conn, new_templates)

    def add_templates(
        self, new_templates: Sequence[Template], consent: Consent | None = None
    ) -> None:
        if not new_templates:
            return
        with self.engine.begin() as conn:
            self._bump(conn)
            owners = {t.subject_id for t in new_templates}
            for subject_id in owners:
                if not conn.execute(
                    select(subjects.c.id).where(subjects.c.id == subject_id)
                ).first():
                    raise UnknownSubjectError(f"no subject with id {subject_id!r}")
            if consent is not None:
                self._insert_consent(conn, consent)
            self._require_consent(conn, owners)
            self._insert_templates(conn, new_templates)

    def erase_subject(self, subject_id: str) -> Erasure:
        """Erase a subject and everything held about them, in one transaction: templates,
        stored images, consent records, events and their snapshots. Deleted bytes are
        zeroed (secure_delete) and the WAL is truncated, so none stay in the files."""
        with self.engine.begin() as conn:
            self._bump(conn)
            if not conn.execute(select(subjects.c.id).where(subjects.c.id == subject_id)).first():
                raise UnknownSubjectError(f"no subject with id {subject_id!r}")
            counts = {
                name: int(
                    conn.execute(delete(table).where(table.c.subject_id == subject_id)).rowcount
                    or 0
                )
                for name, table in (
                    ("events", events),
                    ("images", template_images),
                    ("consents", consents),
                    ("templates", templates),
                )
            }
            conn.execute(delete(subjects).where(subjects.c.id == subject_id))
        self.compact()
        return Erasure(subjects=1, **counts)

    def erase_templates(self, template_ids: Sequence[str]) -> Erasure:
        """Erase templates (and their stored images) by id; unknown ids are skipped."""
        if not template_ids:
            return Erasure()
        with self.engine.begin() as conn:
            self._bump(conn)
            images = conn.execute(
                delete(template_images).where(template_images.c.template_id.in_(template_ids))
            ).rowcount
            gone = conn.execute(delete(templates).where(templates.c.id.in_(template_ids))).rowcount
        self.compact()
        return Erasure(templates=int(gone or 0), images=int(images or 0))

    def remove_template(self, template_id: str) -> Template:
        with self.engine.begin() as conn:
            self._bump(conn)
            row = conn.execute(select(templates).where(templates.c.id == template_id)).first()
            if row is None:
                raise UnknownTemplateError(f"no template with id {template_id!r}")
            template = self._template(row)
            conn.execute(
                delete(template_images).where(template_images.c.template_id == template_id)
            )
            conn.execute(delete(templates).where(templates.c.id == template_id))
        self.compact()
        return template

    def compact(self) -> bool:
        """Make deleted records leave the database's files as far as the engine allows;
        True when done. Subclasses say how."""
        return True

    def mark_matched(self, subject_ids: Sequence[str], at: datetime) -> None:
        """Record a successful match (for the idle-time retention limit). Not a gallery
        change: the generation stays."""
        if not subject_ids:
            return
        with self.engine.begin() as conn:
            conn.execute(
                update(subjects).where(subjects.c.id.in_(subject_ids)).values(last_matched_at=at)
            )

    # --- retention -----------------------------------------------------------------------
    def subjects_due(
        self, collection_id: str, now: datetime, idle_before: datetime | None
    ) -> list[tuple[str, str]]:
        """``(subject id, reason)`` for subjects to erase: every consent expired or
        withdrawn (``consent_expired``), or unmatched since ``idle_before`` (``idle``)."""
        due: list[tuple[str, str]] = []
        query = select(subjects.c.id, subjects.c.created_at, subjects.c.last_matched_at).where(
            subjects.c.collection_id == collection_id
        )
        with self.engine.connect() as conn:
            records: dict[str, list[Consent]] = {}
            members = select(subjects.c.id).where(subjects.c.collection_id == collection_id)
            for row in conn.execute(select(consents).where(consents.c.subject_id.in_(members))):
                records.setdefault(row.subject_id, []).append(self._consent(row))
            has_templates = {
                r.subject_id
                for r in conn.execute(
                    select(templates.c.subject_id)
                    .where(templates.c.subject_id.in_(members))
                    .distinct()
                )
            }
            for row in conn.execute(query):
                held = records.get(row.id, [])
                if (held or row.id in has_templates) and not any(c.active(now) for c in held):
                    due.append((row.id, "consent_expired"))
                    continue
                last = as_utc(row.last_matched_at or row.created_at)
                if idle_before is not None and last < idle_before:
                    due.append((row.id, "idle"))
        return due

    def templates_created_before(self, collection_id: str, before: datetime) -> list[str]:
        members = select(subjects.c.id).where(subjects.c.collection_id == collection_id)
        query = select(templates.c.id).where(
            templates.c.subject_id.in_(members), templates.c.created_at < before
        )
        with self.engine.connect() as conn:
            return [r.id for r in conn.execute(query)]

    # --- events ------------------------------------------------------------------------
    def add_event(self, item: Event) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                insert(events).values(
                    id=item.id,
                    at=item.at,
                    kind=item.kind,
                    camera=item.camera,
                    collection_id=item.collection_id,
                    subject_id=item.subject_id,
                    similarity=item.similarity,
                    quality=item.quality,
                    track_id=item.track_id,
                    reason=item.reason,
                    door=item.door,
                    quota=item.quota,
                )
            )
            if item.snapshot is not None:
                # Sealed only now, holding the write lock: a key rotation cannot finish
                # (and retire the key used here) between the sealing and the write.
                key_id, blob = self._seal(item.snapshot, snapshot_aad(item.id))
                conn.execute(
                    update(events)
                    .where(events.c.id == item.id)
                    .values(snapshot=blob, key_id=key_id)
                )

    def list_events(
        self,
        subject_id: str | None = None,
        limit: int = 100,
        *,
        camera: str | None = None,
        kind: str | None = None,
        door: str | None = None,
        quota: str | None = None,
        collection_id: str | None = None,
        collection_ids: Sequence[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        offset: int = 0,
        snapshots: bool = True,
    ) -> list[Event]:
        """Events, newest first, filtered by whichever of the arguments are given
        (``since`` inclusive, ``until`` exclusive; ``collection_ids``: any of these).
        ``snapshots=False``: snapshots are not decrypted (``has_snapshot`` still says
        whether there is one), for listings that never show them."""
        query = select(events).order_by(events.c.at.desc(), events.c.id).limit(limit)
        conditions = [
            column == value
            for column, value in (
                (events.c.subject_id, subject_id),
                (events.c.camera, camera),
                (events.c.kind, kind),
                (events.c.door, door),
                (events.c.quota, quota),
                (events.c.collection_id, collection_id),
            )
            if value is not None
        ]
        if collection_ids is not None:
            conditions.append(events.c.collection_id.in_(list(collection_ids)))
        if since is not None:
            conditions.append(events.c.at >= since)
        if until is not None:
            conditions.append(events.c.at < until)
        query = query.where(*conditions).offset(offset)
        with self.engine.connect() as conn:
            return [self._event_row(r, snapshots) for r in conn.execute(query)]

    def get_event(self, event_id: str) -> Event | None:
        """One event by id, its snapshot unsealed; None if there is no such event."""
        with self.engine.connect() as conn:
            r = conn.execute(select(events).where(events.c.id == event_id)).first()
        return None if r is None else self._event_row(r)

    def _event_row(self, r: Any, unseal: bool = True) -> Event:
        return Event(
            id=r.id,
            at=as_utc(r.at),
            kind=r.kind,
            camera=r.camera,
            collection_id=r.collection_id,
            subject_id=r.subject_id,
            similarity=r.similarity,
            quality=r.quality,
            snapshot=(
                self._unseal(r.key_id, r.snapshot, snapshot_aad(r.id))
                if r.snapshot is not None and unseal
                else None
            ),
            track_id=r.track_id,
            reason=r.reason,
            door=r.door,
            quota=r.quota,
            has_snapshot=r.snapshot is not None,
        )

    def sweep_events(self, events_before: datetime, snapshots_before: datetime) -> tuple[int, int]:
        """Delete events older than ``events_before`` and the snapshots of those older than
        ``snapshots_before``; returns (events deleted, snapshots deleted)."""
        with self.engine.begin() as conn:
            gone = conn.execute(delete(events).where(events.c.at < events_before)).rowcount
            dropped = conn.execute(
                update(events)
                .where(events.c.at < snapshots_before, events.c.snapshot.is_not(None))
                .values(snapshot=None, key_id=None)
            ).rowcount
        if gone or dropped:
            self.compact()
        return int(gone or 0), int(dropped or 0)

    # --- key rotation ----------------------------------------------------------------------
    def get_meta(self, name: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(
                select(store_meta.c.value).where(store_meta.c.name == name)
            ).scalar()

    def set_meta(self, name: str, value: str | None) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(store_meta).where(store_meta.c.name == name))
            if value is not None:
                conn.execute(insert(store_meta).values(name=name, value=value))

    def key_ids_in_use(self) -> set[str]:
        with self.engine.connect() as conn:
            return self._key_ids_in_use(conn)

    def count_not_sealed_with(self, key_id: str) -> int:
        """Records (templates, images, snapshots) not sealed with ``key_id`` (plaintext too)."""
        total = 0
        with self.engine.connect() as conn:
            for table in SEALED_TABLES:
                query = (
                    select(func.count())
                    .select_from(table)
                    .where(or_(table.c.key_id.is_(None), table.c.key_id != key_id))
                )
                if table is events:
                    query = query.where(events.c.snapshot.is_not(None))
                total += int(conn.execute(query).scalar_one())
        return total

    def reseal_batch(self, key_id: str, limit: int) -> int:
        """Re-encrypt up to ``limit`` records under ``key_id`` in one transaction; returns
        how many (0: done). A crash loses at most this batch's work, never a record."""
        assert self.keyring is not None, "resealing needs a keyring"
        done = 0
        with self.engine.begin() as conn:
            for table, column, aad_of in _SEALED_COLUMNS:
                pk = table.primary_key.columns.values()[0]
                query = select(table).where(or_(table.c.key_id.is_(None), table.c.key_id != key_id))
                query = query.where(table.c[column].is_not(None))
                for row in conn.execute(query.limit(limit - done)).all():
                    aad = aad_of(row)
                    plain = self._unseal(row.key_id, getattr(row, column), aad)
                    _, blob = self.keyring.seal(plain, aad, key_id)
                    conn.execute(
                        update(table)
                        .where(pk == getattr(row, pk.name))
                        .values({column: blob, "key_id": key_id})
                    )
                    done += 1
                if done >= limit:
                    break
        return done

    def known_key_ids(self) -> set[str]:
        """Data keys that have a check value here (every key that ever sealed a record)."""
        with self.engine.connect() as conn:
            return {r.key_id for r in conn.execute(select(data_keys.c.key_id))}

    def forget_data_keys(self, key_ids: set[str]) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(data_keys).where(data_keys.c.key_id.in_(key_ids)))

    def get_template_image(self, template_id: str) -> bytes | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(template_images).where(template_images.c.template_id == template_id)
            ).first()
        if row is None:
            return None
        return self._unseal(row.key_id, row.data, image_aad(row.template_id, row.subject_id))

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

    def template_refs(self, model_id: str, collection_id: str) -> dict[str, str]:
        query = select(templates.c.id, templates.c.subject_id).where(
            templates.c.model_id == model_id
        )
        query = self._in_collection(query, collection_id)
        with self.engine.connect() as conn:
            return {r.id: r.subject_id for r in conn.execute(query)}

    def template_counts(self, collection_id: str | None = None) -> dict[str, int]:
        query = select(templates.c.model_id, func.count()).group_by(templates.c.model_id)
        query = self._in_collection(query, collection_id)
        with self.engine.connect() as conn:
            return {str(m): int(n) for m, n in conn.execute(query)}

    def close(self) -> None:
        self.engine.dispose()
