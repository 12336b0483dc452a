"""A running carebot service for tests: the real aiohttp app on loopback, fake encoder."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer
from sqlalchemy import func, select

from carebot.config import Settings
from carebot.desk.auth import hash_password
from carebot.nlu.encoder import Encoder
from carebot.outbox import OutboxWorker
from carebot.runtime import build_runtime
from carebot.server import Service, build_app
from carebot.store.database import Database
from carebot.store.tables import Message, OutboxRow
from tests.conftest import EXACT_BACKOFF, Clock, make_settings
from tests.fakes import FakeEncoder
from tests.migrated import migrate

AGENT_PASSWORD = "correct horse battery"
UPSET = "where is my order, I will call my lawyer"
_HASH = hash_password(AGENT_PASSWORD)


def service_settings(tmp_path: Path, **sections: dict[str, Any]) -> Settings:
    defaults: dict[str, dict[str, Any]] = {
        "inbox": {"agents": [{"name": "ann", "display_name": "Ann", "password_hash": _HASH}]},
        "server": {"secret_file": str(tmp_path / "secret_key")},
    }
    for name, values in sections.items():
        defaults[name] = {**defaults.get(name, {}), **values}
    return make_settings(tmp_path, **defaults)


@asynccontextmanager
async def running_service(
    settings: Settings,
    database_url: str,
    clock: Clock | None = None,
    env: Mapping[str, str] | None = None,
    encoder: Encoder | None = None,
    runtime_options: Mapping[str, Any] | None = None,
    **app_options: Any,
) -> AsyncIterator[tuple[Service, TestServer]]:
    """The service on loopback; ``env`` holds Slack tokens (none by default: no Slack desk);
    ``app_options`` go to :func:`build_app` (``login_sleep``), ``runtime_options`` to
    :func:`build_runtime` (``post_classifier``...). Closing the server runs the
    service's whole shutdown (aiohttp's cleanup). The database is migrated first (an empty one
    gets a copy of the migrated template: tests/migrated.py)."""
    await migrate(database_url)
    runtime = await build_runtime(
        settings,
        encoder=encoder or FakeEncoder(),
        database_url=database_url,
        backoff=EXACT_BACKOFF,
        **({"clock": clock} if clock else {}),
        **(runtime_options or {}),
    )
    service = build_app(settings, runtime, env=env or {}, **app_options)
    server = TestServer(service.app)
    await server.start_server()
    try:
        yield service, server
    finally:
        await server.close()


class Visitor:
    """A web chat customer speaking the widget's protocol."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.token: str | None = None
        self.history: list[dict[str, Any]] = []
        # Messages that came while :meth:`next_of` waited for another kind of frame (a reply
        # may come just before its message's ack): the next ones :meth:`receive` gives.
        self._backlog: list[dict[str, Any]] = []

    async def hello(self, token: str | None = None, language: str | None = None) -> dict[str, Any]:
        """Say hello as the widget does; ``language``: the one the visitor's browser prefers."""
        frame = {"type": "hello", "token": token, "language": language}
        await self.ws.send_json(frame | {"languages": [language] if language else []})
        frame = await self.receive()
        if frame["type"] == "welcome":
            self.token, self.history = frame["token"], frame["history"]
        return frame

    async def say(self, text: str, message_id: str | None = None) -> str:
        message_id = message_id or str(uuid.uuid4())
        await self.ws.send_json({"type": "message", "id": message_id, "text": text})
        return message_id

    async def receive(self, timeout: float = 10.0) -> dict[str, Any]:
        if self._backlog:
            return self._backlog.pop(0)
        frame: dict[str, Any] = await self.ws.receive_json(timeout=timeout)
        return frame

    async def next_of(self, kind: str | tuple[str, ...], timeout: float = 10.0) -> dict[str, Any]:
        """The next frame of a type (or of one of the types), skipping the others; messages
        skipped are kept for later."""
        kinds = (kind,) if isinstance(kind, str) else kind
        kept = []
        try:
            while True:
                frame = await self.receive(timeout)
                if frame["type"] in kinds:
                    return frame
                if frame["type"] == "message":
                    kept.append(frame)
        finally:
            self._backlog[:0] = kept


async def after_joining(customer: Visitor, agent: str = "Ann") -> dict[str, Any]:
    """The customer's next message after the notice that ``agent`` joined, which an agent's
    first action in a conversation (a take-over, a reply, the draft) sends first."""
    joined = await customer.next_of("message")
    assert (joined["author"], joined["text"]) == (
        "bot",
        f"{agent} from our team has joined the conversation.",
    )
    return await customer.next_of("message")


@asynccontextmanager
async def upset_customer(server: TestServer) -> AsyncIterator[Visitor]:
    """A web chat customer whose upset message has just been handed off."""
    async with aiohttp.ClientSession() as http:
        customer = Visitor(await http.ws_connect(server.make_url("/chat/ws")))
        await customer.hello()
        await customer.say(UPSET)
        await customer.next_of("message")
        yield customer


async def messages(service: Service) -> list[tuple[str, str]]:
    """(author, text) of every stored message, in order."""
    async with service.runtime.db.session() as session:
        found = await session.execute(select(Message.author, Message.text).order_by(Message.id))
        return [(author, words) for author, words in found.all()]


async def outbox(service: Service) -> list[OutboxRow]:
    """Every outbox row, in order."""
    async with service.runtime.db.session() as session:
        return list((await session.scalars(select(OutboxRow).order_by(OutboxRow.id))).all())


async def count_rows(db: Database, table: type) -> int:
    async with db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(table)) or 0)


def paused_worker(service: Service) -> OutboxWorker:
    """The outbox, its worker stopped: from here the test delivers due replies itself."""
    service.runtime.outbox.stop()
    return service.runtime.outbox


@asynccontextmanager
async def logged(logger: str, text: str) -> AsyncIterator[asyncio.Event]:
    """An event set once ``logger`` (or a child) logs a message containing ``text`` at INFO or
    above: a test waits on what the code says it is doing, instead of sleeping."""
    seen = asyncio.Event()

    class Watch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if text in record.getMessage():
                seen.set()

    target = logging.getLogger(logger)
    handler, level = Watch(logging.INFO), target.level
    target.addHandler(handler)
    if target.getEffectiveLevel() > logging.INFO:
        target.setLevel(logging.INFO)
    try:
        yield seen
    finally:
        target.removeHandler(handler)
        target.setLevel(level)
