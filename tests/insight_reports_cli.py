"""Hand-built :class:`Report` objects and a fake insight that returns them, for the tests of
``carebot report`` and ``/metrics`` (which only show the figures; computing them is tested with
the metrics themselves)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta
from typing import Any

from carebot.insight.report import (
    ConversationRow,
    IntentRow,
    Money,
    Period,
    Report,
    Share,
    Spread,
    TeamRow,
    WeekRow,
)

NOW = datetime(2026, 11, 18, 10, 0, tzinfo=UTC)
EMPTY = Spread(0, None, None)


def spread(p50: float, p90: float, samples: int = 3, ids: tuple[int, ...] = ()) -> Spread:
    return Spread(samples, timedelta(seconds=p50), timedelta(seconds=p90), ids)


def make_report(period: Period | None = None, **changes: Any) -> Report:
    """A report of 1,020 conversations with every kind of figure: shares with ids, a share
    over nothing (repeat contact), a spread with no samples (human resolution time), no
    business hours, the cost saved pending. ``changes`` replace fields."""
    period = period or Period(NOW - timedelta(days=7), NOW)
    report = Report(
        period=period,
        generated_at=NOW,
        conversations=Share(1020, 1020),
        involvement=Share(412, 1020, (1, 2, 3)),
        confirmed=Share(100, 1020, (1,)),
        assumed=Share(200, 1020, (2, 3)),
        automation=Share(300, 1020, (1, 2, 3)),
        resolution_rate=Share(300, 412),
        durable=Share(0, 0),
        handoffs=Share(250, 1020, (4, 5)),
        handoff_main_reason={
            "below_threshold": Share(150, 1020, (4,)),
            "asked_for_human": Share(100, 1020, (5,)),
        },
        handoff_any_reason={
            "below_threshold": Share(160, 1020),
            "asked_for_human": Share(110, 1020),
            "emotional": Share(30, 1020),
        },
        not_helpful=Share(12, 140),
        repeat_contact=Share(0, 0),
        first_response=spread(252, 3900, samples=240, ids=(4, 5)),
        first_response_business=None,
        resolution_time_bot=spread(45, 600, samples=300),
        resolution_time_human=EMPTY,
        csat_bot=Share(8, 10),
        csat_human=Share(30, 40),
        rating_response_bot=Share(10, 40),
        rating_response_human=Share(40, 120),
        cost_saved=Money(None, "USD", 0, 8.0, pending=True),
        emotional=Share(61, 1500),
        top_intents=(
            IntentRow(
                "order_status", Share(500, 1020), Share(200, 500), Share(50, 500), Share(10, 700)
            ),
            IntentRow("refund", Share(120, 1020), Share(20, 120), Share(90, 120), Share(0, 0)),
        ),
        weeks=(
            WeekRow(
                start=date(2026, 11, 9),
                conversations=Share(400, 1020),
                automation=Share(120, 400),
                handoffs=Share(100, 400),
                handoff_reasons={"below_threshold": Share(60, 400)},
                first_response=spread(300, 4000),
                emotional=Share(20, 600),
            ),
            WeekRow(
                start=date(2026, 11, 16),
                conversations=Share(620, 1020),
                automation=Share(180, 620),
                handoffs=Share(150, 620),
                handoff_reasons={},
                first_response=EMPTY,
                emotional=Share(41, 900),
            ),
        ),
        notes=("cost saved: pending until the period's bot resolutions are 7 days old",),
        within_target=Share(45, 60, (4,)),
        teams=(
            TeamRow(
                team="billing",
                label="Billing",
                handoffs=Share(150, 250, (4,)),
                first_response=spread(240, 3600, samples=140, ids=(4,)),
                first_response_business=spread(180, 1800, samples=140, ids=(4,)),
                within_target=Share(45, 60, (4,)),
                resolution_time_human=EMPTY,
                csat_human=Share(20, 25),
            ),
            TeamRow(
                team="escalation",
                label="escalation",
                handoffs=Share(100, 250, (5,)),
                first_response=spread(300, 4000, samples=100, ids=(5,)),
                first_response_business=None,
                within_target=None,  # no target
                resolution_time_human=EMPTY,
                csat_human=Share(10, 15),
            ),
        ),
    )
    return dataclasses.replace(report, **changes)


def conversation_rows() -> list[ConversationRow]:
    """A conversation resolved by the bot, one resolved by a person, one still open."""
    started = NOW - timedelta(days=1)
    return [
        ConversationRow(7, 3, "webchat", started, "bot", None, started + timedelta(hours=24),
                        None, 5, ("order_status", "delivery_time")),
        ConversationRow(8, 4, "telegram", started + timedelta(minutes=5), "human",
                        "asked_for_human", started + timedelta(hours=2),
                        timedelta(seconds=252.5), None, ("refund",)),
        ConversationRow(9, 3, "whatsapp", started + timedelta(hours=1), None, None, None, None,
                        None, ()),
    ]  # fmt: skip


class FakeInsight:
    """Returns the report and rows it was given; keeps the periods it was asked for."""

    def __init__(self, report: Report | None = None, rows: list[ConversationRow] | None = None):
        self._report = report
        self._rows = rows if rows is not None else conversation_rows()
        self.periods: list[Period] = []

    async def report(self, period: Period) -> Report:
        self.periods.append(period)
        return self._report or make_report(period)

    async def conversations(self, period: Period) -> list[ConversationRow]:
        self.periods.append(period)
        return list(self._rows)
