"""A new customer's first message stored in one statement (carebot/store/newcomer.py) and the
decision recorded in one call of PostgreSQL's function (carebot/store/decision_call.py) write
what the transactions of the SQLite path write: the same rows, column for column, with the same
links between them (the customer, identity and conversation included), and return the same.

Each case runs twice on one PostgreSQL database, through a store that records in one call and
one that records in the transaction, each for a customer of its own; the rows of both
conversations are then read whole and compared with their ids replaced by their place (the
first decision of the conversation, its second message, ...)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Table, select

from carebot.models import Choice, Decision, DecisionKind, InboundMessage, IntentScore, Reason
from carebot.store.conversations import AlreadyHandled, ConversationStore, Embedding
from carebot.store.database import Database
from carebot.store.handoffs import HandoffStore
from carebot.store.outbox import Queued
from carebot.store.surveys import Question
from carebot.store.tables import (
    Conversation,
    Customer,
    DecisionRow,
    Identity,
    Message,
    MessageEmbedding,
    OutboxRow,
    Survey,
)
from tests.conftest import Clock

ON_POSTGRESQL = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
INTRO = "Hi, I'm the shop's assistant."
TRACK = "You can track your order from the link in your confirmation email."
HELPFUL = Question("helpful", "Did that answer your question?", (Choice("yes", "Yes"),))
_ids = itertools.count()

ANSWER = Decision(
    kind=DecisionKind.ANSWER,
    reasons=(Reason.CONFIDENT,),
    intent="order_status",
    score=0.91,
    margin=0.4,
    emotion=0.05,
    reply=TRACK,
    top=(IntentScore("order_status", 0.91), IntentScore("cancel_order", 0.51)),
    cues=("calm",),
)
CLARIFY = replace(
    ANSWER,
    kind=DecisionKind.CLARIFY,
    reasons=(Reason.AMBIGUOUS,),
    reply="Did you mean one of these?",
    choices=(Choice("order_status", "Where is my order"), Choice("cancel", "Cancel an order")),
)
NO_REPLY = replace(ANSWER, reply=None)


@dataclass
class Party:
    """One store and its customer's conversation."""

    store: ConversationStore
    handoffs: HandoffStore
    user: str
    conversation_id: int = 0
    sent: int = 0
    received: list[tuple[object, ...]] = field(default_factory=list)  # what receive() said

    async def record(
        self, decision: Decision, *, ask: Question | None = None, embed: bool = False
    ) -> Queued | None:
        self.sent += 1
        received = await self.store.receive(inbound("where is my order", self.user, self.sent))
        self.conversation_id = received.conversation_id
        self.received.append(
            (received.state, received.opened, received.new_identity, received.duplicate)
        )
        vector = Embedding(np.linspace(-1, 1, 8, dtype=np.float32), "fake") if embed else None
        timings = {"triage_ms": 1.25}
        return await self.store.record_decision(
            received, decision, timings, ask=ask, embedding=vector
        )


@pytest.fixture
async def db(database_url: str, migrated_before_the_test: bool) -> AsyncIterator[Database]:
    database = Database(database_url, bot_intro=INTRO)
    yield database
    await database.close()


@pytest.fixture
def parties(db: Database, clock: Clock) -> tuple[Party, Party]:
    def party(one_call: bool) -> Party:
        store = ConversationStore(db, clock=clock, one_call=one_call)
        return Party(store, HandoffStore(db, clock=clock), f"u{next(_ids)}")

    return party(True), party(False)


def inbound(text: str, user: str, n: int = 1) -> InboundMessage:
    return InboundMessage(
        channel="test",
        external_user_id=user,
        external_message_id=f"{user}-{n}",
        text=text,
        sent_at=Clock()(),
        language="de",  # stored with the message on every path (compared with the rest)
    )


Case = Callable[[Party], Awaitable[list[Any]]]


async def first_answer_asks_if_it_helped(p: Party) -> list[Any]:
    return [await p.record(ANSWER, ask=HELPFUL, embed=True)]


async def second_answer_waits_behind_the_first(p: Party) -> list[Any]:
    return [await p.record(ANSWER), await p.record(CLARIFY, embed=True)]


async def decision_without_a_reply(p: Party) -> list[Any]:
    return [await p.record(NO_REPLY), await p.record(ANSWER)]


async def taken_over_while_deciding(p: Party) -> list[Any]:
    first = await p.record(ANSWER)
    await p.handoffs.take_over(p.conversation_id, "ann")
    return [first, await p.record(ANSWER)]


CASES = [
    first_answer_asks_if_it_helped,
    second_answer_waits_behind_the_first,
    decision_without_a_reply,
    taken_over_while_deciding,
]


@ON_POSTGRESQL
@pytest.mark.parametrize("case", CASES, ids=[c.__name__ for c in CASES])
async def test_one_call_writes_what_the_transaction_writes(
    db: Database, parties: tuple[Party, Party], case: Case
) -> None:
    one_call, _ = parties
    results = [await case(p) for p in parties]

    written = [await conversation_rows(db, p.conversation_id, p.user) for p in parties]
    outbox = [await outbox_ids(db, p.conversation_id) for p in parties]
    returned = [replies(*r) for r in zip(results, (p.user for p in parties), outbox, strict=True)]
    assert returned[0] == returned[1]
    assert all(q is None or q[1].previous is not None for q in returned[0])  # both paths tell
    assert one_call.received == parties[1].received
    assert one_call.received[0][1:3] == (True, True)  # a new customer's conversation
    assert written[0] == written[1]
    assert written[0]["decisions"], "the case wrote nothing to compare"


@ON_POSTGRESQL
async def test_a_message_handled_already_writes_nothing_more(
    db: Database, parties: tuple[Party, Party]
) -> None:
    one_call, _ = parties
    received = await one_call.store.receive(inbound("where is my order", one_call.user))
    await one_call.store.record_decision(received, ANSWER, {})

    with pytest.raises(AlreadyHandled):
        await one_call.store.record_decision(received, CLARIFY, {})
    written = await conversation_rows(db, received.conversation_id, one_call.user)
    assert len(written["decisions"]) == 1 and len(written["outbox"]) == 1


async def outbox_ids(db: Database, conversation_id: int) -> list[int]:
    async with db.session() as session:
        found = await session.scalars(
            select(OutboxRow.id)
            .where(OutboxRow.conversation_id == conversation_id)
            .order_by(OutboxRow.id)
        )
        return list(found)


def replies(results: list[Any], user: str, outbox: list[int]) -> list[Any]:
    """What the caller gets back, without the ids and lease tokens that differ by nature (the
    row before a reply given by its place among the conversation's rows, "none" for none)."""
    return [
        None
        if q is None
        else (
            q.immediate,
            replace(
                q.reply,
                outbox_id=0,
                conversation_id=0,
                lease=q.reply.lease is not None,
                external_user_id=q.reply.external_user_id.replace(user, "USER"),
                previous=_place(q.reply.previous, outbox),
            ),
        )
        for q in results
    ]


def _place(previous: int | None, outbox: list[int]) -> Any:
    if previous is None:
        return None
    return "none" if previous == 0 else f"outbox#{outbox.index(previous)}"


TABLES: dict[str, Table] = {
    "messages": Message.__table__,  # type: ignore[dict-item]
    "decisions": DecisionRow.__table__,  # type: ignore[dict-item]
    "outbox": OutboxRow.__table__,  # type: ignore[dict-item]
    "surveys": Survey.__table__,  # type: ignore[dict-item]
}


async def conversation_rows(
    db: Database, conversation_id: int, user: str
) -> dict[str, list[dict[str, Any]]]:
    """Every row of the conversation in these tables (and the embeddings of its messages),
    each id replaced by the row's place: ``decisions#0`` is the conversation's first decision.
    A lease token is only there or not; the customer's ``user`` id reads USER."""
    found: dict[str, list[dict[str, Any]]] = {}
    places: dict[tuple[str, int], str] = {}
    async with db.session() as session:
        (conversation,) = (
            await session.execute(
                select(Conversation.__table__).where(Conversation.id == conversation_id)
            )
        ).all()
        places[("conversations", conversation_id)] = "conversation"
        places[("identities", conversation.identity_id)] = "identity"
        places[("customers", conversation.customer_id)] = "customer"
        for name, table, key in (
            ("conversations", Conversation.__table__, conversation_id),
            ("identities", Identity.__table__, conversation.identity_id),
            ("customers", Customer.__table__, conversation.customer_id),
        ):
            query = select(table).where(table.c.id == key)  # type: ignore[attr-defined]
            found[name] = [dict(r) for r in (await session.execute(query)).mappings().all()]
        for name, table in TABLES.items():
            query = select(table).where(table.c.conversation_id == conversation_id)
            rows = (await session.execute(query.order_by(table.c.id))).mappings().all()
            found[name] = [dict(r) for r in rows]
            for n, row in enumerate(rows):
                places[(name, row["id"])] = f"{name}#{n}"
        ids = [m["id"] for m in found["messages"]]
        embeddings = MessageEmbedding.__table__
        query = select(embeddings).where(embeddings.c.message_id.in_(ids))  # type: ignore[attr-defined]
        found["message_embeddings"] = [
            dict(r) for r in (await session.execute(query)).mappings().all()
        ]
    tables = {
        **TABLES,
        "message_embeddings": embeddings,
        "conversations": Conversation.__table__,
        "identities": Identity.__table__,
        "customers": Customer.__table__,
    }
    return {
        name: [_by_place(tables[name], row, places, user) for row in rows]  # type: ignore[arg-type]
        for name, rows in sorted(found.items(), key=lambda kv: kv[0])
    }


def _by_place(
    table: Table, row: dict[str, Any], places: dict[tuple[str, int], str], user: str
) -> Any:
    out = {}
    for column in table.c:
        value = row[column.name]
        if isinstance(value, str) and user:
            value = value.replace(user, "USER")
        if column.name == "lease":
            value = value is not None
        elif value is not None and column.primary_key and column.name == "id":
            value = places[(table.name, value)]
        elif value is not None and column.foreign_keys:
            (key,) = column.foreign_keys
            value = places[(key.column.table.name, value)]
        out[column.name] = value
    return out
