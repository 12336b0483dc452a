"""The channel contract (carebot/channel.py), one suite for every implementation: each adapter
on its platform's local stand-in, the terminal channel, and the tests' fake.

* ``send`` returns the platform's id of the message (None where the platform gives none);
* ``stop`` ends receiving (the platform's next event is refused) and sending goes on, so the
  outbox can still be flushed; stopping twice is harmless;
* after ``close`` (which stops first if need be) ``send`` raises DeliveryError and reaches
  nothing; closing twice is harmless;
* stopping and closing a channel that never started are harmless too.
"""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from telegram import Bot

from carebot.adapters.graph import GraphApi
from carebot.adapters.meta import MessengerChannel, MetaWebhook, WhatsAppChannel
from carebot.adapters.telegram import TelegramChannel
from carebot.adapters.terminal import TerminalChannel
from carebot.adapters.webchat import WebChatChannel
from carebot.adapters.webhook import WebhookChannel
from carebot.adapters.x import WEBHOOK_PATH as X_WEBHOOK
from carebot.adapters.x import XChannel
from carebot.adapters.x_api import XApi
from carebot.channel import Channel
from carebot.config import TelegramSettings, WebChatSettings
from carebot.exceptions import DeliveryError
from carebot.models import ChannelEvent, OutboundReply, TranscriptLine
from carebot.pacing import Pacer
from carebot.signing import Signer
from tests import graph_standin as meta
from tests import x_standin as x
from tests.fakes import RecordingChannel
from tests.graph_standin import GraphStandIn
from tests.telegram_standin import TelegramStandIn, post_update, text_update
from tests.webhook_standin import ReplyReceiver, post_inbound
from tests.x_standin import XStandIn

KEY = b"contract-test-key-0123456789abcdef"
SECRET = "contract-secret_1"
TOKEN = "EAAcontract"
CHAT = 5151
ACCOUNTS = {"whatsapp": "1111", "messenger": "2222", "instagram": "3333"}
X_BRAND = "1500000000000000001"
KINDS = [
    "fake",
    "telegram",
    "whatsapp",
    "messenger",
    "instagram",
    "webhook",
    "webchat",
    "terminal",
    "x",
]
WITH_IDS = {"fake", "telegram", "whatsapp", "messenger", "instagram", "x"}  # platforms give one


@dataclass
class Rig:
    """A channel wired to its platform's stand-in, and what the tests need to watch it."""

    channel: Channel
    customer: Callable[[], Awaitable[str]]  # someone the channel can reach now: their id
    held: Callable[[], int]  # messages the platform (or the customer) holds now
    arrived: Callable[[int], Awaitable[str | None]]  # wait for the n-th; the platform's id of it
    offer: Callable[[], Awaitable[bool]] | None = None  # one inbound event: was it taken?
    live_after_stop: bool = True  # the web chat closes its sockets when it stops
    received: list[ChannelEvent] = field(default_factory=list)
    # what the platform (or the customer) got so far, as the platform has it: a Telegram
    # sendMessage, a Graph API body, a web chat frame, a webhook body, a terminal line
    payloads: Callable[[], list[Any]] = lambda: []

    async def deliver(self, event: ChannelEvent) -> None:
        self.received.append(event)

    def reply(self, user: str, text: str) -> OutboundReply:
        return OutboundReply(
            outbox_id=1, channel=self.channel.name, external_user_id=user, text=text
        )


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[TestServer]:
    server = TestServer(app)
    await server.start_server()
    try:
        yield server
    finally:
        await server.close()


async def fixed(value: str) -> str:
    return value


@asynccontextmanager
async def fake_rig() -> AsyncIterator[Rig]:
    channel = RecordingChannel("fake")

    async def arrived(n: int) -> str | None:
        assert len(channel.sent) >= n
        return f"fake-{n}"

    async def offer() -> bool:  # no platform: it says whether it takes inbound
        return channel.receiving

    rig = Rig(channel, lambda: fixed("u1"), lambda: len(channel.sent), arrived, offer)
    rig.payloads = lambda: list(channel.sent)
    yield rig


@asynccontextmanager
async def telegram_rig() -> AsyncIterator[Rig]:
    async with TelegramStandIn() as tg:
        bot = Bot(tg.token, base_url=f"{tg.url}/bot", base_file_url=f"{tg.url}/file/bot")
        cfg = TelegramSettings(enabled=True, mode="webhook", api_url=f"{tg.url}/bot")
        channel = TelegramChannel(
            bot=bot,
            settings=cfg,
            links=Signer(KEY, "telegram-file"),
            public_url="https://care.example",
            webhook_secret=SECRET,
            pacer=Pacer(10.0),  # as the Meta rigs: Telegram's one a second per chat is slow
        )
        app = web.Application()
        channel.mount(app)
        async with serving(app) as server:

            async def arrived(n: int) -> str | None:
                await tg.next_sent(n)
                return str(list(tg.messages)[n - 1])  # the ids Telegram gave, in order

            async def offer() -> bool:
                url = str(server.make_url("/telegram/webhook"))
                return await post_update(url, text_update(CHAT, "hello"), secret=SECRET) == 200

            rig = Rig(channel, lambda: fixed(str(CHAT)), lambda: len(tg.sent), arrived, offer)
            rig.payloads = lambda: list(tg.sent)
            yield rig
            await channel.close()  # a test that failed half-way leaves no client open


def meta_channel(kind: str, graph: GraphStandIn) -> WhatsAppChannel | MessengerChannel:
    api = GraphApi(base_url=graph.url, version="v21.0", token=TOKEN)
    account, pacer = ACCOUNTS[kind], Pacer(10.0)
    if kind == "whatsapp":
        graph.whatsapp_number(account)
        return WhatsAppChannel(
            api=api,
            account_id=account,
            pacer=pacer,
            links=Signer(KEY, "wa-media"),
            public_url="https://care.example",
        )
    graph.page(account)
    return MessengerChannel(name=kind, api=api, account_id=account, pacer=pacer)


def meta_event(kind: str) -> dict[str, Any]:
    if kind == "whatsapp":
        return meta.whatsapp_text(ACCOUNTS[kind], "4915100000001", "hello")
    if kind == "messenger":
        return meta.messenger_text(ACCOUNTS[kind], "6100000000000001", "hello")
    return meta.instagram_text(ACCOUNTS[kind], "17800001", "hello")


@asynccontextmanager
async def meta_rig(kind: str) -> AsyncIterator[Rig]:
    async with GraphStandIn(access_token=TOKEN, version="v21.0") as graph:
        channel = meta_channel(kind, graph)
        user = "4915100000001" if kind == "whatsapp" else "6100000000000001"
        webhook = MetaWebhook(app_secret=SECRET, verify_token="verify", channels=[channel])
        app = web.Application()
        rig = Rig(channel, lambda: fixed(user), lambda: len(graph.sent), lambda n: _graph(graph, n))
        rig.payloads = lambda: [sent.body for sent in graph.sent]
        webhook.mount(app, rig.deliver)
        async with serving(app) as server:

            async def offer() -> bool:
                url = str(server.make_url("/meta/webhook"))
                status, _ = await meta.post_webhook(url, meta_event(kind), app_secret=SECRET)
                return status == 200

            rig.offer = offer
            yield rig
            await channel.close()


async def _graph(graph: GraphStandIn, n: int) -> str | None:
    return (await graph.next_sent(n))[n - 1].message_id


@asynccontextmanager
async def webhook_rig() -> AsyncIterator[Rig]:
    async with ReplyReceiver(SECRET) as receiver:
        channel = WebhookChannel(secret=SECRET, reply_url=receiver.url)
        app = web.Application()
        channel.mount(app)
        async with serving(app) as server:

            async def arrived(n: int) -> str | None:
                await receiver.next_received(n)
                return None  # a webhook receiver answers 2xx, without an id

            async def offer() -> bool:
                body = {"id": uuid.uuid4().hex, "user": {"id": "42"}, "text": "hello"}
                url = str(server.make_url("/webhook"))
                status, _ = await post_inbound(url, body, secret=SECRET)
                return status == 200

            rig = Rig(channel, lambda: fixed("42"), lambda: len(receiver.received), arrived, offer)
            rig.payloads = lambda: list(receiver.received)
            yield rig
            await channel.close()


@asynccontextmanager
async def x_rig() -> AsyncIterator[Rig]:
    async with XStandIn(TOKEN) as api:
        client = XApi(base_url=api.url, token=TOKEN)
        channel = XChannel(api=client, user_id=X_BRAND, consumer_secret=SECRET, pacer=Pacer(10.0))
        app = web.Application()
        channel.mount(app)
        user = "2200000000000000002"
        async with serving(app) as server:

            async def arrived(n: int) -> str | None:
                return (await api.next_accepted(n))[n - 1].id

            async def offer() -> bool:
                url = str(server.make_url(X_WEBHOOK))
                dm = x.direct_message(X_BRAND, user, "hello")
                status, _ = await x.post_webhook(url, dm, secret=SECRET)
                return status == 200

            rig = Rig(channel, lambda: fixed(user), lambda: len(api.accepted), arrived, offer)
            rig.payloads = lambda: [call.body for call in api.accepted]
            yield rig
            await channel.close()


class Tab:
    """A visitor's open web chat tab, reading every frame as it comes."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.messages: list[dict[str, Any]] = []
        self._changed = asyncio.Condition()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for frame in self.ws:
            if frame.type is aiohttp.WSMsgType.TEXT and frame.json()["type"] == "message":
                async with self._changed:
                    self.messages.append(frame.json())
                    self._changed.notify_all()

    async def holding(self, n: int) -> None:
        async with asyncio.timeout(10), self._changed:
            await self._changed.wait_for(lambda: len(self.messages) >= n)


@asynccontextmanager
async def webchat_rig() -> AsyncIterator[Rig]:
    signer = Signer(KEY, "webchat-visitor")

    async def no_history(_visitor: str) -> list[TranscriptLine]:
        return []

    channel = WebChatChannel(settings=WebChatSettings(), signer=signer, transcript=no_history)
    app = web.Application()
    channel.mount(app)
    tabs: list[Tab] = []
    async with serving(app) as server, aiohttp.ClientSession() as http:

        async def customer() -> str:
            ws = await http.ws_connect(server.make_url("/chat/ws"))
            await ws.send_json({"type": "hello", "token": None})
            welcome = await ws.receive_json(timeout=10)
            tabs.append(Tab(ws))
            visitor = signer.verify(welcome["token"])
            assert visitor is not None
            return visitor

        async def arrived(n: int) -> str | None:
            await tabs[0].holding(n)
            return None  # pushed to the tab: the web chat has no message ids

        async def offer() -> bool:
            try:
                ws = await http.ws_connect(server.make_url("/chat/ws"))
            except aiohttp.WSServerHandshakeError as exc:
                assert exc.status == 503
                return False
            await ws.close()
            return True

        held = lambda: len(tabs[0].messages) if tabs else 0  # noqa: E731
        rig = Rig(channel, customer, held, arrived, offer, live_after_stop=False)
        rig.payloads = lambda: list(tabs[0].messages) if tabs else []
        yield rig
        await channel.close()


@asynccontextmanager
async def terminal_rig() -> AsyncIterator[Rig]:
    out = io.StringIO()
    channel = TerminalChannel(user="tess", stdin=io.StringIO(""), stdout=out)
    held = lambda: out.getvalue().count("bot> ")  # noqa: E731

    async def arrived(n: int) -> str | None:
        assert held() >= n  # printed by the time send returned
        return None

    yield Rig(
        channel, lambda: fixed("tess"), held, arrived, payloads=lambda: out.getvalue().splitlines()
    )


def rig(kind: str) -> AbstractAsyncContextManager[Rig]:
    if kind in ACCOUNTS:
        return meta_rig(kind)
    makers: dict[str, Callable[[], AbstractAsyncContextManager[Rig]]] = {
        "fake": fake_rig,
        "telegram": telegram_rig,
        "webhook": webhook_rig,
        "webchat": webchat_rig,
        "terminal": terminal_rig,
        "x": x_rig,
    }
    return makers[kind]()


@pytest.mark.parametrize("kind", KINDS)
async def test_send_returns_the_platforms_message_id(kind: str) -> None:
    async with rig(kind) as r:
        await r.channel.start(r.deliver)
        user = await r.customer()
        first = await r.channel.send(r.reply(user, "Your order ships today."))
        second = await r.channel.send(r.reply(user, "Anything else?"))
        assert [first, second] == [await r.arrived(1), await r.arrived(2)]
        if kind in WITH_IDS:
            assert first and second and first != second
        await r.channel.close()


@pytest.mark.parametrize("kind", KINDS)
async def test_stop_ends_receiving_and_sending_goes_on(kind: str) -> None:
    async with rig(kind) as r:
        await r.channel.start(r.deliver)
        user = await r.customer()
        if r.offer is not None:
            assert await r.offer() is True
        await r.channel.stop()
        await r.channel.stop()  # twice: harmless
        if r.offer is not None:
            assert await r.offer() is False  # the platform is told to deliver it again later
        taken = len(r.received)
        sent = await r.channel.send(r.reply(user, "Flushed at shutdown."))
        if r.live_after_stop:
            assert sent == await r.arrived(1)
        else:
            assert sent is None and r.held() == 0  # kept in the visitor's history instead
        await r.channel.close()
        await r.channel.close()  # twice: harmless
        assert len(r.received) == taken


@pytest.mark.parametrize("kind", KINDS)
async def test_a_closed_channel_refuses_to_send(kind: str) -> None:
    async with rig(kind) as r:
        await r.channel.start(r.deliver)
        user = await r.customer()
        await r.channel.close()  # without stop: it stops first
        if r.offer is not None:
            assert await r.offer() is False
        with pytest.raises(DeliveryError):
            await r.channel.send(r.reply(user, "Too late."))
        assert r.held() == 0
        await r.channel.stop()  # after close: harmless
        await r.channel.close()


@pytest.mark.parametrize("kind", KINDS)
async def test_stop_and_close_before_start_are_harmless(kind: str) -> None:
    async with rig(kind) as r:
        await r.channel.stop()
        await r.channel.stop()
        await r.channel.close()
        await r.channel.close()
        with pytest.raises(DeliveryError):
            await r.channel.send(r.reply("someone", "Never started."))
        assert r.held() == 0
