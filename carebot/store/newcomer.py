"""A new customer's first private message, stored in one statement on PostgreSQL.

Stored the general way (:meth:`carebot.store.conversations.ConversationStore.receive`), a
customer the store has never seen costs a transaction of seven round trips: BEGIN, the identity
looked for, the customer, identity, conversation and message each inserted, COMMIT. Here it is
one statement, committed by itself: unless an identity with the message's channel and user id
exists, the customer, the identity, its conversation and the message are inserted, each linked
to the one before. The rows are built by the same Python as on the general path
(:func:`~carebot.store.rows.row_values`).

Only for a customer with nothing to link by (no phone or e-mail in the profile, see
:func:`carebot.store.customers.find_or_create_identity`: linking may join them to a known
customer) and a private message. Two first messages of one new customer at the same moment:
the second statement meets the identity's unique index, writes nothing (the whole statement is
undone) and raises SQLAlchemy's ``IntegrityError``, which the caller answers by taking the
general path, as it does for that race there. An identity that exists already (a returning
customer whose conversation was closed, or whose profile changed): nothing is written, None.

SQLite has no INSERT inside a WITH, and its statements cost no round trips: it always takes
the general path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import CTE, Table, bindparam, exists, insert, select, true

from carebot.models import ConversationState, InboundMessage
from carebot.store.customers import has_links
from carebot.store.database import Database
from carebot.store.prepared import Prepared
from carebot.store.public_items import thread_columns
from carebot.store.rows import row_values
from carebot.store.tables import Conversation, Customer, Identity, Message


@dataclass(frozen=True, slots=True)
class Newcomer:
    """The ids of what the statement created."""

    message_id: int
    conversation_id: int
    identity_id: int
    customer_id: int


# Each row's column that takes the new id of the row before it (customer -> identity ->
# conversation -> message), and those it copies from that row's RETURNING.
_LINKS: tuple[dict[str, str], ...] = (
    {},
    {"customer_id": "id"},
    {"identity_id": "id", "customer_id": "customer_id"},
    {"conversation_id": "id"},
)


def may_store_newcomer(inbound: InboundMessage, link_by: Sequence[str]) -> bool:
    """Whether :func:`store_newcomer` may store ``inbound``: private, nothing to link by."""
    return inbound.public is None and not has_links(inbound.profile, link_by)


async def store_newcomer(db: Database, inbound: InboundMessage, now: datetime) -> Newcomer | None:
    """Store ``inbound`` with a new customer, identity and conversation (see the module), or
    None when its identity exists (nothing written) or on SQLite."""
    if db.is_sqlite:
        return None
    profile = dict(inbound.profile)
    rows: list[Any] = [
        Customer(display_name=profile.get("name", "")[:200], created_at=now),
        Identity(
            customer_id=0,
            channel=inbound.channel,
            external_user_id=inbound.external_user_id,
            profile=profile,
            created_at=now,
        ),
        Conversation(
            customer_id=0,
            identity_id=0,
            state=ConversationState.BOT.value,
            created_at=now,
            updated_at=now,
            **thread_columns(None),
        ),
        Message(
            conversation_id=0,
            direction="in",
            author="customer",
            channel=inbound.channel,
            external_id=inbound.external_message_id,
            text=inbound.stored_text(),
            created_at=now,
            language=inbound.language,
        ),
    ]
    params: dict[str, Any] = {}
    columns = []
    for n, (row, linked) in enumerate(zip(rows, _LINKS, strict=True)):
        values = {k: v for k, v in row_values(row).items() if k not in linked}
        params |= {f"r{n}_{k}": v for k, v in values.items()}
        columns.append(tuple(values))
    async with db.writes(one_statement=True) as connection:
        found = await _statement(tuple(columns)).rows(connection, params)
    if not found:
        return None
    return Newcomer(*found[0])


@cache
def _statement(columns: tuple[tuple[str, ...], ...]) -> Prepared:
    tables: list[Table] = [
        m.__table__  # type: ignore[misc]
        for m in (Customer, Identity, Conversation, Message)
    ]
    identity = tables[1]
    known = exists().where(
        identity.c.channel == bindparam("r1_channel"),
        identity.c.external_user_id == bindparam("r1_external_user_id"),
    )
    made: list[CTE] = []
    for n, (table, names, linked) in enumerate(zip(tables, columns, _LINKS, strict=True)):
        values = [bindparam(f"r{n}_{c}", type_=table.c[c].type) for c in names]
        if n == 0:
            source = select(*values).where(~known)
        else:
            source = select(*values, *(made[-1].c[k] for k in linked.values()))
        copied = _LINKS[n + 1].values() if n + 1 < len(_LINKS) else ()
        returned = dict.fromkeys([table.c.id, *(table.c[k] for k in copied)])
        made.append(
            insert(table).from_select([*names, *linked], source).returning(*returned).cte(f"r{n}")
        )
    customer, identity_row, conversation, message = made
    return Prepared(
        select(message.c.id, conversation.c.id, identity_row.c.id, customer.c.id).select_from(
            message.join(conversation, true()).join(identity_row, true()).join(customer, true())
        )
    )
