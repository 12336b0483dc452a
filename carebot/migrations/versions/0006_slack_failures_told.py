"""How far a Slack thread has been told of the conversation's replies refused for good

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("slack_threads") as batch_op:
        batch_op.add_column(
            sa.Column("failures_told_id", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("slack_threads") as batch_op:
        batch_op.drop_column("failures_told_id")
