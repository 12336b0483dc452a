"""The survey on every channel, end to end: "did that answer your question?" with Yes / No
buttons after a bot answer, the 1-5 rating request after a resolution, and the customer's taps
and typed replies, through the real service and the platform stand-ins (Telegram Bot API, Meta
Graph API, the web chat's websocket), on SQLite and PostgreSQL. On WhatsApp and Messenger
nothing is asked once the 24-hour reply window has closed.

Each channel's customer taps what the platform shows: an inline keyboard button (Telegram), a
reply button or list row (WhatsApp), a quick reply (Messenger, Instagram); the web chat widget
sends a tapped choice's label as the customer's text (adapters/static/widget.js, ``choose``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import func, select

from carebot.config import Settings
from carebot.server import Service
from carebot.store.tables import Base, Conversation, DecisionRow, Handoff, OutboxRow, Survey
from tests.conftest import Clock
from tests.graph_standin import GraphStandIn, Sent, whatsapp_list_reply
from tests.service import Visitor, running_service, service_settings
from tests.telegram_standin import TelegramStandIn, callback_update, text_update
from tests.test_meta import ACCOUNTS, ENV, TOKEN, USERS, post, tap_event, text_event, words_of
from tests.webhook_standin import Json

CHAT = 4242
HOUR = 3600.0
ORDER = "where is my order"
TRACK = "Track it at https://track.example."
ASKED = f"{TRACK}\n\nDid that answer your question?"
RATING = (
    "How would you rate this conversation? Reply with a number from 1 (poor) to 5 (great); "
    "you can add a comment after it."
)
GLAD = f"Great, glad I could help!\n\n{RATING}"
THANKS = "Thank you for your rating!"
NOT_HELPFUL = (
    "Sorry that didn't help. I'm passing you to a person from our team, who will reply here."
)
YES_NO = [("yes", "Yes"), ("no", "No")]
ONE_TO_FIVE = [(str(n), str(n)) for n in range(1, 6)]
CHANNELS = ["telegram", "whatsapp", "messenger", "webchat"]
META = ["whatsapp", "messenger"]


@dataclass(frozen=True)
class Said:
    """A message the customer received: its text and the choices offered, (id, label)."""

    text: str
    choices: list[tuple[str, str]]


class Customer(Protocol):
    """A customer on one channel, speaking the platform's protocol."""

    async def say(self, text: str) -> None:
        """Type and send ``text``."""

    async def tap(self, choice_id: str) -> None:
        """Tap the choice ``choice_id`` of the last message received."""

    async def receive(self, count: int = 1) -> list[Said]:
        """The next ``count`` messages the customer receives."""


class TelegramCustomer:
    def __init__(self, tg: TelegramStandIn) -> None:
        self.tg = tg
        self._seen = 0
        self._last: Json = {}

    async def say(self, text: str) -> None:
        self.tg.push(text_update(CHAT, text))

    async def tap(self, choice_id: str) -> None:
        keyboard = self._last["reply_markup"]["inline_keyboard"]
        message_id = self._last["message_id"]
        self.tg.push(callback_update(CHAT, choice_id, message_id=message_id, keyboard=keyboard))

    async def receive(self, count: int = 1) -> list[Said]:
        sent = await self.tg.next_sent(self._seen + count)
        new = sent[self._seen :]
        self._seen += count
        self._last = list(self.tg.messages.values())[self._seen - 1]  # the Message, with its id
        return [Said(s["text"], _keyboard(s)) for s in new]


class MetaCustomer:
    def __init__(
        self, server: TestServer, graph: GraphStandIn, channel: str, user: str = ""
    ) -> None:
        self.server, self.graph, self.channel = server, graph, channel
        self.user = user or USERS[channel]
        self._seen = 0
        self._last: Sent | None = None

    async def say(self, text: str) -> None:
        event = text_event(self.channel, text, user=self.user)
        assert await post(self.server, event) == (200, "EVENT_RECEIVED")

    async def tap(self, choice_id: str) -> None:
        assert self._last is not None
        label = dict(offered(self.channel, self._last))[choice_id]
        context = self._last.message_id
        if self._last.body.get("interactive", {}).get("type") == "list":
            event = whatsapp_list_reply(
                ACCOUNTS[self.channel], self.user, choice_id, label, context_id=context
            )
        else:
            event = tap_event(self.channel, choice_id, label, context_id=context)
        assert await post(self.server, event) == (200, "EVENT_RECEIVED")

    def sent(self) -> list[Sent]:
        """What the Graph API accepted for this customer."""
        return [s for s in self.graph.sent if _recipient(s) == self.user]

    async def receive(self, count: int = 1) -> list[Said]:
        await self.graph.wait_for(lambda _: len(self.sent()) >= self._seen + count)
        new = self.sent()[self._seen : self._seen + count]
        self._seen += count
        self._last = new[-1]
        return [Said(words_of(self.channel, s), offered(self.channel, s)) for s in new]


class WebChatCustomer:
    def __init__(self, visitor: Visitor) -> None:
        self.visitor = visitor
        self._last: dict[str, Any] = {}

    async def say(self, text: str) -> None:
        await self.visitor.say(text)

    async def tap(self, choice_id: str) -> None:
        # The widget sends a tapped choice's label, as if the customer had typed it.
        [label] = [c["label"] for c in self._last["choices"] if c["id"] == choice_id]
        await self.visitor.say(label)

    async def receive(self, count: int = 1) -> list[Said]:
        frames = [await self.visitor.next_of("message") for _ in range(count)]
        self._last = frames[-1]
        return [Said(f["text"], [(c["id"], c["label"]) for c in f["choices"]]) for f in frames]


def _keyboard(sent: Json) -> list[tuple[str, str]]:
    markup = sent.get("reply_markup") or {}
    rows = markup.get("inline_keyboard", [])
    assert all(len(row) == 1 for row in rows)  # one button a row
    return [(row[0]["callback_data"], row[0]["text"]) for row in rows]


def offered(channel: str, sent: Sent) -> list[tuple[str, str]]:
    """The choices of a Graph API message: WhatsApp reply buttons or list rows, Messenger
    quick replies."""
    body = sent.body
    if channel != "whatsapp":
        quick = body["message"].get("quick_replies", [])
        assert all(q["content_type"] == "text" for q in quick)
        return [(q["payload"], q["title"]) for q in quick]
    if body["type"] != "interactive":
        return []
    interactive = body["interactive"]
    if interactive["type"] == "button":
        return [(b["reply"]["id"], b["reply"]["title"]) for b in interactive["action"]["buttons"]]
    [section] = interactive["action"]["sections"]
    return [(row["id"], row["title"]) for row in section["rows"]]


def _recipient(sent: Sent) -> str:
    return str(sent.body.get("to") or sent.body.get("recipient", {}).get("id"))


def survey_settings(tmp_path: Path, **sections: dict[str, Any]) -> Settings:
    """The service's settings with the survey on. The background sweeps (idle conversations,
    rating requests) run once at start only: the tests sweep for rating requests themselves."""
    return service_settings(
        tmp_path,
        survey={"helpful": "always", "rating": True, **sections.pop("survey", {})},
        conversations={"sweep_seconds": 24 * HOUR},
        **sections,
    )


@asynccontextmanager
async def customer_on(
    channel: str, tmp_path: Path, database_url: str, clock: Clock, **sections: dict[str, Any]
) -> AsyncIterator[tuple[Service, Customer]]:
    """The service with ``channel`` enabled, and a customer on it."""
    async with AsyncExitStack() as stack:
        env: dict[str, str] = {}
        if channel == "telegram":
            tg = await stack.enter_async_context(TelegramStandIn())
            sections["telegram"] = {
                "enabled": True,
                "api_url": f"{tg.url}/bot",
                "file_url": f"{tg.url}/file/bot",
                "poll_timeout": 5,
                "per_chat_per_second": 1000,
            }
            env = {"TELEGRAM_BOT_TOKEN": tg.token}
        elif channel in ACCOUNTS:
            graph = await stack.enter_async_context(
                GraphStandIn(access_token=TOKEN, version="v21.0")
            )
            graph.whatsapp_number(ACCOUNTS["whatsapp"])
            graph.page(ACCOUNTS["messenger"])
            graph.page(ACCOUNTS["instagram"])
            for name in ACCOUNTS:
                sections[name] = {"enabled": True, "account_id": ACCOUNTS[name]}
            sections["meta"] = {
                "graph_url": graph.url,
                "api_version": "v21.0",
                "per_recipient_per_second": 1000,
            }
            env = ENV
        settings = survey_settings(tmp_path, **sections)
        service, server = await stack.enter_async_context(
            running_service(settings, database_url, clock, env=env)
        )
        if channel == "telegram":
            yield service, TelegramCustomer(tg)
        elif channel in ACCOUNTS:
            yield service, MetaCustomer(server, graph, channel)
        else:
            http = await stack.enter_async_context(aiohttp.ClientSession())
            visitor = Visitor(await http.ws_connect(server.make_url("/chat/ws")))
            await visitor.hello()
            yield service, WebChatCustomer(visitor)


async def surveys(service: Service) -> list[tuple[str, str | None, str | None, str | None]]:
    """(kind, answer, comment, resolver) of every survey asked, in order."""
    async with service.runtime.db.session() as session:
        rows = (await session.scalars(select(Survey).order_by(Survey.id))).all()
        return [(s.kind, s.answer, s.comment, s.resolver) for s in rows]


async def count(service: Service, table: type[Base]) -> int:
    async with service.runtime.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(table)) or 0)


async def handed_over(service: Service) -> list[tuple[int, str]]:
    """(conversation id, reason) of every handoff."""
    async with service.runtime.db.session() as session:
        found = await session.execute(
            select(Handoff.conversation_id, Handoff.reason).order_by(Handoff.id)
        )
        return [(conversation, reason) for conversation, reason in found.all()]


# (channel, tap or type the rating, what, the rating stored, its comment)
RATED = [
    pytest.param("telegram", "tap", "4", "4", None, id="telegram-tap"),
    pytest.param("whatsapp", "type", "5", "5", None, id="whatsapp-type"),
    pytest.param("whatsapp", "tap", "2", "2", None, id="whatsapp-list-row"),
    pytest.param("messenger", "type", "5", "5", None, id="messenger-type"),
    pytest.param("messenger", "tap", "1", "1", None, id="messenger-quick-reply"),
    pytest.param("instagram", "tap", "4", "4", None, id="instagram-quick-reply"),
    pytest.param("webchat", "type", "3 - ok", "3", "ok", id="webchat-type-with-comment"),
    pytest.param("webchat", "tap", "5", "5", None, id="webchat-tap"),
]


@pytest.mark.parametrize(("channel", "how", "rating", "stored", "comment"), RATED)
async def test_yes_then_a_rating_on_every_channel(
    tmp_path: Path,
    database_url: str,
    clock: Clock,
    channel: str,
    how: str,
    rating: str,
    stored: str,
    comment: str | None,
) -> None:
    async with customer_on(channel, tmp_path, database_url, clock) as (service, customer):
        await customer.say(ORDER)
        assert await customer.receive() == [Said(ASKED, YES_NO)]
        await customer.tap("yes")
        assert await customer.receive() == [Said(GLAD, ONE_TO_FIVE)]
        await (customer.tap(rating) if how == "tap" else customer.say(rating))
        assert await customer.receive() == [Said(THANKS, [])]

        assert await surveys(service) == [
            ("helpful", "yes", None, None),
            ("rating", stored, comment, "bot"),
        ]
        # Neither reply was triaged as a question, and nothing else was sent.
        assert await count(service, DecisionRow) == 1
        assert await count(service, OutboxRow) == 3


@pytest.mark.parametrize("channel", CHANNELS)
async def test_no_hands_the_conversation_to_a_person(
    tmp_path: Path, database_url: str, clock: Clock, channel: str
) -> None:
    async with customer_on(channel, tmp_path, database_url, clock) as (service, customer):
        await customer.say(ORDER)
        await customer.receive()
        await customer.tap("no")
        assert await customer.receive() == [Said(NOT_HELPFUL, [])]

        async with service.runtime.db.session() as session:
            conversation = await session.scalar(select(Conversation))
        assert conversation is not None
        assert conversation.state == "waiting_for_agent"
        assert await handed_over(service) == [(conversation.id, "not_helpful")]
        assert await surveys(service) == [("helpful", "no", None, None)]


@pytest.mark.parametrize("channel", CHANNELS)
async def test_a_tap_counts_whatever_words_are_configured_for_typing(
    tmp_path: Path, database_url: str, clock: Clock, channel: str
) -> None:
    """``yes_words`` / ``no_words`` are for typed replies (here a German bot's): a tapped
    Yes is a yes all the same."""
    survey = {"yes_words": ["ja", "genau"], "no_words": ["nein"]}
    async with customer_on(channel, tmp_path, database_url, clock, survey=survey) as (
        service,
        customer,
    ):
        await customer.say(ORDER)
        assert await customer.receive() == [Said(ASKED, YES_NO)]
        await customer.tap("yes")
        assert await customer.receive() == [Said(GLAD, ONE_TO_FIVE)]
        assert [answer for _kind, answer, *_ in await surveys(service)] == ["yes", None]


@pytest.mark.parametrize("channel", CHANNELS)
async def test_an_agents_resolution_asks_for_a_rating(
    tmp_path: Path, database_url: str, clock: Clock, channel: str
) -> None:
    async with customer_on(channel, tmp_path, database_url, clock) as (service, customer):
        await customer.say(ORDER)
        await customer.receive()
        await customer.tap("no")
        await customer.receive()
        [(conversation, _reason)] = await handed_over(service)
        await service.runtime.desk.reply(conversation, "Ann", "It ships today.")
        clock.advance(23 * HOUR)  # still inside WhatsApp's and Messenger's window
        await service.runtime.desk.resolve(conversation, "Ann")
        _joined, _reply, resolved, asked = await customer.receive(4)
        assert resolved.text.startswith("Ann has marked this conversation as resolved.")
        assert asked == Said(RATING, ONE_TO_FIVE)
        await customer.tap("4")
        assert await customer.receive() == [Said(THANKS, [])]
        assert await surveys(service) == [
            ("helpful", "no", None, None),
            ("rating", "4", None, "human"),
        ]


@pytest.mark.parametrize("channel", META)
async def test_no_rating_request_once_the_reply_window_closed(
    tmp_path: Path, database_url: str, clock: Clock, channel: str
) -> None:
    """Neither an agent's resolution nor the assumed-resolution sweep asks after the 24 h
    window: WhatsApp and Messenger would refuse the message."""
    async with customer_on(channel, tmp_path, database_url, clock) as (service, customer):
        assert isinstance(customer, MetaCustomer)
        handed = customer
        answered = MetaCustomer(customer.server, customer.graph, channel, user="90000000001")
        await handed.say(ORDER)
        await handed.receive()
        await handed.tap("no")
        await handed.receive()
        await answered.say(ORDER)
        await answered.receive()
        [(conversation, _reason)] = await handed_over(service)
        await service.runtime.desk.reply(conversation, "Ann", "It ships today.")
        await handed.receive(2)  # who joined, and the reply
        calls, queued = len(customer.graph.calls), await count(service, OutboxRow)

        clock.advance(24 * HOUR + 1)
        await service.runtime.desk.resolve(conversation, "Ann")
        assert await service.runtime.ratings.sweep() == []

        assert (len(customer.graph.calls), await count(service, OutboxRow)) == (calls, queued)
        assert [kind for kind, *_ in await surveys(service)] == ["helpful", "helpful"]


# ([insight] assume_resolved_hours, hours of quiet after the answer, whether a request goes)
SWEEPS = [
    pytest.param(24.0, 24.0, False, id="default-24h-the-window-closes-as-it-is-due"),
    pytest.param(24.0, 25.0, False, id="default-24h-after-the-window"),
    pytest.param(2.0, 1.0, False, id="2h-not-yet"),
    pytest.param(2.0, 3.0, True, id="2h-inside-the-window"),
    pytest.param(2.0, 24.0, False, id="2h-due-but-the-window-closed"),
]


@pytest.mark.parametrize("channel", META)
@pytest.mark.parametrize(("assume", "quiet", "asked"), SWEEPS)
async def test_the_assumed_resolution_asks_only_inside_the_reply_window(
    tmp_path: Path,
    database_url: str,
    clock: Clock,
    channel: str,
    assume: float,
    quiet: float,
    asked: bool,
) -> None:
    insight = {"assume_resolved_hours": assume}
    async with customer_on(channel, tmp_path, database_url, clock, insight=insight) as (
        service,
        customer,
    ):
        assert isinstance(customer, MetaCustomer)
        await customer.say(ORDER)
        assert await customer.receive() == [Said(ASKED, YES_NO)]
        clock.advance(quiet * HOUR)

        found = await service.runtime.ratings.sweep()

        assert bool(found) is asked
        if asked:
            assert await customer.receive() == [Said(RATING, ONE_TO_FIVE)]
            await customer.say("5 - great")
            assert await customer.receive() == [Said(THANKS, [])]
        assert len(customer.graph.calls) == (3 if asked else 1)
        assert await count(service, OutboxRow) == (3 if asked else 1)
        rated = [("rating", "5", "great", "bot")] if asked else []
        assert await surveys(service) == [("helpful", None, None, None), *rated]
