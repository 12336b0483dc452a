"""The language detected in a customer's message (messages.language, ISO 639-1; NULL: not
placed), see carebot/nlu/language.py

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A nullable column without a default: PostgreSQL adds it without rewriting the table.
    op.add_column("messages", sa.Column("language", sa.String(8), nullable=True))


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite 3.35+ does it in place): a batch copy of `messages` would drop
    # the table that decisions, outbox rows and others point at (foreign keys are on).
    op.drop_column("messages", "language")
