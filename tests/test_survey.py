"""Asking the customer: "did that answer your question?" and the rating after a resolution."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import select

from carebot.config import Settings
from carebot.inbox import Status
from carebot.models import DecisionKind, InboundMessage
from carebot.runtime import Runtime, build_runtime
from carebot.store.tables import Base, Conversation, DecisionRow, Handoff, OutboxRow, Survey
from tests.conftest import EXACT_BACKOFF, Clock, make_settings
from tests.fakes import FakeEncoder, RecordingChannel
from tests.migrated import migrate

T = TypeVar("T", bound=Base)
_ids = itertools.count(1)
TRACK = "Track it at https://track.example."
ASKED = f"{TRACK}\n\nDid that answer your question?"
RATING = (
    "How would you rate this conversation? Reply with a number from 1 (poor) to 5 (great); "
    "you can add a comment after it."
)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, survey={"helpful": "always", "rating": True})


@pytest.fixture
async def runtime_for(
    database_url: str, encoder: FakeEncoder, clock: Clock
) -> AsyncIterator[Callable[[Settings], Awaitable[tuple[Runtime, RecordingChannel]]]]:
    """A runtime on other settings than the module's."""
    built: list[Runtime] = []

    await migrate(database_url)

    async def build(settings: Settings) -> tuple[Runtime, RecordingChannel]:
        channel = RecordingChannel("test")
        runtime = await build_runtime(
            settings,
            encoder=encoder,
            channels={"test": channel},
            clock=clock,
            database_url=database_url,
            backoff=EXACT_BACKOFF,
        )
        built.append(runtime)
        return runtime, channel

    yield build
    for runtime in built:
        await runtime.db.close()


def inbound(text: str, *, user: str = "u1") -> InboundMessage:
    return InboundMessage(
        channel="test",
        external_user_id=user,
        external_message_id=f"s{next(_ids)}",
        text=text,
        sent_at=datetime(2026, 11, 18, 10, tzinfo=UTC),
    )


async def rows(runtime: Runtime, table: type[T], *where: Any) -> list[T]:
    async with runtime.db.session() as session:
        return list((await session.scalars(select(table).where(*where).order_by(table.id))).all())


async def test_an_answer_asks_whether_it_answered_with_yes_and_no_buttons(
    runtime: Runtime, channel: RecordingChannel
) -> None:
    outcome = await runtime.inbox.receive(inbound("where is my order"))

    [reply] = channel.sent
    assert reply.text == ASKED
    assert [(c.id, c.label) for c in reply.choices] == [("yes", "Yes"), ("no", "No")]
    [survey] = await rows(runtime, Survey)
    assert (survey.kind, survey.answer, survey.conversation_id) == (
        "helpful",
        None,
        outcome.received.conversation_id,
    )
    [decision] = await rows(runtime, DecisionRow)
    assert survey.decision_id == decision.id


@pytest.mark.parametrize(
    ("survey", "text", "asked"),
    [
        ({"helpful": "never"}, "where is my order", False),
        ({"helpful": "always"}, "hello", False),  # small talk answers no question
        ({"helpful": "low_margin", "low_margin": 0.01}, "where is my order", False),
        ({"helpful": "low_margin", "low_margin": 0.99}, "where is my order", True),
    ],
)
async def test_when_the_question_is_asked(
    tmp_path: Path,
    runtime_for: Callable[[Settings], Awaitable[tuple[Runtime, RecordingChannel]]],
    survey: dict[str, object],
    text: str,
    asked: bool,
) -> None:
    runtime, channel = await runtime_for(make_settings(tmp_path, survey=survey))
    await runtime.inbox.receive(inbound(text))
    [reply] = channel.sent
    assert reply.text.endswith("Did that answer your question?") is asked
    assert bool(await rows(runtime, Survey)) is asked


@pytest.mark.parametrize("answer", ["yes", "Yes", "yep, thanks!", "YES."])
async def test_yes_is_a_confirmed_resolution_then_the_rating_is_asked(
    runtime: Runtime, channel: RecordingChannel, answer: str
) -> None:
    first = await runtime.inbox.receive(inbound("where is my order"))
    outcome = await runtime.inbox.receive(inbound(answer))

    assert outcome.status is Status.SURVEYED
    assert channel.sent[-1].text == f"Great, glad I could help!\n\n{RATING}"
    assert [c.id for c in channel.sent[-1].choices] == ["1", "2", "3", "4", "5"]
    helpful, rating = await rows(runtime, Survey)
    assert (helpful.answer, helpful.answer_message_id) == ("yes", outcome.received.message_id)
    assert (rating.kind, rating.resolver, rating.conversation_id) == (
        "rating",
        "bot",
        first.received.conversation_id,
    )
    assert len(await rows(runtime, DecisionRow)) == 1  # the "yes" was never triaged


async def test_no_hands_the_conversation_to_a_person(
    runtime: Runtime, channel: RecordingChannel
) -> None:
    first = await runtime.inbox.receive(inbound("where is my order"))
    outcome = await runtime.inbox.receive(inbound("no"))

    assert outcome.decision is not None
    assert outcome.decision.kind is DecisionKind.HANDOFF
    assert channel.sent[-1].text == (
        "Sorry that didn't help. I'm passing you to a person from our team, who will reply here."
    )
    [handoff] = await rows(runtime, Handoff)
    assert (handoff.reason, handoff.conversation_id) == (
        "not_helpful",
        first.received.conversation_id,
    )
    [survey] = await rows(runtime, Survey)
    assert survey.answer == "no"
    [conversation] = await rows(runtime, Conversation)
    assert conversation.state == "waiting_for_agent"


async def test_no_outside_business_hours_says_when_the_team_is_back(
    runtime: Runtime, channel: RecordingChannel, clock: Clock
) -> None:
    clock.now = clock.now.replace(hour=20)  # Wednesday evening; the team is back at 09:00
    await runtime.inbox.receive(inbound("where is my order"))
    await runtime.inbox.receive(inbound("no"))
    assert channel.sent[-1].text == (
        "Sorry that didn't help. I'm passing you to a person from our team; we're offline right "
        "now and will reply here from tomorrow at 09:00 (UTC)."
    )


@pytest.mark.parametrize(
    ("text", "rating", "comment"),
    [("4", "4", None), ("5 - quick and kind", "5", "quick and kind"), ("2/5", "2", None)],
)
async def test_a_rating_is_stored_with_its_comment_and_never_triaged(
    runtime: Runtime, channel: RecordingChannel, text: str, rating: str, comment: str | None
) -> None:
    await runtime.inbox.receive(inbound("where is my order"))
    await runtime.inbox.receive(inbound("yes"))
    outcome = await runtime.inbox.receive(inbound(text))

    assert outcome.status is Status.SURVEYED
    assert channel.sent[-1].text == "Thank you for your rating!"
    [_, survey] = await rows(runtime, Survey)
    assert (survey.answer, survey.comment) == (rating, comment)
    assert len(await rows(runtime, DecisionRow)) == 1


async def test_a_new_question_instead_of_an_answer_is_triaged_and_the_question_lapses(
    runtime: Runtime, channel: RecordingChannel
) -> None:
    await runtime.inbox.receive(inbound("where is my order"))
    second = await runtime.inbox.receive(inbound("how do I return an item"))
    third = await runtime.inbox.receive(inbound("yes"))  # answers the second question

    assert second.status is Status.DECIDED
    assert third.status is Status.SURVEYED
    first_survey, second_survey, _rating = await rows(runtime, Survey)
    assert first_survey.answer is None
    assert second_survey.answer == "yes"


@pytest.mark.parametrize("text", ["yes but where is the label?", "no idea what to pick now ok"])
async def test_a_question_or_a_longer_message_is_not_read_as_yes_or_no(
    runtime: Runtime, text: str
) -> None:
    await runtime.inbox.receive(inbound("where is my order"))
    outcome = await runtime.inbox.receive(inbound(text))
    assert outcome.status is Status.DECIDED
    [survey] = await rows(runtime, Survey)
    assert survey.answer is None


async def test_a_message_that_answers_no_question_is_not_looked_up(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Most messages are no answer: the question pending is read only for one that may be."""
    looked_up: list[str] = []
    store = runtime.inbox._surveys.store  # type: ignore[union-attr]
    pending = store.pending

    async def counted(received: Any) -> Any:
        looked_up.append(str(received.message_id))
        return await pending(received)

    monkeypatch.setattr(store, "pending", counted)
    await runtime.inbox.receive(inbound("where is my order"))  # a new customer: no look-up
    await runtime.inbox.receive(inbound("how do I return an item?"))
    assert looked_up == []
    assert (await runtime.inbox.receive(inbound("yes"))).status is Status.SURVEYED
    assert len(looked_up) == 1


async def test_a_reply_after_the_survey_window_is_a_new_message(
    runtime: Runtime, clock: Clock
) -> None:
    await runtime.inbox.receive(inbound("where is my order"))
    clock.advance(24 * 3600 + 1)
    outcome = await runtime.inbox.receive(inbound("yes"))
    assert outcome.status is not Status.SURVEYED
    [survey] = await rows(runtime, Survey)
    assert survey.answer is None


async def test_resolving_asks_for_a_rating_once_per_conversation(
    runtime: Runtime, channel: RecordingChannel
) -> None:
    outcome = await runtime.inbox.receive(inbound("speak to staff member"))
    conversation_id = outcome.received.conversation_id
    await runtime.desk.reply(conversation_id, "ann", "Sorted, your order ships today.")
    await runtime.desk.resolve(conversation_id, "ann")

    assert channel.sent[-1].text == RATING
    [survey] = await rows(runtime, Survey)
    assert (survey.kind, survey.resolver) == ("rating", "human")

    await runtime.inbox.receive(inbound("speak to staff member"))  # handed over again
    await runtime.desk.reply(conversation_id, "ann", "Done as well.")
    await runtime.desk.resolve(conversation_id, "ann")
    assert len(await rows(runtime, Survey)) == 1
    assert channel.sent[-1].text != RATING


async def test_a_rating_typed_after_the_conversation_closed_is_kept_on_its_question(
    runtime: Runtime, clock: Clock
) -> None:
    first = await runtime.inbox.receive(inbound("speak to staff member"))
    conversation_id = first.received.conversation_id
    await runtime.desk.reply(conversation_id, "ann", "Sorted.")
    await runtime.desk.resolve(conversation_id, "ann")
    clock.advance(3600)
    await runtime.desk.close(conversation_id, "ann")

    outcome = await runtime.inbox.receive(inbound("5"))
    assert outcome.status is Status.SURVEYED
    assert outcome.received.conversation_id != conversation_id  # a new conversation
    [survey] = await rows(runtime, Survey)
    assert (survey.conversation_id, survey.answer) == (conversation_id, "5")


@pytest.mark.parametrize(("hours", "asked"), [(23, False), (25, True)])
async def test_the_rating_after_an_assumed_resolution_waits_for_the_quiet_hours(
    runtime: Runtime, channel: RecordingChannel, clock: Clock, hours: int, asked: bool
) -> None:
    outcome = await runtime.inbox.receive(inbound("where is my order"))
    clock.advance(hours * 3600)

    found = await runtime.ratings.sweep()

    assert found == ([outcome.received.conversation_id] if asked else [])
    assert (channel.sent[-1].text == RATING) is asked
    assert await runtime.ratings.sweep() == []  # once per conversation


@pytest.mark.parametrize("later", ["how do I return an item", "speak to staff member"])
async def test_no_rating_after_a_new_request_or_a_handoff(
    runtime: Runtime, clock: Clock, later: str
) -> None:
    await runtime.inbox.receive(inbound("where is my order"))
    clock.advance(3600)
    await runtime.inbox.receive(inbound(later))
    clock.advance(25 * 3600)
    # "how do I return an item" is the last answer now: it is due 24 h after it, not before.
    assert await runtime.ratings.sweep() == ([] if "staff" in later else [1])


async def test_small_talk_after_the_answer_keeps_it_quiet(runtime: Runtime, clock: Clock) -> None:
    outcome = await runtime.inbox.receive(inbound("where is my order"))
    clock.advance(600)
    await runtime.inbox.receive(inbound("hello"))
    clock.advance(25 * 3600)
    assert await runtime.ratings.sweep() == [outcome.received.conversation_id]


async def test_a_rating_answered_in_the_sweep_is_stored(
    runtime: Runtime, channel: RecordingChannel, clock: Clock
) -> None:
    await runtime.inbox.receive(inbound("where is my order"))
    clock.advance(25 * 3600)
    await runtime.ratings.sweep()
    outcome = await runtime.inbox.receive(inbound("3, slow delivery"))
    assert outcome.status is Status.SURVEYED
    ratings = await rows(runtime, Survey, Survey.kind == "rating")
    assert [(s.answer, s.comment, s.resolver) for s in ratings] == [("3", "slow delivery", "bot")]
    sent = await rows(runtime, OutboxRow)
    assert sent[-1].text == "Thank you for your rating!"


@pytest.mark.parametrize("taps", [["yes", "Yes"], ["yes", "no"], ["yes", "4", "4"]])
async def test_a_second_tap_on_a_survey_button_is_recorded_and_not_answered(
    runtime: Runtime, channel: RecordingChannel, taps: list[str]
) -> None:
    await runtime.inbox.receive(inbound("where is my order"))
    for text in taps[:-1]:
        await runtime.inbox.receive(inbound(text))
    sent = len(channel.sent)

    outcome = await runtime.inbox.receive(inbound(taps[-1]))

    assert outcome.status is Status.SURVEYED
    assert len(channel.sent) == sent  # nothing said, and nothing triaged
    assert len(await rows(runtime, DecisionRow)) == 1
    answers = [s.answer for s in await rows(runtime, Survey)]
    assert answers == ["yes", "4" if "4" in taps else None]


async def test_an_answer_not_yet_due_at_one_sweep_is_asked_at_a_later_one(
    runtime: Runtime, channel: RecordingChannel, clock: Clock
) -> None:
    outcome = await runtime.inbox.receive(inbound("where is my order"))
    clock.advance(23 * 3600)
    assert await runtime.ratings.sweep() == []
    clock.advance(2 * 3600)
    assert await runtime.ratings.sweep() == [outcome.received.conversation_id]
    assert channel.sent[-1].text == RATING
