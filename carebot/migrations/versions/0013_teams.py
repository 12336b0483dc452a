"""Teams: the handoff's team, routing rule and assignee; the conversation's audit trail;
internal notes; labels; agents' availability; round-robin turns

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("handoffs") as batch:
        batch.add_column(sa.Column("team", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("route", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("assigned_to", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_handoffs_team", "handoffs", ["team"])
    op.create_index("ix_handoffs_assigned_to", "handoffs", ["assigned_to"])
    op.create_table(
        "conversation_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "conversation_id", sa.Integer(), sa.ForeignKey("conversations.id"), nullable=False
        ),
        sa.Column("handoff_id", sa.Integer(), sa.ForeignKey("handoffs.id"), nullable=True),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_conversation_events_conversation_id", "conversation_events", ["conversation_id"]
    )
    op.create_index("ix_conversation_events_created_at", "conversation_events", ["created_at"])
    op.create_table(
        "notes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "conversation_id", sa.Integer(), sa.ForeignKey("conversations.id"), nullable=False
        ),
        sa.Column("agent", sa.String(length=200), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("via", sa.String(length=20), nullable=False),
        sa.Column("external_id", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("via", "external_id", name="uq_notes_via_external"),
    )
    op.create_index("ix_notes_conversation_id", "notes", ["conversation_id"])
    op.create_table(
        "conversation_labels",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "conversation_id", sa.Integer(), sa.ForeignKey("conversations.id"), nullable=False
        ),
        sa.Column("label", sa.String(length=64), nullable=False),
        sa.Column("added_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("conversation_id", "label", name="uq_conversation_labels"),
    )
    op.create_index(
        "ix_conversation_labels_conversation_id", "conversation_labels", ["conversation_id"]
    )
    op.create_index("ix_conversation_labels_label", "conversation_labels", ["label"])
    op.create_table(
        "agent_presence",
        sa.Column("agent", sa.String(length=200), primary_key=True),
        sa.Column("available", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "team_rotation",
        sa.Column("team", sa.String(length=64), primary_key=True),
        sa.Column("last_agent", sa.String(length=200), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("team_rotation")
    op.drop_table("agent_presence")
    op.drop_table("conversation_labels")
    op.drop_table("notes")
    op.drop_table("conversation_events")
    op.drop_index("ix_handoffs_assigned_to", table_name="handoffs")
    op.drop_index("ix_handoffs_team", table_name="handoffs")
    with op.batch_alter_table("handoffs") as batch:
        batch.drop_column("assigned_at")
        batch.drop_column("assigned_to")
        batch.drop_column("route")
        batch.drop_column("team")
