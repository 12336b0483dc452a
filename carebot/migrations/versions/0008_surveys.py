"""Surveys: "did that answer your question?" and the 1-5 rating after a resolution

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

RATING = sa.text("kind = 'rating'")


def upgrade() -> None:
    op.create_table(
        "surveys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.Integer(), nullable=False),
        sa.Column("identity_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("decision_id", sa.Integer(), nullable=True),
        sa.Column("resolver", sa.String(length=10), nullable=True),
        sa.Column("message_id", sa.Integer(), nullable=True),
        sa.Column("asked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answer", sa.String(length=10), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("answer_message_id", sa.Integer(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["conversation_id"], ["conversations.id"]),
        sa.ForeignKeyConstraint(["identity_id"], ["identities.id"]),
        sa.ForeignKeyConstraint(["decision_id"], ["decisions.id"]),
        sa.ForeignKeyConstraint(["message_id"], ["messages.id"]),
        sa.ForeignKeyConstraint(["answer_message_id"], ["messages.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_surveys_conversation_id", "surveys", ["conversation_id"])
    op.create_index("ix_surveys_asked_at", "surveys", ["asked_at"])
    op.create_index("ix_surveys_answer_message_id", "surveys", ["answer_message_id"])
    op.create_index("ix_surveys_identity_asked", "surveys", ["identity_id", "asked_at"])
    op.create_index(
        "uq_surveys_rating",
        "surveys",
        ["conversation_id"],
        unique=True,
        sqlite_where=RATING,
        postgresql_where=RATING,
    )
    # The insight population: conversations by when they started.
    op.create_index("ix_conversations_created_at", "conversations", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_conversations_created_at", table_name="conversations")
    op.drop_index("uq_surveys_rating", table_name="surveys")
    op.drop_index("ix_surveys_identity_asked", table_name="surveys")
    op.drop_index("ix_surveys_answer_message_id", table_name="surveys")
    op.drop_index("ix_surveys_asked_at", table_name="surveys")
    op.drop_index("ix_surveys_conversation_id", table_name="surveys")
    op.drop_table("surveys")
