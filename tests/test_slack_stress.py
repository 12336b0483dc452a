"""The Slack desk under stress (issue 17, section 5): an outage with a new handoff behind an old
thread's backlog, a thread that keeps failing, two agents on one conversation, a second handoff's
question, the draft sent from the card, and bolt's logs of badly signed requests.

The thread sync is driven here by hand (its flushes) against the Slack stand-in, with a client
that does not retry by itself and a fake clock for the outage: nothing waits for real."""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from slack_sdk.web.async_client import AsyncWebClient

from carebot.desk.slack import card as cards
from carebot.desk.slack.api import SlackApi
from carebot.desk.slack.sync import BACKOFF, THREAD_BACKOFF, ThreadSync
from carebot.hours import BusinessHours
from carebot.models import InboundMessage
from carebot.pacing import Pacer
from carebot.runtime import Runtime
from carebot.server import Service
from carebot.store.emotion_labels import EmotionLabelStore
from carebot.store.handoffs import OwnedByColleague
from carebot.store.slack_threads import SlackThreadStore
from carebot.store.tables import Message
from tests.conftest import Clock
from tests.service import Visitor, upset_customer
from tests.slack_standin import SlackStandIn, thread_reply
from tests.test_inbox_web import log_in, page, post
from tests.test_slack import (  # noqa: F401  (fixtures)
    AGENT,
    CHANNEL,
    SECRET,
    card_text,
    card_ts,
    card_updated,
    count,
    deliver,
    event_callback,
    press,
    reply_in_thread,
    service,
    slack,
    state,
)

BEN = "UBEN"
SENSITIVE = "delete my account"  # always handed to a person, with a draft
_ids = itertools.count(1)


def inbound(text: str, user: str) -> InboundMessage:
    return InboundMessage(
        channel="test",
        external_user_id=user,
        external_message_id=f"m{next(_ids)}",
        text=text,
        sent_at=datetime(2026, 11, 18, 10, tzinfo=UTC),
    )


class Seconds:
    """The sync's monotonic clock, moved by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def standin() -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn() as found:
        yield found


def thread_sync(runtime: Runtime, standin: SlackStandIn, clock: Clock, seconds: Seconds) -> Any:
    client = AsyncWebClient(token="xoxb-test", base_url=standin.base_url, retry_handlers=[])
    api = SlackApi(client, channel=CHANNEL, pacer=Pacer(1000.0))
    return ThreadSync(
        api=api,
        threads=SlackThreadStore(runtime.db, clock=clock),
        queue=runtime.queue,
        hours=BusinessHours(runtime.settings.business_hours),
        settings=runtime.settings.slack,
        events=runtime.events,
        clock=clock,
        labels=EmotionLabelStore(runtime.db, clock=clock),
        monotonic=seconds,
    )


async def handed_off(runtime: Runtime, user: str) -> int:
    outcome = await runtime.inbox.receive(inbound(SENSITIVE, user))
    assert outcome.decision is not None and outcome.decision.hands_off
    return outcome.received.conversation_id


def posts(standin: SlackStandIn, *, since: int = 0, ok: bool | None = None) -> list[Any]:
    found = [c for c in standin.calls[since:] if c.method == "chat.postMessage"]
    return [c for c in found if ok is None or c.ok is ok]


def card_of(standin: SlackStandIn, conversation_text: str) -> str:
    """The ts of the card whose text names ``conversation_text`` (a customer handle)."""
    return next(
        m["ts"]
        for m in standin.messages[CHANNEL]
        if "thread_ts" not in m and conversation_text in card_text(m)
    )


async def test_after_a_60s_outage_the_new_handoffs_card_goes_first_then_the_backlog(
    runtime: Runtime, standin: SlackStandIn, clock: Clock
) -> None:
    seconds = Seconds()
    sync = thread_sync(runtime, standin, clock, seconds)
    old = await handed_off(runtime, "old-customer")
    assert await sync.flush_due() is True
    old_ts = card_of(standin, "old-customer")

    back_at = clock.now.timestamp() + 60
    standin.down("chat.postMessage", 500, until=lambda: clock.now.timestamp() >= back_at)
    for n in range(15):  # the old customer keeps writing: a backlog for its thread
        await runtime.inbox.receive(inbound(f"still there? ({n})", "old-customer"))
    new = await handed_off(runtime, "new-customer")
    assert new != old
    flushes = []
    while clock.now.timestamp() < back_at:  # the sync tries every few seconds meanwhile
        before = len(standin.calls)
        assert await sync.flush_due() is False
        flushes.append(posts(standin, since=before))
        clock.advance(BACKOFF.cap)
        seconds.now += BACKOFF.cap
    # Each try asked for the new card first, and gave up after two failures in a row.
    assert flushes and all(len(tried) == 2 for tried in flushes)
    assert all("thread_ts" not in tried[0].params for tried in flushes)
    assert all(tried[1].params.get("thread_ts") == old_ts for tried in flushes)

    before = len(standin.calls)
    assert await sync.flush_due() is True  # Slack is back: one flush drains everything
    landed = posts(standin, since=before, ok=True)
    assert "thread_ts" not in landed[0].params  # the new handoff's card, first
    assert "new-customer" in card_text(standin.message(CHANNEL, card_of(standin, "new-customer")))
    thread = [m["text"] for m in standin.thread(CHANNEL, old_ts)]
    said = [n for n in range(15) if any(f"still there? ({n})" in t for t in thread)]
    assert said == list(range(15))  # the whole backlog, in order, once
    assert posts(standin, since=before, ok=False) == []


def test_the_sync_never_waits_long_after_slack_comes_back() -> None:
    """However long the outage, the next try is at most BACKOFF.cap seconds away."""
    assert max(BACKOFF.ceiling(n) for n in range(1, 200)) <= 8.0


async def test_a_thread_that_keeps_failing_rests_while_the_others_get_through(
    runtime: Runtime, standin: SlackStandIn, clock: Clock
) -> None:
    seconds = Seconds()
    sync = thread_sync(runtime, standin, clock, seconds)
    await handed_off(runtime, "stuck-customer")
    assert await sync.flush_due() is True
    stuck_ts = card_of(standin, "stuck-customer")
    standin.down(
        "chat.postMessage",
        503,
        until=lambda: False,
        only=lambda params: params.get("thread_ts") == stuck_ts,
    )
    await runtime.inbox.receive(inbound("hello??", "stuck-customer"))
    await handed_off(runtime, "other-customer")
    assert await sync.flush_due() is True  # the other card got through; the stuck one rests
    card_of(standin, "other-customer")

    await runtime.inbox.receive(inbound("and now?", "other-customer"))
    before = len(standin.calls)
    assert await sync.flush_due() is True
    tried = posts(standin, since=before)
    assert tried and all(c.ok for c in tried)  # the stuck thread was not tried: it rests
    assert {c.params.get("thread_ts") for c in tried} == {card_of(standin, "other-customer")}

    seconds.now += THREAD_BACKOFF.cap  # its rest is over: tried again
    before = len(standin.calls)
    await sync.flush_due()
    assert [c.params.get("thread_ts") for c in posts(standin, since=before)] == [stuck_ts]

    # It failed again and rests; the last flush at shutdown tries it all the same.
    before = len(standin.calls)
    await sync.flush_due(last=True)
    assert stuck_ts in {c.params.get("thread_ts") for c in posts(standin, since=before)}


async def test_after_a_second_handoff_the_thread_shows_the_question_before_the_bots_answer(
    runtime: Runtime, standin: SlackStandIn, clock: Clock
) -> None:
    sync = thread_sync(runtime, standin, clock, Seconds())
    conversation = await handed_off(runtime, "again-customer")
    assert await sync.flush_due() is True
    ts = card_of(standin, "again-customer")
    await runtime.desk.resolve(conversation, "Ann")
    assert await sync.flush_due() is True
    clock.advance(60)
    # The customer's message is stored, and the sync runs before it is decided on (as when
    # the sync wakes on the message while the inbox is still deciding).
    question = inbound(SENSITIVE + " now please", "again-customer")
    await runtime.conversations.receive(question)
    assert await sync.flush_due() is True
    outcome = await runtime.inbox.receive(question)  # decided now: handed over again
    assert outcome.decision is not None and outcome.decision.hands_off
    assert await sync.flush_due() is True
    thread = [m["text"] for m in standin.thread(CHANNEL, ts)]
    again = next(i for i, t in enumerate(thread) if "Needs an agent again" in t)
    after = thread[again + 1 :]
    assert "now please" in after[0] and "*Customer*" in after[0], thread
    assert any("*Bot*" in t for t in after[1:])


async def test_the_card_says_the_draft_was_sent_once_it_was(
    runtime: Runtime, standin: SlackStandIn, clock: Clock
) -> None:
    sync = thread_sync(runtime, standin, clock, Seconds())
    conversation = await handed_off(runtime, "draft-customer")
    assert await sync.flush_due() is True
    ts = card_of(standin, "draft-customer")
    assert "The bot's draft*" in card_text(standin.message(CHANNEL, ts))
    await runtime.desk.send_draft(conversation, "Ann")
    assert await sync.flush_due() is True
    shown = card_text(standin.message(CHANNEL, ts))
    assert "The bot's draft was sent" in shown and "The bot's draft*" not in shown
    assert cards.SEND_DRAFT not in shown


async def test_taking_a_conversation_from_a_colleague_must_be_confirmed(runtime: Runtime) -> None:
    conversation = await handed_off(runtime, "owned-customer")
    await runtime.desk.take_over(conversation, "Ann")
    actions = [
        lambda **kw: runtime.desk.take_over(conversation, "Ben", **kw),
        lambda **kw: runtime.desk.reply(conversation, "Ben", "Ben here.", **kw),
        lambda **kw: runtime.desk.send_draft(conversation, "Ben", **kw),
    ]
    for action in actions:
        with pytest.raises(OwnedByColleague) as refused:
            await action()
        assert refused.value.owner == "Ann" and "Ann has conversation" in str(refused.value)
    assert (await runtime.queue.case(conversation)).agent == "Ann"
    await runtime.desk.reply(conversation, "Ben", "Ben here.", from_colleague=True)
    assert (await runtime.queue.case(conversation)).agent == "Ben"
    await runtime.desk.reply(conversation, "Ben", "Anything else?")  # his own: no question


# --- two agents on one conversation, end to end -------------------------------------------


async def joined(customer: Visitor, agent: str) -> None:
    told = await customer.next_of("message")
    assert told["text"] == f"{agent} from our team has joined the conversation."


def the_question(seen: SlackStandIn, user: str) -> dict[str, Any]:
    """The private question last put to ``user`` (an ephemeral message or a button's answer,
    which goes to whoever pressed)."""
    asked = [
        c.params
        for c in seen.calls
        if (c.method == "chat.postEphemeral" and c.ok and c.params["user"] == user)
        or c.method == "response_url"
    ]
    found = [p for p in asked if "has this conversation" in str(p.get("text"))]
    assert found, f"nobody asked {user}"
    return found[-1]


def confirm_value(question: dict[str, Any]) -> str:
    blocks = question["blocks"]
    [button] = [e for b in blocks if b["type"] == "actions" for e in b["elements"]]
    assert button["action_id"] == cards.TAKE_FROM_COLLEAGUE
    assert button["text"]["text"] == "Take it over from Ann"
    return str(button["value"])


async def test_two_agents_on_one_conversation_bob_is_asked_then_takes_it_over(
    service: tuple[Service, TestServer],  # noqa: F811
    slack: SlackStandIn,  # noqa: F811
) -> None:
    running, server = service
    slack.add_user(BEN, name="ben", real_name="Ben Agent", display_name="Ben")
    slack.members.add(BEN)
    async with upset_customer(server) as customer:
        ts = await card_ts(slack)
        await press(server, ts, cards.TAKE_OVER)  # Ann takes it over
        await joined(customer, "Ann")
        card = await card_updated(slack, "with Ann")
        assert "*Agent*\\nAnn" in card_text(card)  # the card says who has it

        await reply_in_thread(server, ts, "Ben here, I know this order.", user=BEN)
        await slack.wait_for("chat.postEphemeral", lambda c: c.params["user"] == BEN)
        question = the_question(slack, BEN)
        assert question["thread_ts"] == ts
        assert "Ann has this conversation" in question["text"]
        assert "not sent to the customer" in question["text"]
        assert await count(running, Message.author == "agent") == 0  # nothing reached them
        assert (await running.runtime.queue.case(1)).agent == "Ann"

        value = confirm_value(question)
        await press(
            server,
            ts,
            cards.TAKE_FROM_COLLEAGUE,
            user=BEN,
            value=value,
            response_url=slack.response_url,
        )
        moved, reply = await customer.next_of("message"), await customer.next_of("message")
        assert (moved["author"], moved["text"]) == ("bot", "Ben has joined the conversation.")
        assert (reply["author"], reply["agent"], reply["text"]) == (
            "agent",
            "Ben",
            "Ben here, I know this order.",
        )
        [note] = await slack.wait_for(
            "chat.postMessage", lambda c: "took this conversation over" in c.params["text"]
        )
        assert note.params["thread_ts"] == ts
        assert "Ben took this conversation over from <@UANN>" in note.params["text"]  # told
        await card_updated(slack, "with Ben")
        await slack.wait_for("reactions.add")  # Ben's reply is checked: it went out
        told = [r for r in slack.responses if "You have the conversation now" in r["text"]]
        assert told and told[-1]["replace_original"] is True
    assert await count(running, Message.author == "agent") == 1


@pytest.mark.parametrize("action", [cards.TAKE_OVER, cards.SEND_DRAFT])
async def test_a_colleagues_button_asks_first_and_changes_nothing(
    service: tuple[Service, TestServer],  # noqa: F811
    slack: SlackStandIn,  # noqa: F811
    action: str,
) -> None:
    running, server = service
    slack.add_user(BEN, name="ben", real_name="Ben Agent", display_name="Ben")
    slack.members.add(BEN)
    async with upset_customer(server) as customer:
        ts = await card_ts(slack)
        await press(server, ts, cards.TAKE_OVER)
        await joined(customer, "Ann")
        await press(server, ts, action, user=BEN, response_url=slack.response_url)
        await slack.wait_for("response_url", lambda c: "has this conversation" in c.params["text"])
        question = the_question(slack, BEN)
        assert question["replace_original"] is False
        assert (await running.runtime.queue.case(1)).agent == "Ann"
        assert json.loads(confirm_value(question))["do"] == (
            "send_draft" if action == cards.SEND_DRAFT else "take_over"
        )
        assert await count(running, Message.author == "agent") == 0
        assert await state(running) == "with_agent"


async def test_refusals_in_slack_name_no_internal_state(
    service: tuple[Service, TestServer],  # noqa: F811
    slack: SlackStandIn,  # noqa: F811
) -> None:
    _, server = service
    async with upset_customer(server):
        ts = await card_ts(slack)
        await press(server, ts, cards.RESOLVE)
        await card_updated(slack, "resolved by Ann")
        await press(server, ts, cards.RESOLVE, response_url=slack.response_url)  # again
        [told] = await slack.wait_for("response_url")
    text = told.params["text"]
    assert "Nothing changed" in text and "with the bot" in text
    for state_name in ("bot;", "waiting_for_agent", "with_agent", "become bot"):
        assert state_name not in text


@pytest.mark.parametrize("level", [logging.DEBUG, logging.INFO])
async def test_a_badly_signed_request_logs_no_customer_text_above_debug(
    service: tuple[Service, TestServer],  # noqa: F811
    slack: SlackStandIn,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
    level: int,
) -> None:
    """slack-bolt logs a badly signed request's whole body at INFO; the desk refuses such a
    request before bolt reads it (carebot/desk/slack/payloads.py checks what a signed one
    carries), and says so without the body, at any level."""
    _, server = service
    words = "my card number is 4111 and my address is 1 Secret Lane"
    event = thread_reply(channel=CHANNEL, thread_ts="1.1", user=AGENT, text=words, ts="9.3")
    with caplog.at_level(level):
        answer = await deliver(server, event_callback(event, event_id="EvS"), secret="wrong")
    assert answer.status == 401
    quoting = [r for r in caplog.records if "Secret Lane" in r.getMessage()]
    assert all(r.levelno == logging.DEBUG for r in quoting)
    # The request's logs were captured (the check above means something): its refusal.
    [refused] = [r for r in caplog.records if "Refused a Slack request" in r.getMessage()]
    assert refused.levelno == logging.WARNING and "4111" not in refused.getMessage()


# --- the same rule in the inbox -------------------------------------------------------------


@pytest.mark.parametrize("action", ["reply", "take-over", "send-draft"])
async def test_the_inbox_asks_before_taking_a_conversation_from_a_colleague(
    service: tuple[Service, TestServer],  # noqa: F811
    slack: SlackStandIn,  # noqa: F811
    action: str,
) -> None:
    running, server = service
    text = {"text": "Ann here, I can help."} if action == "reply" else {}
    async with (
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser,
        upset_customer(server) as customer,
    ):
        await running.runtime.desk.take_over(1, "Ben")  # Ben has it (from Slack, say)
        await customer.next_of("message")
        await log_in(browser, server)
        _, _, csrf = await page(browser, server, "/inbox/c/1")
        asked = await post(browser, server, f"/inbox/c/1/{action}", {"csrf": csrf, **text})
        assert asked.status == 409
        html = await asked.text()
        assert "Ben has this conversation. Take it over?" in html
        assert 'id="take-from-colleague-button"' in html and "Take it over from Ben" in html
        assert (await running.runtime.queue.case(1)).agent == "Ben"
        assert await count(running, Message.author == "agent") == 0

        confirmed = {"csrf": csrf, "from_colleague": "1", **text}
        assert (await post(browser, server, f"/inbox/c/1/{action}", confirmed)).status == 303
        moved = await customer.next_of("message")
        assert (moved["author"], moved["text"]) == ("bot", "Ann has joined the conversation.")
        assert (await running.runtime.queue.case(1)).agent == "Ann"
        if action != "take-over":
            reply = await customer.next_of("message")
            assert (reply["author"], reply["agent"]) == ("agent", "Ann")
            assert reply["text"] == text.get("text", "Track it at https://track.example.")
