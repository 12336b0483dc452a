"""Public comments and mentions: conversations get a visibility and a thread (the post a
customer's comments are under), at most one open conversation per identity and thread; public
items (a comment's place, classification, edits, removal, hiding, private reply); API usage per
month (X's monthly call cap)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

OPEN = sa.text("state != 'closed'")


def upgrade() -> None:
    # Plain ADD COLUMN (SQLite does it in place): a batch copy of `conversations` would drop
    # the table that messages, handoffs and notes point to, which SQLite refuses.
    op.add_column(
        "conversations",
        sa.Column("visibility", sa.String(length=10), nullable=False, server_default="private"),
    )
    op.add_column(
        "conversations",
        sa.Column("thread", sa.String(length=200), nullable=False, server_default=""),
    )
    op.add_column("conversations", sa.Column("context", sa.JSON(), nullable=True))
    op.create_index("ix_conversations_visibility", "conversations", ["visibility"])
    op.drop_index("uq_conversations_open_identity", table_name="conversations")
    op.create_index(
        "uq_conversations_open_identity_thread",
        "conversations",
        ["identity_id", "thread"],
        unique=True,
        sqlite_where=OPEN,
        postgresql_where=OPEN,
    )
    op.create_table(
        "public_items",
        sa.Column("message_id", sa.Integer(), sa.ForeignKey("messages.id"), primary_key=True),
        sa.Column(
            "conversation_id", sa.Integer(), sa.ForeignKey("conversations.id"), nullable=False
        ),
        sa.Column("channel", sa.String(length=40), nullable=False),
        sa.Column("thread", sa.String(length=200), nullable=False),
        sa.Column("parent_id", sa.String(length=200), nullable=True),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("addressed", sa.Boolean(), nullable=False),
        sa.Column("reach", sa.Integer(), nullable=True),
        sa.Column("category", sa.String(length=20), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("hidden", sa.Boolean(), nullable=False),
        sa.Column("hidden_by", sa.String(length=200), nullable=True),
        sa.Column("hidden_reason", sa.String(length=200), nullable=True),
        sa.Column("hidden_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("edits", sa.JSON(), nullable=False),
        sa.Column("private_reply_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("private_reply_by", sa.String(length=200), nullable=True),
    )
    op.create_index("ix_public_items_conversation_id", "public_items", ["conversation_id"])
    op.create_index("ix_public_items_category", "public_items", ["category"])
    op.create_table(
        "api_usage",
        sa.Column("platform", sa.String(length=20), primary_key=True),
        sa.Column("period", sa.String(length=7), primary_key=True),
        sa.Column("calls", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("api_usage")
    op.drop_index("ix_public_items_category", table_name="public_items")
    op.drop_index("ix_public_items_conversation_id", table_name="public_items")
    op.drop_table("public_items")
    # Before 0016 an identity had one open conversation: its public ones are closed first.
    op.execute(
        "UPDATE conversations SET state = 'closed', closed_at = CURRENT_TIMESTAMP, "
        "closed_reason = 'idle' WHERE visibility = 'public' AND state != 'closed'"
    )
    op.drop_index("uq_conversations_open_identity_thread", table_name="conversations")
    op.create_index(
        "uq_conversations_open_identity",
        "conversations",
        ["identity_id"],
        unique=True,
        sqlite_where=OPEN,
        postgresql_where=OPEN,
    )
    op.drop_index("ix_conversations_visibility", table_name="conversations")
    # Plain DROP COLUMN (SQLite 3.35+ does it in place), for the reason given in upgrade().
    for column in ("context", "thread", "visibility"):
        op.drop_column("conversations", column)
