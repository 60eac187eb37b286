"""The in-memory vector index (FAISS) over one model's templates in one collection.

Up to ``approximate_above`` templates: exact inner-product search (``IndexFlatIP``).
Above: two stages. A compressed copy of every vector (projected onto the main directions
of the gallery, 3/4 of the dimensions, stored as float16) is scanned in full; the best
``RERANK`` x k rows are then scored exactly against the float32 vectors. Chosen by
measurement on face-like embeddings at 1M templates (docs/scaling.md): recall@1 0.999
against exact search at 7.5 ms p99 on one thread, built in seconds, where HNSW graphs
stayed under 0.99 recall within the same time and took 20 minutes to build.

Erasure: the exact index drops the row (rebuilt from the kept rows). The two-stage index
zeroes the row in both copies at once (the vector leaves memory) and skips it; it is
rebuilt without such rows when they are a tenth of it.
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

DEFAULT_APPROXIMATE_ABOVE = 250_000
RERANK = 64  # rows scored exactly per wanted result
KEPT_DIMENSIONS = 0.75  # share of the dimensions the compressed scan keeps
_FIT_SAMPLE = 200_000
_CHUNK = 50_000
Progress = Callable[[int, int], None]


def _projection(vectors: FloatArray, keep: int) -> FloatArray:
    """The ``keep`` directions that carry most of the vectors' inner products: the top
    eigenvectors of X^T X (not centred: inner products, not distances, are preserved)."""
    sample = vectors[:: max(1, len(vectors) // _FIT_SAMPLE)]
    _, eigenvectors = np.linalg.eigh(sample.T.astype(np.float64) @ sample)
    return np.ascontiguousarray(eigenvectors[:, ::-1][:, :keep].T, dtype=np.float32)


def _writable(index: Any) -> np.ndarray:
    """The index's own float32 vectors (or float16 codes, as uint16), writable in place."""
    flat: Any = faiss.downcast_index(index)
    if isinstance(flat, faiss.IndexFlat):
        return faiss.rev_swig_ptr(flat.get_xb(), flat.ntotal * flat.d).reshape(-1, flat.d)
    codes = faiss.rev_swig_ptr(flat.codes.data(), flat.codes.size())
    return codes.reshape(flat.ntotal, -1)


class VectorIndex:
    """Rows map to (template id, subject id); scores are inner products."""

    def __init__(
        self,
        dim: int,
        *,
        approximate_above: int = DEFAULT_APPROXIMATE_ABOVE,
        progress: Progress | None = None,
    ) -> None:
        self.dim = dim
        self.approximate_above = approximate_above
        self.progress = progress
        self._exact: Any = faiss.IndexFlatIP(dim)  # every vector, float32
        self._scan: Any = None  # the compressed copy, once approximate
        self._project: FloatArray | None = None
        self._template_ids: list[str] = []
        self._subject_ids: list[str] = []
        self._row_of: dict[str, int] = {}
        self._dead: set[int] = set()  # rows erased from a two-stage index
        self._lock = threading.RLock()

    def __len__(self) -> int:
        return len(self._template_ids) - len(self._dead)

    @property
    def approximate(self) -> bool:
        return self._scan is not None

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
            self._exact.add(vectors)
            if self._scan is not None:
                self._scan_add(vectors)
            elif len(self) > self.approximate_above:
                self._build_scan()

    def _build_scan(self) -> None:
        vectors = _writable(self._exact)
        keep = max(8, round(self.dim * KEPT_DIMENSIONS / 8) * 8)
        self._project = _projection(vectors, keep)
        self._scan = faiss.IndexScalarQuantizer(
            keep, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT
        )
        total = len(vectors)
        for start in range(0, total, _CHUNK):
            self._scan_add(vectors[start : start + _CHUNK])
            if self.progress:
                self.progress(min(start + _CHUNK, total), total)

    def _scan_add(self, vectors: FloatArray) -> None:
        assert self._project is not None
        self._scan.add(np.ascontiguousarray(vectors @ self._project.T, dtype=np.float32))

    def remove(self, template_ids: Iterable[str]) -> int:
        with self._lock:
            rows = {self._row_of[t] for t in template_ids if t in self._row_of} - self._dead
            if not rows:
                return 0
            if self._scan is None:
                self._drop_rows(rows)
                return len(rows)
            chosen = sorted(rows)
            _writable(self._exact)[chosen] = 0.0  # the vector leaves memory now
            _writable(self._scan)[chosen] = 0
            self._dead.update(rows)
            if len(self._dead) * 10 > len(self._template_ids):
                self._drop_rows(set(self._dead))
            return len(rows)

    def _drop_rows(self, rows: set[int]) -> None:
        keep = [r for r in range(len(self._template_ids)) if r not in rows]
        vectors = _writable(self._exact)[keep].copy()
        self._template_ids = [self._template_ids[r] for r in keep]
        self._subject_ids = [self._subject_ids[r] for r in keep]
        self._row_of = {t: r for r, t in enumerate(self._template_ids)}
        self._dead = set()
        self._exact = faiss.IndexFlatIP(self.dim)
        self._exact.add(vectors)
        self._scan = self._project = None
        if len(keep) > self.approximate_above:
            self._build_scan()

    # --- search ------------------------------------------------------------------------
    def search(self, query: FloatArray, k: int) -> list[tuple[str, str, float]]:
        """Top ``k`` rows for a prepared ``(D,)`` query: (template id, subject id, score)."""
        with self._lock:
            if len(self) == 0:
                return []
            q = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
            if self._scan is None:
                scores, rows = self._exact.search(q, min(k, self._exact.ntotal))
                pairs = zip(scores[0], rows[0], strict=True)
            else:
                assert self._project is not None
                want = min((k + len(self._dead)) * RERANK, self._scan.ntotal)
                _, found = self._scan.search(q @ self._project.T, want)
                rows_found = found[0][found[0] >= 0]
                if self._dead:
                    rows_found = rows_found[~np.isin(rows_found, list(self._dead))]
                exact = _writable(self._exact)[rows_found] @ q[0]
                order = np.argsort(-exact)[:k]
                pairs = zip(exact[order], rows_found[order], strict=True)
            return [
                (self._template_ids[r], self._subject_ids[r], float(s))
                for s, r in pairs
                if r >= 0 and r not in self._dead
            ][:k]

    # --- persistence -------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """The whole index (vectors, compressed copy, ids) as bytes; the caller seals them."""
        with self._lock:
            buffer = io.BytesIO()
            np.savez(
                buffer,
                exact=faiss.serialize_index(self._exact),
                scan=faiss.serialize_index(self._scan) if self._scan is not None else np.zeros(0),
                project=self._project if self._project is not None else np.zeros(0),
                template_ids=np.array(self._template_ids, dtype="U64"),
                subject_ids=np.array(self._subject_ids, dtype="U64"),
                dead=np.array(sorted(self._dead), dtype=np.int64),
                settings=np.array([self.dim, self.approximate_above]),
            )
            return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, progress: Progress | None = None) -> VectorIndex:
        arrays = np.load(io.BytesIO(data), allow_pickle=False)
        dim, approximate_above = (int(v) for v in arrays["settings"])
        index = cls(dim, approximate_above=approximate_above, progress=progress)
        index._exact = faiss.deserialize_index(arrays["exact"])
        if arrays["scan"].size:
            index._scan = faiss.deserialize_index(arrays["scan"])
            index._project = np.asarray(arrays["project"], dtype=np.float32)
        index._template_ids = [str(t) for t in arrays["template_ids"]]
        index._subject_ids = [str(s) for s in arrays["subject_ids"]]
        index._row_of = {t: r for r, t in enumerate(index._template_ids)}
        index._dead = {int(r) for r in arrays["dead"]}
        return index
