"""A customer waiting for a person is never left in silence (carebot/inbox.py): one
acknowledgement per handoff (again after ``[waiting] ack_repeat_minutes``) with the typical wait
or when the team is back, FAQ answers with a follow-up line, "never mind" back to the bot, and
every message updating the open handoff's reasons, emotion and priority, which order the queue.

The test business hours are Monday to Friday 09:00-18:00 UTC; the clock starts on Wednesday
2026-11-18 at 10:00. With the fake encoder and the test intents (tests/data/intents).
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, select

from carebot.inbox import Outcome, Status
from carebot.models import InboundMessage, WaitingAction
from carebot.runtime import Runtime, build_runtime
from carebot.store.tables import DecisionRow, Handoff
from tests.conftest import EXACT_BACKOFF, Clock, make_settings
from tests.fakes import FakeEncoder, RecordingChannel
from tests.migrated import migrate
from tests.test_store import _migrate

_ids = itertools.count(1)
TRACK = "Track it at https://track.example."
ASK_PERSON = "I want to talk to a real person"  # asked_for_human (priority 5)
SENSITIVE = "delete my account"  # sensitive_intent (priority 4)
UPSET = "I will call my lawyer"  # emotional, emotion 0.9 (priority 6 + 4 x 0.9)


async def say(runtime: Runtime, text: str, user: str = "u1") -> Outcome:
    message = InboundMessage("test", user, f"m{next(_ids)}", text, runtime.clock())
    return await runtime.inbox.receive(message)


async def handed_over(runtime: Runtime, text: str = SENSITIVE, user: str = "u1") -> int:
    outcome = await say(runtime, text, user)
    assert outcome.decision is not None and outcome.decision.hands_off, outcome
    return outcome.received.conversation_id


async def handoff(runtime: Runtime, conversation_id: int) -> Handoff:
    async with runtime.db.session() as session:
        found = await session.scalar(
            select(Handoff)
            .where(Handoff.conversation_id == conversation_id)
            .order_by(Handoff.id.desc())
            .limit(1)
        )
    assert found is not None
    return found


async def state(runtime: Runtime, conversation_id: int) -> str:
    return (await runtime.conversations.conversation(conversation_id)).state


def ack_unknown(runtime: Runtime) -> str:
    return runtime.settings.messages.waiting_ack_unknown


def answered_while_waiting(runtime: Runtime, answer: str) -> str:
    return f"{answer}\n\n{runtime.settings.messages.waiting_answer_suffix}"


@pytest.fixture
async def make_runtime(
    tmp_path: Path, database_url: str, clock: Clock, channel: RecordingChannel
) -> AsyncIterator[Any]:
    """A runtime with these settings sections (the others as in the test settings)."""
    made: list[Runtime] = []
    await migrate(database_url)

    async def make(**sections: dict[str, object]) -> Runtime:
        runtime = await build_runtime(
            make_settings(tmp_path, **sections),
            encoder=FakeEncoder(),
            channels={"test": channel},
            clock=clock,
            database_url=database_url,
            backoff=EXACT_BACKOFF,
        )
        made.append(runtime)
        return runtime

    yield make
    for runtime in made:
        await runtime.db.close()


# The acknowledgement


async def test_one_acknowledgement_per_handoff_and_again_after_the_repeat_time(
    runtime: Runtime, channel: RecordingChannel, clock: Clock
) -> None:
    conversation_id = await handed_over(runtime)
    handoff_text = runtime.settings.messages.handoff
    acked = []
    for minutes in (1, 10, 29, 1, 5, 25):  # after the handoff: 1, 11, 40, 41, 46, 71 minutes
        clock.advance(minutes * 60)
        outcome = await say(runtime, "hmm")
        assert outcome.status is Status.WAITING
        acked.append(outcome.waiting is WaitingAction.ACKNOWLEDGED)
    assert acked == [True, False, True, False, False, True]  # 30 minutes after the last one
    assert channel.texts() == [handoff_text, *[ack_unknown(runtime)] * 3]
    decisions = await runtime_rows(runtime, DecisionRow)
    assert [d.details.get("waiting") for d in decisions] == [
        None,  # the handoff itself
        *["acknowledged", "silent", "acknowledged", "silent", "silent", "acknowledged"],
    ]
    assert (await handoff(runtime, conversation_id)).acked_at == clock.now
    assert await state(runtime, conversation_id) == "waiting_for_agent"

    # Handed back and over again: the new handoff gets its own acknowledgement at once.
    await runtime.handoffs.resolve(conversation_id, "ann")
    await handed_over(runtime)
    clock.advance(60)
    assert (await say(runtime, "hmm")).waiting is WaitingAction.ACKNOWLEDGED


@pytest.mark.parametrize("repeat", [5.0, 60.0])
async def test_the_repeat_time_is_configured(
    make_runtime: Any, clock: Clock, repeat: float
) -> None:
    runtime = await make_runtime(waiting={"ack_repeat_minutes": repeat})
    await handed_over(runtime)
    first = await say(runtime, "hmm")
    clock.advance(repeat * 60 - 1)
    early = await say(runtime, "hmm")
    clock.advance(1)
    due = await say(runtime, "hmm")
    assert [o.waiting for o in (first, early, due)] == [
        WaitingAction.ACKNOWLEDGED,
        WaitingAction.SILENT,
        WaitingAction.ACKNOWLEDGED,
    ]


async def answered_handoffs(runtime: Runtime, clock: Clock, waits: list[float]) -> None:
    """Other customers, handed over yesterday and answered after ``waits`` minutes."""
    start = clock.now
    clock.now = start - timedelta(days=1)
    for number, minutes in enumerate(waits):
        conversation_id = await handed_over(runtime, user=f"earlier-{number}")
        clock.advance(minutes * 60)
        await runtime.handoffs.reply(conversation_id, "ann", "Hello, Ann here.")
        clock.advance(600)
    clock.now = start


@pytest.mark.parametrize(
    ("waits", "told"),
    [
        ([8, 9, 10, 11, 12], "Our team usually answers within about 10 minutes."),
        ([40, 60, 70, 80, 200], "Our team usually answers within about an hour."),
        ([100, 110, 120, 130, 140], "Our team usually answers within about 2 hours."),
    ],
)
async def test_the_acknowledgement_names_the_typical_wait(
    runtime: Runtime, channel: RecordingChannel, clock: Clock, waits: list[float], told: str
) -> None:
    await answered_handoffs(runtime, clock, waits)
    await handed_over(runtime)
    await say(runtime, "hmm")
    assert channel.texts()[-1].endswith(told)
    assert channel.texts()[-1] == runtime.settings.messages.waiting_ack.format(
        wait=told.removeprefix("Our team usually answers within ").removesuffix(".")
    )


async def test_too_few_answered_handoffs_name_no_time(
    runtime: Runtime, channel: RecordingChannel, clock: Clock
) -> None:
    await answered_handoffs(runtime, clock, [10, 10, 10, 10])  # one short of the 5 needed
    await handed_over(runtime)
    await say(runtime, "hmm")
    assert channel.texts()[-1] == ack_unknown(runtime)


@pytest.mark.parametrize(
    ("now", "back"),
    [
        (datetime(2026, 11, 18, 19, 0, tzinfo=UTC), "tomorrow at 09:00 (UTC)"),
        (datetime(2026, 11, 19, 7, 30, tzinfo=UTC), "today at 09:00 (UTC)"),
        (datetime(2026, 11, 21, 12, 0, tzinfo=UTC), "Monday at 09:00 (UTC)"),
    ],
    ids=["evening", "early-morning", "saturday"],
)
async def test_outside_business_hours_the_acknowledgement_says_when_the_team_is_back(
    runtime: Runtime, channel: RecordingChannel, clock: Clock, now: datetime, back: str
) -> None:
    clock.now = now
    await handed_over(runtime)
    await say(runtime, "hmm")
    assert channel.texts()[-1] == runtime.settings.messages.waiting_ack_closed.format(
        next_open=back
    )


@pytest.mark.parametrize(
    "text",
    [SENSITIVE, ASK_PERSON, "return item label", "anyone there"],
    ids=["handoff", "asks-for-person", "clarify", "draft"],
)
async def test_other_decisions_get_the_acknowledgement_not_the_handoff_text_again(
    runtime: Runtime, channel: RecordingChannel, text: str
) -> None:
    conversation_id = await handed_over(runtime)
    outcome = await say(runtime, text)
    assert outcome.decision is not None and outcome.decision.kind.value != "answer"
    assert outcome.waiting is WaitingAction.ACKNOWLEDGED
    assert channel.texts() == [runtime.settings.messages.handoff, ack_unknown(runtime)]
    assert [h.id for h in await runtime_rows(runtime, Handoff)] == [
        (await handoff(runtime, conversation_id)).id
    ]  # no second handoff


async def test_files_without_text_are_acknowledged_too(
    runtime: Runtime, channel: RecordingChannel
) -> None:
    from carebot.models import Attachment

    await handed_over(runtime)
    photo = InboundMessage(
        "test", "u1", "photo-1", "", runtime.clock(), attachments=(Attachment("photo", "x"),)
    )
    outcome = await runtime.inbox.receive(photo)
    assert (outcome.decision, outcome.waiting) == (None, WaitingAction.ACKNOWLEDGED)
    assert channel.texts()[-1] == ack_unknown(runtime)


# FAQ answers while waiting


async def test_a_confident_faq_is_answered_while_waiting_with_the_follow_up_line(
    runtime: Runtime, channel: RecordingChannel
) -> None:
    conversation_id = await handed_over(runtime)
    outcome = await say(runtime, "where is my order")

    assert outcome.waiting is WaitingAction.ANSWERED and outcome.outbox_id is not None
    assert channel.texts()[-1] == answered_while_waiting(runtime, TRACK)
    assert await state(runtime, conversation_id) == "waiting_for_agent"  # still for a person
    *_, decision = await runtime_rows(runtime, DecisionRow)
    assert (decision.kind, decision.intent, decision.details["waiting"]) == (
        "answer",
        "order_status",
        "answered",
    )
    # The agent sees it in the conversation, as a bot message of this decision.
    case = await runtime.queue.case(conversation_id)
    assert [(m.author, m.text) for m in case.messages[-2:]] == [
        ("customer", "where is my order"),
        ("bot", answered_while_waiting(runtime, TRACK)),
    ]
    # An answer is no acknowledgement: the next other message still gets one.
    assert (await say(runtime, "hmm")).waiting is WaitingAction.ACKNOWLEDGED


async def test_answering_while_waiting_can_be_switched_off(
    make_runtime: Any, channel: RecordingChannel
) -> None:
    runtime = await make_runtime(triage={"answer_while_waiting": False})
    await handed_over(runtime)
    outcome = await say(runtime, "where is my order")
    assert outcome.waiting is WaitingAction.ACKNOWLEDGED
    assert channel.texts()[-1] == ack_unknown(runtime)


@pytest.mark.parametrize(("skipped", "answered"), [(["smalltalk"], False), ([], True)])
async def test_small_talk_gets_the_acknowledgement_not_the_welcome(
    make_runtime: Any, channel: RecordingChannel, skipped: list[str], answered: bool
) -> None:
    runtime = await make_runtime(triage={"not_answered_while_waiting": skipped})
    await handed_over(runtime)
    outcome = await say(runtime, "hello")  # the greeting intent, tagged smalltalk
    assert outcome.decision is not None and outcome.decision.intent == "greeting"
    if answered:
        assert outcome.waiting is WaitingAction.ANSWERED
        assert channel.texts()[-1] == answered_while_waiting(runtime, "Hello! How can I help?")
    else:
        assert outcome.waiting is WaitingAction.ACKNOWLEDGED
        assert channel.texts()[-1] == ack_unknown(runtime)


@pytest.mark.parametrize("text", ["where is my order", "hmm", "never mind, found it"])
async def test_once_an_agent_has_taken_over_the_bot_stays_silent(
    runtime: Runtime, channel: RecordingChannel, text: str
) -> None:
    conversation_id = await handed_over(runtime)
    await runtime.handoffs.take_over(conversation_id, "ann")
    outcome = await say(runtime, text)
    assert (outcome.status, outcome.decision, outcome.waiting) == (Status.RECORDED, None, None)
    assert channel.texts() == [runtime.settings.messages.handoff]
    assert await state(runtime, conversation_id) == "with_agent"


# Back to the bot


@pytest.mark.parametrize(
    "text", ["never mind, found it", "forget it, sorted", "no need anymore, thanks", "Nevermind!"]
)
async def test_a_customer_who_no_longer_needs_a_person_goes_back_to_the_bot(
    runtime: Runtime, channel: RecordingChannel, text: str
) -> None:
    conversation_id = await handed_over(runtime)
    outcome = await say(runtime, text)

    assert outcome.waiting is WaitingAction.WITHDRAWN
    assert channel.texts()[-1] == runtime.settings.messages.withdrawn
    assert await state(runtime, conversation_id) == "bot"
    ended = await handoff(runtime, conversation_id)
    assert (ended.resolution, ended.resolved_at, ended.resolved_by) == (
        "withdrawn_by_customer",
        runtime.clock(),
        None,
    )
    assert (await runtime.queue.rows()) == ([], [])
    case = await runtime.queue.case(conversation_id)
    assert case.handoff is None and case.withdrawn is not None
    assert case.withdrawn["at"] == runtime.clock().isoformat()

    # The bot has it again: answers as usual, and a message it does not understand gets the
    # rephrase request (the decisions made while waiting are no "non-answer in a row").
    assert (await say(runtime, "where is my order")).waiting is None
    assert channel.texts()[-1] == TRACK
    again = await say(runtime, "hmm")
    assert again.decision is not None and again.decision.kind.value == "clarify"
    assert channel.texts()[-1] == runtime.settings.messages.rephrase


@pytest.mark.parametrize(
    ("text", "action"),
    [
        ("never mind, I will call my lawyer", WaitingAction.ACKNOWLEDGED),  # upset
        ("never mind, get me a real person", WaitingAction.ACKNOWLEDGED),  # asks for a person
        ("never mind, delete my account", WaitingAction.ACKNOWLEDGED),  # a sensitive topic
        ("never mind, is it shipped?", WaitingAction.ACKNOWLEDGED),  # asks something
        (
            "never mind that one, I have a different question about the delivery times",
            WaitingAction.ACKNOWLEDGED,
        ),
        ("never mind, where is my order", WaitingAction.ANSWERED),  # a question it answers
        ("I found it broken in the box", WaitingAction.ACKNOWLEDGED),  # no withdraw phrase
    ],
    ids=["upset", "asks-person", "sensitive", "question", "long", "answerable", "no-phrase"],
)
async def test_a_never_mind_that_says_more_does_not_withdraw(
    runtime: Runtime, text: str, action: WaitingAction
) -> None:
    conversation_id = await handed_over(runtime)
    outcome = await say(runtime, text)
    assert outcome.waiting is action
    assert await state(runtime, conversation_id) == "waiting_for_agent"
    assert (await handoff(runtime, conversation_id)).resolved_at is None


async def test_withdraw_phrases_are_configured(make_runtime: Any) -> None:
    runtime = await make_runtime(triage={"withdraw_phrases": ["cancel that"]})
    conversation_id = await handed_over(runtime)
    assert (await say(runtime, "never mind")).waiting is WaitingAction.ACKNOWLEDGED
    assert (await say(runtime, "Cancel that, thanks")).waiting is WaitingAction.WITHDRAWN
    assert await state(runtime, conversation_id) == "bot"


# The handoff follows the customer


async def test_each_message_updates_the_reasons_emotion_and_priority(
    runtime: Runtime, clock: Clock
) -> None:
    conversation_id = await handed_over(runtime, SENSITIVE)
    first = await handoff(runtime, conversation_id)
    assert (first.reasons, first.emotion, first.emotion_cues, first.priority) == (
        "sensitive_intent,confident",
        0.0,
        [],
        4.0,  # the sensitive_intent weight
    )
    assert first.last_change is None

    clock.advance(60)
    await say(runtime, ASK_PERSON)
    asked = await handoff(runtime, conversation_id)
    assert (asked.reasons, asked.reason, asked.priority) == (
        "asked_for_human,sensitive_intent,confident",
        "asked_for_human",
        5.0,
    )
    assert asked.last_change == {
        "at": clock.now.isoformat(),
        "reasons": ["asked_for_human"],
        "emotion": None,
        "cues": [],
    }

    clock.advance(60)
    await say(runtime, UPSET)
    upset = await handoff(runtime, conversation_id)
    assert upset.reasons == "emotional,asked_for_human,sensitive_intent,confident"
    assert (upset.emotion, upset.emotion_cues) == (0.9, ["escalation_word:lawyer"])
    assert upset.priority == pytest.approx(6.0 + 4.0 * 0.9)
    assert upset.last_change == {
        "at": clock.now.isoformat(),
        "reasons": ["emotional"],
        "emotion": [0.0, 0.9],
        "cues": ["escalation_word:lawyer"],
    }
    *_, decision = await runtime_rows(runtime, DecisionRow)
    assert decision.details["cues"] == ["escalation_word:lawyer"]  # with the decision too

    # A calm message afterwards changes nothing: the emotion shown is the highest so far.
    clock.advance(60)
    await say(runtime, "ok")
    calm = await handoff(runtime, conversation_id)
    assert (calm.emotion, calm.priority, calm.last_change) == (
        upset.emotion,
        upset.priority,
        upset.last_change,
    )


async def test_a_small_rise_of_the_emotion_counts_without_a_line(runtime: Runtime) -> None:
    conversation_id = await handed_over(runtime, SENSITIVE)
    await say(runtime, "meh")  # VADER: slightly negative (0.0772)
    slight = await handoff(runtime, conversation_id)
    assert (slight.emotion, slight.emotion_cues) == (0.0772, ["negative_sentiment"])
    assert slight.priority == pytest.approx(4.0 + 4.0 * 0.0772)
    assert slight.last_change is None  # under 0.1: not worth telling the agents
    await say(runtime, UPSET)
    assert (await handoff(runtime, conversation_id)).last_change["emotion"] == [0.0772, 0.9]


async def test_the_priority_weights_are_configured(make_runtime: Any) -> None:
    runtime = await make_runtime(priority={"sensitive_intent": 9.0, "emotion_weight": 1.0})
    conversation_id = await handed_over(runtime, SENSITIVE)
    await say(runtime, UPSET)
    assert (await handoff(runtime, conversation_id)).priority == pytest.approx(9.0 + 0.9)


async def test_the_queue_is_ordered_by_priority_then_age(runtime: Runtime, clock: Clock) -> None:
    order = {}
    for user, text in [("a", SENSITIVE), ("b", ASK_PERSON), ("c", UPSET), ("d", SENSITIVE)]:
        order[user] = await handed_over(runtime, text, user)
        clock.advance(60)
    waiting, _ = await runtime.queue.rows()
    assert [r.id for r in waiting] == [order[u] for u in "cbad"]  # a and d: 4.0, a older
    assert [r.priority for r in waiting] == [pytest.approx(9.6), 5.0, 4.0, 4.0]
    assert waiting[0].cues == ["escalation_word:lawyer"] and waiting[0].emotion == 0.9

    await say(runtime, f"{ASK_PERSON}, {UPSET.lower()}", "d")  # d now asks and is upset
    await runtime.handoffs.take_over(order["c"], "ann")
    waiting, with_agent = await runtime.queue.rows()
    assert [r.id for r in waiting] == [order[u] for u in "dba"]
    assert waiting[0].reasons == ["emotional", "asked_for_human", "sensitive_intent", "confident"]
    assert [r.id for r in with_agent] == [order["c"]]


async def test_the_conversation_page_data_says_what_changed(runtime: Runtime, clock: Clock) -> None:
    conversation_id = await handed_over(runtime, ASK_PERSON)
    clock.advance(120)
    await say(runtime, UPSET)
    case = await runtime.queue.case(conversation_id)
    assert case.handoff is not None
    assert case.handoff["change"] == {
        "words": "Now also: the customer sounds upset. Emotion rose 0.00 -> 0.90 "
        "(cues: escalation_word:lawyer).",
        "at": clock.now.isoformat(),
    }
    assert (case.handoff["priority"], case.handoff["cues"]) == (
        pytest.approx(9.6),
        ["escalation_word:lawyer"],
    )


async def runtime_rows(runtime: Runtime, table: Any) -> list[Any]:
    async with runtime.db.session() as session:
        return list((await session.scalars(select(table).order_by(table.id))).all())


async def test_migration_0005_gives_the_waiting_a_priority_and_goes_back_down(
    runtime: Runtime,
) -> None:
    upset = await handed_over(runtime, UPSET, "upset")  # emotional: 6.0 + 4.0 x 0.9
    ended = await handed_over(runtime, SENSITIVE, "ended")
    await runtime.handoffs.resolve(ended, "ann")
    taken = (await say(runtime, "hello", "taken")).received.conversation_id
    await runtime.handoffs.take_over(taken, "ann")  # agent-initiated: no decision, no reasons

    async with runtime.db.engine.begin() as conn:
        await conn.run_sync(_migrate, "0004", down=True)
        columns = await conn.run_sync(
            lambda c: {col["name"] for col in inspect(c).get_columns("handoffs")}
        )
    assert "priority" not in columns and "resolved_at" in columns
    async with runtime.db.engine.begin() as conn:
        await conn.run_sync(_migrate, "head")

    upgraded = {h.conversation_id: h for h in await runtime_rows(runtime, Handoff)}
    found = [
        (upgraded[c].emotion, upgraded[c].priority, upgraded[c].emotion_cues)
        for c in (upset, ended, taken)
    ]
    # The open ones get the priority of the defaults; the ended one keeps none.
    assert found == [(0.9, pytest.approx(9.6), None), (0.0, 0.0, None), (0.0, 0.0, None)]
    assert (await runtime.queue.rows())[0][0].id == upset
