"""The shutdown end to end: a reply owed to a customer when SIGTERM arrives reaches the
platform exactly once, and nothing is left pending.

In process, closing the test server runs aiohttp's shutdown and cleanup, the very steps
``serve`` runs on SIGTERM; one test runs ``carebot serve`` as a real process and sends it a
real SIGTERM. The services run on the tests' clock, which stands still: a failed send is due
again only once a test moves the clock past its wait.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from carebot.cli.chat import run_chat
from carebot.exceptions import ShutdownError
from carebot.runtime import build_runtime
from carebot.server import build_app, run_service
from carebot.store.database import Database
from carebot.store.tables import OutboxRow
from tests import graph_standin as meta
from tests.conftest import ROOT, Clock, make_settings, settings_data
from tests.fakes import FakeEncoder, GatedEncoder, RecordingChannel
from tests.graph_standin import GraphStandIn
from tests.migrated import migrate
from tests.serve_process import SERVE, free_port, write_config
from tests.service import Visitor, logged, paused_worker, running_service, service_settings
from tests.telegram_standin import TelegramStandIn, text_update
from tests.webhook_standin import ReplyReceiver, post_inbound

ORDER = "where is my order"
TRACK = "Track it at https://track.example."
CHAT = 6161
TOKEN = "EAAshutdown"
SECRET = "shutdown-secret"
META_ENV = {"WHATSAPP_TOKEN": TOKEN, "MESSENGER_PAGE_TOKEN": TOKEN}
META_ENV |= {"META_APP_SECRET": SECRET, "META_VERIFY_TOKEN": "verify"}
ACCOUNTS = {"whatsapp": "1111", "messenger": "2222"}
TEARDOWN = [
    "stop inbound",
    "finish in-flight work",
    "flush the outbox",
    "close platform clients",
    "close the database",
]


async def outbox_rows(database_url: str) -> list[tuple[str, int]]:
    """(status, attempts) of every reply, read afresh: the service's database is closed."""
    db = Database(database_url)
    try:
        async with db.session() as session:
            rows = await session.execute(
                select(OutboxRow.status, OutboxRow.attempts).order_by(OutboxRow.id)
            )
            return [(status, attempts) for status, attempts in rows.all()]
    finally:
        await db.close()


@dataclass
class Platform:
    """A platform a customer writes on; it refuses carebot's first attempt at the reply."""

    sections: dict[str, dict[str, Any]]
    env: dict[str, str]
    write: Callable[[TestServer], Awaitable[None]]  # returns once the failed send is recorded
    delivered: Callable[[], list[str]]  # the replies the platform accepted


@asynccontextmanager
async def telegram() -> AsyncIterator[Platform]:
    async with TelegramStandIn() as tg:
        tg.fail_next("sendMessage", 502)

        async def write(_server: TestServer) -> None:
            tg.push(text_update(CHAT, ORDER))
            # Polling again means the update was handled: its reply tried, and the failure kept.
            await tg.wait_for(lambda s: len(s.calls_of("sendMessage")) == 1 and s.waiting_polls)

        sections = {
            "telegram": {"enabled": True, "api_url": f"{tg.url}/bot", "poll_timeout": 5},
            "server": {"public_url": "https://care.example"},
        }
        env = {"TELEGRAM_BOT_TOKEN": tg.token}
        yield Platform(sections, env, write, lambda: [m["text"] for m in tg.sent])


@asynccontextmanager
async def meta_channel(kind: str) -> AsyncIterator[Platform]:
    account = ACCOUNTS[kind]
    async with GraphStandIn(access_token=TOKEN, version="v21.0") as graph:
        if kind == "whatsapp":
            graph.whatsapp_number(account)
            event = meta.whatsapp_text(account, "4915100000002", ORDER)
        else:
            graph.page(account)
            event = meta.messenger_text(account, "6100000000000002", ORDER)
        graph.fail_next(account, 500, 2)  # a temporary Graph error

        async def write(server: TestServer) -> None:
            url = str(server.make_url("/meta/webhook"))
            assert await meta.post_webhook(url, event, app_secret=SECRET) == (200, "EVENT_RECEIVED")

        def delivered() -> list[str]:
            if kind == "whatsapp":
                return [sent.body["text"]["body"] for sent in graph.sent]
            return [sent.body["message"]["text"] for sent in graph.sent]

        sections = {
            kind: {"enabled": True, "account_id": account},
            "meta": {"graph_url": graph.url, "api_version": "v21.0"},
        }
        yield Platform(sections, META_ENV, write, delivered)


@asynccontextmanager
async def webhook() -> AsyncIterator[Platform]:
    async with ReplyReceiver(SECRET) as receiver:
        receiver.fail_next(503)

        async def write(server: TestServer) -> None:
            body = {"id": "evt_shutdown", "user": {"id": "42"}, "text": ORDER}
            url = str(server.make_url("/webhook"))
            assert await post_inbound(url, body, secret=SECRET) == (200, {"ok": True})

        sections = {"webhook": {"enabled": True, "reply_url": receiver.url}}
        env = {"CAREBOT_WEBHOOK_SECRET": SECRET}
        yield Platform(sections, env, write, lambda: [b["text"] for b in receiver.received])


def platform(kind: str) -> AbstractAsyncContextManager[Platform]:
    if kind in ACCOUNTS:
        return meta_channel(kind)
    return telegram() if kind == "telegram" else webhook()


@pytest.mark.parametrize("kind", ["telegram", "whatsapp", "messenger", "webhook"])
async def test_a_reply_due_at_sigterm_reaches_the_platform_once(
    kind: str, tmp_path: Path, database_url: str, clock: Clock
) -> None:
    async with platform(kind) as owed:
        settings = service_settings(tmp_path, **owed.sections)
        async with running_service(settings, database_url, clock, env=owed.env) as running:
            service, server = running
            await owed.write(server)
            assert owed.delivered() == []  # refused once: pending, due again in 1 s
            paused_worker(service)  # from here on only the shutdown sends
            clock.advance(1)
            await server.close()  # SIGTERM: aiohttp's shutdown and cleanup, as serve runs them
        assert owed.delivered() == [TRACK]
    assert await outbox_rows(database_url) == [("sent", 2)]


async def frames_until_closed(visitor: Visitor) -> list[dict[str, Any]]:
    frames = []
    while (message := await visitor.ws.receive(timeout=10)).type is aiohttp.WSMsgType.TEXT:
        frames.append(json.loads(message.data))
    return frames


async def test_a_web_chat_message_in_hand_at_sigterm_is_answered_once(
    tmp_path: Path, database_url: str, clock: Clock
) -> None:
    """The web chat's customer is owed the answer to the message in hand: it is pushed to their
    tab before the socket closes (1001: the widget reconnects and shows the history)."""
    encoder = GatedEncoder()
    settings = service_settings(tmp_path)
    async with (
        running_service(settings, database_url, clock, encoder=encoder) as (_service, server),
        aiohttp.ClientSession() as http,
    ):
        visitor = Visitor(await http.ws_connect(server.make_url("/chat/ws")))
        await visitor.hello()
        encoder.hold(ORDER)
        await visitor.say(ORDER)
        assert await asyncio.to_thread(encoder.holding.wait, 10)  # being matched right now
        async with logged("carebot.lifecycle", "Shutdown: stop inbound") as stopping:
            closing = asyncio.create_task(server.close())
            await stopping.wait()
        encoder.gate.set()
        frames = await frames_until_closed(visitor)
        await closing
        assert visitor.ws.close_code == 1001
    assert [f["text"] for f in frames if f["type"] == "message"] == [TRACK]
    assert await outbox_rows(database_url) == [("sent", 1)]


def config_file(tmp_path: Path, database_url: str, tg: TelegramStandIn) -> Path:
    sections = settings_data(
        tmp_path,
        store={"url": database_url},
        server={"secret_file": str(tmp_path / "secret_key")},
        telegram={"enabled": True, "api_url": f"{tg.url}/bot", "poll_timeout": 5},
    )
    return write_config(tmp_path / "config.toml", sections)


async def read_until(process: asyncio.subprocess.Process, text: str, lines: list[str]) -> None:
    """Read the process's output into ``lines`` until a line holding ``text``."""
    assert process.stdout is not None
    async with asyncio.timeout(60):
        while raw := await process.stdout.readline():
            lines.append(raw.decode().rstrip("\n"))
            if text in lines[-1]:
                return
    raise AssertionError(f"{text!r} never came:\n" + "\n".join(lines))


async def test_sigterm_to_a_real_process_finishes_the_reply_in_flight_and_stops_in_order(
    tmp_path: Path, database_url: str
) -> None:
    """``carebot serve`` with Telegram: SIGTERM arrives while the platform is slow to accept a
    reply. The process waits for it, stops in the documented order and exits 0."""
    await migrate(database_url)
    async with TelegramStandIn() as tg:
        config = config_file(tmp_path, database_url, tg)
        process = await asyncio.create_subprocess_exec(
            *(sys.executable, "-c", SERVE, "-v", "-c", str(config), "serve"),
            *("--host", "127.0.0.1", "--port", str(free_port())),
            cwd=ROOT,
            env={**os.environ, "TELEGRAM_BOT_TOKEN": tg.token},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output: list[str] = []
        try:
            await read_until(process, "carebot is serving on", output)
            gate = tg.hold_next("sendMessage")
            update_id = tg.push(text_update(CHAT, ORDER))
            await tg.wait_for(lambda s: s.holding == ["sendMessage"])  # the reply is on its way
            process.send_signal(signal.SIGTERM)
            await read_until(process, "Shutdown: stop inbound", output)
            gate.set()  # the platform answers, after the shutdown has begun
            await read_until(process, "Stopped.", output)
            assert await asyncio.wait_for(process.wait(), 60) == 0, "\n".join(output)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        assert [message["text"] for message in tg.sent] == [TRACK]
        confirmed = {"offset": str(update_id + 1), "timeout": "0"}
        assert any(confirmed.items() <= c.params.items() for c in tg.calls_of("getUpdates"))
    steps = [next(i for i, line in enumerate(output) if f"Shutdown: {s}" in line) for s in TEARDOWN]
    assert steps == sorted(steps), "\n".join(output)
    assert await outbox_rows(database_url) == [("sent", 1)]


async def test_chat_answers_and_stops_in_the_same_order(
    tmp_path: Path, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    await migrate(database_url)
    settings = make_settings(tmp_path, store={"url": database_url})
    out = io.StringIO()
    caplog.set_level(logging.INFO, logger="carebot.lifecycle")

    await run_chat(
        settings,
        explain=True,
        store=True,  # the database under test, not a throwaway one
        stdin=io.StringIO(ORDER + "\n"),
        stdout=out,
        encoder=FakeEncoder(),
    )

    bot, decision = out.getvalue().splitlines()
    assert bot == f"bot> {TRACK}"
    assert decision.startswith("decision: answer intent=order_status")
    begun = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Shutdown: ")]
    assert [line.split(" (")[0].removeprefix("Shutdown: ") for line in begun] == TEARDOWN
    assert await outbox_rows(database_url) == [("sent", 1)]


class HangsUpOnClose(RecordingChannel):
    async def close(self) -> None:
        await super().close()
        raise ConnectionResetError("the platform hung up")


async def test_a_failing_step_is_reported_by_name_and_the_rest_still_runs(
    tmp_path: Path, database_url: str, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    settings = service_settings(tmp_path)
    await migrate(database_url)
    runtime = await build_runtime(
        settings, encoder=FakeEncoder(), database_url=database_url, clock=clock
    )
    broken = HangsUpOnClose("broken")
    runtime.add_channel(broken)
    service = build_app(settings, runtime, env={})
    stop, out = asyncio.Event(), io.StringIO()
    stop.set()  # SIGTERM as soon as it serves
    caplog.set_level(logging.INFO, logger="carebot.lifecycle")

    with pytest.raises(ShutdownError) as raised:
        await run_service(
            service, host="127.0.0.1", port=free_port(), stop=stop, shutdown_timeout=5, out=out
        )

    assert raised.value.steps == ["close platform clients: channel broken"]
    failure = next(r for r in caplog.records if r.levelno == logging.ERROR)
    assert failure.getMessage() == "Shutdown step 'close platform clients: channel broken' failed"
    assert "the platform hung up" in logging.Formatter().format(failure)  # with its traceback
    begun = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Shutdown: ")]
    assert begun[-1].startswith("Shutdown: close the database")  # the next step still ran
    # stopped as aiohttp's shutdown began, and again (harmless) in the inbound cleanup context
    assert broken.lifecycle == ["start", "stop", "stop", "close"]
    assert "Stopping:" in out.getvalue() and "Stopped." not in out.getvalue()
