"""Emotion labels: agents mark customer messages upset or not upset, for retraining

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "emotion_labels",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("agent", sa.String(length=200), nullable=False),
        sa.Column("label", sa.String(length=10), nullable=False),
        sa.Column("emotion", sa.Float(), nullable=True),
        sa.Column("labelled_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["message_id"], ["messages.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("message_id", "agent", name="uq_emotion_labels_message"),
    )
    op.create_index("ix_emotion_labels_message_id", "emotion_labels", ["message_id"])


def downgrade() -> None:
    op.drop_index("ix_emotion_labels_message_id", table_name="emotion_labels")
    op.drop_table("emotion_labels")
