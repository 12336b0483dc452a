"""The customer is told when their conversation changes hands: an agent joins (taking it over,
or replying or sending the draft first), another agent takes it from them, an agent hands it
back to the bot. The notices go through the outbox, in order before the agent's reply; closing
says nothing. On SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from carebot.config import Settings
from carebot.exceptions import DeliveryError, StoreError
from carebot.models import InboundMessage
from carebot.runtime import Runtime
from carebot.store.tables import Conversation, OutboxRow
from tests.conftest import Clock, make_settings
from tests.fakes import RecordingChannel

_ids = itertools.count(1)
SENSITIVE = "delete my account"  # always handed to a person, with a draft
DRAFT = "I can delete your account for you."
RESOLVED = (
    "{agent} has marked this conversation as resolved. I'm the assistant again: ask me "
    "anything, or ask for a person."
)


@pytest.fixture
def settings(tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    """The test settings; a test may replace [messages] keys (indirect parametrization)."""
    return make_settings(tmp_path, messages=getattr(request, "param", {}))


def inbound(text: str) -> InboundMessage:
    return InboundMessage(
        channel="test",
        external_user_id="u1",
        external_message_id=f"m{next(_ids)}",
        text=text,
        sent_at=datetime(2026, 11, 18, 10, tzinfo=UTC),
    )


async def handed_off(runtime: Runtime) -> int:
    """A conversation waiting for an agent; the customer was told so."""
    outcome = await runtime.inbox.receive(inbound(SENSITIVE))
    assert outcome.decision is not None and outcome.decision.hands_off
    return outcome.received.conversation_id


async def outbox(runtime: Runtime) -> list[tuple[str, str | None, str]]:
    """(text, notice, status) of every outbox row, in order."""
    async with runtime.db.session() as session:
        found = await session.scalars(select(OutboxRow).order_by(OutboxRow.id))
        return [(r.text, r.meta.get("notice"), r.status) for r in found.all()]


def joined(agent: str) -> str:
    return f"{agent} from our team has joined the conversation."


async def test_taking_over_tells_the_customer_who_joined_before_the_agents_reply(
    runtime: Runtime, channel: RecordingChannel
) -> None:
    conversation_id = await handed_off(runtime)
    await runtime.desk.take_over(conversation_id, "Ann")
    await runtime.desk.reply(conversation_id, "Ann", "Done, it is deleted.")

    handoff = runtime.settings.messages.handoff
    assert channel.texts() == [handoff, joined("Ann"), "Done, it is deleted."]
    notice, reply = channel.sent[1:]
    assert (notice.author, notice.agent, notice.notice) == ("bot", None, "agent_joined")
    # Channels that show no author sign the agent's reply, never the bot's notice.
    assert notice.signed_text() == joined("Ann")
    assert reply.signed_text() == "Ann: Done, it is deleted."
    assert [status for _, _, status in await outbox(runtime)] == ["sent"] * 3


FIRST_ACTIONS: dict[str, Callable[[Runtime, int], Awaitable[Any]]] = {
    "reply": lambda runtime, c: runtime.desk.reply(c, "Ann", "Hello, Ann here."),
    "send_draft": lambda runtime, c: runtime.desk.send_draft(c, "Ann"),
}


@pytest.mark.parametrize("first", list(FIRST_ACTIONS))
async def test_an_agent_who_answers_without_taking_over_joins_once(
    runtime: Runtime, channel: RecordingChannel, first: str
) -> None:
    conversation_id = await handed_off(runtime)
    await FIRST_ACTIONS[first](runtime, conversation_id)
    await runtime.desk.reply(conversation_id, "Ann", "Anything else?")

    answer = "Hello, Ann here." if first == "reply" else DRAFT
    handoff = runtime.settings.messages.handoff
    # All sent right away, in order, by the agent's own request (no worker runs here).
    assert channel.texts() == [handoff, joined("Ann"), answer, "Anything else?"]
    assert [n for _, n, _ in await outbox(runtime)] == [None, "agent_joined", None, None]


async def test_another_agent_taking_the_conversation_is_announced_as_a_transfer(
    runtime: Runtime, channel: RecordingChannel
) -> None:
    conversation_id = await handed_off(runtime)
    await runtime.desk.take_over(conversation_id, "Ann")
    await runtime.desk.take_over(conversation_id, "Ann")  # hers already: nothing said
    await runtime.desk.reply(conversation_id, "Ben", "Hi, Ben here.", from_colleague=True)
    await runtime.desk.take_over(conversation_id, "Ann", from_colleague=True)  # and back

    assert channel.texts()[1:] == [
        joined("Ann"),
        "Ben has joined the conversation.",
        "Hi, Ben here.",
        "Ann has joined the conversation.",
    ]
    assert [n for _, n, _ in await outbox(runtime)][1:] == [
        "agent_joined",
        "agent_transferred",
        None,
        "agent_transferred",
    ]
    conversation = await runtime.conversations.conversation(conversation_id)
    assert (conversation.state, conversation.agent) == ("with_agent", "Ann")


async def test_resolving_tells_the_customer_and_closing_says_nothing(
    runtime: Runtime, channel: RecordingChannel
) -> None:
    conversation_id = await handed_off(runtime)
    await runtime.desk.resolve(conversation_id, "Ann")  # nobody had joined: still told
    assert channel.texts()[1:] == [RESOLVED.format(agent="Ann")]
    assert channel.sent[1].notice == "resolved"

    await runtime.desk.take_over(conversation_id, "Ben")  # an agent steps in on their own
    await runtime.desk.resolve(conversation_id, "Ben")
    await runtime.inbox.receive(inbound(SENSITIVE))  # handed off again
    await runtime.desk.close(conversation_id, "Ben")
    assert channel.texts()[2:] == [
        joined("Ben"),
        RESOLVED.format(agent="Ben"),
        runtime.settings.messages.handoff,  # and nothing for the close
    ]
    assert len(await outbox(runtime)) == 5


async def test_a_reply_waits_in_the_outbox_behind_a_notice_that_failed(
    runtime: Runtime, channel: RecordingChannel, clock: Clock
) -> None:
    conversation_id = await handed_off(runtime)
    channel.failures.append(DeliveryError("the platform is down"))
    await runtime.desk.reply(conversation_id, "Ann", "Done, it is deleted.")

    assert channel.texts() == [runtime.settings.messages.handoff]  # the reply did not jump it
    assert [(n, s) for _, n, s in await outbox(runtime)][1:] == [
        ("agent_joined", "pending"),
        (None, "pending"),
    ]
    clock.advance(1)  # the retry is due (1 s, without jitter here)
    assert await runtime.outbox.deliver_due() == 3  # and "passing you to...", sent before
    assert channel.texts()[1:] == [joined("Ann"), "Done, it is deleted."]


async def test_a_refused_reply_changes_hands_and_tells_nothing(runtime: Runtime) -> None:
    conversation_id = await handed_off(runtime)
    with pytest.raises(StoreError, match="cannot be empty"):
        await runtime.desk.reply(conversation_id, "Ann", "   ")
    await runtime.desk.close(conversation_id, "Ann")
    with pytest.raises(StoreError, match="is closed"):
        await runtime.desk.reply(conversation_id, "Ann", "Hello?")
    assert [n for _, n, _ in await outbox(runtime)] == [None]  # only "passing you to..."
    async with runtime.db.session() as session:
        assert await session.scalar(select(Conversation.agent)) is None


@pytest.mark.parametrize(
    ("settings", "said"),
    [
        ({"agent_joined": ""}, ["transferred", "reply", "resolved"]),
        ({"agent_transferred": ""}, ["joined", "reply", "resolved"]),
        ({"resolved": ""}, ["joined", "transferred", "reply"]),
        (
            {"agent_joined": "{agent} is here.", "resolved": "{agent} is done: the bot is back."},
            ["joined", "transferred", "reply", "resolved"],
        ),
    ],
    indirect=["settings"],
    ids=["no-joined", "no-transferred", "no-resolved", "own-words"],
)
async def test_each_notice_has_its_own_words_and_an_empty_one_is_not_sent(
    runtime: Runtime, channel: RecordingChannel, said: list[str]
) -> None:
    conversation_id = await handed_off(runtime)
    await runtime.desk.take_over(conversation_id, "Ann")
    await runtime.desk.reply(conversation_id, "Ben", "Hi, Ben here.", from_colleague=True)
    await runtime.desk.resolve(conversation_id, "Ben")

    messages = runtime.settings.messages
    words = {
        "joined": messages.agent_joined.format(agent="Ann"),
        "transferred": messages.agent_transferred.format(agent="Ben"),
        "reply": "Hi, Ben here.",
        "resolved": messages.resolved.format(agent="Ben"),
    }
    assert channel.texts() == [messages.handoff, *(words[kind] for kind in said)]
