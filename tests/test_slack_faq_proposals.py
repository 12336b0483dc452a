"""The "Add to FAQ" message shortcut end to end: the real service (fake encoder, test intents),
a web chat customer handed to a person, agents in the Slack stand-in's care thread, and the
proposal queued in the store."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from ruamel.yaml import YAML

from carebot.desk.slack import faq_proposals
from carebot.server import Service
from carebot.store.proposals import Proposal, ProposalKind, ProposalStore, Source
from tests.conftest import ROOT, Clock
from tests.service import (
    Visitor,
    after_joining,
    running_service,
    service_settings,
    upset_customer,
)
from tests.slack_standin import (
    APP_ID,
    BOT_ID,
    BOT_USER_ID,
    TEAM_ID,
    SlackStandIn,
    event_callback,
    form_body,
    private_answer,
    thread_reply,
)
from tests.test_slack import (
    AGENT,
    CHANNEL,
    HTTP_ENV,
    SECRET,
    STRANGER,
    card_ts,
    deliver,
    reply_in_thread,
)

ORDER = "my order has not arrived yet where is it"  # near order_status
GIFT_WRAP = "do you sell gift wrapping for birthdays"  # near no intent
GIFT_REPLY = "Yes, gift wrapping costs 3 euros."
PERSONAL_QUESTION = "do you sell gift wrapping for birthdays? mail me at tess@example.com"
PERSONAL_REPLY = "Yes, call us at +49 30 1234567 to order it."
PUBLIC_URL = "https://care.example.com"


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn() as standin:
        standin.add_user(AGENT, name="ann", real_name="Ann Agent", display_name="Ann")
        standin.add_user(STRANGER, name="eve", real_name="Eve Outsider")
        standin.members = {AGENT, BOT_USER_ID}
        yield standin


@pytest.fixture(params=[PUBLIC_URL, ""], ids=["public URL", "no public URL"])
def public_url(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def service(
    tmp_path: Path, database_url: str, clock: Clock, slack: SlackStandIn, public_url: str
) -> AsyncIterator[tuple[Service, TestServer]]:
    section = {"channel": CHANNEL, "api_url": slack.base_url, "posts_per_second": 1000.0}
    server = {"secret_file": str(tmp_path / "secret_key"), "public_url": public_url}
    settings = service_settings(tmp_path, slack=section, server=server)
    async with running_service(settings, database_url, clock, env=HTTP_ENV) as running:
        yield running


def message_shortcut(
    *, user: str, channel: str, message: dict[str, Any], response_url: str
) -> dict[str, Any]:
    """A message shortcut's payload, as Slack sends it when someone picks "Add to FAQ" in a
    message's menu."""
    person = {"id": user, "username": user.lower(), "name": user.lower(), "team_id": TEAM_ID}
    body = {"type": "message_action", "callback_id": faq_proposals.CALLBACK_ID}
    body |= {"team": {"id": TEAM_ID, "domain": "test"}, "user": person, "api_app_id": APP_ID}
    body |= {"token": "verification-token", "trigger_id": "T-trigger", "response_url": response_url}
    body |= {"channel": {"id": channel, "name": "care"}, "message_ts": message["ts"]}
    body |= {"message": message, "action_ts": f"{time.time():.6f}"}
    return body | {"is_enterprise_install": False, "enterprise": None}


async def add_to_faq(
    server: TestServer,
    slack: SlackStandIn,
    message: dict[str, Any],
    *,
    user: str = AGENT,
    channel: str = CHANNEL,
) -> str:
    """Use the shortcut on ``message`` as ``user`` (signed, over HTTP); return carebot's private
    answer."""
    raw = form_body(
        message_shortcut(
            user=user, channel=channel, message=message, response_url=slack.response_url
        )
    )
    answer = await private_answer(server.make_url("/slack/events"), slack, raw, SECRET)
    assert answer["response_type"] == "ephemeral"
    return str(answer["text"])


async def proposals(running: Service, clock: Clock) -> list[Proposal]:
    return await ProposalStore(running.runtime.db, clock=clock).waiting()


async def agent_reply(
    server: TestServer, slack: SlackStandIn, ts: str, text: str, *, at: float | None = None
) -> dict[str, Any]:
    """The agent's reply in the card's thread (posted at ``at``, epoch seconds: now unless
    given), once it is relayed (checked): the message as Slack shows it."""
    before = len(slack.successful("reactions.add"))
    reply_ts = f"{time.time() if at is None else at:.6f}"
    event = thread_reply(channel=CHANNEL, thread_ts=ts, user=AGENT, text=text, ts=reply_ts)
    assert (await deliver(server, event_callback(event, event_id=f"Ev{reply_ts}"))).status == 200
    await slack.wait_for("reactions.add", count=before + 1)
    return {"type": "message", "user": AGENT, "ts": reply_ts, "text": text, "thread_ts": ts}


async def mirrored(slack: SlackStandIn, ts: str, words: str) -> dict[str, Any]:
    """The bot's post in the thread ``ts`` holding ``words``."""
    await slack.wait_for(
        "chat.postMessage",
        lambda c: c.params.get("thread_ts") == ts and words in c.params["text"],
    )
    return next(m for m in slack.thread(CHANNEL, ts) if words in m["text"])


async def handed_over(
    server: TestServer, slack: SlackStandIn, customer: Visitor, question: str
) -> str:
    """The card's ts, once the customer's ``question`` (after the handoff) is in its thread."""
    ts = await card_ts(slack)
    await customer.say(question)
    waiting = await customer.next_of("message")  # the bot says a colleague will answer
    assert (waiting["author"], waiting["agent"]) == ("bot", None)
    await mirrored(slack, ts, question)
    return ts


@pytest.mark.parametrize(
    ("question", "reply", "sent", "kind", "intent_id", "said"),
    [
        (
            ORDER,
            GIFT_REPLY,
            GIFT_REPLY,
            ProposalKind.ADD_EXAMPLES,
            "order_status",
            f"Proposed: add “{ORDER}” as an example of *Order status* (`order_status`); "
            "nothing flagged.",
        ),
        (
            GIFT_WRAP,
            "Yes, see <https://shop.example/gift|our gift page> &amp; pick a paper.",  # markup
            "Yes, see our gift page (https://shop.example/gift) & pick a paper.",
            ProposalKind.NEW_INTENT,
            "sell_gift_wrapping_birthdays",
            "Proposed: a new intent `sell_gift_wrapping_birthdays` with this reply as its "
            "answer; nothing flagged.",
        ),
        (
            PERSONAL_QUESTION,
            PERSONAL_REPLY,
            PERSONAL_REPLY,
            ProposalKind.NEW_INTENT,
            "sell_gift_wrapping_birthdays",
            "Proposed: a new intent `sell_gift_wrapping_birthdays` with this reply as its "
            "answer; 2 flags to check before publishing.",
        ),
    ],
    ids=["near an intent", "a new intent", "personal data"],
)
async def test_an_agents_reply_in_the_thread_becomes_a_proposal(
    service: tuple[Service, TestServer],
    slack: SlackStandIn,
    clock: Clock,
    public_url: str,
    question: str,
    reply: str,
    sent: str,
    kind: ProposalKind,
    intent_id: str,
    said: str,
) -> None:
    running, server = service
    async with upset_customer(server) as customer:
        ts = await handed_over(server, slack, customer, question)
        posted = await agent_reply(server, slack, ts, reply)
        assert (await after_joining(customer))["text"] == sent

        told = await add_to_faq(server, slack, posted)

    [proposal] = await proposals(running, clock)
    assert (proposal.kind, proposal.intent_id, proposal.examples) == (kind, intent_id, (question,))
    answer = sent if kind is ProposalKind.NEW_INTENT else ""
    assert (proposal.answer, proposal.source, proposal.author) == (
        answer,
        Source.AGENT_REPLY,
        "Ann",
    )
    assert proposal.conversation_id == 1
    assert await texts(running, proposal.message_ids) == [question, sent]
    link = f"<{PUBLIC_URL}/console/proposals/{proposal.id}|Review it in the console>"
    where = link if public_url else f"It waits as proposal {proposal.id} in the ops console."
    assert told == f"{said} An ops person reviews it before it goes live. {where}"
    assert slack.ephemeral == []  # only the agent saw the answer, through the response URL


async def texts(running: Service, message_ids: tuple[int, ...]) -> list[str]:
    store = ProposalStore(running.runtime.db, clock=running.runtime.clock)
    return await store.texts_of(message_ids)


@pytest.mark.parametrize("public_url", [""], indirect=True)
async def test_the_same_words_twice_are_told_apart_by_when_they_were_sent(
    service: tuple[Service, TestServer], slack: SlackStandIn, clock: Clock
) -> None:
    running, server = service
    same = "Let me check that for you."
    async with upset_customer(server) as customer:
        ts = await handed_over(server, slack, customer, ORDER)
        first = await agent_reply(server, slack, ts, same, at=clock.now.timestamp())
        assert (await after_joining(customer))["text"] == same
        clock.advance(600)
        await customer.say(GIFT_WRAP)  # the bot stays silent: Ann has the conversation
        await mirrored(slack, ts, GIFT_WRAP)
        second = await agent_reply(server, slack, ts, same, at=clock.now.timestamp())
        assert (await customer.next_of("message"))["text"] == same

        await add_to_faq(server, slack, second)
        await add_to_faq(server, slack, first)

    later, earlier = await proposals(running, clock)
    assert (later.examples, earlier.examples) == ((GIFT_WRAP,), (ORDER,))
    assert later.message_ids[-1] > earlier.message_ids[-1]


@pytest.mark.parametrize("public_url", [""], indirect=True)
async def test_the_bots_copy_of_a_reply_from_the_inbox_becomes_a_proposal(
    service: tuple[Service, TestServer], slack: SlackStandIn, clock: Clock
) -> None:
    running, server = service
    async with upset_customer(server) as customer:
        ts = await handed_over(server, slack, customer, GIFT_WRAP)
        await running.runtime.desk.reply(1, "Ann", GIFT_REPLY)  # from the inbox
        copy = await mirrored(slack, ts, GIFT_REPLY)
        assert "from the inbox" in copy["text"] and copy["bot_id"] == BOT_ID
        assert (await after_joining(customer))["text"] == GIFT_REPLY

        told = await add_to_faq(server, slack, copy)

    [proposal] = await proposals(running, clock)
    assert told.startswith("Proposed: a new intent `sell_gift_wrapping_birthdays`")
    assert (proposal.examples, proposal.answer) == ((GIFT_WRAP,), GIFT_REPLY)
    assert await texts(running, proposal.message_ids) == [GIFT_WRAP, GIFT_REPLY]


@pytest.mark.parametrize("public_url", [""], indirect=True)
@pytest.mark.parametrize(
    "which",
    ["the card", "a customer message", "the bot's notice", "a note", "not relayed", "elsewhere"],
)
async def test_anything_but_an_agents_reply_is_explained_and_nothing_is_queued(
    service: tuple[Service, TestServer], slack: SlackStandIn, clock: Clock, which: str
) -> None:
    running, server = service
    async with upset_customer(server) as customer:
        ts = await handed_over(server, slack, customer, GIFT_WRAP)
        reply = await agent_reply(server, slack, ts, GIFT_REPLY)
        await after_joining(customer)
        note = "note: VIP, be nice"
        assert (await reply_in_thread(server, ts, note)).status == 200
        unrelayed = dict(reply, text="This was never sent", ts=f"{time.time():.6f}")
        channel, expected = CHANNEL, faq_proposals.NOT_SENT
        if which == "the card":
            message, expected = slack.message(CHANNEL, ts), faq_proposals.ON_CARD
        elif which == "a customer message":
            message = await mirrored(slack, ts, GIFT_WRAP)
            expected = faq_proposals.NOT_A_REPLY.format(what="the customer's message")
        elif which == "the bot's notice":
            message = await mirrored(slack, ts, "has joined the conversation")
            expected = faq_proposals.NOT_A_REPLY.format(what="the bot's message")
        elif which == "a note":
            message, expected = dict(reply, text=note), faq_proposals.A_NOTE
        elif which == "not relayed":
            message = unrelayed
        else:  # the agent's very reply, as if it were in another channel
            message, channel, expected = reply, "C0OTHER", faq_proposals.OUTSIDE

        assert await add_to_faq(server, slack, message, channel=channel) == expected

    assert await proposals(running, clock) == []


@pytest.mark.parametrize("public_url", [""], indirect=True)
async def test_someone_not_an_agent_is_refused(
    service: tuple[Service, TestServer], slack: SlackStandIn, clock: Clock
) -> None:
    running, server = service
    async with upset_customer(server) as customer:
        ts = await handed_over(server, slack, customer, GIFT_WRAP)
        reply = await agent_reply(server, slack, ts, GIFT_REPLY)
        await after_joining(customer)

        told = await add_to_faq(server, slack, reply, user=STRANGER)

    assert told == faq_proposals.NOT_ALLOWED
    assert await proposals(running, clock) == []


def test_the_manifest_declares_the_shortcut() -> None:
    manifest = YAML(typ="safe").load((ROOT / "slack-manifest.yml").read_text())
    [shortcut] = manifest["features"]["shortcuts"]
    assert shortcut == shortcut | {
        "type": "message",
        "name": "Add to FAQ",
        "callback_id": faq_proposals.CALLBACK_ID,
    }
    assert 0 < len(shortcut["description"]) <= 150  # Slack's limit
    assert "commands" in manifest["oauth_config"]["scopes"]["bot"]  # shortcuts need it
