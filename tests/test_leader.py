"""One leader among the workers of a database (carebot.cluster.leader), and pacing divided
among the workers: the leadership on its own (SQLite and PostgreSQL, a lost connection), then
three real ``carebot serve`` processes on PostgreSQL polling one Telegram bot, the leader
killed for real."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import asyncpg
import pytest

from carebot.cluster.leader import LEADS, LOCK_KEY, STEPS_DOWN, Duty, Leadership
from carebot.pacing import Pacer
from carebot.store.database import Database
from tests.conftest import settings_data
from tests.migrated import migrate
from tests.serve_process import ServeProcess, serving, write_config
from tests.service import running_service, service_settings, upset_customer
from tests.slack_standin import SlackStandIn
from tests.telegram_standin import TelegramStandIn, post_update, text_update

ON_POSTGRESQL = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
FAST = {"retry_interval": 0.05, "check_interval": 0.05}
ORDER = "where is my order"
TRACK = "Track it at https://track.example."


class Duties:
    """Recording singletons: what started and stopped, in order, waited on without sleeping."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self._changed = asyncio.Condition()

    def part(self, name: str) -> Recording:
        return Recording(self, name)

    async def record(self, entry: str) -> None:
        async with self._changed:
            self.log.append(entry)
            self._changed.notify_all()

    def count(self, entry: str) -> int:
        return self.log.count(entry)

    async def until(self, check: Callable[[], bool], timeout: float = 30.0) -> None:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(check)


class Recording:
    def __init__(self, duties: Duties, name: str) -> None:
        self._duties, self._name = duties, name

    async def start(self) -> None:
        await self._duties.record(f"start {self._name}")

    async def stop(self) -> None:
        await self._duties.record(f"stop {self._name}")


def leadership(url: str, duties: Duties, name: str = "") -> Leadership:
    lead = Leadership.for_database(Database(url), **FAST)
    lead.add(Duty("sweep", duties.part(f"sweep{name}")))
    lead.add(Duty("polling", duties.part(f"polling{name}"), inbound=True))
    return lead


async def test_on_sqlite_the_one_process_leads_at_once_and_stops_inbound_first(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="carebot.cluster.leader")
    duties = Duties()
    lead = leadership(f"sqlite+aiosqlite:///{tmp_path / 'carebot.db'}", duties)
    await lead.start()
    assert lead.leading
    assert duties.log == ["start sweep", "start polling"]
    await lead.stop_inbound()
    assert duties.log[2:] == ["stop polling"]
    await lead.stop()
    await lead.stop()  # twice: harmless
    assert duties.log[2:] == ["stop polling", "stop sweep"]
    said = [r.getMessage() for r in caplog.records]
    assert sum(LEADS in m for m in said) == 1 and sum(STEPS_DOWN in m for m in said) == 1


@contextlib.asynccontextmanager
async def two_leaderships(
    database_url: str, duties: Duties
) -> AsyncIterator[tuple[Leadership, Leadership]]:
    """Two workers' leaderships of one database, started in turn (the first leads), both
    stopped at the end."""
    first, second = leadership(database_url, duties, "1"), leadership(database_url, duties, "2")
    await first.start()
    await second.start()
    try:
        yield first, second
    finally:
        await first.stop()
        await second.stop()


@ON_POSTGRESQL
async def test_on_postgresql_one_of_two_leads_and_the_other_takes_over_when_it_stops(
    database_url: str,
) -> None:
    duties = Duties()
    async with two_leaderships(database_url, duties) as (first, second):
        assert (first.leading, second.leading) == (True, False)
        assert duties.log == ["start sweep1", "start polling1"]
        await first.stop_inbound()  # shutting down: inbound first, the lock is still held
        assert not second.leading and duties.log[2:] == ["stop polling1"]
        await first.stop()
        await duties.until(lambda: duties.count("start polling2") == 1)
        assert duties.log[2:] == ["stop polling1", "stop sweep1", "start sweep2", "start polling2"]
        assert second.leading
    assert duties.log[-2:] == ["stop polling2", "stop sweep2"]


@ON_POSTGRESQL
async def test_a_leader_whose_connection_is_lost_stops_at_once_and_leads_again_later(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="carebot.cluster.leader")
    duties = Duties()
    lead = leadership(database_url, duties)
    await lead.start()
    try:
        assert lead.leading
        await terminate_lock_holder(database_url)
        await duties.until(lambda: duties.count("start sweep") == 2)
        assert duties.log == [
            *("start sweep", "start polling"),
            *("stop polling", "stop sweep"),  # stopped before it could lead again
            *("start sweep", "start polling"),
        ]
        said = [r.getMessage() for r in caplog.records]
        assert any("no longer leads (the connection to the database was lost)" in m for m in said)
    finally:
        await lead.stop()


@ON_POSTGRESQL
async def test_a_follower_that_loses_its_connection_reconnects_and_still_follows(
    database_url: str,
) -> None:
    duties = Duties()
    async with two_leaderships(database_url, duties) as (first, _second):
        await terminate(database_url, "pg_try_advisory_lock", holder=False)
        await first.stop()  # the follower, connected again, takes over
        await duties.until(lambda: duties.count("start polling2") == 1)


async def admin(database_url: str) -> asyncpg.Connection:
    return await asyncpg.connect(Database(database_url).asyncpg_dsn())


# Who holds the leader's lock in this test's database: advisory locks are per database, and a
# test on the other xdist worker holds the same key in its own (cutting that one instead left
# this test's leader leading: a 30 s timeout in a clean-clone CI run).
HOLDERS = (
    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "AND ((classid::bigint << 32) | objid::bigint) = $1"
)


async def terminate_lock_holder(database_url: str) -> None:
    """Cut the connection that holds the leader's lock, as a failover or network cut does."""
    conn = await admin(database_url)
    try:
        pid = await conn.fetchval(HOLDERS, LOCK_KEY)
        assert pid is not None, "nobody holds the leader's lock"
        assert await conn.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await conn.close()


async def terminate(database_url: str, query: str, *, holder: bool) -> None:
    """Cut the connections whose last query holds ``query`` (the lock holder's or not)."""
    conn = await admin(database_url)
    try:
        held = await conn.fetch(HOLDERS, LOCK_KEY)
        holders = {row["pid"] for row in held}
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND query LIKE $1 AND pid <> pg_backend_pid()",
            f"%{query}%",
        )
        pids = [r["pid"] for r in rows if (r["pid"] in holders) == holder]
        assert pids, f"no connection ran {query!r}"
        for pid in pids:
            await conn.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await conn.close()


# Pacing divided among the workers


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


@pytest.mark.parametrize("workers", [1, 2, 3])
async def test_each_worker_keeps_to_its_share_of_every_rate(workers: int) -> None:
    """Telegram's 1/s per chat (burst 3) and 30/s in all, shared by ``workers`` processes: the
    sends they make together stay within both."""
    time = FakeTime()
    pacers = [
        Pacer(1, burst=3, overall_per_second=30, workers=workers, clock=time, sleep=time.sleep)
        for _ in range(workers)
    ]
    at: list[float] = []  # when each send goes, all workers together (the clock stands still)
    for pacer in pacers:
        for _ in range(6):
            before = len(time.slept)
            await pacer.wait("chat-1")
            at.append(time.slept[-1] if len(time.slept) > before else 0.0)
    for window in range(0, 20):  # in any stretch of T seconds: at most T + burst sends
        assert sum(1 for t in at if t <= window) <= window + 3
    assert at[5] == pytest.approx((6 - max(1, 3 // workers)) * workers)

    overall = FakeTime()
    pacer = Pacer(
        1, burst=1, overall_per_second=30, workers=workers, clock=overall, sleep=overall.sleep
    )
    for chat in range(60):
        await pacer.wait(f"chat-{chat}")
    assert overall.slept[-1] == pytest.approx(59 * workers / 30)


def test_a_pacer_for_no_workers_is_refused() -> None:
    with pytest.raises(ValueError, match="workers must be 1 or more"):
        Pacer(1, workers=0)


# Three real workers on PostgreSQL


async def decided(worker: ServeProcess) -> bool:
    """Whether ``worker`` leads, once it said whether it leads or stands by."""
    line = await worker.wait_for_line("leads", timeout=60)
    return LEADS in line


async def first_to_lead(workers: Sequence[ServeProcess]) -> ServeProcess:
    waits = {asyncio.create_task(w.wait_for_line(LEADS, timeout=60)): w for w in workers}
    done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    task = done.pop()
    task.result()  # a timeout raises with the worker's output
    return waits[task]


async def answered(tg: TelegramStandIn, chats: Sequence[int], before: int) -> None:
    """Wait until each chat has its reply and every update is confirmed (the leader polls
    again), then check each chat was answered exactly once."""
    for chat in chats:
        tg.push(text_update(chat, ORDER))
    await tg.next_sent(before + len(chats), timeout=60)
    await tg.wait_for(lambda s: not s.pending and s.waiting_polls > 0, timeout=60)
    replies = [m for m in tg.sent if int(m["chat_id"]) in chats]
    assert sorted(int(m["chat_id"]) for m in replies) == sorted(chats)
    assert {m["text"] for m in replies} == {TRACK}


@ON_POSTGRESQL
async def test_three_workers_one_polls_and_another_takes_over_when_it_is_killed(
    tmp_path: Path, database_url: str
) -> None:
    await migrate(database_url)
    async with TelegramStandIn() as tg:
        tokens = [f"{tg.token}-worker{i}" for i in range(1, 4)]
        for token in tokens:
            tg.accept(token)
        sections = settings_data(
            tmp_path,
            store={"url": database_url},
            server={"secret_file": str(tmp_path / "secret_key")},
            telegram={"enabled": True, "api_url": f"{tg.url}/bot", "poll_timeout": 5},
        )
        config = write_config(tmp_path / "config.toml", sections)
        async with serving(
            config, len(tokens), envs=[{"TELEGRAM_BOT_TOKEN": t} for t in tokens]
        ) as workers:
            leads = [await decided(w) for w in workers]
            assert leads.count(True) == 1, "\n\n".join(w.output() for w in workers)
            first = workers[leads.index(True)]
            first_token = tokens[leads.index(True)]

            await answered(tg, [7001, 7002, 7003, 7004, 7005], before=0)
            assert set(tg.poll_tokens) == {first_token}  # one process polls
            assert tg.conflicts == 0

            polls_before_kill = len(tg.poll_tokens)
            first.kill()
            await first.process.wait()
            survivors = [w for w in workers if w is not first]
            second = await first_to_lead(survivors)
            second_token = tokens[workers.index(second)]

            await answered(tg, [7011, 7012, 7013, 7014, 7015], before=5)
            assert set(tg.poll_tokens[polls_before_kill:]) == {second_token}
            assert tg.conflicts == 0
            assert len(tg.sent) == 10  # every message answered once, none twice
            assert [w.said(LEADS) for w in survivors].count(True) == 1


@ON_POSTGRESQL
async def test_only_the_leader_registers_the_telegram_webhook_and_every_worker_takes_its_calls(
    tmp_path: Path, database_url: str
) -> None:
    """Two services on one database (in one process, each with its own connections): the
    webhook is registered once; calls are taken by both; when the leader stops, the other
    takes over and registers it again."""
    async with TelegramStandIn() as tg:
        settings = service_settings(
            tmp_path,
            telegram={"enabled": True, "api_url": f"{tg.url}/bot", "mode": "webhook"},
            server={"public_url": "https://care.example"},
        )
        env = {"TELEGRAM_BOT_TOKEN": tg.token, "TELEGRAM_WEBHOOK_SECRET": "hook-secret"}
        async with contextlib.AsyncExitStack() as stack:
            first, first_server = await stack.enter_async_context(
                running_service(settings, database_url, env=env)
            )
            second, second_server = await stack.enter_async_context(
                running_service(settings, database_url, env=env)
            )
            assert first.runtime.leadership and first.runtime.leadership.leading
            assert second.runtime.leadership and not second.runtime.leadership.leading
            assert len(tg.calls_of("setWebhook")) == 1
            for chat, server in ((7101, first_server), (7102, second_server)):
                url = str(server.make_url("/telegram/webhook"))
                assert await post_update(url, text_update(chat, ORDER), secret="hook-secret") == 200
            await tg.next_sent(2, timeout=30)
            await first_server.close()  # the leader stops: the other takes over
            await tg.wait_for(lambda s: len(s.calls_of("setWebhook")) == 2, timeout=30)
            assert second.runtime.leadership.leading
        assert sorted(int(m["chat_id"]) for m in tg.sent) == [7101, 7102]


@ON_POSTGRESQL
async def test_only_the_leader_keeps_slacks_socket_mode_and_posts_cards(
    tmp_path: Path, database_url: str
) -> None:
    """Two services on one database with Slack in Socket Mode: one connection, opened by the
    leader; a handoff taken by the follower gets one card, posted by the leader's thread sync;
    when the leader stops, the other connects."""
    async with SlackStandIn() as slack:
        slack.add_user("U0AGENT", name="ann", real_name="Ann Agent", display_name="Ann")
        slack.members = {"U0AGENT", "UBOT"}
        section = {"channel": "C0CARE", "api_url": slack.base_url, "posts_per_second": 1000.0}
        settings = service_settings(tmp_path, slack=section)
        env = {"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_APP_TOKEN": "xapp-test"}
        async with contextlib.AsyncExitStack() as stack:
            first, first_server = await stack.enter_async_context(
                running_service(settings, database_url, env=env)
            )
            second, second_server = await stack.enter_async_context(
                running_service(settings, database_url, env=env)
            )
            assert first.runtime.leadership and first.runtime.leadership.leading
            assert second.runtime.leadership and not second.runtime.leadership.leading
            await slack.wait_connected()
            async with upset_customer(second_server):  # received by the follower
                await slack.wait_for("chat.postMessage", lambda c: "thread_ts" not in c.params)
            assert slack.connections == 1
            await first_server.close()  # the leader stops: the other connects
            await slack.wait_connected(connections=2, timeout=30)
            assert second.runtime.leadership.leading
        cards = [m for m in slack.messages["C0CARE"] if "thread_ts" not in m]
        assert len(cards) == 1
