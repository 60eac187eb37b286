"""Applications: the door of access events, policy documents (access rules, quotas),
who is inside which zone (anti-passback), and quota claims of enrolled subjects.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("door", sa.String(length=64), nullable=True))
    op.create_table(
        "policy_documents",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=100), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "zone_presence",
        sa.Column("subject_id", sa.String(length=32), nullable=False),
        sa.Column("zone", sa.String(length=64), nullable=False),
        sa.Column("inside", sa.Boolean(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["subject_id"], ["subjects.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("subject_id", "zone"),
    )
    op.create_table(
        "quota_claims",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("quota", sa.String(length=64), nullable=False),
        sa.Column("subject_id", sa.String(length=32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["subject_id"], ["subjects.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("quota_claims", schema=None) as batch_op:
        batch_op.create_index("ix_quota_claims_lookup", ["quota", "subject_id", "at"])


def downgrade() -> None:
    with op.batch_alter_table("quota_claims", schema=None) as batch_op:
        batch_op.drop_index("ix_quota_claims_lookup")
    op.drop_table("quota_claims")
    op.drop_table("zone_presence")
    op.drop_table("policy_documents")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_column("door")
