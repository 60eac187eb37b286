"""Events from camera workers: the track they belong to and why a track was unknown;
an index for listing one camera's events by time.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("track_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("reason", sa.String(length=300), nullable=True))
        batch_op.create_index("ix_events_camera_at", ["camera", "at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_camera_at")
        batch_op.drop_column("reason")
        batch_op.drop_column("track_id")
