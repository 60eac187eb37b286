"""PostgreSQL + pgvector: the store for several API replicas on one database.

The encrypted ``embedding`` column stays the source of truth. Two ways to search:
- in memory (default): no plaintext column is written; each replica searches a FAISS
  index of decrypted templates and brings it up to date (one generation query per
  search, and a re-read of the changed ids) when another replica writes.
- in the database (``search_in_database=True``): ``vector`` holds the same embedding in
  plaintext, because pgvector can only search what it can read. It is the one plaintext
  copy, kept inside the database (never in the API replicas' memory), searched with an
  HNSW index per model
  (inner product, as the embedded FAISS index). Every search sees every write at once.
docs/scaling.md measures both: at 1M templates pgvector found the exact top match for 0.84
of queries at its ef_search of 200, the in-memory index for all of them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

from pgvector.sqlalchemy import Vector
from sqlalchemy import (
    Column,
    MetaData,
    String,
    Table,
    bindparam,
    create_engine,
    exists,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError

from facegate.errors import ConfigError
from facegate.gallery.crypto import Keyring
from facegate.gallery.records import Template
from facegate.gallery.sql_store import SqlStore
from facegate.gallery.tables import subjects, templates
from facegate.types import FloatArray

# The searchable copy; a separate Table so that SQLite's schema never needs the type.
_vectors = Table(
    "templates",
    MetaData(),
    Column("id", String(32), primary_key=True),
    Column("subject_id", String(32)),
    Column("model_id", String(64)),
    Column("vector", Vector()),
)
_SAFE_MODEL_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
# The HNSW graph (pgvector's defaults are m=16, ef_construction=64): face embeddings are
# hard for graphs, so denser (measured: docs/scaling.md).
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 128
# Candidates the HNSW scan visits per query (pgvector's default is 40); recall over speed.
EF_SEARCH = 200


def engine_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` mean psycopg 3 here."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(
            "FACEGATE_DATABASE_URL is not a URL (postgresql://user@host/db)"
        ) from None
    if parsed.get_backend_name() not in ("postgresql", "postgres"):
        raise ConfigError(
            f"FACEGATE_DATABASE_URL must be a postgresql:// URL, got {parsed.drivername!r}"
        )
    return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


class PostgresStore(SqlStore):
    def __init__(
        self,
        url: str,
        keyring: Keyring | None = None,
        *,
        search_in_database: bool = False,
        ef_search: int = EF_SEARCH,
    ) -> None:
        """``search_in_database=False``: no plaintext vector is written; each process
        searches an in-memory index of decrypted templates instead (and re-reads what
        changed when another process writes)."""
        engine = create_engine(engine_url(url), pool_pre_ping=True)
        self.searches_in_database = search_in_database
        self.ef_search = ef_search
        self._indexed_models: set[tuple[str, int]] = set()
        super().__init__(engine, keyring, make_url(url).render_as_string(hide_password=True))

    # --- the searchable copy ----------------------------------------------------------------
    def _insert_templates(self, conn: Connection, new_templates: Sequence[Template]) -> None:
        super()._insert_templates(conn, new_templates)
        if not self.searches_in_database:
            return  # the ciphertext only: no plaintext copy for pgvector
        for model_id, dim in {(t.model_id, int(t.embedding.shape[0])) for t in new_templates}:
            self._ensure_index(conn, model_id, dim)
        conn.execute(
            update(_vectors)
            .where(_vectors.c.id == bindparam("tid"))
            .values(vector=bindparam("vec", type_=Vector())),
            [{"tid": t.id, "vec": t.embedding} for t in new_templates],
        )

    def _ensure_index(self, conn: Connection, model_id: str, dim: int) -> None:
        """One HNSW index per model (a partial index: models never mix), made on first use."""
        if (model_id, dim) in self._indexed_models:
            return
        if not _SAFE_MODEL_ID.match(model_id):
            raise ConfigError(f"model id {model_id!r} cannot name a vector index")
        name = "ix_templates_hnsw_" + hashlib.sha256(f"{model_id}/{dim}".encode()).hexdigest()[:16]
        conn.execute(
            text(
                f"CREATE INDEX IF NOT EXISTS {name} ON templates USING hnsw "
                f"((vector::vector({dim})) vector_ip_ops) "
                f"WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION}) "
                f"WHERE model_id = '{model_id}'"
            )
        )
        self._indexed_models.add((model_id, dim))

    def search_templates(
        self, collection_id: str, model_id: str, query: FloatArray, k: int
    ) -> list[tuple[str, str, float]]:
        """Top ``k`` templates of ``model_id`` in the collection for a prepared query:
        (template id, subject id, inner product), best first."""
        if not _SAFE_MODEL_ID.match(model_id):
            return []
        dim = int(query.shape[0])
        # The same expression and predicate as the partial index, so the planner can use it.
        distance = f"(t.vector::vector({dim})) <#> CAST(:q AS vector({dim}))"
        sql = text(
            f"SELECT t.id, t.subject_id, -({distance}) AS inner_product "
            "FROM templates t JOIN subjects s ON s.id = t.subject_id "
            f"WHERE t.model_id = '{model_id}' AND s.collection_id = :c "
            f"ORDER BY {distance} LIMIT :k"
        )
        with self.engine.begin() as conn:
            # Filtering by collection after the index scan must not starve the result.
            conn.execute(text("SET LOCAL hnsw.iterative_scan = relaxed_order"))
            conn.execute(text(f"SET LOCAL hnsw.ef_search = {max(self.ef_search, k)}"))
            rows = conn.execute(sql, {"q": str(query.tolist()), "c": collection_id, "k": k})
            found = [(r[0], r[1], float(r[2])) for r in rows]
        found.sort(key=lambda row: row[2], reverse=True)  # relaxed order: sort exactly here
        return found

    def has_templates(self, collection_id: str, model_id: str) -> bool:
        members = select(subjects.c.id).where(subjects.c.collection_id == collection_id)
        query = select(
            exists().where(templates.c.model_id == model_id, templates.c.subject_id.in_(members))
        )
        with self.engine.connect() as conn:
            return bool(conn.execute(query).scalar())
