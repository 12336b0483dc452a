"""Events between workers on PostgreSQL's LISTEN/NOTIFY (carebot/cluster/notify.py): relayed
to the other workers once, marked remote, never back to their sender; a lost connection is
noticed, reconnected and followed by a resync; what was published meanwhile is sent after.
End to end with real ``carebot serve`` processes: a web chat reply sent by one worker reaches
the visitor's socket on another, and the inbox's live view on one worker sees another's events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from carebot.cluster import notify
from carebot.cluster.notify import Notifier
from carebot.desk.auth import hash_password
from carebot.events import RESYNC, Event, EventHub
from carebot.retry import Backoff
from carebot.store.database import Database
from tests.conftest import TEST_INTENTS, settings_data
from tests.serve_process import ServeProcess, serving, write_config
from tests.service import Visitor

ON_POSTGRESQL = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
QUICK = Backoff(base=0.05, cap=0.2)
SECRET = "several-workers-secret-key-0123456789abcdef"
PASSWORD = "correct horse battery staple"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def dsn(database_url: str) -> str:
    return Database(database_url).asyncpg_dsn()


@contextlib.asynccontextmanager
async def relayed(database_url: str, **options: Any) -> AsyncIterator[tuple[EventHub, Notifier]]:
    hub = EventHub()
    notifier = Notifier(dsn(database_url), hub, backoff=QUICK, **options)
    await notifier.start()
    try:
        yield hub, notifier
    finally:
        await notifier.stop()


async def next_event(queue: asyncio.Queue[Event], kind: str | None = None) -> Event:
    async with asyncio.timeout(10):
        while True:
            event = await queue.get()
            if kind is None or event.kind == kind:
                return event


@ON_POSTGRESQL
async def test_an_event_reaches_the_other_workers_once_and_not_its_sender(
    database_url: str,
) -> None:
    async with (
        relayed(database_url) as (hub_a, _),
        relayed(database_url) as (hub_b, _),
        relayed(database_url) as (hub_c, _),
        hub_a.subscribe() as at_a,
        hub_b.subscribe() as at_b,
        hub_c.subscribe() as at_c,
    ):
        hub_a.publish(Event("agent_typing", 7, agent="Ann"))
        hub_a.publish(Event("webchat_reply", 7, ref=42))
        for queue in (at_b, at_c):
            assert await next_event(queue) == Event("agent_typing", 7, agent="Ann", remote=True)
            assert await next_event(queue) == Event("webchat_reply", 7, ref=42, remote=True)
        hub_b.publish(Event("closed", 8))  # a marker: once it is at A, A's own came back or not
        assert await next_event(at_a) == Event("agent_typing", 7, agent="Ann")
        assert await next_event(at_a) == Event("webchat_reply", 7, ref=42)
        assert await next_event(at_a) == Event("closed", 8, remote=True)
        assert await next_event(at_c) == Event("closed", 8, remote=True)
        assert at_a.empty() and at_c.empty()  # each event once; nothing came back to A
        assert await next_event(at_b) == Event("closed", 8) and at_b.empty()  # B's own, once


@ON_POSTGRESQL
async def test_a_terminated_connection_is_reconnected_then_resynced_and_nothing_waits(
    database_url: str,
) -> None:
    async with (
        relayed(database_url) as (hub_a, notifier_a),
        relayed(database_url) as (hub_b, notifier_b),
        hub_a.subscribe() as at_a,
        hub_b.subscribe() as at_b,
    ):
        admin = await asyncpg.connect(dsn(database_url))
        try:  # as an operator (or a failover) would: both listeners lose their connection
            for notifier in (notifier_a, notifier_b):
                pid = notifier._conn.get_server_pid()
                assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        finally:
            await admin.close()
        assert await next_event(at_a, RESYNC) == Event(RESYNC, 0, remote=True)
        assert await next_event(at_b, RESYNC) == Event(RESYNC, 0, remote=True)
        hub_a.publish(Event("decision", 3))
        assert await next_event(at_b, "decision") == Event("decision", 3, remote=True)
        hub_b.publish(Event("handoff", 4))
        assert await next_event(at_a, "handoff") == Event("handoff", 4, remote=True)
        assert notifier_a.reconnects == 1 and notifier_b.reconnects == 1


@ON_POSTGRESQL
async def test_a_connection_terminated_again_and_again_while_events_flow_is_reconnected_each_time(
    database_url: str,
) -> None:
    """The server ends the connection while notifications are being sent: asyncpg may then
    refuse the next send with an InternalClientError before it has noticed the loss (seen in
    bench/chaos.py, where the relay died of it and the worker heard nothing more from the
    others). Each loss is a reconnect and a resync, and events still cross afterwards."""
    terminations = 20
    async with (
        relayed(database_url) as (hub_a, notifier_a),
        relayed(database_url) as (hub_b, _),
        hub_a.subscribe(size=10_000) as at_a,
        hub_b.subscribe(size=10_000) as at_b,
    ):
        flowing = True

        async def flow() -> None:
            while flowing:
                hub_a.publish(Event("decision", 1))
                await asyncio.sleep(0.001)

        stream = asyncio.create_task(flow())
        admin = await asyncpg.connect(dsn(database_url))
        try:
            for _ in range(terminations):  # connected: at the start, then after each resync
                await admin.fetchval(
                    "SELECT pg_terminate_backend($1)", notifier_a._conn.get_server_pid()
                )
                assert await next_event(at_a, RESYNC) == Event(RESYNC, 0, remote=True)
        finally:
            flowing = False
            await stream
            await admin.close()
        hub_a.publish(Event("closed", 9))
        assert await next_event(at_b, "closed") == Event("closed", 9, remote=True)
        assert notifier_a.reconnects == terminations


class FakeConnection:
    """A connection that records what it sends; ``fail`` makes its sends fail with that error
    (a network that broke before the termination listener could tell)."""

    def __init__(self, *, fail: Exception | None = None) -> None:
        self.fail = fail
        self.sent: list[list[str]] = []
        self.closed = False

    def add_termination_listener(self, _callback: object) -> None: ...

    async def add_listener(self, _channel: str, _callback: object) -> None: ...

    async def execute(self, _query: str, _channel: str, payloads: list[str]) -> str:
        if self.fail is not None:
            raise self.fail
        self.sent.append(payloads)
        return "SELECT 1"

    async def fetchval(self, _query: str) -> object:
        return 1

    async def close(self) -> None:
        self.closed = True

    def is_closed(self) -> bool:
        return self.closed

    def terminate(self) -> None:
        self.closed = True


@pytest.mark.parametrize(
    "failure",
    [
        OSError("connection reset by peer"),
        # asyncpg, when the server ended the connection in the middle of the traffic
        asyncpg.InternalClientError(
            "cannot switch to state 12; another operation (2) is in progress"
        ),
    ],
    ids=["network", "asyncpg state"],
)
async def test_events_published_while_the_connection_is_down_are_sent_after_it_is_back(
    failure: Exception,
) -> None:
    made = [FakeConnection(fail=failure), FakeConnection()]
    connections = iter(made)

    async def connect(_dsn: str) -> FakeConnection:
        return next(connections)

    hub = EventHub()
    notifier = Notifier("postgresql://nowhere/x", hub, backoff=QUICK, connect=connect)
    async with hub.subscribe() as events:
        await notifier.start()
        try:
            hub.publish(Event("decision", 3))
            hub.publish(Event("handoff", 3))
            assert (await next_event(events, RESYNC)).remote
            async with asyncio.timeout(10):
                while not made[1].sent:
                    await asyncio.sleep(0.01)
        finally:
            await notifier.stop()
    sent = [payload for batch in made[1].sent for payload in batch]
    assert [p.split('"k":')[1].split(",")[0] for p in sent] == ['"decision"', '"handoff"']


async def test_events_close_together_go_in_one_round_trip() -> None:
    """A message's events (stored, decided, sent) come within milliseconds of each other: the
    first waits for the others (``gather_seconds``), and all go in one batch."""
    made = FakeConnection()

    async def connect(_dsn: str) -> FakeConnection:
        return made

    notifier = Notifier(
        "postgresql://nowhere/x", EventHub(), backoff=QUICK, connect=connect, gather_seconds=0.2
    )
    await notifier.start()
    try:
        for kind in ("customer_message", "decision", "sent"):
            notifier.send(Event(kind, 4))
            for _ in range(3):
                await asyncio.sleep(0)  # the relay's turn: before, it sent each event alone
        async with asyncio.timeout(10):
            while not made.sent:
                await asyncio.sleep(0.01)
    finally:
        await notifier.stop()
    assert [len(batch) for batch in made.sent] == [3]


@pytest.mark.parametrize("late, logged", [(0.0, True), (60.0, False)], ids=["late", "on time"])
async def test_events_sent_late_are_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, late: float, logged: bool
) -> None:
    """A worker that falls behind says so: an event sent later than ``LATE`` after it happened
    is logged with its delay (the other workers' inbox views show it that late)."""
    monkeypatch.setattr(notify, "LATE", late)
    made = FakeConnection()

    async def connect(_dsn: str) -> FakeConnection:
        return made

    notifier = Notifier("postgresql://nowhere/x", EventHub(), backoff=QUICK, connect=connect)
    caplog.set_level(logging.INFO, logger="carebot.cluster.notify")
    await notifier.start()
    try:
        notifier.send(Event("customer_message", 4))
        async with asyncio.timeout(10):
            while not made.sent:
                await asyncio.sleep(0.01)
    finally:
        await notifier.stop()
    said = re.findall(
        r"Sent 1 event\(s\) to the other workers, the oldest [\d.]+ s after", caplog.text
    )
    assert len(said) == (1 if logged else 0), caplog.text


class SilentConnection(FakeConnection):
    """A connection whose network went quiet: the ping never returns (its timeout notices)."""

    async def fetchval(self, _query: str) -> object:
        await asyncio.Event().wait()


async def test_a_silent_connection_is_noticed_by_the_ping_and_replaced() -> None:
    made: list[SilentConnection] = []

    async def connect(_dsn: str) -> SilentConnection:
        made.append(SilentConnection())
        return made[-1]

    hub = EventHub()
    notifier = Notifier(
        "postgresql://nowhere/x", hub, ping_seconds=0.05, backoff=QUICK, connect=connect
    )
    async with hub.subscribe() as events:
        await notifier.start()
        try:
            assert await next_event(events, RESYNC) == Event(RESYNC, 0, remote=True)
        finally:
            await notifier.stop()
    assert len(made) >= 2 and made[0].closed


async def test_malformed_notifications_are_ignored_and_counted_out() -> None:
    hub = EventHub()
    notifier = Notifier("postgresql://nowhere/x", hub)
    async with hub.subscribe() as events:
        for payload in ("not json", '{"o": "x"}', '{"o": "x", "k": "decision", "c": "one"}'):
            notifier._on_notify(None, 1, "carebot_events", payload)
        notifier._on_notify(None, 1, "carebot_events", '{"o":"x","k":"closed","c":5}')
        assert events.get_nowait() == Event("closed", 5, remote=True)
        assert events.empty() and notifier.received == 1


# --- real workers ------------------------------------------------------------------------


def worker_config(tmp_path: Path, database_url: str) -> Path:
    sections = settings_data(
        tmp_path,
        store={"url": database_url},
        server={"secret_env": "CAREBOT_SECRET_KEY"},
        inbox={
            "agents": [
                {"name": "ann", "display_name": "Ann", "password_hash": hash_password(PASSWORD)}
            ]
        },
    )
    return write_config(tmp_path / "config.toml", sections)


async def log_in(http: aiohttp.ClientSession, worker: ServeProcess) -> None:
    async with http.get(f"{worker.url}/inbox/login") as response:
        csrf = CSRF.search(await response.text())
    assert csrf is not None
    form = {"name": "ann", "password": PASSWORD, "csrf": csrf.group(1), "next": "/inbox"}
    async with http.post(f"{worker.url}/inbox/login", data=form, allow_redirects=False) as sent:
        assert sent.status == 303, await sent.text()


async def message_frame(visitor: Visitor, author: str) -> dict[str, Any]:
    while True:
        frame = await visitor.next_of("message", timeout=20)
        if frame["author"] == author:
            return frame


@ON_POSTGRESQL
async def test_replies_and_live_events_cross_workers(tmp_path: Path, database_url: str) -> None:
    """A visitor with a tab on worker 1 and another on worker 2; an agent on worker 2. The
    bot's answer (sent by worker 1) reaches the tab on worker 2; the agent's reply (sent by
    worker 2) reaches the tab on worker 1; worker 2's inbox live view sees worker 1's events."""
    migrated = Database(database_url)
    await migrated.upgrade()
    await migrated.close()
    config = worker_config(tmp_path, database_url)
    jar = aiohttp.CookieJar(unsafe=True)
    async with (
        serving(config, 2, env={"CAREBOT_SECRET_KEY": SECRET}) as (one, two),
        aiohttp.ClientSession(cookie_jar=jar) as http,
    ):
        tab1 = Visitor(await http.ws_connect(f"{one.url}/chat/ws"))
        await tab1.hello()
        tab2 = Visitor(await http.ws_connect(f"{two.url}/chat/ws"))
        assert (await tab2.hello(tab1.token))["type"] == "welcome"
        await log_in(http, two)
        live = await http.ws_connect(f"{two.url}/inbox/events")

        await tab1.say("where is my order")
        answer = await message_frame(tab1, "bot")
        assert answer["text"] == "Track it at https://track.example."
        echo = await message_frame(tab2, "customer")  # the other tab, on the other worker
        assert echo["text"] == "where is my order"
        assert await message_frame(tab2, "bot") == answer  # the same frame, id and all
        kinds = set()
        while "decision" not in kinds:
            changed = await live.receive_json(timeout=20)
            kinds.add(changed["kind"])
        assert "customer_message" in kinds

        await tab1.say("where is my order, I will call my lawyer")
        handoff = await message_frame(tab1, "bot")
        assert handoff["handoff"] is True
        async with http.get(f"{two.url}/inbox") as response:
            queue = await response.text()
        conversation = re.search(r'data-conversation-id="(\d+)"', queue)
        assert conversation is not None
        page = f"{two.url}/inbox/c/{conversation.group(1)}"
        async with http.get(page) as response:
            csrf = CSRF.search(await response.text())
        assert csrf is not None
        form = {"text": "Hi, Ann here. Let me check.", "csrf": csrf.group(1)}
        async with http.post(f"{page}/reply", data=form, allow_redirects=False) as sent:
            assert sent.status == 303
        reply = await message_frame(tab1, "agent")  # sent by worker 2, pushed by worker 1
        assert (reply["agent"], reply["text"]) == ("Ann", "Hi, Ann here. Let me check.")
        assert (await message_frame(tab2, "agent"))["id"] == reply["id"]
        await live.close()
        for ws in (tab1.ws, tab2.ws):
            await ws.close()


GIFT_CARDS = """intents:
  - id: gift_cards
    title: Gift cards
    examples:
      - do you sell gift vouchers
      - gift voucher balance
    answer: Gift vouchers are sold at the till.
"""


@ON_POSTGRESQL
async def test_an_intent_edit_is_live_on_every_worker(tmp_path: Path, database_url: str) -> None:
    """A new intent file saved on the machine: the worker whose watcher reloads first tells
    the other, which reads the folder again on that notice (as it must where a network folder
    gives no change notices) and answers from the new intents."""
    migrated = Database(database_url)
    await migrated.upgrade()
    await migrated.close()
    intents = tmp_path / "intents"
    shutil.copytree(TEST_INTENTS, intents)
    sections = settings_data(tmp_path, store={"url": database_url})
    sections["matcher"]["intents_dir"] = str(intents)
    config = write_config(tmp_path / "config.toml", sections)
    async with (
        serving(config, 2, env={"CAREBOT_SECRET_KEY": SECRET}) as (one, two),
        aiohttp.ClientSession() as http,
    ):
        for worker in (one, two):
            await worker.wait_for_line("Watching")
        customer = Visitor(await http.ws_connect(f"{two.url}/chat/ws"))
        await customer.hello()
        await customer.say("do you sell gift vouchers")
        assert (await message_frame(customer, "bot"))[
            "text"
        ] != "Gift vouchers are sold at the till."

        (intents / "gifts.yaml").write_text(GIFT_CARDS)
        for worker in (one, two):  # each heard the other (its own watcher may have been first)
            await worker.wait_for_line("Another worker reloaded the intents")
        await customer.say("do you sell gift vouchers")
        assert (await message_frame(customer, "bot"))[
            "text"
        ] == "Gift vouchers are sold at the till."
        await customer.ws.close()


async def test_a_subscriber_that_fell_behind_is_told_to_look_again_not_left_short() -> None:
    hub = EventHub()
    async with hub.subscribe(size=3) as queue:
        for conversation in range(1, 6):
            hub.publish(Event("customer_message", conversation))
        kinds = [(e.kind, e.conversation_id) for e in [queue.get_nowait() for _ in range(3)]]
        assert queue.empty()
    # the fourth event met a full queue: the three it held became one resync before it
    assert kinds == [(RESYNC, 0), ("customer_message", 4), ("customer_message", 5)]
