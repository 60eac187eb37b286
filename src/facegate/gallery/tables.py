"""Table definitions shared by the stores (SQLite now, PostgreSQL later)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)

metadata = MetaData()

collections = Table(
    "collections",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("model_id", String(64), nullable=False),
    Column("fmr", Float, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

subjects = Table(
    "subjects",
    metadata,
    Column("id", String(32), primary_key=True),
    Column(
        "collection_id",
        String(64),
        ForeignKey("collections.name", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("display_name", String(200), nullable=False, index=True),
    Column("external_id", String(200)),
    Column("metadata", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("collection_id", "external_id", name="uq_subjects_collection_external"),
    Index("ix_subjects_collection", "collection_id"),
)

templates = Table(
    "templates",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("subject_id", String(32), ForeignKey("subjects.id", ondelete="CASCADE"), nullable=False),
    Column("model_id", String(64), nullable=False),
    Column("embedding", LargeBinary, nullable=False),  # float32, little-endian
    Column("dim", Float, nullable=False),
    Column("quality", Float, nullable=False),
    Column("source", String(500)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_templates_subject", "subject_id"),
    Index("ix_templates_model", "model_id"),
)

# One row: bumped by every write to collections, subjects or templates, so that an
# in-memory index can tell that another process changed the gallery.
gallery_state = Table(
    "gallery_state",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("generation", Integer, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(16), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("secret_hash", String(64), nullable=False),  # SHA-256 of the secret, never the secret
    Column("scopes", JSON, nullable=False),
    Column("collections", JSON),  # null: every collection
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("key_id", String(16)),
    Column("collection", String(64)),
    Column("action", String(64), nullable=False),
    Column("outcome", String(64), nullable=False),
    Column("subject_ids", JSON, nullable=False),
    Column("detail", JSON, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_audit_at", "at"),
)
