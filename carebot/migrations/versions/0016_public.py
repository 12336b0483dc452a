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
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(
            sa.Column("visibility", sa.String(length=10), nullable=False, server_default="private")
        )
        batch.add_column(
            sa.Column("thread", sa.String(length=200), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("context", sa.JSON(), nullable=True))
        batch.create_index("ix_conversations_visibility", ["visibility"])
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
    op.drop_index("uq_conversations_open_identity_thread", table_name="conversations")
    op.create_index(
        "uq_conversations_open_identity",
        "conversations",
        ["identity_id"],
        unique=True,
        sqlite_where=OPEN,
        postgresql_where=OPEN,
    )
    with op.batch_alter_table("conversations") as batch:
        batch.drop_index("ix_conversations_visibility")
        batch.drop_column("context")
        batch.drop_column("thread")
        batch.drop_column("visibility")
