"""How fast people answer (carebot/store/response_times.py): the time from a handoff to the
first agent reply, in business hours only, on SQLite and PostgreSQL. The test business hours
are Monday to Friday 09:00-18:00 UTC; the clock starts on Wednesday 2026-11-18."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from carebot.config import BusinessHoursSettings
from carebot.hours import BusinessHours, describe_wait
from carebot.models import InboundMessage
from carebot.runtime import Runtime
from carebot.store.response_times import ResponseTimes
from tests.conftest import Clock

_users = itertools.count(1)
HOURS = BusinessHours(BusinessHoursSettings(timezone="UTC"))
WED = datetime(2026, 11, 18, tzinfo=UTC)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """``day`` days after Wednesday 2026-11-18 (2: Friday, 3: Saturday, 5: Monday)."""
    return WED + timedelta(days=day, hours=hour, minutes=minute)


async def hand_over(runtime: Runtime, clock: Clock, when: datetime) -> int:
    """A new customer handed to a person at ``when``; returns the conversation id."""
    clock.now = when
    user = f"u{next(_users)}"
    message = InboundMessage("test", user, f"{user}-1", "delete my account", when)
    outcome = await runtime.inbox.receive(message)
    assert outcome.decision is not None and outcome.decision.hands_off
    return outcome.received.conversation_id


async def answered(runtime: Runtime, clock: Clock, handed: datetime, replied: datetime) -> int:
    conversation_id = await hand_over(runtime, clock, handed)
    clock.now = replied
    await runtime.handoffs.reply(conversation_id, "ann", "Hi, Ann here.")
    return conversation_id


def times(runtime: Runtime, clock: Clock) -> ResponseTimes:
    return ResponseTimes(runtime.db, clock=clock)


@pytest.mark.parametrize(
    ("handed", "replied", "waited"),
    [
        (at(0, 10), at(0, 10, 10), timedelta(minutes=10)),  # within one working day
        (at(0, 17, 50), at(1, 9, 10), timedelta(minutes=20)),  # across the night
        (at(2, 17, 30), at(5, 9, 30), timedelta(hours=1)),  # Friday evening to Monday
        (at(3, 12), at(5, 9, 5), timedelta(minutes=5)),  # handed over on a closed Saturday
        (at(0, 20), at(0, 21), timedelta()),  # handed over and answered after hours
    ],
    ids=["same-day", "overnight", "weekend", "saturday", "after-hours"],
)
async def test_only_business_hours_count(
    runtime: Runtime, clock: Clock, handed: datetime, replied: datetime, waited: timedelta
) -> None:
    conversation_id = await answered(runtime, clock, handed, replied)

    [found] = await times(runtime, clock).first_responses(since=WED, limit=10)
    assert (found.conversation_id, found.handed_over_at, found.answered_at) == (
        conversation_id,
        handed,
        replied,
    )
    assert HOURS.open_between(handed, replied) == waited
    typical = await times(runtime, clock).typical_wait(HOURS, days=14, handoffs=10, min_samples=1)
    assert typical == waited


async def test_the_typical_wait_is_the_median_of_the_latest_answered_handoffs(
    runtime: Runtime, clock: Clock
) -> None:
    for minutes in (40, 5, 10, 20, 3):  # oldest first: 40 falls out with handoffs=4
        handed = clock.now + timedelta(hours=1)
        await answered(runtime, clock, handed, handed + timedelta(minutes=minutes))
    store = times(runtime, clock)

    assert await store.typical_wait(HOURS, days=14, handoffs=5, min_samples=5) == timedelta(
        minutes=10
    )
    assert await store.typical_wait(HOURS, days=14, handoffs=4, min_samples=4) == timedelta(
        minutes=7, seconds=30
    )
    assert await store.typical_wait(HOURS, days=14, handoffs=5, min_samples=6) is None


async def test_unanswered_withdrawn_agent_initiated_and_old_handoffs_are_no_samples(
    runtime: Runtime, clock: Clock
) -> None:
    await answered(runtime, clock, at(-20, 10), at(-20, 10, 5))  # older than the window
    await hand_over(runtime, clock, at(0, 10))  # nobody answered yet
    resolved = await hand_over(runtime, clock, at(0, 10))
    clock.now = at(0, 11)
    await runtime.handoffs.resolve(resolved, "ann")
    clock.now = at(0, 11, 30)
    await runtime.handoffs.reply(resolved, "ann", "A follow-up after resolving")  # not an answer
    bot = await runtime.inbox.receive(InboundMessage("test", "u-bot", "b-1", "hello", at(0, 12)))
    await runtime.handoffs.reply(bot.received.conversation_id, "ann", "Hi!")  # agent-initiated
    kept = await answered(runtime, clock, at(1, 10), at(1, 10, 15))

    clock.now = at(1, 12)
    found = await times(runtime, clock).first_responses(
        since=clock.now - timedelta(days=14), limit=10
    )
    assert [r.conversation_id for r in found] == [kept]


@pytest.mark.parametrize(
    ("minutes", "words"),
    [
        (0.2, "about a minute"),
        (1, "about a minute"),
        (4.5, "about 5 minutes"),
        (10, "about 10 minutes"),
        (11, "about 15 minutes"),
        (50, "about 50 minutes"),
        (56, "about an hour"),
        (89, "about an hour"),
        (90, "about 2 hours"),
        (150, "about 3 hours"),
    ],
)
def test_a_wait_is_rounded_for_a_customer(minutes: float, words: str) -> None:
    assert describe_wait(timedelta(minutes=minutes)) == words
