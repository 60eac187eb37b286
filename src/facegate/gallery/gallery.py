"""The gallery of one collection: a durable store plus an in-memory vector index.

The index is loaded from the store at start and kept in step with every write, store
first: if the store write fails, the index is not touched.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from facegate.errors import (
    AmbiguousSubjectError,
    InvalidSubjectError,
    UnknownCollectionError,
    UnknownSubjectError,
    UnknownTemplateError,
)
from facegate.gallery.crypto import Keyring
from facegate.gallery.index import (
    DEFAULT_APPROXIMATE_ABOVE,
    Progress,
    VectorIndex,
)
from facegate.gallery.index_files import index_path, load_index, save_index
from facegate.gallery.memory_store import MemoryStore
from facegate.gallery.records import (
    DEFAULT_COLLECTION,
    Collection,
    Consent,
    Erasure,
    Subject,
    Template,
    check_subject_fields,
    utc_now,
)
from facegate.gallery.store import DatabaseSearch, Store
from facegate.types import Candidate, FloatArray
from facegate.vision.embed import ScoreSpace

T = TypeVar("T")


@dataclass(frozen=True)
class IndexOptions:
    """How a gallery keeps its in-memory index: where large ones are saved (None: never)
    and above what size it searches in two stages (compressed scan, exact re-scoring)."""

    directory: Path | None = None
    approximate_above: int = DEFAULT_APPROXIMATE_ABOVE
    progress: Progress | None = None


# How many template rows to fetch per wanted subject before grouping by subject.
_ROWS_PER_SUBJECT = 8
# A subject's last-match time is written at most this often (retention counts in days).
_MATCH_NOTE_INTERVAL_S = 3600.0


class Gallery:
    def __init__(
        self, store: Store, collection: Collection, options: IndexOptions | None = None
    ) -> None:
        self.store = store
        self.collection = collection
        self.options = options or IndexOptions()
        self._indexes: dict[str, VectorIndex] = {}
        self._lock = threading.RLock()
        self._generation = store.generation()  # the store state the indexes reflect
        self._match_noted: dict[str, float] = {}

    @classmethod
    def open(
        cls,
        store: Store,
        name: str = DEFAULT_COLLECTION,
        *,
        create_with_model: str | None = None,
        options: IndexOptions | None = None,
    ) -> Gallery:
        """The gallery of collection ``name``; created (pinned to ``create_with_model``) if
        it does not exist and a model is given."""
        collection = store.get_collection(name)
        if collection is None:
            if create_with_model is None:
                known = ", ".join(c.name for c in store.list_collections()) or "none"
                raise UnknownCollectionError(f"no collection named {name!r} (collections: {known})")
            collection = Collection(name=name, model_id=create_with_model)
            store.add_collection(collection)
        if collection.ephemeral:
            # Only the collection's settings are durable; its faces live in this process
            # (and its index is never saved).
            return cls(MemoryStore(collection), collection)
        return cls(store, collection, options)

    @property
    def ephemeral(self) -> bool:
        return self.collection.ephemeral

    @property
    def _database_search(self) -> bool:
        """PostgreSQL may search its own vector column (pgvector); otherwise this process
        searches an in-memory index built from the decrypted templates."""
        return isinstance(self.store, DatabaseSearch) and self.store.searches_in_database

    @property
    def collection_id(self) -> str:
        return self.collection.name

    def count_subjects(self) -> int:
        return self.store.count_subjects(self.collection_id)

    def list_subjects(self, limit: int = 100, offset: int = 0) -> list[Subject]:
        return self.store.list_subjects(limit, offset, self.collection_id)

    def find_subjects(
        self, *, display_name: str | None = None, external_id: str | None = None
    ) -> list[Subject]:
        return self.store.find_subjects(
            display_name=display_name, external_id=external_id, collection_id=self.collection_id
        )

    def search_subjects(
        self,
        *,
        name_contains: str | None = None,
        external_id: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[list[Subject], int]:
        return self.store.search_subjects(
            self.collection_id,
            name_contains=name_contains,
            external_id=external_id,
            limit=limit,
            offset=offset,
        )

    def update_subject(
        self,
        subject_id: str,
        *,
        display_name: str | None = None,
        external_id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Subject:
        """Names are read at search time, so the index needs no change."""
        self._own(subject_id)
        try:
            check_subject_fields(display_name, external_id, metadata)
        except ValueError as error:
            raise InvalidSubjectError(str(error)) from error
        return self.store.update_subject(
            subject_id, display_name=display_name, external_id=external_id, metadata=metadata
        )

    def template_counts(self) -> dict[str, int]:
        return self.store.template_counts(self.collection_id)

    def own(self, subject_id: str) -> Subject:
        """The subject, if it belongs to this collection (else UnknownSubjectError)."""
        return self._own(subject_id)

    def _own(self, subject_id: str) -> Subject:
        subject = self.store.get_subject(subject_id)
        if subject is None or subject.collection_id != self.collection_id:
            raise UnknownSubjectError(
                f"no subject with id {subject_id!r} in collection {self.collection_id!r}"
            )
        return subject

    # --- index ---------------------------------------------------------------------------
    def _refresh_if_changed(self) -> None:
        """Bring the indexes in step if another process (or gallery object) wrote since:
        an erased person must never be matched from a stale index. Only the changed ids
        are read (re-reading a large gallery would take long)."""
        current = self.store.generation()
        with self._lock:
            if current != self._generation:
                for model_id, index in self._indexes.items():
                    self._reconcile(index, model_id)
                self._generation = current

    def _write(self, write: Callable[[], T]) -> T:
        """Run a store write; keep the indexes only if no one else wrote meanwhile."""
        with self._lock:
            before = self.store.generation()
            result = write()
            after = self.store.generation()
            if before != self._generation or after != before + 1:
                for model_id, index in self._indexes.items():  # someone else wrote too
                    self._reconcile(index, model_id)
                self._generation = after
                return result
            self._generation = after
            return result

    def indexed(self, model_id: str, dim: int) -> int:
        """How many templates of ``model_id`` a search would see now (cheap: no counting
        query; in the database, 0 or 1: whether there is any)."""
        if isinstance(self.store, DatabaseSearch) and self.store.searches_in_database:
            return int(self.store.has_templates(self.collection_id, model_id))
        self._refresh_if_changed()
        return len(self.load_index(model_id, dim))

    def load_index(self, model_id: str, dim: int) -> VectorIndex:
        """The model's index, on first use: the saved one brought up to date with the store,
        or built from the store (call at start to warm it). Large ones are saved."""
        with self._lock:
            index = self._indexes.get(model_id)
            if index is not None:
                return index
            index = VectorIndex(
                dim,
                approximate_above=self.options.approximate_above,
                progress=self.options.progress,
            )
            if not self._database_search:  # else it stays empty: the database searches
                saved = self._load_saved(model_id)
                if saved is not None and saved.dim == dim:
                    index = saved
                    self._reconcile(index, model_id)
                else:
                    index.add(self.store.iter_templates(model_id, self.collection_id))
                    if index.approximate:
                        self._save(model_id, index)
            self._indexes[model_id] = index
            return index

    def _index_file(self, model_id: str) -> Path | None:
        if self.options.directory is None or self.ephemeral:
            return None
        return index_path(self.options.directory, self.collection_id, model_id)

    def _load_saved(self, model_id: str) -> VectorIndex | None:
        path = self._index_file(model_id)
        if path is None:
            return None
        return load_index(
            path, self._keyring(), self.collection_id, model_id, self.options.progress
        )

    def _save(self, model_id: str, index: VectorIndex) -> None:
        path = self._index_file(model_id)
        if path is not None:
            save_index(path, index, self._keyring(), self.collection_id, model_id)

    def _keyring(self) -> Keyring | None:
        return getattr(self.store, "keyring", None)

    def _reconcile(self, index: VectorIndex, model_id: str) -> None:
        """Bring a saved or long-lived index in step with the store: add what is missing,
        drop what was erased (by this or another process)."""
        refs = self.store.template_refs(model_id, self.collection_id)
        held = index.template_ids
        index.remove(held - refs.keys())
        missing = [t for t in refs if t not in held]
        fresh = [self.store.get_template(t) for t in missing]
        index.add(t for t in fresh if t is not None)

    def persist(self) -> None:
        """Save the large (approximate) indexes, so that the next start loads them."""
        with self._lock:
            for model_id, index in self._indexes.items():
                if index.approximate:
                    self._save(model_id, index)

    def _forget_saved(self) -> None:
        """An erasure makes a saved index hold a vector that must be gone: delete it
        (the service saves a fresh one when it stops)."""
        for model_id in list(self._indexes):
            path = self._index_file(model_id)
            if path is not None:
                path.unlink(missing_ok=True)

    # --- subjects --------------------------------------------------------------------------
    def add_subject(
        self, subject: Subject, templates: Sequence[Template], consent: Consent | None = None
    ) -> None:
        """A new subject with its templates; these need ``consent`` (or one on file)."""
        if subject.collection_id != self.collection_id:
            raise ValueError(
                f"subject belongs to {subject.collection_id!r}, not {self.collection_id!r}"
            )
        self._write(lambda: self.store.add_subject(subject, templates, consent))
        self._index_templates(templates)

    def add_templates(self, templates: Sequence[Template], consent: Consent | None = None) -> None:
        for subject_id in {t.subject_id for t in templates}:
            self._own(subject_id)
        self._write(lambda: self.store.add_templates(templates, consent))
        self._index_templates(templates)

    def add_consent(self, consent: Consent) -> None:
        self._own(consent.subject_id)
        self.store.add_consent(consent)

    def consents(self, subject_id: str) -> list[Consent]:
        self._own(subject_id)
        return self.store.subject_consents(subject_id)

    def note_match(self, subject_id: str) -> None:
        """Remember that the subject was just matched (the idle-time retention clock)."""
        now = time.monotonic()
        with self._lock:
            if now - self._match_noted.get(subject_id, float("-inf")) < _MATCH_NOTE_INTERVAL_S:
                return
            self._match_noted[subject_id] = now
        self.store.mark_matched([subject_id], utc_now())

    def _index_templates(self, templates: Sequence[Template]) -> None:
        with self._lock:
            for t in templates:
                if t.model_id in self._indexes:
                    self._indexes[t.model_id].add([t])

    def erase_subject(self, subject_id: str) -> Erasure:
        """Erase the subject everywhere: the store (templates, images, consent, events)
        and every index of this gallery; other processes see the new generation."""
        self._own(subject_id)
        gone = [t.id for t in self.store.subject_templates(subject_id)]
        erasure = self._write(lambda: self.store.erase_subject(subject_id))
        with self._lock:
            for index in self._indexes.values():
                index.remove(gone)
            self._match_noted.pop(subject_id, None)
            self._forget_saved()
        return erasure

    def remove_template(self, template_id: str) -> Template:
        found = self.store.get_template(template_id)
        owner = self.store.get_subject(found.subject_id) if found else None
        if owner is None or owner.collection_id != self.collection_id:
            raise UnknownTemplateError(
                f"no template with id {template_id!r} in collection {self.collection_id!r}"
            )
        template = self._write(lambda: self.store.remove_template(template_id))
        with self._lock:
            if template.model_id in self._indexes:
                self._indexes[template.model_id].remove([template_id])
            self._forget_saved()
        return template

    def resolve(self, ref: str) -> Subject:
        """A subject of this collection by id, external id, or (when unique) display name."""
        subject = self.store.get_subject(ref)
        if subject is not None and subject.collection_id == self.collection_id:
            return subject
        by_external = self.find_subjects(external_id=ref)
        if by_external:
            return by_external[0]
        by_name = self.find_subjects(display_name=ref)
        if len(by_name) == 1:
            return by_name[0]
        if len(by_name) > 1:
            ids = ", ".join(s.id for s in by_name)
            raise AmbiguousSubjectError(
                f"{len(by_name)} subjects are named {ref!r}; use an id: {ids}"
            )
        raise UnknownSubjectError(
            f"no subject with id, external id or name {ref!r} in collection {self.collection_id!r}"
        )

    # --- search ----------------------------------------------------------------------------
    def search(
        self, model_id: str, query: FloatArray, space: ScoreSpace, k: int
    ) -> list[Candidate]:
        """The ``k`` best subjects for one embedding; each subject scores its best template."""
        prepared = space.prepare_query(query)
        if not self._database_search:
            self._refresh_if_changed()
        fetch = k * _ROWS_PER_SUBJECT
        while True:  # widen until k distinct subjects are found or the index is exhausted
            rows = self._nearest(model_id, prepared, fetch)
            best: dict[str, float] = {}
            for _template_id, subject_id, inner in rows:
                score = inner + space.offset
                if score > best.get(subject_id, float("-inf")):
                    best[subject_id] = score
            if len(best) >= k or len(rows) < fetch:
                break
            fetch *= 4
        ranked = sorted(best.items(), key=lambda kv: kv[1], reverse=True)[:k]
        candidates = []
        for subject_id, score in ranked:
            subject = self.store.get_subject(subject_id)
            if subject is not None:  # removed meanwhile
                candidates.append(Candidate(subject_id, subject.display_name, score))
        return candidates

    def _nearest(self, model_id: str, prepared: FloatArray, n: int) -> list[tuple[str, str, float]]:
        """The ``n`` nearest templates: (template id, subject id, inner product)."""
        if isinstance(self.store, DatabaseSearch) and self.store.searches_in_database:
            return self.store.search_templates(self.collection_id, model_id, prepared, n)
        return self.load_index(model_id, int(prepared.shape[0])).search(prepared, n)

    def subject_templates(self, subject_id: str, model_id: str | None = None) -> list[Template]:
        self._own(subject_id)
        found = self.store.subject_templates(subject_id)
        return [t for t in found if model_id is None or t.model_id == model_id]
