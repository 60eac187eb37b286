"""Table definitions shared by the stores (SQLite and PostgreSQL). The schema itself is
created and changed by the migrations in ``migrations/``: a change here needs one there."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
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
    Text,
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
    Column("store_images", Boolean, nullable=False, default=False),
    Column("ephemeral", Boolean, nullable=False, default=False),
    Column("ttl_seconds", Float),
    Column("max_template_age_days", Float),
    Column("max_idle_days", Float),
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
    Column("last_matched_at", DateTime(timezone=True)),
    UniqueConstraint("collection_id", "external_id", name="uq_subjects_collection_external"),
    Index("ix_subjects_collection", "collection_id"),
)

templates = Table(
    "templates",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("subject_id", String(32), ForeignKey("subjects.id", ondelete="CASCADE"), nullable=False),
    Column("model_id", String(64), nullable=False),
    # float32 little-endian; sealed (nonce + AES-GCM ciphertext + tag) when key_id is set
    Column("embedding", LargeBinary, nullable=False),
    Column("key_id", String(32), index=True),
    Column("dim", Float, nullable=False),
    Column("quality", Float, nullable=False),
    Column("source", String(500)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_templates_subject", "subject_id"),
    Index("ix_templates_model", "model_id"),
)

# The face crop of an enrollment photo, only for collections that opt in (store_images).
template_images = Table(
    "template_images",
    metadata,
    Column(
        "template_id", String(32), ForeignKey("templates.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("subject_id", String(32), ForeignKey("subjects.id", ondelete="CASCADE"), nullable=False),
    Column("media_type", String(32), nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("key_id", String(32), index=True),
    Index("ix_template_images_subject", "subject_id"),
)

# The consent ledger: no template is stored for a subject without an active record.
consents = Table(
    "consents",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("subject_id", String(32), ForeignKey("subjects.id", ondelete="CASCADE"), nullable=False),
    Column("legal_basis", String(32), nullable=False),
    Column("notice_version", String(100), nullable=False),
    Column("given_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True)),
    Column("collected_by", String(100), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("withdrawn_at", DateTime(timezone=True)),
    Index("ix_consents_subject", "subject_id"),
)

# What camera workers observed. A subject's events go with the subject on erasure.
events = Table(
    "events",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False, index=True),
    Column("kind", String(32), nullable=False),
    Column("camera", String(100)),
    Column("collection_id", String(64)),
    Column("subject_id", String(32), ForeignKey("subjects.id", ondelete="CASCADE"), index=True),
    Column("similarity", Float),
    Column("quality", Float),
    Column("snapshot", LargeBinary),  # JPEG, sealed when key_id is set
    Column("key_id", String(32), index=True),
    Column("track_id", Integer),
    Column("reason", String(300)),
    Column("door", String(64)),  # access decisions
    Column("quota", String(64)),  # quota claims by a camera
    Index("ix_events_camera_at", "camera", "at"),
)

# Data keys that have sealed records here: each with a check value sealed by the key
# itself (never the key), so a missing or wrong key is refused when the store opens.
data_keys = Table(
    "data_keys",
    metadata,
    Column("key_id", String(32), primary_key=True),
    Column("check_value", LargeBinary, nullable=False),
    Column("added_at", DateTime(timezone=True), nullable=False),
)

# Applications (policy/): declarative documents (access rules, quotas) as JSON text.
policy_documents = Table(
    "policy_documents",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("document", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("updated_by", String(100), nullable=False),
)

# Anti-passback: whether a subject is inside a zone (last entry without an exit).
zone_presence = Table(
    "zone_presence",
    metadata,
    Column(
        "subject_id",
        String(32),
        ForeignKey("subjects.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("zone", String(64), primary_key=True),
    Column("inside", Boolean, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)

# Quota claims of enrolled subjects (anonymous quotas keep nothing here).
quota_claims = Table(
    "quota_claims",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("quota", String(64), nullable=False),
    Column("subject_id", String(32), ForeignKey("subjects.id", ondelete="CASCADE"), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Index("ix_quota_claims_lookup", "quota", "subject_id", "at"),
)

store_meta = Table(
    "store_meta",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", String(200), nullable=False),
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

# Web UI sign-ins: a random token in an HttpOnly cookie, stored here only as its SHA-256,
# with the key it stands for and the CSRF token its pages carry. In the database (not in
# memory) so that replicas behind one address share them.
ui_sessions = Table(
    "ui_sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("key_id", String(16), ForeignKey("api_keys.id", ondelete="CASCADE"), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False, index=True),
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
