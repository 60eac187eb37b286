"""An exact inner-product vector index (FAISS) over one model's templates."""

from __future__ import annotations

import threading
from collections.abc import Iterable

import faiss
import numpy as np

from facegate.gallery.records import Template
from facegate.types import FloatArray


class VectorIndex:
    """Exact search (``IndexFlatIP``); rows map to (template id, subject id).

    Removal rebuilds the flat index from the kept rows: O(N), fine for the embedded
    default; large galleries get an approximate index later.
    """

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._index = faiss.IndexFlatIP(dim)
        self._vectors = np.zeros((0, dim), dtype=np.float32)
        self._template_ids: list[str] = []
        self._subject_ids: list[str] = []
        self._lock = threading.RLock()

    def __len__(self) -> int:
        return len(self._template_ids)

    def add(self, items: Iterable[Template]) -> None:
        items = list(items)
        if not items:
            return
        vectors = np.stack([t.embedding for t in items]).astype(np.float32)
        if vectors.shape[1] != self.dim:
            raise ValueError(f"embeddings must be ({self.dim},), got ({vectors.shape[1]},)")
        with self._lock:
            self._index.add(vectors)
            self._vectors = np.concatenate([self._vectors, vectors])
            self._template_ids += [t.id for t in items]
            self._subject_ids += [t.subject_id for t in items]

    def remove(self, template_ids: Iterable[str]) -> int:
        drop = set(template_ids)
        with self._lock:
            keep = [i for i, tid in enumerate(self._template_ids) if tid not in drop]
            removed = len(self._template_ids) - len(keep)
            if removed:
                self._vectors = self._vectors[keep]
                self._template_ids = [self._template_ids[i] for i in keep]
                self._subject_ids = [self._subject_ids[i] for i in keep]
                self._index = faiss.IndexFlatIP(self.dim)
                if len(keep):
                    self._index.add(self._vectors)
            return removed

    def search(self, query: FloatArray, k: int) -> list[tuple[str, str, float]]:
        """Top ``k`` rows for a prepared ``(D,)`` query: (template id, subject id, score)."""
        with self._lock:
            if not self._template_ids:
                return []
            k = min(k, len(self._template_ids))
            scores, rows = self._index.search(query.reshape(1, -1).astype(np.float32), k)
            return [
                (self._template_ids[r], self._subject_ids[r], float(s))
                for s, r in zip(scores[0], rows[0], strict=True)
                if r >= 0
            ]
