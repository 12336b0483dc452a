"""The per-conversation export a care lead joins to other data (CRM, orders): one row per
conversation of a period, the same from ``carebot report conversations`` and from the
dashboard's CSV link. It holds customer ids: it is for leads only."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from carebot.insight.report import ConversationRow

COLUMNS = (
    "id",
    "customer_id",
    "channel",
    "started",
    "resolver",
    "first_handoff_reason",
    "resolved_at",
    "first_human_response_seconds",
    "csat",
    "intents",
    "visibility",
)


def conversation_data(row: ConversationRow) -> dict[str, Any]:
    """One conversation as plain data: times in ISO 8601 UTC, the first human response in
    seconds, None for what is not known (not resolved, not rated)."""
    return {
        "id": row.id,
        "customer_id": row.customer_id,
        "channel": row.channel,
        "started": row.started.isoformat(),
        "resolver": row.resolver,
        "first_handoff_reason": row.first_handoff_reason,
        "resolved_at": row.resolved_at.isoformat() if row.resolved_at else None,
        "first_human_response_seconds": seconds(row.first_human_response),
        "csat": row.csat,
        "intents": list(row.intents),
        "visibility": row.visibility,
    }


def conversation_csv(rows: Iterable[ConversationRow]) -> str:
    """The rows as CSV (RFC 4180 line ends): empty cells for what is not known, the intents
    joined with ";"."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for row in rows:
        data = conversation_data(row)
        data["intents"] = ";".join(row.intents)
        writer.writerow("" if data[c] is None else _cell(data[c]) for c in COLUMNS)
    return out.getvalue()


def seconds(value: timedelta | None) -> float | None:
    return None if value is None else value.total_seconds()


def _cell(value: object) -> object:
    """Whole seconds without a trailing ".0"."""
    return int(value) if isinstance(value, float) and value.is_integer() else value
