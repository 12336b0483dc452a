"""The period's figures broken down: per intent (top intents) and per week."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta

from carebot.insight.figures import (
    emotional_by_intent,
    emotional_share,
    first_response,
    main_reasons,
    share,
)
from carebot.insight.outcomes import Outcome
from carebot.insight.report import IntentRow, Period, Share, WeekRow


def intent_rows(outcomes: list[Outcome]) -> tuple[IntentRow, ...]:
    """top intents: conversations per intent, with each intent's automation and handoff rate,
    sorted by conversations desc then id."""
    about: dict[str, list[Outcome]] = {}
    for o in outcomes:
        for intent in o.intents:
            about.setdefault(intent, []).append(o)
    order = sorted(about, key=lambda intent: (-len(about[intent]), intent))
    emotional = emotional_by_intent(outcomes)
    return tuple(
        _intent_row(intent, about[intent], len(outcomes), emotional.get(intent, Share(0, 0)))
        for intent in order
    )


def _intent_row(intent: str, mine: list[Outcome], total: int, emotional: Share) -> IntentRow:
    return IntentRow(
        intent=intent,
        conversations=Share(len(mine), total, tuple(o.facts.id for o in mine)),
        automation=share(mine, lambda o: o.bot_resolved_at is not None),
        handoffs=share(mine, lambda o: o.handed_over),
        emotional=emotional,
    )


def week_rows(
    outcomes: list[Outcome], period: Period, week_of: Callable[[datetime], date]
) -> tuple[WeekRow, ...]:
    """weeks: buckets Monday-start in [business_hours] timezone, by conversation start; every
    week the period touches, empty ones included."""
    first = week_of(period.since)
    last = week_of(period.until - timedelta(microseconds=1))
    weeks = [first + timedelta(weeks=n) for n in range((last - first).days // 7 + 1)]
    return tuple(_week_row(start, [o for o in outcomes if o.week == start]) for start in weeks)


def _week_row(start: date, mine: list[Outcome]) -> WeekRow:
    """One week's figures, each over that week's conversations."""
    return WeekRow(
        start=start,
        conversations=share(mine, lambda o: True),
        automation=share(mine, lambda o: o.bot_resolved_at is not None),
        handoffs=share(mine, lambda o: o.handed_over),
        handoff_reasons=main_reasons(mine, len(mine)),
        first_response=first_response(mine),
        emotional=emotional_share(mine),
    )
