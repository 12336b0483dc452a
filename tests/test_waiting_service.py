"""A customer waiting for a person, through the running service (fake encoder): on the web
chat and on Telegram (its Bot API stand-in), what the agent sees in the inbox, and the Slack
card (slack-bolt / slack_sdk against the Slack stand-in) following what the customer writes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from carebot.server import Service
from tests.conftest import Clock
from tests.service import Visitor, running_service, service_settings
from tests.slack_standin import SlackStandIn
from tests.telegram_standin import TelegramStandIn, text_update
from tests.test_inbox_web import log_in, page
from tests.test_telegram import CHAT, telegram_service

CHANNEL = "C0CARE"
HTTP_ENV = {"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": "8f742231b10e8888abcd99yy"}
TRACK = "Track it at https://track.example."
ASK_PERSON = "I want to talk to a real person"
UPSET = "I will call my lawyer"


def texts(service: Service) -> dict[str, str]:
    messages = service.runtime.settings.messages
    return {
        "handoff": messages.handoff,
        "answer": f"{TRACK}\n\n{messages.waiting_answer_suffix}",
        "ack": messages.waiting_ack_unknown,
        "withdrawn": messages.withdrawn,
    }


@pytest.fixture
async def service(
    tmp_path: Path, database_url: str, clock: Clock
) -> AsyncIterator[tuple[Service, TestServer]]:
    async with running_service(service_settings(tmp_path), database_url, clock) as running:
        yield running


async def test_a_web_chat_customer_is_answered_acknowledged_and_let_go(
    service: tuple[Service, TestServer], clock: Clock
) -> None:
    running, server = service
    said = texts(running)
    async with aiohttp.ClientSession() as http:
        customer = Visitor(await http.ws_connect(server.make_url("/chat/ws")))
        await customer.hello()

        async def exchange(text: str) -> dict[str, Any]:
            await customer.say(text)
            return await customer.next_of("message")

        handoff = await exchange(ASK_PERSON)
        assert (handoff["text"], handoff["handoff"]) == (said["handoff"], True)
        answer = await exchange("where is my order")
        assert (answer["author"], answer["text"], answer["handoff"]) == (
            "bot",
            said["answer"],
            False,
        )
        assert (await exchange("hmm, anyone?"))["text"] == said["ack"]
        await customer.say("still there?")  # acknowledged a minute ago: recorded, no reply
        clock.advance(60)
        assert (await exchange("never mind, found it"))["text"] == said["withdrawn"]
        assert (await exchange("where is my order"))["text"] == TRACK  # the bot has it again

    case = await running.runtime.queue.case(1)
    assert case.state == "bot" and case.withdrawn is not None
    assert [m.text for m in case.messages if m.author == "customer"][-3:] == [
        "still there?",
        "never mind, found it",
        "where is my order",
    ]


async def test_a_telegram_customer_is_answered_acknowledged_and_let_go(
    tmp_path: Path, database_url: str, clock: Clock
) -> None:
    async with (
        TelegramStandIn() as tg,
        telegram_service(tmp_path, database_url, tg, clock) as (running, _server),
    ):
        said = texts(running)
        expected = []
        for number, (text, reply) in enumerate(
            [
                (ASK_PERSON, said["handoff"]),
                ("where is my order", said["answer"]),
                ("hmm, anyone?", said["ack"]),
                ("never mind, found it", said["withdrawn"]),
                ("where is my order", TRACK),
            ],
            start=1,
        ):
            tg.push(text_update(CHAT, text))
            expected.append(reply)
            assert [m["text"] for m in await tg.next_sent(number)] == expected
        assert (await running.runtime.conversations.conversation(1)).state == "bot"


async def test_the_inbox_shows_priority_cues_and_what_changed(
    service: tuple[Service, TestServer], clock: Clock
) -> None:
    running, server = service
    asked = await say(running, "asking", ASK_PERSON)  # asked_for_human: 5.0
    clock.advance(60)
    calm = await say(running, "calm", "delete my account")  # sensitive_intent: 4.0
    clock.advance(60)
    await say(running, "calm", UPSET)  # now upset too: 6.0 + 4.0 x 0.9
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as agent:
        await log_in(agent, server)
        _, queue, _ = await page(agent, server, "/inbox")
        _, conversation, _ = await page(agent, server, f"/inbox/c/{calm}")
    rows = [queue.index(f'data-conversation-id="{cid}"') for cid in (calm, asked)]
    assert rows == sorted(rows)  # the upset customer first, though they came later
    assert 'data-priority="9.6"' in queue and 'data-priority="5.0"' in queue
    assert 'data-cue="escalation_word:lawyer"' in queue
    assert (
        "Now also: the customer sounds upset. Emotion rose 0.00 -&gt; 0.90 "
        "(cues: escalation_word:lawyer)." in conversation
    )
    assert 'id="priority" data-priority="9.6"' in conversation


async def say(service: Service, user: str, text: str) -> int:
    """A web chat customer ``user`` writes ``text``; returns their conversation id."""
    from carebot.models import InboundMessage

    now = service.runtime.clock()
    message = InboundMessage("webchat", user, f"{user}-{now.timestamp()}-{text}", text, now)
    return (await service.runtime.inbox.receive(message)).received.conversation_id


# The Slack card


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn() as standin:
        standin.members = {"UANN", "UBOT"}
        yield standin


@pytest.fixture
async def slack_service(
    tmp_path: Path, database_url: str, clock: Clock, slack: SlackStandIn
) -> AsyncIterator[tuple[Service, TestServer]]:
    section = {"channel": CHANNEL, "api_url": slack.base_url, "posts_per_second": 1000.0}
    settings = service_settings(tmp_path, slack=section)
    async with running_service(settings, database_url, clock, env=HTTP_ENV) as running:
        yield running


def shown(message: dict[str, Any]) -> str:
    return json.dumps(message["blocks"], ensure_ascii=False)


async def card_showing(slack: SlackStandIn, words: str) -> str:
    """The card once an update shows ``words``."""
    await slack.wait_for("chat.update", lambda c: words in json.dumps(c.params.get("blocks")))
    return shown(next(m for m in slack.messages[CHANNEL] if "thread_ts" not in m))


async def test_the_slack_card_follows_the_waiting_customer(
    slack_service: tuple[Service, TestServer], slack: SlackStandIn, clock: Clock
) -> None:
    running, server = slack_service
    said = texts(running)
    async with aiohttp.ClientSession() as http:
        customer = Visitor(await http.ws_connect(server.make_url("/chat/ws")))
        await customer.hello()

        async def exchange(text: str) -> str:
            await customer.say(text)
            return str((await customer.next_of("message"))["text"])

        assert await exchange("delete my account") == said["handoff"]
        await slack.wait_for("chat.postMessage", lambda c: "thread_ts" not in c.params)
        ts = next(m["ts"] for m in slack.messages[CHANNEL] if "thread_ts" not in m)
        card = shown(slack.message(CHANNEL, ts))
        assert "*Priority*\\n4.0" in card and "Now also" not in card

        assert await exchange("where is my order") == said["answer"]  # mirrored like any other
        await slack.wait_for(
            "chat.postMessage",
            lambda c: c.params.get("thread_ts") == ts and "still follow up" in c.params["text"],
        )

        clock.advance(60)
        assert await exchange(ASK_PERSON) == said["ack"]
        card = await card_showing(slack, "Now also: the customer asked for a person.")
        assert "*Priority*\\n5.0" in card
        assert "the customer asked for a person\\nthe topic always goes to a person" in card

        clock.advance(60)
        await customer.say(UPSET)  # acknowledged a minute ago: no reply
        card = await card_showing(slack, "Emotion rose 0.00 -&gt; 0.90")
        assert "Now also: the customer sounds upset." in card
        assert "(cues: escalation_word:lawyer)" in card
        assert "0.90 (upset)\\ncues: escalation_word:lawyer" in card
        assert "*Priority*\\n9.6" in card

        assert await exchange("forget it, sorted") == said["withdrawn"]
        await slack.wait_for(
            "chat.update", lambda c: "withdrawn by the customer" in c.params["text"]
        )
        card_message = slack.message(CHANNEL, ts)
        assert card_message["text"].endswith("withdrawn by the customer, back with the bot")
        assert "Now also" not in shown(card_message)  # nothing changes on a closed handoff
    thread = [m["text"] for m in slack.thread(CHANNEL, ts)]
    assert any("forget it, sorted" in t for t in thread)
    assert any("no longer need them" in t for t in thread)
