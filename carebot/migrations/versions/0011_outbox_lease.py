"""Outbox leases for several workers: the claim's token (fencing), a partial index on pending rows

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch_op:
        batch_op.add_column(sa.Column("lease", sa.String(length=36), nullable=True))
        batch_op.drop_index("ix_outbox_due")
        batch_op.create_index(
            "ix_outbox_pending",
            ["next_attempt_at"],
            postgresql_where=PENDING,
            sqlite_where=PENDING,
        )


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch_op:
        batch_op.drop_index("ix_outbox_pending")
        batch_op.create_index("ix_outbox_due", ["status", "next_attempt_at"])
        batch_op.drop_column("lease")
