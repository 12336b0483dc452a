"""How the care lead's numbers read on ``/insights``: percentages with one decimal, counts with
thousands separators, durations in words ("4 min", "1 h 20 min"), money with its currency,
dates of a period in words, and the change of a figure against the previous period.

A figure that does not exist (no samples, nothing to count) reads "-", never 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal
from zoneinfo import ZoneInfo

from carebot.insight.report import Money, Share, Spread

NONE = "-"
Verdict = Literal["good", "bad", "neutral"]


def count(value: int) -> str:
    """``1020`` -> ``"1,020"``."""
    return f"{value:,}"


def percent(value: float | None) -> str:
    """A fraction as a percentage with one decimal (``0.4039`` -> ``"40.4%"``), a tie rounded
    up as the page's script does (JavaScript's ``toFixed``); "-" for None."""
    if value is None:
        return NONE
    return f"{Decimal(value * 100).quantize(Decimal('0.1'), ROUND_HALF_UP)}%"


def duration(value: timedelta | None) -> str:
    """``"40 s"``, ``"4 min"``, ``"1 h 20 min"``, ``"2 d 3 h"`` (each rounded to its last
    unit); "-" for None."""
    if value is None:
        return NONE
    seconds = max(0.0, value.total_seconds())
    if round(seconds) < 60:
        return f"{round(seconds)} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 24 * 60:
        hours, rest = divmod(minutes, 60)
        return f"{hours} h {rest} min" if rest else f"{hours} h"
    days, hours = divmod(round(seconds / 3600), 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def money(value: Money) -> str:
    """``"1,234.00 USD"``, or ``"pending"`` while durability cannot be known yet."""
    if value.pending or value.amount is None:
        return "pending"
    return f"{value.amount:,.2f} {value.currency}"


def plural(value: int, word: str) -> str:
    """``"1 message"``, ``"1,020 messages"``."""
    return f"{count(value)} {word}{'' if value == 1 else 's'}"


def share_of(share: Share, unit: str) -> str:
    """The count and what it is out of: ``"412 of 1,020 conversations"``."""
    return f"{count(share.count)} of {count(share.total)} {unit}"


def day(value: date) -> str:
    """``"2 Nov 2026"``."""
    return f"{value.day} {value:%b %Y}"


def days(since: date, until: date) -> str:
    """An inclusive range of days in words: ``"1 Nov to 28 Nov 2026"`` (the year once when both
    ends share it), ``"18 Nov 2026"`` for one day."""
    if since == until:
        return day(since)
    if since.year == until.year:
        return f"{since.day} {since:%b} to {day(until)}"
    return f"{day(since)} to {day(until)}"


def moment(value: datetime | None, zone: ZoneInfo) -> str:
    """A time in the business time zone: ``"18 Nov 2026 10:04"``; "-" for None."""
    if value is None:
        return NONE
    local = value.astimezone(zone)
    return f"{day(local.date())} {local:%H:%M}"


def week(start: date) -> str:
    """A week by its Monday: ``"2 Nov"``."""
    return f"{start.day} {start:%b}"


@dataclass(frozen=True, slots=True)
class Change:
    """How a figure moved against the previous period: ``text`` ("+2.1 pts", "-12.0%",
    "+3 min"), ``before`` (the previous figure as shown), ``direction`` (up, down, flat, or
    none when either side has no figure) and whether that is ``good``, ``bad`` or neutral."""

    text: str
    before: str
    direction: Literal["up", "down", "flat", "none"]
    verdict: Verdict


def _change(delta: float | None, text: str, before: str, better: int) -> Change:
    """``better``: +1 when a higher figure is better, -1 when lower is, 0 when neither."""
    if delta is None:
        return Change("no comparison", before, "none", "neutral")
    if delta == 0:
        return Change("no change", before, "flat", "neutral")
    sign = 1 if delta > 0 else -1
    verdict: Verdict = "neutral" if not better else ("good" if sign == better else "bad")
    return Change(text, before, "up" if sign > 0 else "down", verdict)


def count_change(now: int, before: int, better: int = 0) -> Change:
    """A count's change in percent of the previous one (none when that was 0)."""
    if before == 0:
        return _change(None if now else 0.0, "", count(before), better)
    relative = (now - before) / before
    return _change(now - before, f"{relative * 100:+.1f}%", count(before), better)


def rate_change(now: Share, before: Share, better: int) -> Change:
    """A rate's change in percentage points."""
    if now.value is None or before.value is None:
        return _change(None, "", percent(before.value), better)
    points = round((now.value - before.value) * 100, 1)
    return _change(points, f"{points:+.1f} pts", percent(before.value), better)


def time_change(now: timedelta | None, before: timedelta | None, better: int = -1) -> Change:
    """A duration's change (by default shorter is better)."""
    if now is None or before is None:
        return _change(None, "", duration(before), better)
    delta = round((now - before).total_seconds())
    shown = duration(timedelta(seconds=abs(delta)))
    return _change(delta, f"{'+' if delta > 0 else '-'}{shown}", duration(before), better)


def money_change(now: Money, before: Money) -> Change:
    """Money saved against the previous period's (none while either is pending)."""
    if now.amount is None or before.amount is None or now.pending or before.pending:
        return _change(None, "", money(before), 1)
    delta = round(now.amount - before.amount, 2)
    return _change(delta, f"{delta:+,.2f} {now.currency}", money(before), 1)


def spread_p50(spread: Spread | None) -> timedelta | None:
    """The median of a spread that may be missing altogether (no business hours set)."""
    return None if spread is None else spread.p50


def spread_p90(spread: Spread | None) -> timedelta | None:
    """The 90th percentile of a spread that may be missing altogether."""
    return None if spread is None else spread.p90
