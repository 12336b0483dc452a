"""A returning customer's private message, stored in one statement on PostgreSQL.

Nearly every message comes from a customer the store knows, with nothing new in their profile,
into the conversation they have open. Stored the general way, that is a transaction of five
round trips (BEGIN, the identity read, the open conversation read and locked, the INSERT,
COMMIT). Here it is one statement, committed by itself: the identity found (its profile holding
every value the message brings), its newest open conversation locked (``FOR UPDATE``, so a close
that got the row first leaves it closed and nothing is stored), and the message inserted into
it. When any of these is missing (a new customer, a new profile value, no open conversation)
nothing is written and the caller takes the general path.

SQLite has no INSERT inside a WITH, and its statements cost no round trips: it always takes
the general path.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, cast, literal, null, select, true
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.expression import insert

from carebot.models import ConversationState, InboundMessage
from carebot.store.database import Database
from carebot.store.prepared import Prepared
from carebot.store.rows import fixed
from carebot.store.tables import Conversation, Identity, Message

_IDENTITY = (
    select(Identity.id, Identity.customer_id)
    .where(
        Identity.channel == bindparam("channel"),
        Identity.external_user_id == bindparam("external_user_id"),
        cast(Identity.profile, JSONB).contains(bindparam("profile", type_=JSONB)),
    )
    .cte("identity")
)
_OPEN = (
    select(Conversation.id, Conversation.state)
    .join(_IDENTITY, Conversation.identity_id == _IDENTITY.c.id)
    .where(
        Conversation.thread == fixed(""),
        Conversation.state != fixed(ConversationState.CLOSED.value),
    )
    .order_by(Conversation.id.desc())
    .limit(1)
    .with_for_update(of=Conversation)
    .cte("open")
)
_STORED = (
    insert(Message)
    .from_select(
        [
            Message.conversation_id,
            Message.direction,
            Message.author,
            Message.agent,
            Message.channel,
            Message.external_id,
            Message.text,
            Message.decision_id,
            Message.created_at,
            Message.handled_at,
            Message.language,
        ],
        select(
            _OPEN.c.id,
            literal("in"),
            literal("customer"),
            null(),
            bindparam("channel", type_=Message.channel.type),
            bindparam("external_id", type_=Message.external_id.type),
            bindparam("text", type_=Message.text.type),
            null(),
            bindparam("created_at", type_=Message.created_at.type),
            null(),
            bindparam("language", type_=Message.language.type),
        ),
    )
    .returning(Message.id)
    .cte("stored")
)
_STORE = Prepared(
    select(
        _STORED.c.id, _OPEN.c.id, _OPEN.c.state, _IDENTITY.c.id, _IDENTITY.c.customer_id
    ).select_from(_STORED.join(_OPEN, true()).join(_IDENTITY, true()))
)


async def store_returning(
    db: Database, inbound: InboundMessage, now: datetime
) -> tuple[int, int, ConversationState, int, int] | None:
    """Store ``inbound`` (a private message) in its sender's open conversation: (message id,
    conversation id, its state, identity id, customer id), or None when nothing was written
    (SQLite, a new customer or profile value, no open conversation: the general path's cases).
    A redelivered message raises SQLAlchemy's ``IntegrityError``, as the general path does."""
    if db.is_sqlite or inbound.public is not None:
        return None
    params = {
        "channel": inbound.channel,
        "external_user_id": inbound.external_user_id,
        "profile": dict(inbound.profile),
        "external_id": inbound.external_message_id,
        "text": inbound.stored_text(),
        "created_at": now,
        "language": inbound.language,
    }
    async with db.writes(one_statement=True) as connection:
        found = await _STORE.rows(connection, params)
    if not found:
        return None
    message_id, conversation_id, state, identity_id, customer_id = found[0]
    return message_id, conversation_id, ConversationState(state), identity_id, customer_id
