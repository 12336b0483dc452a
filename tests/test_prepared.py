"""The per-message statements run by the driver itself (carebot/store/prepared.py), on both
stores: nothing goes through SQLAlchemy's execution, yet what is written reads back through the
ORM exactly as SQLAlchemy would have written it, it belongs to the caller's transaction, and a
driver's error is SQLAlchemy's."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
from sqlalchemy import bindparam, event, select, update
from sqlalchemy.exc import IntegrityError

from carebot.store.database import Database
from carebot.store.prepared import Prepared
from carebot.store.rows import insert_pair, insert_row
from carebot.store.tables import (
    Conversation,
    Customer,
    DecisionRow,
    Handoff,
    Identity,
    Message,
    MessageEmbedding,
    OutboxRow,
)

WHEN = datetime(2026, 11, 18, 10, 0, 0, 123456, tzinfo=UTC)

_HANDLED = Prepared(
    update(Message)
    .where(Message.id == bindparam("message"), Message.handled_at.is_(None))
    .values(handled_at=bindparam("now"))
    .returning(Message.id)
)


@contextmanager
def statements_through_sqlalchemy(db: Database) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        seen.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)


async def a_conversation(db: Database) -> int:
    async with db.transaction() as session:
        customer = await insert_row(session, Customer(display_name="Ann", created_at=WHEN))
        identity = Identity(
            customer_id=customer.id, channel="web", external_user_id="ann", created_at=WHEN
        )
        session.add(identity)
        await session.flush()
        conversation = Conversation(
            customer_id=customer.id, identity_id=identity.id, state="bot", created_at=WHEN
        )
        conversation.updated_at = WHEN
        session.add(conversation)
        await session.flush()
        return conversation.id


def a_message(conversation_id: int, external_id: str) -> Message:
    return Message(
        conversation_id=conversation_id,
        direction="in",
        author="customer",
        channel="web",
        external_id=external_id,
        text="where is my order?",
        created_at=WHEN,
    )


async def test_rows_are_written_by_the_driver_and_read_back_as_sqlalchemy_writes_them(
    database: Database,
) -> None:
    conversation_id = await a_conversation(database)
    with statements_through_sqlalchemy(database) as seen:
        async with database.transaction() as session:
            await session.scalar(select(Conversation.id))  # the transaction has begun
            seen.clear()
            message = await insert_row(session, a_message(conversation_id, "m-1"))
            decision = await insert_row(
                session,
                DecisionRow(
                    conversation_id=conversation_id,
                    inbound_message_id=message.id,
                    kind="answer",
                    intent="order_status",
                    score=0.93,
                    margin=0.2,
                    emotion=0.1,
                    reasons="confident",
                    created_at=WHEN,
                ),
            )
            handoff = await insert_row(
                session,
                Handoff(
                    conversation_id=conversation_id,
                    decision_id=decision.id,
                    reason="upset",
                    reasons="upset",
                    created_at=WHEN,
                ),
            )
            handled = await _HANDLED.scalar(session, {"message": message.id, "now": WHEN})
    assert seen == [], "the driver ran these, not SQLAlchemy"
    assert handled == message.id
    async with database.read_session() as session:
        stored = await session.get_one(Message, message.id)
        stored_decision = await session.get_one(DecisionRow, decision.id)
        stored_handoff = await session.get_one(Handoff, handoff.id)
    assert (stored.created_at, stored.handled_at, stored.text) == (WHEN, WHEN, message.text)
    assert (stored_decision.intent, stored_decision.score, stored_decision.details) == (
        "order_status",
        pytest.approx(0.93),
        {},  # the Python default, written as JSON
    )
    # Python defaults (numbers, an empty list as JSON) as SQLAlchemy writes them
    assert (stored_handoff.priority, stored_handoff.emotion, stored_handoff.emotion_cues) == (
        0.0,
        0.0,
        [],
    )


@pytest.mark.parametrize("linked", [True, False], ids=["linked", "independent"])
async def test_a_pair_of_rows_is_written_with_its_link(database: Database, linked: bool) -> None:
    """insert_pair: one statement on PostgreSQL, two on SQLite; the ids, the link and the
    Python defaults as insert_row sets them, in the caller's transaction."""
    conversation_id = await a_conversation(database)
    async with database.transaction() as session:
        await session.scalar(select(Conversation.id))
        message = a_message(conversation_id, "m-pair")
        if linked:
            second: OutboxRow | MessageEmbedding = OutboxRow(
                conversation_id=conversation_id,
                channel="web",
                external_user_id="ann",
                text="Track it here.",
                status="pending",
                next_attempt_at=WHEN,
                created_at=WHEN,
            )
            await insert_pair(session, message, second, link="message_id")
        else:
            await insert_row(session, message)
            second = MessageEmbedding(message_id=message.id, model="m", dims=1, vector=b"ab")
            follow = a_message(conversation_id, "m-pair-2")
            await insert_pair(session, follow, second)
            assert follow.id is not None and follow.id != message.id
    async with database.read_session() as session:
        if isinstance(second, OutboxRow):
            stored = await session.get_one(OutboxRow, second.id)
            assert (stored.message_id, second.message_id) == (message.id, message.id)
            assert (stored.status, stored.attempts, stored.meta) == ("pending", 0, {})
            assert stored.next_attempt_at == WHEN
        else:
            vector = await session.get_one(MessageEmbedding, message.id)
            assert (vector.model, vector.vector) == ("m", b"ab")
        assert (await session.get_one(Message, message.id)).text == message.text


async def test_what_the_driver_wrote_is_rolled_back_with_the_transaction(
    database: Database,
) -> None:
    conversation_id = await a_conversation(database)
    with pytest.raises(RuntimeError):
        async with database.transaction() as session:
            await session.scalar(select(Conversation.id))
            await insert_row(session, a_message(conversation_id, "m-2"))
            raise RuntimeError("the caller fails after the write")
    async with database.read_session() as session:
        assert (await session.scalar(select(Message.id))) is None


async def test_the_first_statement_of_a_transaction_begins_it(database: Database) -> None:
    """On PostgreSQL SQLAlchemy sends BEGIN with its first statement: a prepared statement
    that comes first goes through SQLAlchemy, so it is still inside the transaction."""
    conversation_id = await a_conversation(database)
    with pytest.raises(RuntimeError):
        async with database.transaction() as session:
            await insert_row(session, a_message(conversation_id, "m-3"))
            raise RuntimeError("roll back")
    async with database.read_session() as session:
        assert (await session.scalar(select(Message.id))) is None


async def test_a_unique_index_met_by_the_driver_raises_sqlalchemys_integrity_error(
    database: Database,
) -> None:
    conversation_id = await a_conversation(database)
    async with database.transaction() as session:
        await insert_row(session, a_message(conversation_id, "same"))
    with pytest.raises(IntegrityError):
        async with database.transaction() as session:
            await session.scalar(select(Conversation.id))
            await insert_row(session, a_message(conversation_id, "same"))


async def test_values_read_by_the_driver_are_converted_as_sqlalchemy_converts_them(
    database: Database,
) -> None:
    conversation_id = await a_conversation(database)
    async with database.transaction() as session:
        identity = await session.scalar(select(Identity))
        assert identity is not None
        identity.profile = {"name": "Ann", "phone": "+49 30 1234567"}
    read = Prepared(
        select(Identity.profile, Conversation.created_at, Conversation.closed_at)
        .join(Conversation, Conversation.identity_id == Identity.id)
        .where(Conversation.id == bindparam("conversation"))
    )
    with statements_through_sqlalchemy(database) as seen:
        async with database.transaction() as session:
            await session.scalar(select(Conversation.id))
            seen.clear()
            [row] = await read.rows(session, {"conversation": conversation_id})
    assert seen == []
    assert row == ({"name": "Ann", "phone": "+49 30 1234567"}, WHEN, None)
    assert row[1].tzinfo is not None  # aware UTC, SQLite included
