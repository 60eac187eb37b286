"""The in-memory vector index (FAISS) over one model's templates in one collection.

Exact inner-product search (``IndexFlatIP``) up to ``approximate_above`` templates; above,
an HNSW graph (M=64, efConstruction=200), chosen by measured recall on face-like
embeddings (docs/scaling.md: recall@1 >= 0.99 against exact search). HNSW cannot delete:
an erased template is zeroed in the index's storage (its vector leaves memory at once) and
skipped by every search; the graph is rebuilt when a tenth of it is such tombstones.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Iterable
from typing import Any

import faiss
import numpy as np

from facegate.gallery.records import Template
from facegate.types import FloatArray

HNSW_M = 64
HNSW_EF_CONSTRUCTION = 200
DEFAULT_EF_SEARCH = 128
DEFAULT_APPROXIMATE_ABOVE = 250_000
_BUILD_CHUNK = 20_000
Progress = Callable[[int, int], None]


class VectorIndex:
    """Rows map to (template id, subject id); scores are inner products."""

    def __init__(
        self,
        dim: int,
        *,
        approximate_above: int = DEFAULT_APPROXIMATE_ABOVE,
        ef_search: int = DEFAULT_EF_SEARCH,
        progress: Progress | None = None,
    ) -> None:
        self.dim = dim
        self.approximate_above = approximate_above
        self.ef_search = ef_search
        self.progress = progress
        self._index: Any = faiss.IndexFlatIP(dim)
        self._template_ids: list[str] = []
        self._subject_ids: list[str] = []
        self._row_of: dict[str, int] = {}
        self._dead: set[int] = set()  # rows erased from an HNSW graph
        self._lock = threading.RLock()

    def __len__(self) -> int:
        return len(self._template_ids) - len(self._dead)

    @property
    def approximate(self) -> bool:
        return isinstance(self._index, faiss.IndexHNSWFlat)

    @property
    def template_ids(self) -> set[str]:
        with self._lock:
            return {t for t, row in self._row_of.items() if row not in self._dead}

    # --- writes --------------------------------------------------------------------------
    def add(self, items: Iterable[Template]) -> None:
        """Add templates; one already in the index (by id) is left as it is."""
        with self._lock:
            items = [t for t in items if t.id not in self._row_of]
            if not items:
                return
            vectors = np.stack([t.embedding for t in items]).astype(np.float32)
            if vectors.shape[1] != self.dim:
                raise ValueError(f"embeddings must be ({self.dim},), got ({vectors.shape[1]},)")
            first = len(self._template_ids)
            for offset, t in enumerate(items):
                self._row_of[t.id] = first + offset
            self._template_ids += [t.id for t in items]
            self._subject_ids += [t.subject_id for t in items]
            if not self.approximate and len(self) > self.approximate_above:
                self._rebuild(np.concatenate([self._stored(), vectors]), approximate=True)
            else:
                self._add_chunked(self._index, vectors)

    def remove(self, template_ids: Iterable[str]) -> int:
        with self._lock:
            rows = [self._row_of[t] for t in template_ids if t in self._row_of]
            rows = [r for r in rows if r not in self._dead]
            if not rows:
                return 0
            if self.approximate:
                storage: Any = faiss.downcast_index(self._index.storage)
                stored = faiss.rev_swig_ptr(storage.get_xb(), storage.ntotal * self.dim)
                view = np.asarray(stored).reshape(-1, self.dim)
                view[rows] = 0.0  # the vector leaves memory now; the row stays in the graph
                self._dead.update(rows)
                if len(self._dead) * 10 > len(self._template_ids):
                    self._compact()
            else:
                self._drop_rows(set(rows))
            return len(rows)

    def _drop_rows(self, rows: set[int]) -> None:
        keep = [r for r in range(len(self._template_ids)) if r not in rows]
        vectors = self._stored()[keep]
        self._template_ids = [self._template_ids[r] for r in keep]
        self._subject_ids = [self._subject_ids[r] for r in keep]
        self._row_of = {t: r for r, t in enumerate(self._template_ids)}
        self._dead = set()
        self._rebuild(vectors, approximate=self.approximate and len(keep) > self.approximate_above)

    def _compact(self) -> None:
        self._drop_rows(set(self._dead))

    def _stored(self) -> FloatArray:
        n = self._index.ntotal
        if n == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.asarray(self._index.reconstruct_n(0, n), dtype=np.float32)

    def _rebuild(self, vectors: FloatArray, *, approximate: bool) -> None:
        index: Any
        if approximate:
            index = faiss.IndexHNSWFlat(self.dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        else:
            index = faiss.IndexFlatIP(self.dim)
        self._add_chunked(index, vectors)
        self._index = index

    def _add_chunked(self, index: Any, vectors: FloatArray) -> None:
        """Add in chunks, reporting progress (an HNSW build of 1M takes minutes)."""
        total = len(vectors)
        for start in range(0, total, _BUILD_CHUNK):
            index.add(vectors[start : start + _BUILD_CHUNK])
            if self.progress and isinstance(index, faiss.IndexHNSWFlat):
                self.progress(min(start + _BUILD_CHUNK, total), total)

    # --- search ------------------------------------------------------------------------
    def search(self, query: FloatArray, k: int) -> list[tuple[str, str, float]]:
        """Top ``k`` rows for a prepared ``(D,)`` query: (template id, subject id, score)."""
        with self._lock:
            if len(self) == 0:
                return []
            want = min(k + len(self._dead), self._index.ntotal)
            if self.approximate:
                self._index.hnsw.efSearch = max(self.ef_search, want)
            scores, rows = self._index.search(query.reshape(1, -1).astype(np.float32), want)
            found = [
                (self._template_ids[r], self._subject_ids[r], float(s))
                for s, r in zip(scores[0], rows[0], strict=True)
                if r >= 0 and r not in self._dead
            ]
            return found[:k]

    # --- persistence -------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """The whole index (graph, vectors, ids) as bytes; the caller seals them."""
        with self._lock:
            buffer = io.BytesIO()
            np.savez(
                buffer,
                index=faiss.serialize_index(self._index),
                template_ids=np.array(self._template_ids, dtype="U64"),
                subject_ids=np.array(self._subject_ids, dtype="U64"),
                dead=np.array(sorted(self._dead), dtype=np.int64),
                settings=np.array([self.dim, self.approximate_above, self.ef_search]),
            )
            return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, progress: Progress | None = None) -> VectorIndex:
        arrays = np.load(io.BytesIO(data), allow_pickle=False)
        dim, approximate_above, ef_search = (int(v) for v in arrays["settings"])
        index = cls(
            dim, approximate_above=approximate_above, ef_search=ef_search, progress=progress
        )
        index._index = faiss.deserialize_index(arrays["index"])
        index._template_ids = [str(t) for t in arrays["template_ids"]]
        index._subject_ids = [str(s) for s in arrays["subject_ids"]]
        index._row_of = {t: r for r, t in enumerate(index._template_ids)}
        index._dead = {int(r) for r in arrays["dead"]}
        return index
