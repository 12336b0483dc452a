"""Slack threads per team: a conversation may have several threads (a transfer opens a new card
in the other team's channel and marks the old one); one is live. The thread's team, whom it
was transferred to, the owner it last showed and the handoff whose breach notice it posted

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

LIVE = sa.text("superseded_at IS NULL")
# 0002 left the unique constraint on conversation_id unnamed: PostgreSQL named it by its own
# convention; on SQLite the batch copy names it by this one so that it can be dropped.
SQLITE_NAMES = {"uq": "uq_%(table_name)s_%(column_0_name)s"}


def _unique_name() -> str:
    if op.get_bind().dialect.name == "sqlite":
        return "uq_slack_threads_conversation_id"
    return "slack_threads_conversation_id_key"


def upgrade() -> None:
    with op.batch_alter_table("slack_threads", naming_convention=SQLITE_NAMES) as batch:
        batch.drop_constraint(_unique_name(), type_="unique")
        batch.add_column(sa.Column("team", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("superseded_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("transferred_to", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("owner", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("breach_noted_handoff_id", sa.Integer(), nullable=True))
    op.create_index("ix_slack_threads_conversation_id", "slack_threads", ["conversation_id"])
    op.create_index(
        "uq_slack_threads_live",
        "slack_threads",
        ["conversation_id"],
        unique=True,
        sqlite_where=LIVE,
        postgresql_where=LIVE,
    )


def downgrade() -> None:
    # One thread per conversation again: the superseded ones (old cards) are forgotten.
    op.execute("DELETE FROM slack_threads WHERE superseded_at IS NOT NULL")
    op.drop_index("uq_slack_threads_live", table_name="slack_threads")
    op.drop_index("ix_slack_threads_conversation_id", table_name="slack_threads")
    with op.batch_alter_table("slack_threads", naming_convention=SQLITE_NAMES) as batch:
        batch.drop_column("breach_noted_handoff_id")
        batch.drop_column("owner")
        batch.drop_column("transferred_to")
        batch.drop_column("superseded_at")
        batch.drop_column("team")
        batch.create_unique_constraint(_unique_name(), ["conversation_id"])
