"""Teams in the Slack desk (issue 17, sections 1 and 2): each team's handoffs in its own channel,
only its members act on them, a transfer opens a new card in the other team's channel, one
reminder and one breach notice per handoff on the team's first-response target, ``note:``
replies kept for the inbox, and take-overs from any desk said in the thread.

The real service (fake encoder) with web chat customers, slack-bolt talking to the Slack
stand-in, and a fake clock moved by hand for the targets."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import func, insert, select, text
from sqlalchemy.exc import IntegrityError

from carebot.config import Settings
from carebot.desk.slack import card as cards
from carebot.desk.slack.listeners import MOVED, NOT_A_MEMBER, NOT_ALLOWED
from carebot.server import Service
from carebot.store.database import Database
from carebot.store.tables import (
    Handoff,
    Message,
    Note,
    SlackThread,
)
from tests.conftest import Clock, settings_data
from tests.service import _HASH, Visitor, running_service
from tests.slack_standin import (
    FORM,
    SlackStandIn,
    block_action,
    event_callback,
    form_body,
    signed_headers,
    thread_reply,
    view_submission,
)
from tests.test_store import _migrate, a_conversation, rows

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
ENV = {"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": SECRET}
CARE, BILLING, ESCALATION = "CCARE", "CBILL", "CESC"
ANN, BOB, EVE, CAT, LEE = "UANN", "UBOB", "UEVE", "UCAT", "ULEE"
BILLING_QUESTION = "I was charged twice on my invoice, I want a human"
LEGAL_THREAT = "where is my order, I will call my lawyer"
ACCOUNT = "delete my account"  # handed over (sensitive); no rule matches: the default team
AGENTS = [
    {"name": "ann", "display_name": "Ann", "password_hash": _HASH, "slack_user_id": ANN},
    {"name": "bob", "display_name": "Bob", "password_hash": _HASH, "slack_user_id": BOB},
    {"name": "eve", "display_name": "Eve", "slack_user_id": EVE, "teams": ["escalation"]},
    {"name": "lee", "display_name": "Lee", "slack_user_id": LEE, "roles": ["agent", "lead"]},
]
TEAMS = [
    # no members: the members of its channel act on its handoffs, as today's care channel
    {"name": "care", "display_name": "Care", "slack_channel": CARE},
    {
        "name": "billing",
        "display_name": "Billing",
        "slack_channel": BILLING,
        "members": ["ann", "bob"],
        "first_response_minutes": 30,
        "remind_before_minutes": 10,
    },
    {"name": "escalation", "display_name": "Escalation", "slack_channel": ESCALATION},
]
ROUTING = {
    "default_team": "care",
    "rules": [
        {"team": "billing", "name": "billing words", "words": ["invoice", "charged"]},
        {"team": "escalation", "name": "legal threats", "words": ["lawyer"]},
    ],
}


def team_settings(tmp_path: Path, slack: SlackStandIn) -> Settings:
    data: dict[str, Any] = settings_data(
        tmp_path,
        inbox={"agents": AGENTS},
        server={"secret_file": str(tmp_path / "secret_key")},
        slack={"channel": CARE, "api_url": slack.base_url, "posts_per_second": 1000.0},
    )
    data["teams"], data["routing"] = TEAMS, ROUTING
    return Settings.model_validate(data)


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn() as standin:
        for user, name in [(ANN, "Ann"), (BOB, "Bob"), (EVE, "Eve"), (CAT, "Cat"), (LEE, "Lee")]:
            standin.add_user(user, name=name.lower(), real_name=f"{name} S.", display_name=name)
        standin.channel_members = {CARE: {CAT, "UBOT"}, BILLING: {ANN, BOB, EVE, "UBOT"}}
        standin.channel_members[ESCALATION] = {EVE, LEE, ANN, "UBOT"}
        yield standin


@pytest.fixture
async def service(
    tmp_path: Path, database_url: str, clock: Clock, slack: SlackStandIn
) -> AsyncIterator[tuple[Service, TestServer]]:
    settings = team_settings(tmp_path, slack)
    async with running_service(settings, database_url, clock, env=ENV) as running:
        yield running


@asynccontextmanager
async def customer_saying(server: TestServer, text: str) -> AsyncIterator[Visitor]:
    """A web chat customer whose message ``text`` has just been handed over."""
    async with aiohttp.ClientSession() as http:
        customer = Visitor(await http.ws_connect(server.make_url("/chat/ws")))
        await customer.hello()
        await customer.say(text)
        await customer.next_of("message")
        yield customer


async def deliver(server: TestServer, body: dict[str, Any]) -> None:
    interactive = body.get("type") in ("block_actions", "view_submission")
    raw = form_body(body) if interactive else json.dumps(body).encode()
    headers = signed_headers(SECRET, raw, content_type=FORM)
    if not interactive:
        headers["Content-Type"] = "application/json"
    async with (
        aiohttp.ClientSession() as http,
        http.post(server.make_url("/slack/events"), data=raw, headers=headers) as answer,
    ):
        await answer.read()
        assert answer.status == 200


async def press(
    server: TestServer, channel: str, ts: str, action_id: str, user: str, conversation: int
) -> None:
    body = block_action(
        user=user, channel=channel, message_ts=ts, action_id=action_id, value=str(conversation)
    )
    await deliver(server, body)


async def reply(
    server: TestServer, channel: str, thread_ts: str, user: str, text: str, ts: str, event: str
) -> None:
    said = thread_reply(channel=channel, thread_ts=thread_ts, user=user, text=text, ts=ts)
    await deliver(server, event_callback(said, event_id=event))


async def card_in(slack: SlackStandIn, channel: str, *, number: int = 1) -> dict[str, Any]:
    """The ``number``-th card posted in ``channel``."""
    await slack.wait_for(
        "chat.postMessage",
        lambda c: c.params["channel"] == channel and "thread_ts" not in c.params,
        count=number,
    )
    found = [m for m in slack.messages[channel] if "thread_ts" not in m]
    return found[number - 1]


def shown(message: dict[str, Any]) -> str:
    return json.dumps(message["blocks"], ensure_ascii=False)


def buttons(message: dict[str, Any]) -> list[str]:
    actions = [b for b in message["blocks"] if b["type"] == "actions"]
    return [e["action_id"] for a in actions for e in a["elements"]]


def thread_texts(slack: SlackStandIn, channel: str, ts: str) -> list[str]:
    return [m["text"] for m in slack.thread(channel, ts)]


async def refused(slack: SlackStandIn, user: str, words: str) -> dict[str, Any]:
    [told] = await slack.wait_for(
        "chat.postEphemeral", lambda c: c.params["user"] == user and words in c.params["text"]
    )
    return told.params


async def handoff_of(service: Service, conversation_id: int) -> Handoff:
    async with service.runtime.db.session() as session:
        found = await session.scalar(
            select(Handoff)
            .where(Handoff.conversation_id == conversation_id)
            .order_by(Handoff.id.desc())
        )
        assert found is not None
        return found


async def count(service: Service, table: Any, *where: Any) -> int:
    async with service.runtime.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(table).where(*where)))


def transfer_submission(user: str, conversation: int, team: str, note: str) -> dict[str, Any]:
    values = {
        cards.TEAM_BLOCK: {
            cards.TEAM_INPUT: {"type": "static_select", "selected_option": {"value": team}}
        },
        cards.NOTE_BLOCK: {cards.NOTE_INPUT: {"type": "plain_text_input", "value": note}},
    }
    return view_submission(
        user=user,
        callback_id=cards.TRANSFER_VIEW,
        private_metadata=str(conversation),
        values=values,
    )


async def test_two_teams_in_their_channels_a_transfer_a_refusal_and_the_targets(
    service: tuple[Service, TestServer], slack: SlackStandIn, clock: Clock
) -> None:
    """The issue's "Done when", on Slack: billing's question in billing's channel, the legal
    threat in escalation's, a member of another team refused, the reminder and the breach
    notice on the fake clock, then a transfer from billing to escalation seen in both."""
    running, server = service
    sync = running.slack.sync if running.slack else None
    assert sync is not None
    async with (
        customer_saying(server, BILLING_QUESTION),
        customer_saying(server, LEGAL_THREAT),
    ):
        bill = await card_in(slack, BILLING)
        legal = await card_in(slack, ESCALATION)
        assert BILLING_QUESTION in shown(bill) and LEGAL_THREAT in shown(legal)
        assert CARE not in slack.messages  # nothing went to the default team's channel
        billing_id = int(next(b["value"] for b in _elements(bill)))
        legal_id = int(next(b["value"] for b in _elements(legal)))
        route = (await handoff_of(running, billing_id)).route
        assert route and "billing words" in route
        assert f"*Team*\\nBilling\\n{route}" in shown(bill)  # which team, which rule
        assert "*Team*\\nEscalation" in shown(legal)
        assert cards.TRANSFER in buttons(bill)

        # Eve (escalation) may not act on billing's handoff; the refusal names the team.
        await press(server, BILLING, bill["ts"], cards.TAKE_OVER, EVE, billing_id)
        told = await refused(slack, EVE, "belongs to Billing")
        assert told["text"] == NOT_A_MEMBER.format(team="Billing")
        assert told["channel"] == BILLING
        await reply(server, BILLING, bill["ts"], EVE, "I can help", "1700000900.000001", "EvE1")
        await slack.wait_for("chat.postEphemeral", lambda c: c.params["user"] == EVE, count=2)
        assert await count(running, Message, Message.author == "agent") == 0

        # 20 working minutes: the reminder (10 before billing's 30-minute target), once.
        clock.advance(20 * 60)
        sync.mark(billing_id)
        [reminder] = await slack.wait_for(
            "chat.postMessage", lambda c: "first-response target left" in c.params["text"]
        )
        assert reminder.params["channel"] == BILLING
        assert reminder.params["thread_ts"] == bill["ts"]
        assert "10 min of Billing's 30 min first-response target left" in reminder.params["text"]
        # 30 minutes: the breach notice, once; escalation has no target: its old reminder.
        clock.advance(10 * 60)
        sync.mark(billing_id)
        sync.mark(legal_id)
        [breach] = await slack.wait_for(
            "chat.postMessage", lambda c: "target breached" in c.params["text"]
        )
        assert breach.params["text"].endswith(
            "First-response target breached: waiting 30 min (Billing's target is 30 min)"
        )
        assert (breach.params["channel"], breach.params["thread_ts"]) == (BILLING, bill["ts"])
        [legal_reminder] = await slack.wait_for(
            "chat.postMessage", lambda c: "Nobody has answered for 10 minutes" in c.params["text"]
        )
        assert legal_reminder.params["channel"] == ESCALATION
        assert await sync.flush_due() is True
        assert await sync.flush_due() is True
        texts = [c.params["text"] for c in slack.successful("chat.postMessage")]
        assert sum("target breached" in t for t in texts) == 1
        assert sum("first-response target left" in t for t in texts) == 1
        assert sum("Nobody has answered for" in t for t in texts) == 1

        # Ann transfers the billing conversation to escalation, with a note for them.
        before = await count(running, Message)
        await press(server, BILLING, bill["ts"], cards.TRANSFER, ANN, billing_id)
        [opened] = await slack.wait_for("views.open")
        modal = opened.params["view"]
        assert modal["callback_id"] == cards.TRANSFER_VIEW
        options = modal["blocks"][0]["element"]["options"]
        assert [o["value"] for o in options] == ["care", "escalation"]  # not billing itself
        note = "Customer mentions a chargeback."
        await deliver(server, transfer_submission(ANN, billing_id, "escalation", note))
        moved = await card_in(slack, ESCALATION, number=2)
        assert BILLING_QUESTION in shown(moved) and "*Team*\\nEscalation" in shown(moved)
        await slack.wait_for(
            "chat.postMessage",
            lambda c: (
                c.params.get("thread_ts") == moved["ts"]
                and "Transferred from Billing by Ann" in c.params["text"]
            ),
        )
        assert any(note in t for t in thread_texts(slack, ESCALATION, moved["ts"]))
        await slack.wait_for(
            "chat.update", lambda c: "transferred to Escalation by Ann" in c.params["text"]
        )
        old = slack.message(BILLING, bill["ts"])
        assert "Transferred to Escalation by Ann" in shown(old)
        assert buttons(old) == []  # its buttons are gone
        assert (await handoff_of(running, billing_id)).team == "escalation"
        assert await count(running, Message) == before  # the customer was not messaged

        # A reply under the old card is not sent; Ann is told where the conversation went.
        await reply(server, BILLING, bill["ts"], ANN, "hello?", "1700000901.000001", "EvA1")
        told = await refused(slack, ANN, "transferred to Escalation")
        assert told["text"] == MOVED.format(team="Escalation")
        # Escalation's card: Bob (billing) is refused; Eve, its member, takes it over.
        await press(server, ESCALATION, moved["ts"], cards.TAKE_OVER, BOB, billing_id)
        await refused(slack, BOB, "belongs to Escalation")
        await press(server, ESCALATION, moved["ts"], cards.TAKE_OVER, EVE, billing_id)
        await slack.wait_for("chat.update", lambda c: "with Eve" in c.params["text"])
        case = await running.runtime.queue.case(billing_id)
        assert case.agent == "Eve"  # the configured agent's name, as the inbox says it
        async with running.runtime.db.session() as session:
            threads = (
                await session.scalars(
                    select(SlackThread).where(SlackThread.conversation_id == billing_id)
                )
            ).all()
        assert sorted((t.channel, t.transferred_to) for t in threads) == [
            (BILLING, "escalation"),
            (ESCALATION, None),
        ]


def _elements(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The card's buttons (their value: the conversation id)."""
    blocks = message["blocks"]
    return [e for b in blocks if b.get("block_id") == "carebot_actions" for e in b["elements"]]


async def test_a_team_without_members_falls_back_to_its_channels_members(
    service: tuple[Service, TestServer], slack: SlackStandIn
) -> None:
    running, server = service
    async with customer_saying(server, ACCOUNT):
        card = await card_in(slack, CARE)
        conversation = int(_elements(card)[0]["value"])
        await press(server, CARE, card["ts"], cards.TAKE_OVER, ANN, conversation)
        told = await refused(slack, ANN, "Only care agents")
        assert (told["text"], told["channel"]) == (NOT_ALLOWED, CARE)
        assert (await running.runtime.queue.case(conversation)).agent is None
        await press(server, CARE, card["ts"], cards.TAKE_OVER, CAT, conversation)
        await slack.wait_for("chat.update", lambda c: "with Cat" in c.params["text"])


async def test_a_note_reply_is_kept_once_for_the_inbox(
    service: tuple[Service, TestServer], slack: SlackStandIn
) -> None:
    running, server = service
    async with customer_saying(server, BILLING_QUESTION):
        card = await card_in(slack, BILLING)
        conversation = int(_elements(card)[0]["value"])
        ts = "1700000950.000001"
        for event in ("EvN1", "EvN1", "EvN2"):  # Slack's redelivery, and one with a new id
            await reply(server, BILLING, card["ts"], ANN, "note: VIP, be quick", ts, event)
        # each delivery Slack did not repeat (its event id) is handled: kept, with a memo
        await slack.wait_for("reactions.add", lambda c: c.params["name"] == "memo", count=2)
        async with running.runtime.db.session() as session:
            notes = (await session.scalars(select(Note))).all()
        assert [(n.conversation_id, n.agent, n.text, n.via, n.external_id) for n in notes] == [
            (conversation, "Ann", "VIP, be quick", "slack", ts)
        ]
        assert await count(running, Message, Message.author == "agent") == 0  # not sent
        # Eve, not a member of billing, cannot leave notes on its conversations either.
        await reply(server, BILLING, card["ts"], EVE, "note: mine", "1700000951.0001", "EvN3")
        await refused(slack, EVE, "belongs to Billing")
        assert await count(running, Note) == 1


async def test_a_take_over_in_the_inbox_is_said_in_the_thread_once(
    service: tuple[Service, TestServer], slack: SlackStandIn
) -> None:
    running, server = service
    async with customer_saying(server, BILLING_QUESTION):
        card = await card_in(slack, BILLING)
        conversation = int(_elements(card)[0]["value"])
        await press(server, BILLING, card["ts"], cards.TAKE_OVER, ANN, conversation)
        await slack.wait_for("chat.update", lambda c: "with Ann" in c.params["text"])
        # Bob takes it over from the inbox (the agent desk the inbox calls).
        await running.runtime.desk.take_over(conversation, "Bob", from_colleague=True)
        [note] = await slack.wait_for(
            "chat.postMessage", lambda c: "took this conversation over" in c.params["text"]
        )
        assert note.params["thread_ts"] == card["ts"]
        assert "Bob took this conversation over from <@UANN>" in note.params["text"]
        await slack.wait_for("chat.update", lambda c: "with Bob" in c.params["text"])
        assert running.slack is not None
        assert await running.slack.sync.flush_due() is True
        texts = thread_texts(slack, BILLING, card["ts"])
        assert sum("took this conversation over" in t for t in texts) == 1


async def test_the_targets_count_the_teams_business_hours(
    service: tuple[Service, TestServer], slack: SlackStandIn, clock: Clock
) -> None:
    """Billing's 30-minute target for a handoff 15 minutes before closing (18:00) runs out 15
    minutes after it opens the next morning: reminded at 09:05, breached at 09:15."""
    running, server = service
    assert running.slack is not None
    sync = running.slack.sync
    clock.now = datetime(2026, 11, 18, 17, 45, tzinfo=UTC)  # a Wednesday
    async with customer_saying(server, BILLING_QUESTION):
        card = await card_in(slack, BILLING)
        for moment, expected in [
            (datetime(2026, 11, 18, 23, 0, tzinfo=UTC), []),  # closed: the time stands still
            (datetime(2026, 11, 19, 9, 4, tzinfo=UTC), []),
            (datetime(2026, 11, 19, 9, 5, tzinfo=UTC), ["target left"]),
            (datetime(2026, 11, 19, 9, 14, tzinfo=UTC), ["target left"]),
            (datetime(2026, 11, 19, 9, 15, tzinfo=UTC), ["target left", "target breached"]),
            (datetime(2026, 11, 19, 12, 0, tzinfo=UTC), ["target left", "target breached"]),
        ]:
            clock.now = moment
            assert await sync.flush_due() is True
            texts = thread_texts(slack, BILLING, card["ts"])
            said = [w for t in texts for w in ("target left", "target breached") if w in t]
            assert said == expected, moment
        assert texts[-1].endswith("waiting 15 h 30 min (Billing's target is 30 min)")


async def test_migration_0014_keeps_threads_and_allows_one_live_per_conversation(
    database_url: str,
) -> None:
    at = datetime(2026, 3, 1, 9, tzinfo=UTC)
    db = Database(database_url)
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(_migrate, "0013")
            conversation = await a_conversation(conn, at)
            thread = {"conversation_id": conversation, "card_hash": "", "created_at": at}
            await conn.execute(
                insert(SlackThread.__table__).values(
                    channel=BILLING, ts="1.1", mirrored_message_id=4, **thread
                )
            )
            await conn.run_sync(_migrate, "head")
        [kept] = await rows(db, SlackThread)
        assert (kept.channel, kept.ts, kept.mirrored_message_id, kept.superseded_at) == (
            BILLING, "1.1", 4, None,
        )  # fmt: skip
        with pytest.raises(IntegrityError):  # a second live thread
            async with db.transaction() as session:
                session.add(SlackThread(channel=ESCALATION, ts="2.2", **thread))
        async with db.transaction() as session:  # the old one superseded: the new one is live
            old = await session.get(SlackThread, kept.id)
            assert old is not None
            old.superseded_at, old.transferred_to = at, "escalation"
            session.add(SlackThread(channel=ESCALATION, ts="2.2", **thread))
        async with db.engine.begin() as conn:
            await conn.run_sync(_migrate, "0013", down=True)
            left = (await conn.execute(text("SELECT channel FROM slack_threads"))).all()
        assert [row[0] for row in left] == [ESCALATION]  # the live one
    finally:
        await db.close()


@pytest.mark.parametrize(
    ("user", "name"),
    [(ANN, "Ann"), (LEE, "Lee"), (EVE, None), (CAT, None)],
    ids=["member", "lead", "other-team", "not-an-agent"],
)
async def test_who_may_take_over_billings_handoff(
    service: tuple[Service, TestServer], slack: SlackStandIn, user: str, name: str | None
) -> None:
    """Billing's members and leads may; an agent of another team, and a Slack user who is no
    configured agent (though in billing's channel, as Cat is not), may not."""
    running, server = service
    slack.channel_members[BILLING].add(CAT)
    async with customer_saying(server, BILLING_QUESTION):
        card = await card_in(slack, BILLING)
        conversation = int(_elements(card)[0]["value"])
        await press(server, BILLING, card["ts"], cards.TAKE_OVER, user, conversation)
        if name is None:
            told = await refused(slack, user, "belongs to Billing")
            assert told["text"] == NOT_A_MEMBER.format(team="Billing")
            assert (await running.runtime.queue.case(conversation)).agent is None
        else:
            await slack.wait_for("chat.update", lambda c: f"with {name}" in c.params["text"])
            assert (await running.runtime.queue.case(conversation)).agent == name
