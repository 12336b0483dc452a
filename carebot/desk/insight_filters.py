"""The filters of ``/insights`` as they stand in its URL: ``since`` and ``until`` (days, both
included, in the business time zone), an optional ``channel``, an optional ``team`` (only the
conversations handed to that team, and only its handoffs count), an optional ``label`` (only
the conversations agents labelled so) and an optional ``visibility`` (``public`` or
``private``; absent or ``all``: both). Every page and link of the insights carries them, so a
view can be bookmarked and shared."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from carebot.desk import insight_format as fmt
from carebot.insight.report import Period

DEFAULT_DAYS = 28
# The days a filter may name: the period before one (compared with it) must still be a date.
FIRST_DAY, LAST_DAY = date(1970, 1, 1), date(2999, 12, 31)
_CHANNEL = re.compile(r"^[a-z0-9_-]{1,32}$")
_TEAM = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")  # [[teams]] name
VISIBILITIES = ("public", "private")


class FilterError(ValueError):
    """A filter in the URL that cannot be used; the message says which and what to give."""


@dataclass(frozen=True, slots=True)
class Filters:
    """Conversations started from the first moment of ``since`` to the last of ``until``."""

    since: date
    until: date
    channel: str | None = None
    team: str | None = None
    label: str | None = None
    visibility: str | None = None  # public / private; None: both

    @classmethod
    def parse(cls, query: Mapping[str, str], *, today: date) -> Filters:
        """The filters of a request; by default the last 28 days up to today, all channels."""
        until = _day(query, "until") or today
        since = _day(query, "since") or until - timedelta(days=DEFAULT_DAYS - 1)
        if until < since:
            raise FilterError(
                f"until ({until.isoformat()}) is before since ({since.isoformat()}): "
                "swap them or pick another range"
            )
        channel = query.get("channel", "").strip() or None
        if channel is not None and not _CHANNEL.match(channel):
            raise FilterError(
                f"channel must be a channel's name such as 'webchat' or 'telegram', not {channel!r}"
            )
        team = query.get("team", "").strip() or None
        if team is not None and not _TEAM.match(team):
            raise FilterError(
                f"team must be a team's name such as 'billing' ([[teams]] name), not {team!r}"
            )
        label = query.get("label", "").strip().lower() or None
        if label is not None and not 1 <= len(label) <= 64:
            raise FilterError(f"label must be 1 to 64 characters, not {len(label)}")
        visibility = query.get("visibility", "").strip().lower() or None
        if visibility == "all":
            visibility = None
        if visibility is not None and visibility not in VISIBILITIES:
            raise FilterError(f"visibility must be all, public or private, not {visibility!r}")
        return cls(since, until, channel, team, label, visibility)

    @property
    def days(self) -> int:
        """How many days the range covers."""
        return (self.until - self.since).days + 1

    def period(self, zone: ZoneInfo) -> Period:
        """The report's period: local midnight of ``since`` to local midnight after ``until``."""
        return Period(
            _midnight(self.since, zone),
            _midnight(self.until + timedelta(1), zone),
            self.channel,
            self.team,
            self.label,
            self.visibility,
        )

    def previous(self) -> Filters:
        """The same number of days just before (what the changes are against)."""
        return Filters(
            self.since - timedelta(self.days),
            self.since - timedelta(1),
            self.channel,
            self.team,
            self.label,
            self.visibility,
        )

    def last(self, days: int, today: date) -> Filters:
        """The last ``days`` days up to ``today``, on the same channel and team."""
        return Filters(
            today - timedelta(days - 1),
            today,
            self.channel,
            self.team,
            self.label,
            self.visibility,
        )

    def query(self, **extra: str) -> str:
        """The URL query of these filters, with ``extra`` parameters after them."""
        values = {"since": self.since.isoformat(), "until": self.until.isoformat()}
        if self.channel:
            values["channel"] = self.channel
        if self.team:
            values["team"] = self.team
        if self.label:
            values["label"] = self.label
        if self.visibility:
            values["visibility"] = self.visibility
        return urlencode({**values, **extra})

    def words(self) -> str:
        """``"1 Nov to 28 Nov 2026 (28 days), all channels"`` (``", team billing"`` after it
        for one team)."""
        length = "1 day" if self.days == 1 else f"{self.days} days"
        where = f"channel {self.channel}" if self.channel else "all channels"
        if self.team:
            where += f", team {self.team}"
        if self.label:
            where += f", label {self.label}"
        if self.visibility:
            where += f", {self.visibility} conversations"
        return f"{fmt.days(self.since, self.until)} ({length}), {where}"


def _day(query: Mapping[str, str], name: str) -> date | None:
    value = query.get(name, "").strip()
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise FilterError(f"{name} must be a day like 2026-11-01, not {value!r}") from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise FilterError(
            f"{name} must be a day from {FIRST_DAY.isoformat()} to {LAST_DAY.isoformat()}, "
            f"not {value!r}"
        )
    return day


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)
