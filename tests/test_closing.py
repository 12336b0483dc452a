"""Conversations that end: the idle sweep, an agent's close, and what comes after (fake clock;
SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from carebot.clock import as_utc
from carebot.closing import ConversationCloser
from carebot.config import Settings
from carebot.events import EventHub
from carebot.exceptions import StoreError
from carebot.inbox import RECOVERY_GRACE
from carebot.models import InboundMessage
from carebot.runtime import Runtime
from carebot.store.closing import ClosingStore
from carebot.store.database import Database
from carebot.store.tables import Conversation, Handoff, Message
from carebot.triage import TriageContext
from tests.conftest import ROOT, Clock, make_settings
from tests.fakes import RecordingChannel

_ids = itertools.count(1)
HOUR = 3600.0
IDLE_HOURS = 24  # the default [conversations] idle_close_hours
FAQ = "where is my order"  # the bot answers it
SENSITIVE = "delete my account"  # handed over, with a draft


def inbound(text: str, *, user: str = "u1") -> InboundMessage:
    return InboundMessage(
        channel="test",
        external_user_id=user,
        external_message_id=f"m{next(_ids)}",
        text=text,
        sent_at=datetime(2026, 11, 18, 10, tzinfo=UTC),
    )


async def say(runtime: Runtime, text: str, *, user: str = "u1") -> int:
    """The customer writes; returns the conversation it went to."""
    outcome = await runtime.inbox.receive(inbound(text, user=user))
    return outcome.received.conversation_id


async def conversation(runtime: Runtime, conversation_id: int) -> Conversation:
    return await runtime.conversations.conversation(conversation_id)


async def open_conversations(db: Database) -> int:
    async with db.session() as session:
        query = select(func.count()).where(Conversation.state != "closed")
        return int(await session.scalar(query) or 0)


@pytest.mark.parametrize(("hours", "closes"), [(IDLE_HOURS - 1, False), (IDLE_HOURS + 1, True)])
async def test_a_conversation_the_bot_answered_closes_after_the_idle_hours(
    runtime: Runtime, clock: Clock, hours: int, closes: bool
) -> None:
    conversation_id = await say(runtime, FAQ)
    clock.advance(hours * HOUR)

    closed = await runtime.closer.sweep()

    assert closed == ([conversation_id] if closes else [])
    row = await conversation(runtime, conversation_id)
    if closes:
        assert (row.state, row.closed_reason, row.closed_by) == ("closed", "idle", None)
        assert row.closed_at is not None and as_utc(row.closed_at) == clock.now
        assert as_utc(row.updated_at) == clock.now  # what the Slack sync looks at
    else:
        assert (row.state, row.closed_at, row.closed_reason) == ("bot", None, None)


async def test_idle_hours_count_from_the_last_message_not_only_the_customers(
    runtime: Runtime, clock: Clock
) -> None:
    conversation_id = await say(runtime, SENSITIVE)
    clock.advance((IDLE_HOURS - 1) * HOUR)
    await runtime.desk.reply(conversation_id, "Ann", "Done, your account is deleted.")
    clock.advance(2 * HOUR)  # 25 h after the customer wrote, 2 h after the agent's answer

    assert await runtime.closer.sweep() == []
    clock.advance(IDLE_HOURS * HOUR)
    assert await runtime.closer.sweep() == [conversation_id]


async def test_a_message_after_the_close_starts_a_new_conversation_in_the_same_history(
    runtime: Runtime, clock: Clock
) -> None:
    first = await say(runtime, FAQ)
    clock.advance((IDLE_HOURS + 1) * HOUR)
    assert await runtime.closer.sweep() == [first]

    second = await say(runtime, "hello again, where is my order")

    assert second != first
    assert (await conversation(runtime, second)).state == "bot"
    case = await runtime.queue.case(second)
    assert case.customer["conversations"] == 2
    [past] = case.past
    assert past["id"] == first and past["state"] == "closed"
    assert past["closed"]["words"] == "Closed automatically after 25 h without a message"
    history = await runtime.queue.history(case.customer["id"])
    assert {m.conversation_id for m in history} == {first, second}
    transcript = await runtime.conversations.transcript("test", "u1")
    assert [line.text for line in transcript if line.author == "customer"] == [
        FAQ,
        "hello again, where is my order",
    ]
    old = await runtime.queue.case(first)  # a closed conversation stays readable
    assert old.closed is not None and old.closed["reason"] == "idle"
    assert not (old.can_reply or old.can_take_over or old.can_resolve or old.can_close)


async def take_over_only(runtime: Runtime, conversation_id: int) -> None:
    await runtime.desk.take_over(conversation_id, "Ann")


async def customer_answered_the_agent(runtime: Runtime, conversation_id: int) -> None:
    await runtime.desk.reply(conversation_id, "Ann", "Which order do you mean?")
    await say(runtime, "the blue shoes")


async def left_waiting(runtime: Runtime, conversation_id: int) -> None:
    return None


@pytest.mark.parametrize(
    "then", [left_waiting, take_over_only, customer_answered_the_agent], ids=lambda f: f.__name__
)
async def test_a_customer_who_is_owed_an_answer_stays_open_and_in_the_queue(
    runtime: Runtime, clock: Clock, then: Callable[[Runtime, int], Awaitable[None]]
) -> None:
    conversation_id = await say(runtime, SENSITIVE)
    await then(runtime, conversation_id)
    clock.advance(30 * 24 * HOUR)

    assert await runtime.closer.sweep() == []

    row = await conversation(runtime, conversation_id)
    assert row.state in ("waiting_for_agent", "with_agent") and row.closed_at is None
    waiting, with_agent = await runtime.queue.rows()
    assert conversation_id in {r.id for r in waiting + with_agent}


async def test_a_conversation_whose_agent_wrote_last_closes_and_its_handoff_ends(
    runtime: Runtime, clock: Clock
) -> None:
    conversation_id = await say(runtime, SENSITIVE)
    await runtime.desk.reply(conversation_id, "Ann", "Done, your account is deleted.")
    clock.advance((IDLE_HOURS + 1) * HOUR)

    assert await runtime.closer.sweep() == [conversation_id]

    row = await conversation(runtime, conversation_id)
    assert (row.state, row.closed_reason, row.agent) == ("closed", "idle", "Ann")
    assert await runtime.handoffs.open_handoff(conversation_id) is None
    async with runtime.db.session() as session:
        handoff = await session.scalar(select(Handoff))
    assert handoff is not None and handoff.resolved_by is None
    assert handoff.resolved_at is not None and as_utc(handoff.resolved_at) == clock.now
    assert await runtime.queue.rows() == ([], [])
    [closed] = await runtime.queue.recently_closed()
    assert (closed.id, closed.agent, closed.closed["reason"]) == (conversation_id, "Ann", "idle")
    clock.advance(25 * HOUR)
    assert await runtime.queue.recently_closed() == []  # the queue page lists the last 24 h


async def test_a_message_stored_but_not_yet_answered_keeps_the_conversation_open(
    runtime: Runtime, clock: Clock
) -> None:
    received = await runtime.conversations.receive(inbound(FAQ))  # the process stopped here
    clock.advance(30 * 24 * HOUR)

    assert await runtime.closer.sweep() == []
    assert (await conversation(runtime, received.conversation_id)).state == "bot"


async def test_a_closed_conversation_refuses_agent_actions(runtime: Runtime) -> None:
    conversation_id = await say(runtime, SENSITIVE)
    await runtime.desk.close(conversation_id, "Ann")
    actions = {
        "reply": runtime.desk.reply(conversation_id, "Bob", "Hello?"),
        "send_draft": runtime.desk.send_draft(conversation_id, "Bob"),
        "take_over": runtime.desk.take_over(conversation_id, "Bob"),
        "resolve": runtime.desk.resolve(conversation_id, "Bob"),
        "close": runtime.desk.close(conversation_id, "Bob"),
    }
    for name, action in actions.items():
        with pytest.raises(StoreError, match="is closed; the customer's next message") as info:
            await action
        assert str(conversation_id) in str(info.value), name
    row = await conversation(runtime, conversation_id)
    assert (row.closed_reason, row.closed_by) == ("closed_by_agent", "Ann")


@pytest.mark.parametrize("state", ["bot", "waiting_for_agent", "with_agent"])
async def test_an_agent_closes_a_conversation_in_any_state(
    runtime: Runtime, clock: Clock, state: str
) -> None:
    conversation_id = await say(runtime, FAQ if state == "bot" else SENSITIVE)
    if state == "with_agent":
        await runtime.desk.take_over(conversation_id, "Ann")
    assert (await conversation(runtime, conversation_id)).state == state
    clock.advance(60)

    async with runtime.events.subscribe() as events:
        await runtime.desk.close(conversation_id, "Bob")
        event = events.get_nowait()
    assert (event.kind, event.conversation_id) == ("closed", conversation_id)

    row = await conversation(runtime, conversation_id)
    assert (row.state, row.closed_reason, row.closed_by) == ("closed", "closed_by_agent", "Bob")
    assert row.closed_at is not None and as_utc(row.closed_at) == clock.now
    assert await runtime.handoffs.open_handoff(conversation_id) is None
    case = await runtime.queue.case(conversation_id)
    assert case.closed is not None and case.closed["words"] == "Closed by Bob"
    assert (case.handoff is not None) == (state != "bot")  # the handoff it ended with
    assert await say(runtime, FAQ) != conversation_id


async def test_a_message_stored_before_an_agents_close_is_kept_but_not_answered(
    runtime: Runtime, channel: RecordingChannel, clock: Clock
) -> None:
    """The agent closed the conversation between the message being stored and the bot deciding:
    the agent's close wins, the message stays in the closed conversation for agents to read."""
    conversation_id = await say(runtime, FAQ)
    sent = len(channel.sent)
    received = await runtime.conversations.receive(inbound(SENSITIVE))
    await runtime.desk.close(conversation_id, "Ann")
    clock.advance(RECOVERY_GRACE.total_seconds() + 1)  # its worker stopped

    assert await runtime.inbox.recover() == 1
    assert await runtime.conversations.is_handled(received.message_id)
    assert len(channel.sent) == sent
    assert (await conversation(runtime, conversation_id)).state == "closed"
    async with runtime.db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Handoff)) == 0


async def test_a_decision_for_a_conversation_closed_meanwhile_sends_nothing(
    runtime: Runtime, clock: Clock
) -> None:
    received = await runtime.conversations.receive(inbound(SENSITIVE))
    decision = runtime.triage.decide(SENSITIVE, TriageContext(now=clock.now))  # a handoff
    assert decision.hands_off and decision.reply
    await runtime.desk.close(received.conversation_id, "Ann")

    assert await runtime.conversations.record_decision(received, decision, {}) is None
    assert (await conversation(runtime, received.conversation_id)).state == "closed"
    assert await runtime.handoffs.open_handoff(received.conversation_id) is None


async def test_messages_arriving_at_once_after_a_close_share_one_new_conversation(
    runtime: Runtime,
) -> None:
    first = await say(runtime, FAQ)
    await runtime.desk.close(first, "Ann")

    ids = await asyncio.gather(*(say(runtime, f"question {n}") for n in range(4)))

    assert len(set(ids)) == 1 and first not in ids
    assert await open_conversations(runtime.db) == 1


@contextlib.asynccontextmanager
async def another_process(runtime: Runtime) -> AsyncIterator[Database]:
    """The database as a second process sees it: its own connection pool on PostgreSQL; on
    SQLite (one process only) the same one."""
    if runtime.db.is_sqlite:
        yield runtime.db
        return
    other = Database(runtime.db.url.render_as_string(hide_password=False))
    try:
        yield other
    finally:
        await other.close()


def closer(
    db: Database, clock: Clock, *, events: EventHub | None = None, idle_hours: float = IDLE_HOURS
) -> ConversationCloser:
    return ConversationCloser(
        store=ClosingStore(db, clock=clock),
        events=events or EventHub(),
        clock=clock,
        idle_hours=idle_hours,
        batch=3,  # several batches per sweep
    )


async def test_two_sweeps_at_once_close_each_conversation_once(
    runtime: Runtime, clock: Clock
) -> None:
    ids = [await say(runtime, FAQ, user=f"u{n}") for n in range(10)]
    clock.advance((IDLE_HOURS + 1) * HOUR)
    events = EventHub()
    async with events.subscribe() as heard, another_process(runtime) as other:
        sweeps = [closer(runtime.db, clock, events=events), closer(other, clock, events=events)]
        first, second = await asyncio.gather(*(s.sweep() for s in sweeps))
        announced = [heard.get_nowait().conversation_id for _ in range(heard.qsize())]

    assert sorted(first + second) == ids
    assert not set(first) & set(second)
    assert sorted(announced) == ids  # one "closed" event each
    assert await open_conversations(runtime.db) == 0


async def test_messages_arriving_during_sweeps_never_land_in_a_closed_conversation(
    runtime: Runtime, clock: Clock
) -> None:
    """Every customer writes again as two sweeps run: each message is in an open conversation
    (the old one, if it got there first, else a new one), each customer keeps one open
    conversation, and no closed conversation holds a message newer than the cutoff."""
    users = [f"u{n}" for n in range(8)]
    old = {user: await say(runtime, FAQ, user=user) for user in users}
    clock.advance((IDLE_HOURS + 1) * HOUR)
    async with another_process(runtime) as other:
        sweeps = asyncio.gather(closer(runtime.db, clock).sweep(), closer(other, clock).sweep())
        messages = asyncio.gather(*(say(runtime, "still there?", user=user) for user in users))
        (first, second), new = await asyncio.gather(sweeps, messages)

    assert not set(first) & set(second)
    for user, conversation_id in zip(users, new, strict=True):
        assert (await conversation(runtime, conversation_id)).state != "closed", user
        was_closed = (await conversation(runtime, old[user])).state == "closed"
        assert was_closed == (conversation_id != old[user]) == (old[user] in first + second)
    async with runtime.db.session() as session:
        latest = await session.scalar(
            select(func.max(Message.created_at))
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(Conversation.state == "closed")
        )
    assert latest is None or as_utc(latest) < clock.now - timedelta(hours=IDLE_HOURS)
    assert await open_conversations(runtime.db) == len(users)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_sweep_skips_a_conversation_a_message_is_being_stored_in(
    runtime: Runtime, clock: Clock
) -> None:
    """PostgreSQL: the sweep meets the row locked by a message being stored (uncommitted, so
    it cannot see it yet) and leaves the conversation for the next sweep."""
    conversation_id = await say(runtime, FAQ)
    clock.advance((IDLE_HOURS + 1) * HOUR)
    async with another_process(runtime) as other, other.transaction() as storing:
        row = await storing.get_one(Conversation, conversation_id, with_for_update=True)
        storing.add(
            Message(
                conversation_id=row.id, direction="in", author="customer", channel="test",
                external_id="late", text="one more thing", created_at=clock.now,
                handled_at=clock.now,
            )
        )  # fmt: skip
        await storing.flush()
        async with asyncio.timeout(30):  # a sweep that waited for the lock would never return
            assert await runtime.closer.sweep() == []
    assert await runtime.closer.sweep() == []  # the message is there now: not idle any more
    assert (await conversation(runtime, conversation_id)).state == "bot"


SWEEP_PROCESS = """
import asyncio, json, sys
from datetime import datetime
from carebot.closing import ConversationCloser
from carebot.events import EventHub
from carebot.store.closing import ClosingStore
from carebot.store.database import Database

async def main():
    db = Database(sys.argv[1])
    now = datetime.fromisoformat(sys.argv[2])
    clock = lambda: now
    store = ClosingStore(db, clock=clock)
    closer = ConversationCloser(store=store, events=EventHub(), clock=clock, idle_hours=24, batch=4)
    await db.ping()
    print("ready", flush=True)
    sys.stdin.readline()  # all start at once
    print(json.dumps(await closer.sweep()))
    await db.close()

asyncio.run(main())
"""


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_sweeps_in_several_processes_close_each_conversation_once(
    runtime: Runtime, clock: Clock
) -> None:
    """Three real processes sweep one PostgreSQL database while customers write again."""
    users = [f"u{n}" for n in range(40)]
    old = {user: await say(runtime, FAQ, user=user) for user in users}
    clock.advance((IDLE_HOURS + 1) * HOUR)
    url = runtime.db.url.render_as_string(hide_password=False)
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", SWEEP_PROCESS, url, clock.now.isoformat(),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=ROOT,
        )
        for _ in range(3)
    ]  # fmt: skip
    for process in processes:
        assert process.stdout is not None
        assert await process.stdout.readline() == b"ready\n"
    writing = users[::4]  # a quarter of the customers write meanwhile
    finishing = asyncio.gather(*(p.communicate(b"go\n") for p in processes))
    new = await asyncio.gather(*(say(runtime, FAQ, user=user) for user in writing))
    outputs = [out for out, _ in await finishing]

    assert [p.returncode for p in processes] == [0, 0, 0]
    swept = [json.loads(out) for out in outputs]
    closed = [c for sweep in swept for c in sweep]
    assert len(closed) == len(set(closed))  # nobody closed a conversation twice
    for user, conversation_id in zip(writing, new, strict=True):
        assert (conversation_id != old[user]) == (old[user] in closed), user
        assert (await conversation(runtime, conversation_id)).state != "closed"
    assert sorted(closed) == sorted(set(old.values()) - set(new))
    assert await open_conversations(runtime.db) == len(writing)


async def test_idle_hours_zero_never_closes(runtime: Runtime, clock: Clock) -> None:
    await say(runtime, FAQ)
    clock.advance(365 * 24 * HOUR)
    never = closer(runtime.db, clock, idle_hours=0)

    assert await never.sweep() == []
    await never.run()  # returns at once: nothing to do
    assert await open_conversations(runtime.db) == 1


async def test_the_service_sweeps_at_start_and_stops_with_the_runtime(
    runtime: Runtime, clock: Clock
) -> None:
    conversation_id = await say(runtime, FAQ)
    clock.advance((IDLE_HOURS + 1) * HOUR)

    async with runtime.events.subscribe() as events:
        await runtime.start()
        try:
            while (event := await events.get()).kind != "closed":
                continue
        finally:
            await runtime.stop()

    assert event.conversation_id == conversation_id
    assert (await conversation(runtime, conversation_id)).state == "closed"


class OutageOnce(ClosingStore):
    """The database fails the first sweep, then is back."""

    failed = False

    async def idle(self, cutoff: datetime, *, after: int = 0, limit: int = 100) -> list[int]:
        if not self.failed:
            self.failed = True
            raise ConnectionError("database restarting")
        return await super().idle(cutoff, after=after, limit=limit)


async def test_a_failed_sweep_is_logged_and_the_next_one_closes(
    runtime: Runtime, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    conversation_id = await say(runtime, FAQ)
    clock.advance((IDLE_HOURS + 1) * HOUR)
    events = EventHub()
    worker = ConversationCloser(
        store=OutageOnce(runtime.db, clock=clock),
        events=events,
        clock=clock,
        idle_hours=IDLE_HOURS,
        interval=0.01,
    )
    async with events.subscribe() as heard:
        running = asyncio.create_task(worker.run())
        event = await heard.get()
        worker.stop()
        await running

    assert (event.kind, event.conversation_id) == ("closed", conversation_id)
    [failure] = [r for r in caplog.records if r.name == "carebot.closing" and r.exc_info]
    assert "Closing idle conversations failed" in failure.getMessage()


def test_the_sweep_settings_come_from_the_config(tmp_path: Path) -> None:
    settings: Settings = make_settings(
        tmp_path, conversations={"idle_close_hours": 2.5, "sweep_seconds": 5}
    )
    assert settings.conversations.idle_close_hours == 2.5
    assert settings.conversations.sweep_seconds == 5.0
