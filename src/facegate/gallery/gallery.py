"""The gallery: a durable store plus one in-memory vector index per model id.

The index is loaded from the store at start and kept in step with every write, store
first: if the store write fails, the index is not touched.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from facegate.errors import AmbiguousSubjectError, UnknownSubjectError
from facegate.gallery.index import VectorIndex
from facegate.gallery.records import Subject, Template
from facegate.gallery.store import Store
from facegate.types import Candidate, FloatArray
from facegate.vision.embed import ScoreSpace

# How many template rows to fetch per wanted subject before grouping by subject.
_ROWS_PER_SUBJECT = 8


class Gallery:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._indexes: dict[str, VectorIndex] = {}
        self._lock = threading.RLock()

    # --- index ---------------------------------------------------------------------------
    def load_index(self, model_id: str, dim: int) -> VectorIndex:
        """The model's index, built from the store on first use (call at start to warm it)."""
        with self._lock:
            index = self._indexes.get(model_id)
            if index is None:
                index = VectorIndex(dim)
                index.add(self.store.iter_templates(model_id))
                self._indexes[model_id] = index
            return index

    def template_count(self, model_id: str) -> int:
        return self.store.template_counts().get(model_id, 0)

    # --- subjects --------------------------------------------------------------------------
    def add_subject(self, subject: Subject, templates: Sequence[Template]) -> None:
        self.store.add_subject(subject, templates)
        self._index_templates(templates)

    def add_templates(self, templates: Sequence[Template]) -> None:
        self.store.add_templates(templates)
        self._index_templates(templates)

    def _index_templates(self, templates: Sequence[Template]) -> None:
        with self._lock:
            for t in templates:
                if t.model_id in self._indexes:
                    self._indexes[t.model_id].add([t])

    def remove_subject(self, subject_id: str) -> int:
        gone = [t.id for t in self.store.subject_templates(subject_id)]
        count = self.store.remove_subject(subject_id)
        with self._lock:
            for index in self._indexes.values():
                index.remove(gone)
        return count

    def remove_template(self, template_id: str) -> Template:
        template = self.store.remove_template(template_id)
        with self._lock:
            if template.model_id in self._indexes:
                self._indexes[template.model_id].remove([template_id])
        return template

    def resolve(self, ref: str) -> Subject:
        """A subject by id, external id, or (when unique) display name."""
        subject = self.store.get_subject(ref)
        if subject is not None:
            return subject
        by_external = self.store.find_subjects(external_id=ref)
        if by_external:
            return by_external[0]
        by_name = self.store.find_subjects(display_name=ref)
        if len(by_name) == 1:
            return by_name[0]
        if len(by_name) > 1:
            ids = ", ".join(s.id for s in by_name)
            raise AmbiguousSubjectError(
                f"{len(by_name)} subjects are named {ref!r}; use an id: {ids}"
            )
        raise UnknownSubjectError(f"no subject with id, external id or name {ref!r}")

    # --- search ----------------------------------------------------------------------------
    def search(
        self, model_id: str, query: FloatArray, space: ScoreSpace, k: int
    ) -> list[Candidate]:
        """The ``k`` best subjects for one embedding; each subject scores its best template."""
        index = self.load_index(model_id, int(query.shape[0]))
        rows = index.search(space.prepare_query(query), k * _ROWS_PER_SUBJECT)
        best: dict[str, float] = {}
        for _template_id, subject_id, inner in rows:
            score = inner + space.offset
            if score > best.get(subject_id, float("-inf")):
                best[subject_id] = score
        ranked = sorted(best.items(), key=lambda kv: kv[1], reverse=True)[:k]
        candidates = []
        for subject_id, score in ranked:
            subject = self.store.get_subject(subject_id)
            if subject is not None:  # removed meanwhile
                candidates.append(Candidate(subject_id, subject.display_name, round(score, 6)))
        return candidates

    def subject_templates(self, subject_id: str, model_id: str) -> list[Template]:
        return [t for t in self.store.subject_templates(subject_id) if t.model_id == model_id]
