"""The store: migrations, storing inbound messages once, and the handoff state machine."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import func, insert, inspect, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from carebot.clock import as_utc
from carebot.exceptions import StoreError
from carebot.models import Attachment, ConversationState, InboundKind, InboundMessage
from carebot.runtime import Runtime
from carebot.store.conversation_lock import (
    CONVERSATION_LOCKS,
    ConversationBusy,
    ConversationLocks,
)
from carebot.store.conversations import _UNHANDLED_IDS, ConversationStore, Pending
from carebot.store.database import (
    IDLE_IN_TRANSACTION_MS,
    LOCK_TIMEOUT_MS,
    MIGRATIONS,
    Database,
)
from carebot.store.returning import store_returning
from carebot.store.tables import Base, Conversation, Customer, Handoff, Identity, Message, OutboxRow
from tests.conftest import ROOT, Clock

T = TypeVar("T", bound=Base)
_ids = itertools.count(1)
HEAD = ScriptDirectory(str(MIGRATIONS)).get_current_head()


def inbound(
    text: str, *, user: str = "u1", mid: str | None = None, channel: str = "test"
) -> InboundMessage:
    return InboundMessage(
        channel=channel,
        external_user_id=user,
        external_message_id=mid or f"m{next(_ids)}",
        text=text,
        sent_at=datetime(2026, 11, 18, 10, tzinfo=UTC),
        profile={"name": "Ada"},
    )


async def rows(db: Database, table: type[T], *where: Any) -> list[T]:
    async with db.session() as session:
        return list((await session.scalars(select(table).where(*where).order_by(table.id))).all())


async def count(db: Database, table: type[Base]) -> int:
    async with db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(table)) or 0)


async def test_migrations_apply_on_an_empty_database(database_url: str) -> None:
    db = Database(database_url)
    try:
        assert await db.current_revision() is None
        await db.upgrade()
        await db.upgrade()  # a second upgrade is a no-op
        assert HEAD is not None
        assert await db.current_revision() == HEAD
        async with db.engine.connect() as conn:
            names = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert names >= {"customers", "identities", "conversations", "messages", "decisions"}
        assert names >= {"handoffs", "outbox", "alembic_version"}
    finally:
        await db.close()


async def test_check_migrated_refuses_an_unmigrated_database(database_url: str) -> None:
    db = Database(database_url)
    try:
        with pytest.raises(StoreError, match="carebot db upgrade") as info:
            await db.check_migrated()
        assert "migration none" in str(info.value)
        await db.upgrade()
        await db.check_migrated()
    finally:
        await db.close()


async def test_receive_creates_the_customer_once_and_reuses_it(runtime: Runtime) -> None:
    store = runtime.conversations
    first = await store.receive(inbound("hello", user="u1"))
    second = await store.receive(inbound("still there?", user="u1"))
    other_channel = await store.receive(inbound("hi", user="u1", channel="web"))

    assert (second.customer_id, second.conversation_id) == (
        first.customer_id,
        first.conversation_id,
    )
    assert second.message_id != first.message_id
    assert other_channel.customer_id != first.customer_id
    assert not first.duplicate and not second.duplicate
    customers = await rows(runtime.db, Customer)
    assert [c.display_name for c in customers] == ["Ada", "Ada"]
    identities = await rows(runtime.db, Identity)
    assert [(i.channel, i.external_user_id) for i in identities] == [("test", "u1"), ("web", "u1")]
    conversations = await rows(runtime.db, Conversation)
    assert [(c.id, c.state) for c in conversations] == [
        (first.conversation_id, "bot"),
        (other_channel.conversation_id, "bot"),
    ]
    texts = await rows(runtime.db, Message, Message.conversation_id == first.conversation_id)
    assert [m.text for m in texts] == ["hello", "still there?"]


@pytest.mark.parametrize("concurrently", [False, True], ids=["one_after_other", "at_once"])
async def test_a_redelivered_message_is_stored_once(runtime: Runtime, concurrently: bool) -> None:
    message = inbound("where is my order", mid="tg-42")
    if concurrently:
        results = await asyncio.gather(*(runtime.conversations.receive(message) for _ in range(2)))
    else:
        results = [await runtime.conversations.receive(message) for _ in range(2)]

    assert sorted(r.duplicate for r in results) == [False, True]
    assert results[0].message_id == results[1].message_id
    stored = await rows(runtime.db, Message)
    assert [(m.channel, m.external_id, m.text) for m in stored] == [
        ("test", "tg-42", "where is my order")
    ]
    assert await count(runtime.db, Customer) == 1


async def test_first_messages_of_a_new_customer_arriving_at_once_are_both_stored(
    runtime: Runtime,
) -> None:
    first, second = inbound("hello", mid="a"), inbound("anyone?", mid="b")
    results = await asyncio.gather(
        runtime.conversations.receive(first), runtime.conversations.receive(second)
    )

    assert [r.duplicate for r in results] == [False, False]
    assert results[0].conversation_id == results[1].conversation_id
    assert sorted(m.external_id for m in await rows(runtime.db, Message)) == ["a", "b"]
    assert await count(runtime.db, Customer) == 1


async def test_first_messages_to_two_workers_at_once_share_one_conversation(
    runtime: Runtime, clock: Clock
) -> None:
    """Two workers (each its own engine) store a new customer's first messages at once: the
    database's one open conversation per identity (uq_conversations_open_identity_thread) makes the
    loser re-read the winner's conversation, so both messages end up in it."""
    peer_db = Database(runtime.db.url.render_as_string(hide_password=False))
    peer = ConversationStore(peer_db, clock=clock)
    try:
        results = await asyncio.gather(
            runtime.conversations.receive(inbound("hello", mid="a")),
            peer.receive(inbound("anyone?", mid="b")),
        )
    finally:
        await peer_db.close()

    assert [r.duplicate for r in results] == [False, False]
    [conversation] = await rows(runtime.db, Conversation)
    assert {r.conversation_id for r in results} == {conversation.id}
    stored = await rows(runtime.db, Message, Message.conversation_id == conversation.id)
    assert sorted(m.external_id for m in stored) == ["a", "b"]
    assert await count(runtime.db, Customer) == 1


RECEIVE_PROCESS = """
import asyncio, json, sys
from datetime import UTC, datetime
from carebot.models import Attachment, InboundKind, InboundMessage
from carebot.store.conversation_lock import (
    CONVERSATION_LOCKS,
    ConversationBusy,
    ConversationLocks,
)
from carebot.store.conversations import ConversationStore, Pending
from carebot.store.database import Database

async def main():
    db = Database(sys.argv[1])
    now = datetime.fromisoformat(sys.argv[2])
    store = ConversationStore(db, clock=lambda: now)
    await db.ping()
    print("ready", flush=True)
    sys.stdin.readline()  # all start at once
    received = await store.receive(InboundMessage(
        channel="test", external_user_id="new", external_message_id=sys.argv[3],
        text=f"first message {sys.argv[3]}", sent_at=now,
    ))
    print(json.dumps([received.conversation_id, received.duplicate]))
    await db.close()

asyncio.run(main())
"""


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_first_messages_in_several_processes_share_one_conversation(
    runtime: Runtime, clock: Clock
) -> None:
    """Four real processes store a new customer's first messages at once on one PostgreSQL:
    one customer, one open conversation, every message in it."""
    url = runtime.db.url.render_as_string(hide_password=False)
    ids = [f"p{n}" for n in range(4)]
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", RECEIVE_PROCESS, url, clock.now.isoformat(), mid,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=ROOT,
        )
        for mid in ids
    ]  # fmt: skip
    for process in processes:
        assert process.stdout is not None
        assert await process.stdout.readline() == b"ready\n"
    finished = await asyncio.gather(*(p.communicate(b"go\n") for p in processes))

    assert [p.returncode for p in processes] == [0] * len(ids)
    [conversation] = await rows(runtime.db, Conversation)
    assert [json.loads(out) for out, _ in finished] == [[conversation.id, False]] * len(ids)
    stored = await rows(runtime.db, Message, Message.conversation_id == conversation.id)
    assert sorted(m.external_id for m in stored) == ids
    assert await count(runtime.db, Customer) == 1


async def test_same_message_id_on_two_channels_is_not_a_duplicate(runtime: Runtime) -> None:
    on_test = await runtime.conversations.receive(inbound("hi", mid="7", channel="test"))
    on_web = await runtime.conversations.receive(inbound("hi", mid="7", channel="web"))

    assert not on_web.duplicate
    assert on_web.message_id != on_test.message_id
    stored = await rows(runtime.db, Message)
    assert [(m.channel, m.external_id) for m in stored] == [("test", "7"), ("web", "7")]


async def test_handoff_state_machine(runtime: Runtime, clock: Clock) -> None:
    outcome = await runtime.inbox.receive(inbound("delete my account"))
    conversation_id = outcome.received.conversation_id
    conversation = await runtime.conversations.conversation(conversation_id)
    assert (conversation.state, conversation.agent) == ("waiting_for_agent", None)
    [handoff] = await rows(runtime.db, Handoff)
    assert (handoff.reason, handoff.claimed_by) == ("sensitive_intent", None)
    assert handoff.draft == "I can delete your account for you."

    clock.advance(60)
    [joined] = await runtime.handoffs.take_over(conversation_id, "ann")
    assert (joined.reply.text, joined.reply.author, joined.reply.notice) == (
        "ann from our team has joined the conversation.",
        "bot",
        "agent_joined",
    )
    conversation = await runtime.conversations.conversation(conversation_id)
    assert (conversation.state, conversation.agent) == ("with_agent", "ann")
    [handoff] = await rows(runtime.db, Handoff)
    assert handoff.claimed_by == "ann"
    assert handoff.claimed_at is not None and as_utc(handoff.claimed_at) == clock.now

    [queued] = await runtime.handoffs.reply(conversation_id, "ann", "Done, it is deleted.")
    outbox_id = queued.reply.outbox_id
    [row] = await rows(runtime.db, OutboxRow, OutboxRow.id == outbox_id)
    assert (row.text, row.status, row.channel, row.external_user_id) == (
        "Done, it is deleted.",
        "pending",
        "test",
        "u1",
    )
    [message] = await rows(runtime.db, Message, Message.id == row.message_id)
    assert (message.direction, message.author, message.agent) == ("out", "agent", "ann")

    clock.advance(60)
    [resolved] = await runtime.handoffs.resolve(conversation_id, "ann")
    assert resolved.reply.notice == "resolved" and resolved.reply.text.startswith(
        "ann has marked this conversation as resolved."
    )
    conversation = await runtime.conversations.conversation(conversation_id)
    assert (conversation.state, conversation.agent) == ("bot", None)
    [handoff] = await rows(runtime.db, Handoff)
    assert handoff.resolved_by == "ann"
    assert handoff.resolved_at is not None and as_utc(handoff.resolved_at) == clock.now
    assert await runtime.handoffs.open_handoff(conversation_id) is None


async def test_resolving_a_conversation_the_bot_owns_is_refused(runtime: Runtime) -> None:
    received = await runtime.conversations.receive(inbound("hello"))

    with pytest.raises(
        StoreError, match="is already with the bot, so it cannot be handed back to the bot"
    ):
        await runtime.handoffs.resolve(received.conversation_id, "ann")
    assert await count(runtime.db, Handoff) == 0


@pytest.mark.parametrize("action", ["take_over", "reply", "resolve", "conversation"])
async def test_acting_on_a_missing_conversation_is_refused(runtime: Runtime, action: str) -> None:
    calls = {
        "take_over": lambda: runtime.handoffs.take_over(999, "ann"),
        "reply": lambda: runtime.handoffs.reply(999, "ann", "hello"),
        "resolve": lambda: runtime.handoffs.resolve(999, "ann"),
        "conversation": lambda: runtime.conversations.conversation(999),
    }
    with pytest.raises(StoreError, match="No conversation with id 999"):
        await calls[action]()
    assert await count(runtime.db, Handoff) == 0


@pytest.mark.parametrize("text", ["", "  \n\t"])
async def test_an_empty_agent_reply_is_refused(runtime: Runtime, text: str) -> None:
    received = await runtime.conversations.receive(inbound("hello"))

    with pytest.raises(StoreError, match="cannot be empty"):
        await runtime.handoffs.reply(received.conversation_id, "ann", text)
    assert await count(runtime.db, OutboxRow) == 0
    conversation = await runtime.conversations.conversation(received.conversation_id)
    assert conversation.state == "bot"


async def _two_conversations(runtime: Runtime, clock: Clock) -> int:
    """One customer: a closed conversation, then a new one with an agent reply."""
    first = await runtime.conversations.receive(inbound("first"))
    await runtime.conversations.receive(inbound("someone else", user="u2"))
    async with runtime.db.session() as session, session.begin():
        await session.execute(
            update(Conversation)
            .where(Conversation.id == first.conversation_id)
            .values(state="closed")
        )
    clock.advance(60)
    second = await runtime.conversations.receive(inbound("second"))
    assert second.conversation_id != first.conversation_id
    assert second.customer_id == first.customer_id
    await runtime.handoffs.reply(second.conversation_id, "ann", "agent answer")
    return first.customer_id


async def test_history_is_oldest_first_across_conversations(runtime: Runtime, clock: Clock) -> None:
    customer_id = await _two_conversations(runtime, clock)

    lines = await runtime.queue.history(customer_id)
    assert [(line.author, line.agent, line.text) for line in lines] == [
        ("customer", None, "first"),
        ("customer", None, "second"),
        ("bot", None, "ann from our team has joined the conversation."),  # before the reply
        ("agent", "ann", "agent answer"),
    ]
    assert len({line.conversation_id for line in lines}) == 2
    latest = await runtime.queue.history(customer_id, limit=2)
    assert [line.text for line in latest] == [lines[-2].text, "agent answer"]


async def test_history_times_are_utc_on_every_backend(runtime: Runtime, clock: Clock) -> None:
    customer_id = await _two_conversations(runtime, clock)

    lines = await runtime.queue.history(customer_id)
    assert lines[-1].at == clock.now.isoformat() == "2026-11-18T10:01:00+00:00"


async def test_the_migrations_build_exactly_the_tables_the_code_declares(
    database: Database,
) -> None:
    async with database.engine.connect() as conn:
        differences = await conn.run_sync(
            lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata)
        )
    assert differences == []


async def a_conversation(conn: AsyncConnection, at: datetime) -> int:
    """A customer, their identity and a conversation with the bot, inserted on a connection
    (for migration tests, where the tables are those of some past revision); its id."""
    customer = await conn.scalar(insert(Customer).values(created_at=at).returning(Customer.id))
    identity = await conn.scalar(
        insert(Identity).values(
            customer_id=customer, channel="test", external_user_id="u1", profile={},
            created_at=at,
        ).returning(Identity.id)
    )  # fmt: skip
    conversation = await conn.scalar(
        insert(Conversation).values(
            customer_id=customer, identity_id=identity, state="bot", created_at=at,
            updated_at=at,
        ).returning(Conversation.id)
    )  # fmt: skip
    return int(conversation)


def _migrate(connection: Connection, target: str, *, down: bool = False) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    (command.downgrade if down else command.upgrade)(config, target)


async def test_migration_0004_keeps_conversations_and_allows_one_open_per_identity(
    database_url: str,
) -> None:
    at = datetime(2026, 3, 1, 9, tzinfo=UTC)
    stamps = {"created_at": at, "updated_at": at}
    db = Database(database_url)
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(_migrate, "0003")
            customer = await conn.scalar(
                insert(Customer).values(created_at=at).returning(Customer.id)
            )
            identity = await conn.scalar(
                insert(Identity).values(
                    customer_id=customer, channel="test", external_user_id="u1", profile={},
                    created_at=at,
                ).returning(Identity.id)
            )  # fmt: skip
            await conn.execute(
                insert(Conversation).values(
                    customer_id=customer, identity_id=identity, state="bot", **stamps
                )
            )
            await conn.run_sync(_migrate, "head")
        ids = {"customer_id": customer, "identity_id": identity}
        [kept] = await rows(db, Conversation)
        assert (kept.state, kept.closed_at, kept.closed_reason, kept.closed_by) == (
            "bot", None, None, None,
        )  # fmt: skip

        async with db.transaction() as session:  # closed ones do not count
            session.add(Conversation(state="closed", **ids, **stamps))
        with pytest.raises(IntegrityError):
            async with db.transaction() as session:
                session.add(Conversation(state="bot", **ids, **stamps))

        async with db.engine.begin() as conn:
            await conn.run_sync(_migrate, "0003", down=True)
            columns = await conn.run_sync(
                lambda c: {col["name"] for col in inspect(c).get_columns("conversations")}
            )
        assert "closed_reason" not in columns and "closed_at" in columns
    finally:
        await db.close()


def message(text: str, *files: Attachment, kind: InboundKind = InboundKind.TEXT) -> InboundMessage:
    return InboundMessage(
        channel="test",
        external_user_id="u1",
        external_message_id=f"m{next(_ids)}",
        text=text,
        sent_at=datetime(2026, 11, 18, 10, tzinfo=UTC),
        profile={"name": "Ada"},
        kind=kind,
        attachments=files,
    )


PHOTO = Attachment("photo", "https://files.example/1", "")
DOCUMENT = Attachment("document", "https://files.example/2", "invoice march.pdf")


@pytest.mark.parametrize(
    "given",
    [
        message("where is my order"),
        message("two lines\nof text"),
        message("/start", kind=InboundKind.START),
        message("/start promo-42", kind=InboundKind.START),
        message("", PHOTO),
        message("", PHOTO, DOCUMENT),
        message("see the invoice\nplease", DOCUMENT),
    ],
    ids=["text", "lines", "start", "start-payload", "photo", "files", "text-and-file"],
)
async def test_an_unhandled_message_is_rebuilt_as_the_adapter_gave_it(
    runtime: Runtime, clock: Clock, given: InboundMessage
) -> None:
    """Recovery and the conversation's lock holder decide stored messages: a greeting stays
    a greeting, and files without text stay files without text."""
    received = await runtime.conversations.receive(given)
    clock.advance(1)
    listed = await runtime.conversations.unhandled(stored_before=clock.now)
    in_conversation = await runtime.conversations.unhandled_in(
        received.conversation_id, up_to=received.message_id
    )

    for pending in (listed, in_conversation):
        [(again, rebuilt)] = pending
        assert (again.message_id, again.conversation_id) == (
            received.message_id,
            received.conversation_id,
        )
        assert (rebuilt.text, rebuilt.kind, rebuilt.attachments, rebuilt.media_only) == (
            given.text,
            given.kind,
            given.attachments,
            given.media_only,
        )
        assert (rebuilt.external_message_id, rebuilt.external_user_id) == (
            given.external_message_id,
            given.external_user_id,
        )
        assert rebuilt.profile == given.profile


async def test_unhandled_in_lists_a_conversations_earlier_unhandled_messages_oldest_first(
    runtime: Runtime,
) -> None:
    store = runtime.conversations
    stored = [await store.receive(message(f"question {n}")) for n in range(4)]
    other = await store.receive(InboundMessage("test", "u2", "other", "hi", datetime.now(UTC)))
    await store.mark_handled(stored[1].message_id)
    conversation = stored[0].conversation_id
    assert other.conversation_id != conversation

    def ids(pending: Pending) -> list[int]:
        return [received.message_id for received, _ in pending]

    assert ids(await store.unhandled_in(conversation, up_to=stored[2].message_id)) == [
        stored[0].message_id,
        stored[2].message_id,
    ]
    assert ids(await store.unhandled_in(conversation, up_to=other.message_id)) == [
        stored[n].message_id for n in (0, 2, 3)
    ]
    assert ids(await store.unhandled_in(other.conversation_id, up_to=other.message_id)) == [
        other.message_id
    ]


async def advisory_locks(db: Database) -> list[tuple[int, int, bool]]:
    """The advisory locks on this database: (first key, second key, granted)."""
    async with db.engine.connect() as conn:
        found = await conn.execute(
            text(
                "SELECT classid::int, objid::int, granted FROM pg_locks WHERE locktype = "
                "'advisory' AND database = (SELECT oid FROM pg_database "
                "WHERE datname = current_database()) ORDER BY granted"
            )
        )
        return [(row[0], row[1], row[2]) for row in found]


@contextlib.asynccontextmanager
async def two_workers(
    database_url: str, *, limit: int = 2, **options: Any
) -> AsyncIterator[tuple[Database, ConversationLocks, ConversationLocks]]:
    """Two workers' conversation locks on one database (two engines): the first's database,
    its locks, and the second's (``options`` and ``limit``: the second's)."""
    first, second = Database(database_url), Database(database_url, **options)
    try:
        yield first, ConversationLocks(first, limit=2), ConversationLocks(second, limit=limit)
    finally:
        await first.close()
        await second.close()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_conversation_is_locked_for_every_process_on_the_database(
    database_url: str,
) -> None:
    """Two workers (two engines): the second waits for the first's lock on the conversation,
    not for its lock on another one; a lock is released when its holder fails too."""
    order: list[str] = []

    async def then(locks: ConversationLocks, conversation_id: int, what: str) -> None:
        async with locks.hold(conversation_id):
            order.append(what)

    async with two_workers(database_url) as (first, mine, theirs):
        with pytest.raises(RuntimeError, match="triage crashed"):
            async with mine.hold(7):
                raise RuntimeError("triage crashed")
        async with mine.hold(7):
            order.append("first holds 7")
            waiting = asyncio.create_task(then(theirs, 7, "second holds 7"))
            while (CONVERSATION_LOCKS, 7, False) not in await advisory_locks(first):
                await asyncio.sleep(0.01)  # until the second waits for the lock
            await then(theirs, 8, "second holds 8")
            order.append("first done")
        await waiting
        assert order == ["first holds 7", "second holds 8", "first done", "second holds 7"]
        assert await advisory_locks(first) == []


async def test_migration_0016_keeps_conversations_private_and_allows_one_open_per_thread(
    database_url: str,
) -> None:
    at = datetime(2026, 12, 1, 9, tzinfo=UTC)
    db = Database(database_url)
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(_migrate, "0015")
            kept = await a_conversation(conn, at)
            await conn.execute(
                insert(Message).values(
                    conversation_id=kept, direction="in", author="customer", channel="test",
                    external_id="m1", text="hi", created_at=at,
                )
            )  # fmt: skip
            await conn.run_sync(_migrate, "head")
        [before] = await rows(db, Conversation)
        assert (before.visibility, before.thread, before.context) == ("private", "", None)
        ids = {"customer_id": before.customer_id, "identity_id": before.identity_id}
        stamps = {"created_at": at, "updated_at": at}
        async with db.transaction() as session:  # the same customer's comments under a post
            session.add(
                Conversation(state="bot", visibility="public", thread="p1", **ids, **stamps)
            )
        with pytest.raises(IntegrityError):  # a second open private conversation
            async with db.transaction() as session:
                session.add(Conversation(state="bot", **ids, **stamps))
        async with db.engine.begin() as conn:
            await conn.run_sync(_migrate, "0015", down=True)
            columns = await conn.run_sync(
                lambda c: {col["name"] for col in inspect(c).get_columns("conversations")}
            )
        assert "visibility" not in columns and "state" in columns
    finally:
        await db.close()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_stopped_workers_locks_cannot_hold_the_others_for_long(
    database: Database,
) -> None:
    """Every pooled PostgreSQL session waits at most LOCK_TIMEOUT for a lock, and one left idle
    in a transaction (its worker stopped) is ended after IDLE_IN_TRANSACTION, with its locks."""
    async with database.engine.connect() as conn:
        timeouts = [
            (await conn.execute(text(f"SHOW {name}"))).scalar()
            for name in ("lock_timeout", "idle_in_transaction_session_timeout")
        ]
    assert timeouts == [f"{LOCK_TIMEOUT_MS // 1000}s", f"{IDLE_IN_TRANSACTION_MS // 1000}s"]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_conversation_held_past_the_lock_timeout_is_busy(
    database_url: str,
) -> None:
    """Another worker holding a conversation past the lock timeout (it stopped) makes the
    lock say so (ConversationBusy) instead of failing with the driver's error; the other
    conversations stay free (on the same connection: the waiter's pool has one)."""
    async with (
        two_workers(database_url, lock_timeout_ms=100, max_connections=4) as (
            _,
            held,
            waiting,
        ),
        held.hold(7),
    ):
        with pytest.raises(ConversationBusy, match="Conversation 7 is held"):
            async with waiting.hold(7):
                pass
        async with waiting.hold(8):  # another conversation is free
            pass


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_decider_cancelled_while_waiting_for_a_lock_leaves_nothing_held(
    database_url: str,
) -> None:
    """A decider cancelled while it waits for another worker's lock (its request ended at
    stop) ends its lock transaction: nothing stays held or waiting, and the connection serves
    the next lock (a pool of one: the same connection, or a new one if it had to be closed)."""
    async with two_workers(database_url, max_connections=4, limit=1) as (holder, held, waiting):

        async def enter() -> None:
            async with waiting.hold(7):
                raise AssertionError("the lock is held by the other worker")

        async with held.hold(7):
            task = asyncio.create_task(enter())
            while (CONVERSATION_LOCKS, 7, False) not in await advisory_locks(holder):
                await asyncio.sleep(0.01)  # until it waits for the lock
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        async with waiting.hold(7):
            assert await advisory_locks(holder) == [(CONVERSATION_LOCKS, 7, True)]
        assert await advisory_locks(holder) == []


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_returning_customers_message_is_stored_in_one_statement(
    runtime: Runtime,
) -> None:
    """PostgreSQL: a message of a known customer, with nothing new in their profile, into their
    open conversation, is stored by one statement; anything else writes nothing there and takes
    the general path (a new profile value, no open conversation); a redelivery meets the
    unique index as on the general path."""
    db, store = runtime.db, runtime.conversations
    now = datetime(2026, 11, 18, 10, tzinfo=UTC)
    first = await store.receive(inbound("hi"))
    again = inbound("where is my order?", mid="again")
    stored = await store_returning(db, again, now)
    assert stored is not None
    message_id, conversation_id, state, identity_id, customer_id = stored
    assert (conversation_id, state, identity_id, customer_id) == (
        first.conversation_id,
        ConversationState.BOT,
        first.identity_id,
        first.customer_id,
    )
    [message] = await rows(db, Message, Message.id == message_id)
    assert (message.direction, message.author, message.channel, message.external_id) == (
        "in",
        "customer",
        "test",
        "again",
    )
    assert (message.text, as_utc(message.created_at), message.handled_at) == (
        "where is my order?",
        now,
        None,
    )
    with pytest.raises(IntegrityError):
        await store_returning(db, again, now)
    renamed = dataclasses.replace(inbound("it's me"), profile={"name": "Ada L."})
    assert await store_returning(db, renamed, now) is None
    async with db.transaction() as session:
        conversation = await session.get_one(Conversation, first.conversation_id)
        conversation.state = ConversationState.CLOSED.value
    assert await store_returning(db, inbound("back again"), now) is None
    assert await count(db, Message) == 2  # nothing written by the refused tries


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_conversations_latest_decision_is_found_by_its_index(
    runtime: Runtime,
) -> None:
    """PostgreSQL, the plan it keeps for the prepared statement (generic, as made on a fresh
    database): the bot's last decision, read with a later message's unhandled ids, is found by
    the conversation's index, and nothing is scanned whole. Before, that plan hashed the whole
    decisions table for every message (2.3 ms a message on a fresh database after a minute of
    bench/workers.py, growing with the table)."""
    compiled = _UNHANDLED_IDS.compiled(runtime.db.engine.dialect)
    values = compiled.arguments({"conversation": 1, "up_to": 1})
    literals = ", ".join(f"'{v}'" if isinstance(v, str) else str(v) for v in values)
    dsn = runtime.db.asyncpg_dsn()
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SET plan_cache_mode = force_generic_plan")
        await conn.execute(f"PREPARE unhandled_ids AS {compiled.sql}")
        plan = "\n".join(
            r[0] for r in await conn.fetch(f"EXPLAIN EXECUTE unhandled_ids({literals})")
        )
    finally:
        await conn.close()
    assert "Seq Scan" not in plan, plan
    assert "using ix_decisions_conversation_id on decisions decisions_1" in plan, plan
