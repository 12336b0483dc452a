"""The bot says it is a bot (issue 17, section 3).

* The bot's first message of every conversation, on every channel, starts with ``[messages]
  bot_intro`` (``{bot_name}`` from ``[bot] name``), once per conversation, and again in the
  customer's next conversation: end to end through the real service and the platform stand-ins
  (Telegram Bot API, Meta Graph API, the web chat's websocket, the webhook's receiver).
* Nothing the bot sends is signed with a person's name: every kind of message the bot sends,
  written by the real pipeline, delivered by every channel's adapter to its stand-in, carries
  no "Ann: " and is marked as the bot's where the platform has an author field; an agent's
  reply is signed (text-only platforms) or carries the agent's name (web chat, webhook).
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from carebot.config import Settings
from carebot.models import InboundKind, OutboundReply
from carebot.runtime import Runtime
from carebot.server import Service
from carebot.store.tables import Conversation, Message
from tests.conftest import Clock, make_settings
from tests.fakes import RecordingChannel
from tests.graph_standin import Sent
from tests.service import running_service, service_settings
from tests.test_channel_contract import rig
from tests.test_inbox import AMBIGUOUS, FAQ, PHOTO, TRACK, BreakableEncoder, inbound
from tests.test_meta import words_of
from tests.test_survey_channels import Customer, Said, customer_on
from tests.test_webhook_channel import ENV as WEBHOOK_ENV
from tests.test_webhook_channel import SECRET as WEBHOOK_SECRET
from tests.test_webhook_channel import event, post
from tests.webhook_standin import Json, ReplyReceiver

BOT_NAME = "Nora"
INTRO_TEMPLATE = "Hi, I'm {bot_name}, an automated assistant. Ask for a person at any time."
INTRO = "Hi, I'm Nora, an automated assistant. Ask for a person at any time."
UPSET = "I will call my lawyer"  # emotional: handed to a person
AGENTS = ("Ann", "Ben")
CHANNELS = ["telegram", "whatsapp", "messenger", "instagram", "webchat", "webhook"]
TEXT_ONLY = {"telegram", "whatsapp", "messenger", "instagram"}  # no author beside a message

# Every kind of message the bot sends ([messages] and the intents' answers), as the scenario
# below has the pipeline write them.
KINDS = [
    "welcome",
    "media_only",
    "rephrase",
    "answer+helpful_question",
    "helpful_yes+rating_request",
    "rating_thanks",
    "clarify",
    "holding",
    "waiting_ack",
    "withdrawn",
    "helpful_no",
    "agent_joined",
    "agent_transferred",
    "resolved",
    "handoff",
    "handoff_closed",
    "waiting_ack_closed",
    "fallback",
]


def intro_sections() -> dict[str, dict[str, Any]]:
    return {
        "bot": {"name": BOT_NAME},
        "messages": {"bot_intro": INTRO_TEMPLATE},
    }


def test_the_intro_is_filled_with_the_bots_name(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, **intro_sections())
    assert settings.messages.intro(settings.bot.name) == INTRO
    assert Settings().messages.intro("Max").startswith("Hi, I'm Max, an automated assistant.")
    off = make_settings(tmp_path, messages={"bot_intro": ""})
    assert off.messages.intro(BOT_NAME) == ""


# --- once per conversation, end to end ---------------------------------------------------


class WebhookCustomer:
    """A customer behind the generic webhook: events posted signed, replies at the receiver."""

    def __init__(self, server: TestServer, receiver: ReplyReceiver) -> None:
        self.server, self.receiver = server, receiver
        self.bodies: list[Json] = []

    async def say(self, text: str) -> None:
        assert (await post(self.server, event(text)))[0] == 200

    async def tap(self, choice_id: str) -> None:
        await self.say(choice_id)  # a bridge posts the tapped choice's id as the text

    async def receive(self, count: int = 1) -> list[Said]:
        received = await self.receiver.next_received(len(self.bodies) + count)
        new = received[len(self.bodies) :]
        self.bodies.extend(new)
        return [Said(b["text"], [(c["id"], c["label"]) for c in b["choices"]]) for b in new]


@asynccontextmanager
async def customer_of(
    channel: str, tmp_path: Path, database_url: str, clock: Clock
) -> AsyncIterator[tuple[Service, Customer]]:
    """The service with ``channel`` enabled and the bot's intro on; a customer on it."""
    sections = {**intro_sections(), "survey": {"helpful": "never", "rating": False}}
    if channel != "webhook":
        async with customer_on(channel, tmp_path, database_url, clock, **sections) as found:
            yield found
        return
    async with AsyncExitStack() as stack:
        receiver = await stack.enter_async_context(ReplyReceiver(WEBHOOK_SECRET))
        settings = service_settings(
            tmp_path, webhook={"enabled": True, "reply_url": receiver.url}, **sections
        )
        service, server = await stack.enter_async_context(
            running_service(settings, database_url, clock, env=WEBHOOK_ENV)
        )
        yield service, WebhookCustomer(server, receiver)


async def bot_texts(service: Service) -> list[tuple[int, str]]:
    """(conversation id, text) of every stored bot message, in order."""
    async with service.runtime.db.session() as session:
        found = await session.execute(
            select(Message.conversation_id, Message.text)
            .where(Message.direction == "out", Message.author == "bot")
            .order_by(Message.id)
        )
        return [(conversation, text) for conversation, text in found.all()]


@pytest.mark.parametrize("channel", CHANNELS)
async def test_the_bot_introduces_itself_once_per_conversation(
    tmp_path: Path, database_url: str, clock: Clock, channel: str
) -> None:
    introduced = f"{INTRO}\n\n{TRACK}"
    async with customer_of(channel, tmp_path, database_url, clock) as (service, customer):
        await customer.say(FAQ)
        assert await customer.receive() == [Said(introduced, [])]
        await customer.say(FAQ)
        assert await customer.receive() == [Said(TRACK, [])]

        # The conversation ends; the customer's next message opens another: introduced again.
        async with service.runtime.db.session() as session:
            first = await session.scalar(select(Conversation.id))
        assert first is not None
        await service.runtime.desk.close(first, "Ann")
        clock.advance(60)
        await customer.say(FAQ)
        assert await customer.receive() == [Said(introduced, [])]

        # What the agents read is what the customer read.
        stored = await bot_texts(service)
        assert [text for _, text in stored] == [introduced, TRACK, introduced]
        assert stored[0][0] == stored[1][0] == first != stored[2][0]


# --- nothing the bot sends is signed --------------------------------------------------------


@pytest.fixture
def encoder() -> BreakableEncoder:
    return BreakableEncoder()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """The survey on (its questions are bot messages too), and the bot's intro."""
    return make_settings(tmp_path, survey={"helpful": "always", "rating": True}, **intro_sections())


async def conversation_of(runtime: Runtime) -> int:
    async with runtime.db.session() as session:
        found = await session.scalar(select(Conversation.id).order_by(Conversation.id.desc()))
    assert found is not None
    return found


async def every_kind(
    runtime: Runtime, channel: RecordingChannel, clock: Clock, encoder: BreakableEncoder
) -> list[tuple[str, OutboundReply]]:
    """Have the pipeline send every kind of bot message (and two agents' replies) to one
    customer: (kind, the reply as the outbox gives it to a channel), in order."""
    said: list[tuple[str, OutboundReply]] = []

    async def expect(*kinds: str) -> None:
        new = channel.sent[len(said) :]
        assert len(new) == len(kinds), (kinds, [reply.text for reply in channel.sent])
        said.extend(zip(kinds, new, strict=True))

    steps: list[tuple[Callable[[], Any], tuple[str, ...]]] = [
        (lambda: runtime.inbox.receive(inbound("/start", kind=InboundKind.START)), ("welcome",)),
        (lambda: runtime.inbox.receive(inbound("", attachments=(PHOTO,))), ("media_only",)),
        (lambda: runtime.inbox.receive(inbound("zebra quantum")), ("rephrase",)),
        (lambda: runtime.inbox.receive(inbound(FAQ)), ("answer+helpful_question",)),
        (lambda: runtime.inbox.receive(inbound("yes")), ("helpful_yes+rating_request",)),
        (lambda: runtime.inbox.receive(inbound("4")), ("rating_thanks",)),
        (lambda: runtime.inbox.receive(inbound(AMBIGUOUS)), ("clarify",)),
        (lambda: runtime.inbox.receive(inbound("returns")), ("answer+helpful_question",)),
        (lambda: runtime.inbox.receive(inbound("order")), ("holding",)),
        (lambda: runtime.inbox.receive(inbound("hello?")), ("waiting_ack",)),
        (lambda: runtime.inbox.receive(inbound("never mind")), ("withdrawn",)),
    ]
    for step, kinds in steps:
        await step()
        await expect(*kinds)
    await runtime.inbox.receive(inbound(FAQ))
    await expect("answer+helpful_question")
    await runtime.inbox.receive(inbound("no"))
    await expect("helpful_no")
    conversation = await conversation_of(runtime)
    ann, ben = AGENTS
    await runtime.desk.reply(conversation, ann, "It ships today.")
    await expect("agent_joined", "agent:Ann")
    await runtime.desk.take_over(conversation, ben, from_colleague=True)  # asked, and confirmed
    await expect("agent_transferred")
    await runtime.desk.reply(conversation, ben, "Anything else?")
    await expect("agent:Ben")
    await runtime.desk.resolve(conversation, ben)  # rated already: no second request
    await expect("resolved")
    await runtime.inbox.receive(inbound(UPSET))
    await expect("handoff")
    await runtime.desk.close(conversation, ann)
    clock.now = clock.now.replace(hour=20)  # the team is offline
    await runtime.inbox.receive(inbound(UPSET))
    await expect("handoff_closed")
    await runtime.inbox.receive(inbound("hello?"))
    await expect("waiting_ack_closed")
    await runtime.desk.close(await conversation_of(runtime), ann)
    clock.now += timedelta(hours=14)  # open again
    encoder.broken = True
    await runtime.inbox.receive(inbound("where is my parcel"))
    await expect("fallback")
    return said


def shown(channel: str, payload: Any) -> tuple[str, str | None, str | None]:
    """(the text the customer reads, the author, the agent's name) of what a platform got;
    no author on text-only platforms."""
    if channel == "telegram":
        return payload["text"], None, None
    if channel in TEXT_ONLY:
        return words_of(channel, Sent("", payload, "")), None, None
    if channel == "webhook":
        assert payload["signed_text"] == (
            f"{payload['agent']}: {payload['text']}"
            if payload["author"] == "agent"
            else payload["text"]
        )
    return payload["text"], payload["author"], payload["agent"]


@pytest.mark.parametrize("name", CHANNELS)
async def test_nothing_the_bot_sends_is_signed_with_a_persons_name(
    runtime: Runtime, channel: RecordingChannel, clock: Clock, encoder: BreakableEncoder, name: str
) -> None:
    said = await every_kind(runtime, channel, clock, encoder)
    bot_kinds = [kind for kind, _ in said if not kind.startswith("agent:")]
    assert sorted(set(bot_kinds)) == sorted(KINDS)
    # Introduced once in each of the three conversations, whatever its first message is.
    introduced = [kind for kind, reply in said if reply.text.startswith(f"{INTRO}\n\n")]
    assert introduced == ["welcome", "handoff_closed", "fallback"]
    async with rig(name) as r:
        await r.channel.start(r.deliver)
        user = await r.customer()
        for n, (_, reply) in enumerate(said, start=1):
            await r.channel.send(
                dataclasses.replace(reply, channel=r.channel.name, external_user_id=user)
            )
            await r.arrived(n)
        delivered = [shown(name, payload) for payload in r.payloads()]
    assert len(delivered) == len(said)
    for (kind, reply), (text, author, agent) in zip(said, delivered, strict=True):
        if kind.startswith("agent:"):
            who = kind.removeprefix("agent:")
            if name in TEXT_ONLY:
                assert text.startswith(f"{who}: "), (kind, text)
            else:
                assert (text, author, agent) == (reply.text, "agent", who), kind
            continue
        assert (reply.author, reply.agent) == ("bot", None), kind
        assert not any(text.startswith(f"{who}:") for who in AGENTS), (kind, text)
        assert text.startswith(reply.text[:50]), (kind, text)
        if name not in TEXT_ONLY:
            assert (author, agent) == ("bot", None), kind
