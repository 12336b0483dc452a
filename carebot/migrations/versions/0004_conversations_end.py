"""Conversations end: why, when and by whom a conversation was closed, and at most one open
conversation per channel identity

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

OPEN = sa.text("state != 'closed'")


def upgrade() -> None:
    with op.batch_alter_table("conversations") as batch_op:
        batch_op.add_column(sa.Column("closed_reason", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("closed_by", sa.String(length=200), nullable=True))
        batch_op.create_index("ix_conversations_closed_at", ["closed_at"])
    # Until now nothing closed a conversation and a new one was only opened when an identity
    # had none open, so no identity has two open conversations: the index can be created.
    op.create_index(
        "uq_conversations_open_identity",
        "conversations",
        ["identity_id"],
        unique=True,
        sqlite_where=OPEN,
        postgresql_where=OPEN,
    )


def downgrade() -> None:
    op.drop_index("uq_conversations_open_identity", table_name="conversations")
    with op.batch_alter_table("conversations") as batch_op:
        batch_op.drop_index("ix_conversations_closed_at")
        batch_op.drop_column("closed_by")
        batch_op.drop_column("closed_reason")
