"""Vector search at 100k and 1M templates: exact FAISS against facegate's approximate
index (a 4-bit PQ fast scan with exact re-scoring: facegate.gallery.index.VectorIndex) and,
up to ``--alternatives-max`` templates, the alternatives measured first (HNSW, IVF; their
1M figures are in results/search_index_hnsw_ivf.json, from this script before the change).

The gallery is synthetic but shaped like real SFace embeddings (facegate.bench.synthetic:
Gaussian models of identity centres and photo variation fitted to the LFW embeddings in
../shared/data/faces; `fidelity` in the JSON compares score distributions). Queries are new
photos of enrolled people (mated) and of people not enrolled (non-mated), searched one at
a time on one thread, as the service does. recall@1: the approximate index returns the
same top template as exact search.
Usage: python benchmarks/search_index.py [--sizes 100000 1000000] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from facegate.bench.synthetic import FaceSpace, fidelity
from facegate.eval.embeddings import embed_images, identity_of
from facegate.gallery.index import RERANK, VectorIndex
from facegate.gallery.records import Template

FACES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "faces"


# SFace's threshold at FMR 1e-3: a top-1 below it is answered "unknown" whichever it is.
THRESHOLD = 0.3599


@dataclass
class Answers:
    ids: np.ndarray  # top-1 row per query
    scores: np.ndarray
    latency_ms: np.ndarray

    def decisions(self) -> np.ndarray:
        return np.where(self.scores >= THRESHOLD, self.ids, -1)


def timed_search(index: Any, queries: np.ndarray) -> Answers:
    """Top-1 per query and its latency, one query at a time on one thread."""
    faiss.omp_set_num_threads(1)
    ids = np.empty(len(queries), dtype=np.int64)
    scores = np.empty(len(queries), dtype=np.float32)
    latency = np.empty(len(queries))
    for i, q in enumerate(queries):
        start = time.perf_counter()
        found_scores, found = index.search(q.reshape(1, -1), 1)
        latency[i] = (time.perf_counter() - start) * 1000
        ids[i], scores[i] = found[0, 0], found_scores[0, 0]
    return Answers(ids, scores, latency)


def figures(
    name: str,
    got: Answers,
    exact: Answers,
    mated: np.ndarray,
    index: Any,
    n: int,
    build_s: float,
    **params: Any,
) -> dict[str, Any]:
    return {
        "index": name,
        **params,
        # The figure that matters: photos of enrolled people get the same top template.
        "recall_at_1": float(np.mean(got.ids[mated] == exact.ids[mated])),
        # Every query, people not enrolled included (their top-1 is any of many impostors).
        "recall_at_1_all_queries": float(np.mean(got.ids == exact.ids)),
        # Same answer at the FMR 1e-3 threshold: the same person, or unknown for both.
        "decision_agreement": float(np.mean(got.decisions() == exact.decisions())),
        "p50_ms": round(float(np.percentile(got.latency_ms, 50)), 3),
        "p99_ms": round(float(np.percentile(got.latency_ms, 99)), 3),
        "build_s": round(build_s, 1),
        "bytes_per_template": round(faiss.serialize_index(index).nbytes / n, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--build-threads", type=int, default=2)
    parser.add_argument("--alternatives-max", type=int, default=100_000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    real = embed_images(FACES, "sface", progress=True)
    vectors = real.vectors[real.found]
    identities = [identity_of(p) for p, ok in zip(real.paths, real.found, strict=True) if ok]
    space = FaceSpace.fit(vectors, identities)
    report: dict[str, Any] = {
        "benchmark": "search_index",
        "machine": f"{platform.processor() or platform.machine()}, {platform.python_version()}",
        "faiss": faiss.__version__,
        "real_embeddings": len(vectors),
        "fidelity": {k: round(v, 4) for k, v in fidelity(vectors, identities, space).items()},
        "sizes": {},
    }
    for n in args.sizes:
        rng = np.random.default_rng(n)
        centres = space.centres(n, rng)
        gallery = space.photos(centres, rng)  # one template per person
        mated = space.photos(centres[rng.integers(0, n, args.queries * 9 // 10)], rng)
        nonmated = space.photos(space.centres(args.queries - len(mated), rng), rng)
        queries = np.concatenate([mated, nonmated])
        mated_mask = np.arange(len(queries)) < len(mated)
        rows: list[dict[str, Any]] = []

        faiss.omp_set_num_threads(args.build_threads)
        start = time.perf_counter()
        flat = faiss.IndexFlatIP(space.dim)
        flat.add(gallery)
        exact = timed_search(flat, queries)
        rows.append(
            figures("exact", exact, exact, mated_mask, flat, n, time.perf_counter() - start)
        )
        print(rows[-1], flush=True)

        faiss.omp_set_num_threads(args.build_threads)
        start = time.perf_counter()
        product = VectorIndex(space.dim, approximate_above=1)
        product.add(Template(str(i), str(i), "sface", v, 0.9) for i, v in enumerate(gallery))
        build = time.perf_counter() - start
        got = timed_product(product, queries)
        row = figures("facegate-two-stage", got, exact, mated_mask, flat, n, build)
        # float32 vectors for re-scoring + the 4-bit PQ codes scanned first
        row.update(
            codes=f"PQ{space.dim // 2}x4fs",
            rerank=RERANK,
            bytes_per_template=4 * space.dim + int(product._codes.code_size),
        )
        rows.append(row)
        print(rows[-1], flush=True)
        del product
        if n <= args.alternatives_max:
            rows += alternatives(space, gallery, queries, exact, mated_mask, n, rng, args)
        report["sizes"][str(n)] = rows
        if args.out:
            args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


def timed_product(index: VectorIndex, queries: np.ndarray) -> Answers:
    """The same measure for facegate's own index class, as the gallery calls it."""
    faiss.omp_set_num_threads(1)
    ids = np.empty(len(queries), dtype=np.int64)
    scores = np.empty(len(queries), dtype=np.float32)
    latency = np.empty(len(queries))
    for i, q in enumerate(queries):
        start = time.perf_counter()
        found = index.search(q, 1)
        latency[i] = (time.perf_counter() - start) * 1000
        ids[i], scores[i] = int(found[0][0]), found[0][2]
    return Answers(ids, scores, latency)


def alternatives(
    space: FaceSpace,
    gallery: np.ndarray,
    queries: np.ndarray,
    exact: Answers,
    mated_mask: np.ndarray,
    n: int,
    rng: np.random.Generator,
    args: argparse.Namespace,
) -> list[dict[str, Any]]:
    """HNSW and IVF, measured before the two-stage index was chosen. (HNSW with M=32 needed
    efSearch 256 for 0.99 at 100k; M=64, efConstruction=200 reaches it at 128.)"""
    rows: list[dict[str, Any]] = []
    faiss.omp_set_num_threads(args.build_threads)
    start = time.perf_counter()
    hnsw = faiss.IndexHNSWFlat(space.dim, 64, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = 200
    hnsw.add(gallery)
    build = time.perf_counter() - start
    for ef in (64, 128, 256):
        hnsw.hnsw.efSearch = ef
        got = timed_search(hnsw, queries)
        rows.append(figures("hnsw", got, exact, mated_mask, hnsw, n, build, M=64, efSearch=ef))
        print(rows[-1], flush=True)
    nlist = 1024 if n <= 200_000 else 4096
    faiss.omp_set_num_threads(args.build_threads)
    start = time.perf_counter()
    ivf = faiss.IndexIVFFlat(
        faiss.IndexFlatIP(space.dim), space.dim, nlist, faiss.METRIC_INNER_PRODUCT
    )
    ivf.train(gallery[rng.choice(n, min(n, nlist * 40), replace=False)])
    ivf.add(gallery)
    build = time.perf_counter() - start
    for nprobe in (32, 128, 256):
        ivf.nprobe = nprobe
        got = timed_search(ivf, queries)
        rows.append(
            figures("ivf", got, exact, mated_mask, ivf, n, build, nlist=nlist, nprobe=nprobe)
        )
        print(rows[-1], flush=True)
    return rows


if __name__ == "__main__":
    main()
