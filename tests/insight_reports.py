"""Reports, conversation rows and topics built by hand, for the pages that show them
(``/insights``): a care team's month, with every figure's conversations numbered so that a
link can be followed to them. :class:`FixtureInsight` serves them as the insight sources."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from carebot.desk.insights import InsightSources
from carebot.exceptions import CarebotError
from carebot.insight.report import (
    ConversationRow,
    IntentRow,
    Money,
    Period,
    Report,
    Share,
    Spread,
    TeamRow,
    Topic,
    WeekRow,
)

MINUTE, HOUR = timedelta(minutes=1), timedelta(hours=1)


def share(count: int, total: int, first: int = 1) -> Share:
    """``count`` of ``total``, behind it the conversations ``first``, ``first + 1``..."""
    return Share(count, total, tuple(range(first, first + count)))


def spread(samples: int, p50: timedelta | None, p90: timedelta | None, first: int = 1) -> Spread:
    return Spread(samples, p50, p90, tuple(range(first, first + samples)))


@dataclass(frozen=True, slots=True)
class Month:
    """The counts a report is made of (the current period's by default)."""

    weekly: tuple[int, ...] = (120, 240, 250, 230, 180)  # conversations per week
    weekly_bot: tuple[int, ...] = (44, 96, 101, 95, 76)  # bot resolutions per week
    involved: int = 700
    confirmed: int = 150
    assumed: int = 262
    handoffs: Mapping[str, int] = field(
        default_factory=lambda: {
            "emotional": 120,
            "asked_for_human": 90,
            "below_threshold": 60,
            "no_answer": 30,
        }
    )
    first_response: tuple[timedelta, timedelta] = (4 * MINUTE + timedelta(seconds=10), 80 * MINUTE)
    csat: tuple[int, int, int, int] = (88, 104, 140, 175)  # bot good/rated, human good/rated
    pending: bool = True

    @property
    def conversations(self) -> int:
        return sum(self.weekly)


PREVIOUS = Month(
    weekly=(150, 200, 230, 210, 150),
    weekly_bot=(55, 75, 90, 80, 50),
    involved=610,
    confirmed=120,
    assumed=230,
    handoffs={"emotional": 130, "asked_for_human": 100, "below_threshold": 80},
    first_response=(6 * MINUTE, 95 * MINUTE),
    csat=(80, 100, 120, 160),
    pending=False,
)


def mondays(period: Period, zone: ZoneInfo) -> list[date]:
    """The weeks (by their Monday in ``zone``) the period touches."""
    first = period.since.astimezone(zone).date()
    last = (period.until - timedelta(microseconds=1)).astimezone(zone).date()
    monday = first - timedelta(days=first.weekday())
    weeks = []
    while monday <= last:
        weeks.append(monday)
        monday += timedelta(days=7)
    return weeks


def make_report(period: Period, zone: ZoneInfo, month: Month = Month()) -> Report:
    """A report of ``month``'s counts; conversation ids run 1..N, the bot's resolutions first,
    then the involved ones, then the handed-over ones."""
    n, bot = month.conversations, month.confirmed + month.assumed
    handed = sum(month.handoffs.values())
    main, first = {}, month.involved + 1
    for reason, count in month.handoffs.items():
        main[reason] = share(count, n, first)
        first += count
    any_reason = dict(main)
    any_reason["emotional"] = Share(
        main["emotional"].count + 10, n, main["emotional"].ids + tuple(range(1001, 1011))
    )
    bot_good, bot_rated, human_good, human_rated = month.csat
    p50, p90 = month.first_response
    return Report(
        period=period,
        generated_at=period.until,
        conversations=share(n, n),
        involvement=share(month.involved, n),
        confirmed=share(month.confirmed, n),
        assumed=share(month.assumed, n, month.confirmed + 1),
        automation=share(bot, n),
        resolution_rate=share(bot, month.involved),
        durable=share(bot - 32, bot - 12),
        handoffs=share(handed, n, month.involved + 1),
        handoff_main_reason=main,
        handoff_any_reason=any_reason,
        not_helpful=share(25, 310, bot + 1),
        repeat_contact=share(31, bot - 32),
        first_response=spread(handed - 20, p50, p90, month.involved + 1),
        first_response_business=spread(handed - 20, 3 * MINUTE, 52 * MINUTE, month.involved + 1),
        resolution_time_bot=spread(bot, 24 * HOUR + 3 * MINUTE, 26 * HOUR),
        resolution_time_human=spread(handed - 40, 3 * HOUR + 12 * MINUTE, 22 * HOUR, 701),
        csat_bot=share(bot_good, bot_rated),
        csat_human=share(human_good, human_rated, month.involved + 1),
        rating_response_bot=share(bot_rated, bot),
        rating_response_human=share(human_rated, handed, month.involved + 1),
        cost_saved=Money(
            None if month.pending else (bot - 32) * 8.0, "USD", bot - 32, 8.0, month.pending
        ),
        emotional=share(190, 2410, month.involved + 1),
        top_intents=_intents(n),
        weeks=_weeks(period, zone, month),
        within_target=share(handed // 2, handed - 130, month.involved + 1),
        teams=_teams(handed, month.involved + 1),
        notes=(
            (
                "Cost saved is pending: some of the period's bot resolutions are younger than "
                "the 7 days durability takes to know.",
            )
            if month.pending
            else ()
        ),
    )


def _teams(handed: int, first: int) -> tuple[TeamRow, ...]:
    """Billing (60% of the handoffs, with a target) and escalation (the rest, without a target
    and closed every day: no business-hours figure)."""
    billing, escalation = handed * 3 // 5, handed - handed * 3 // 5
    other = first + billing
    return (
        TeamRow(
            team="billing",
            label="Billing",
            handoffs=share(billing, handed, first),
            first_response=spread(billing - 10, 3 * MINUTE, 40 * MINUTE, first),
            first_response_business=spread(billing - 10, 2 * MINUTE, 30 * MINUTE, first),
            within_target=share(handed // 2, handed - 130, first),
            resolution_time_human=spread(billing - 20, 2 * HOUR, 20 * HOUR, first),
            csat_human=share(60, 80, first),
        ),
        TeamRow(
            team="escalation",
            label="Escalation",
            handoffs=share(escalation, handed, other),
            first_response=spread(escalation - 10, 6 * MINUTE, 95 * MINUTE, other),
            first_response_business=None,
            within_target=None,
            resolution_time_human=spread(escalation - 20, 5 * HOUR, 30 * HOUR, other),
            csat_human=share(28, 40, other),
        ),
    )


def _intents(n: int) -> tuple[IntentRow, ...]:
    rows, first = [], 1
    for intent, count, bot, handed, upset, messages in (
        ("order_status", 380, 250, 60, 40, 700),
        ("returns", 210, 90, 70, 30, 420),
        ("refund", 150, 40, 75, 60, 300),
        ("opening_hours", 95, 80, 5, 2, 120),
    ):
        rows.append(
            IntentRow(
                intent,
                share(count, n, first),
                share(bot, count, first),
                share(handed, count, first + bot),
                share(upset, messages, first + bot),
            )
        )
        first += count
    return tuple(rows)


def _weeks(period: Period, zone: ZoneInfo, month: Month) -> tuple[WeekRow, ...]:
    rows, first = [], 1
    reasons = list(month.handoffs)
    for i, (monday, count, bot) in enumerate(
        zip(mondays(period, zone), month.weekly, month.weekly_bot, strict=True)
    ):
        handed = count // 4
        split = {reasons[0]: handed - handed // 3, reasons[1]: handed // 3} if handed else {}
        rows.append(
            WeekRow(
                start=monday,
                conversations=share(count, count, first),
                automation=share(bot, count, first),
                handoffs=share(handed, count, first + bot),
                handoff_reasons={
                    reason: share(value, count, first + bot) for reason, value in split.items()
                },
                first_response=spread(
                    handed, (3 + i) * MINUTE, (50 + 10 * i) * MINUTE, first + bot
                ),
                emotional=share(10 + 5 * i, 400 + 20 * i, first + bot),
            )
        )
        first += count
    return tuple(rows)


def make_rows(count: int, since: datetime) -> list[ConversationRow]:
    """Conversation rows 1..count, a few minutes apart from ``since``: the bot's resolutions
    first (as in :func:`make_report`), then others, then handed-over ones."""
    rows = []
    for i in range(1, count + 1):
        started = since + timedelta(minutes=37 * i)
        human = 701 <= i <= 1000
        rows.append(
            ConversationRow(
                id=i,
                customer_id=5000 + i,
                channel="telegram" if i % 3 == 0 else "webchat",
                started=started,
                resolver="bot" if i <= 412 else ("human" if human else None),
                first_handoff_reason="emotional" if human else None,
                resolved_at=started + 2 * HOUR if i <= 412 or human else None,
                first_human_response=(
                    timedelta(seconds=250 + i % 7, milliseconds=500 * (i % 2)) if human else None
                ),
                csat=(5 if i % 4 else 3) if i <= 104 or 701 <= i <= 875 else None,
                intents=("order_status",)
                if i <= 380
                else (("returns", "refund") if i <= 590 else ()),
            )
        )
    return rows


TOPICS = [
    Topic(
        keywords=("gift", "card", "balance"),
        examples=("how much is left on my gift card", "gift card balance?", "check giftcard"),
        messages=34,
        customers=29,
        last_seen=datetime(2026, 11, 17, 16, 5, tzinfo=UTC),
        near_intent=None,
        near_score=None,
        conversation_ids=(14, 438, 703),
    ),
    Topic(
        keywords=("parcel", "late", "where"),
        examples=("my parcel is late", "where is the package", "still no parcel"),
        messages=21,
        customers=20,
        last_seen=datetime(2026, 11, 18, 8, 30, tzinfo=UTC),
        near_intent="order_status",
        near_score=0.71,
        conversation_ids=(414, 415),
    ),
]


def empty_report(period: Period) -> Report:
    """A period without a conversation: every figure "-"."""
    none, no_time = Share(0, 0), Spread(0, None, None)
    return Report(
        period=period,
        generated_at=period.until,
        conversations=none,
        involvement=none,
        confirmed=none,
        assumed=none,
        automation=none,
        resolution_rate=none,
        durable=none,
        handoffs=none,
        handoff_main_reason={},
        handoff_any_reason={},
        not_helpful=none,
        repeat_contact=none,
        first_response=no_time,
        first_response_business=None,
        resolution_time_bot=no_time,
        resolution_time_human=no_time,
        csat_bot=none,
        csat_human=none,
        rating_response_bot=none,
        rating_response_human=none,
        cost_saved=Money(0.0, "USD", 0, 8.0, False),
        emotional=none,
        top_intents=(),
        weeks=(),
    )


class FixtureInsight:
    """The insight sources over the fixtures: the current and previous period get their
    months, any other period an empty report. ``asked`` records the periods asked for."""

    def __init__(self, zone: ZoneInfo, current: Period, rows: list[ConversationRow]) -> None:
        self.zone = zone
        self.current = current
        self.rows = rows
        self.asked: list[Period] = []
        self.topics_fail: CarebotError | None = None  # what topics() raises, if anything

    async def report(self, period: Period) -> Report:
        self.asked.append(period)
        if period == self.current:
            return make_report(period, self.zone)
        if period == self.current.previous():
            return make_report(period, self.zone, PREVIOUS)
        return empty_report(period)

    async def conversations(self, period: Period) -> list[ConversationRow]:
        return list(self.rows) if period == self.current else []

    async def topics(self, period: Period) -> list[Topic]:
        if self.topics_fail is not None:
            raise self.topics_fail
        return list(TOPICS) if period == self.current else []

    def sources(self) -> InsightSources:
        return InsightSources(
            report=self.report, conversations=self.conversations, topics=self.topics
        )
