"""Social channels: contact points that link identities, delivery ids and statuses, and the
reply-window warning of a Slack thread

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("identities") as batch_op:
        batch_op.add_column(sa.Column("linked_by", sa.String(length=200), nullable=True))
    op.create_table(
        "contact_points",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("identity_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["identity_id"], ["identities.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("identity_id", "kind", "value", name="uq_contact_points"),
    )
    op.create_index("ix_contact_points_kind_value", "contact_points", ["kind", "value"])
    with op.batch_alter_table("outbox") as batch_op:
        batch_op.add_column(sa.Column("external_id", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("delivery_status", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("delivery_error", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("status_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_outbox_external_id", ["external_id"])
    with op.batch_alter_table("slack_threads") as batch_op:
        batch_op.add_column(
            sa.Column("window_warned_for", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("slack_threads") as batch_op:
        batch_op.drop_column("window_warned_for")
    with op.batch_alter_table("outbox") as batch_op:
        batch_op.drop_index("ix_outbox_external_id")
        for column in ("status_at", "delivery_error", "delivery_status", "external_id"):
            batch_op.drop_column(column)
    op.drop_index("ix_contact_points_kind_value", table_name="contact_points")
    op.drop_table("contact_points")
    with op.batch_alter_table("identities") as batch_op:
        batch_op.drop_column("linked_by")
