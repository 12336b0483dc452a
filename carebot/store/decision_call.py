"""A bot's decision and its reply recorded in one call of a PostgreSQL function.

The decision's transaction (:meth:`carebot.store.conversations.ConversationStore.record_decision`)
is eight round trips on PostgreSQL: BEGIN; the conversation and its party read ``FOR UPDATE``;
the message claimed; the decision and its embedding written; "is a reply pending, has the bot
said anything"; the reply's message and outbox row written; the question asked with it; COMMIT.
Counted in ``bench/workers.py``, each round trip costs the worker and the database some 0.2 ms
of CPU together, more than the statement itself. ``carebot_record_decision`` (migrations 0018, 0019)
runs the same statements in the same order inside the database, in one statement that
PostgreSQL commits by itself: one round trip.

The rows are built by the same Python as on the transaction's path (:func:`decision_row`,
:func:`~carebot.store.embeddings.embedding_row`, :func:`~carebot.store.outbox.reply_rows`,
:func:`~carebot.store.surveys.asked`) and go to the function as JSON objects of their columns
(:func:`~carebot.store.rows.row_values`); the function fills in what only the transaction knows
(the new ids and the links between the rows, the customer's channel, the bot's introduction,
whether the writer may send the reply at once). A column added to these tables later is
carried by the JSON as it is by the INSERTs; one with a database default only must be given a
value in Python (the function writes whole rows). tests/test_decision_call.py checks that both
paths write the same rows.

The function covers the decisions that neither hand over nor answer a survey question (the
rest run in the transaction, where a handoff is routed by the teams' rules in Python); on
SQLite the transaction does it all (its statements are calls into the library there, not round
trips). The service runs on PostgreSQL only once every migration is applied, 0019 with them.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text

from carebot.clock import as_utc
from carebot.store.database import Database
from carebot.store.outbox import (
    IMMEDIATE_LEASE,
    Outgoing,
    Queued,
    introduction,
    new_lease,
    reply_rows,
    to_reply,
)
from carebot.store.prepared import Prepared
from carebot.store.rows import row_values
from carebot.store.tables import DecisionRow, Identity, MessageEmbedding, Survey

HANDLED, SILENT, QUEUED = "handled", "silent", "queued"  # the function's outcomes

_CALL = Prepared(
    text(
        "SELECT outcome, message_id, outbox_id, reply_text, channel, external_user_id, lease, "
        "previous FROM carebot_record_decision(:conversation, :inbound, :now, :silent, "
        ":decision, :embedding, :message, :outbox, :text, :intro, :lease, :lease_until, "
        ":survey)"
    )
)


@dataclass(frozen=True, slots=True)
class Recorded:
    """What the call did: ``outcome`` HANDLED (another worker had handled the message: nothing
    written), SILENT (the decision written, no reply: none to send, or a person owns the
    conversation) or QUEUED (``queued``: the reply written, and leased to the caller when
    ``queued.immediate``)."""

    outcome: str
    queued: Queued | None


async def record_in_one_call(
    db: Database,
    row: DecisionRow,
    *,
    embedding: MessageEmbedding | None,
    reply: Outgoing | None,
    ask_kind: str | None,
    silent: Collection[str],
    lease: bool,
) -> Recorded:
    """Write ``row`` (a decision, its ``created_at`` the time of the claim) with ``embedding``
    and, unless the conversation is in one of the ``silent`` states, the bot's ``reply`` (None:
    no reply) and the survey question of ``ask_kind`` it asks, as the function describes."""
    now = row.created_at
    message = outbox = survey = None
    outbox_row = None
    if reply is not None:
        nobody = Identity(channel="", external_user_id="")  # the function reads the real one
        message_row, outbox_row = reply_rows(
            row.conversation_id, nobody, reply, now, immediate=False
        )
        message, outbox = _json(message_row), _json(outbox_row)
        if ask_kind is not None:
            survey = _json(
                Survey(
                    conversation_id=row.conversation_id,
                    identity_id=0,  # the function sets the conversation's
                    kind=ask_kind,
                    asked_at=now,
                )
            )
    lease_until = now + timedelta(seconds=IMMEDIATE_LEASE)
    params = {
        "conversation": row.conversation_id,
        "inbound": row.inbound_message_id,
        "now": now,
        "silent": list(silent),
        "decision": _json(row),
        "embedding": None if embedding is None else _json(embedding),
        "message": message,
        "outbox": outbox,
        "text": "" if reply is None else reply.text,
        "intro": "" if reply is None else introduction(db.bot_intro, reply),
        "lease": new_lease() if lease else None,
        "lease_until": lease_until,
        "survey": survey,
    }
    async with db.writes(one_statement=True) as conn:
        found = await _CALL.rows(conn, params)
    ((outcome, message_id, outbox_id, reply_text, channel, user, leased, previous),) = found
    if outcome != QUEUED:
        return Recorded(outcome, None)
    assert outbox_row is not None  # the row sent to the function, completed as it wrote it
    outbox_row.id, outbox_row.message_id, outbox_row.text = outbox_id, message_id, reply_text
    outbox_row.channel, outbox_row.external_user_id = channel, user
    immediate = leased is not None
    outbox_row.lease, outbox_row.locked_until = leased, lease_until if immediate else None
    return Recorded(
        outcome,
        Queued(to_reply(outbox_row, previous=previous), immediate=immediate, message_id=message_id),
    )


def _json(row: Any) -> str:
    return json.dumps(row_values(row), default=_column_value)


def _column_value(value: Any) -> Any:
    """A column's value as PostgreSQL reads it from JSON text (a timestamp, bytes)."""
    if isinstance(value, datetime):
        return as_utc(value).isoformat()
    if isinstance(value, bytes):
        return "\\x" + value.hex()
    raise TypeError(f"decision_call cannot write {type(value).__name__} values as JSON: {value!r}")
