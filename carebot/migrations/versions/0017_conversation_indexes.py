"""Rows found per conversation are indexed by conversation and id (messages, decisions,
handoffs, outbox, conversation events): a conversation's latest row is one step down the index

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

TABLES = ("messages", "decisions", "handoffs", "outbox", "conversation_events")


def upgrade() -> None:
    # Dropped and made again under the same name; on PostgreSQL this holds writes to each table
    # while its index is built (seconds per million rows).
    for table in TABLES:
        op.drop_index(f"ix_{table}_conversation_id", table_name=table)
        op.create_index(f"ix_{table}_conversation_id", table, ["conversation_id", "id"])


def downgrade() -> None:
    for table in TABLES:
        op.drop_index(f"ix_{table}_conversation_id", table_name=table)
        op.create_index(f"ix_{table}_conversation_id", table, ["conversation_id"])
