"""A customer waiting for a person: the handoff's priority, emotion and its cues, what the
customer's latest message changed, when they were last acknowledged, and how a handoff ended
when no agent ended it (withdrawn by the customer)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# The [priority] defaults when this revision was written: open handoffs get a priority from
# them (the largest weight of their reasons, plus emotion_weight x emotion) so that the queue,
# now ordered by priority, does not put the customers already waiting last. A handoff's next
# update applies the configured weights.
WEIGHTS = (
    ("bot_error", 6.0),
    ("emotional", 6.0),
    ("asked_for_human", 5.0),
    ("sensitive_intent", 4.0),
    ("repeated_failure", 4.0),
    ("no_answer", 3.0),
    ("ambiguous", 2.0),
    ("below_threshold", 2.0),
    ("clarified", 1.0),
    ("confident", 1.0),
)
EMOTION_WEIGHT = 4.0


def upgrade() -> None:
    with op.batch_alter_table("handoffs") as batch_op:
        batch_op.add_column(sa.Column("resolution", sa.String(length=40), nullable=True))
        batch_op.add_column(
            sa.Column("priority", sa.Float(), nullable=False, server_default=sa.text("0"))
        )
        batch_op.add_column(
            sa.Column("emotion", sa.Float(), nullable=False, server_default=sa.text("0"))
        )
        batch_op.add_column(sa.Column("emotion_cues", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("last_change", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("acked_at", sa.DateTime(timezone=True), nullable=True))
    # The emotion of the decision that handed over; then the priority, largest weight first.
    op.execute(
        "UPDATE handoffs SET emotion = COALESCE("
        "(SELECT decisions.emotion FROM decisions WHERE decisions.id = handoffs.decision_id), 0)"
    )
    # Reason codes are whole words between commas: match ",code," in ",reasons,".
    cases = " ".join(
        f"WHEN ',' || reasons || ',' LIKE '%,{code},%' THEN {weight}" for code, weight in WEIGHTS
    )
    op.execute(
        f"UPDATE handoffs SET priority = (CASE {cases} ELSE 0 END) + {EMOTION_WEIGHT} * emotion "
        "WHERE resolved_at IS NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("handoffs") as batch_op:
        batch_op.drop_column("acked_at")
        batch_op.drop_column("updated_at")
        batch_op.drop_column("last_change")
        batch_op.drop_column("emotion_cues")
        batch_op.drop_column("emotion")
        batch_op.drop_column("priority")
        batch_op.drop_column("resolution")
