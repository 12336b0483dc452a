"""First-response targets: by when a team owes a handoff its first agent reply, when to remind
the team, and how a handoff stands against its target ("12 min left", "breached 5 min ago",
"met in 8 min").

A team's target (``[[teams]] first_response_minutes``; 0: none) counts only the team's business
hours (its own ``business_hours``, else ``[business_hours]``): a handoff made at 19:50 with a
30-minute target, of a team open until 20:00, is due 20 minutes after the team opens the next
working day. A team whose hours are closed every day counts its target in clock time (working
time that never comes would hide every breach). Handoffs of old (``team`` None) belong to the
default team (:meth:`carebot.config.Settings.team`).

The Slack desk reminds a team at :meth:`FirstResponseTargets.reminder_at` and posts the breach
notice at :meth:`FirstResponseTargets.due`; the inbox shows :meth:`FirstResponseTargets.status`
and orders the waiting handoffs by ``due`` (the breached ones first); insight counts the share
answered within target with :meth:`FirstResponseTargets.met`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

from carebot.config import BusinessHoursSettings, Settings
from carebot.hours import BusinessHours

TargetState = Literal["running", "met", "breached"]
RUNNING: TargetState = "running"  # not answered yet, and not due yet
MET: TargetState = "met"  # the first agent reply came at or before the due time
BREACHED: TargetState = "breached"  # due passed without a reply, or the reply came late

# How far ahead spans of working time are looked for: a target is at most 7 days of minutes,
# and a week with any hours has at least a minute of them, so this is never reached.
_MAX_DAYS = 7 * 24 * 60 * 7 + 7


@dataclass(frozen=True, slots=True)
class TargetStatus:
    """How one handoff stands against its team's first-response target.

    ``due``: when the first reply is due. ``left``: the working time left while running (0
    otherwise). ``took``: the working time from the handoff to its first reply, once answered.
    ``closed``: the team is outside its hours now (the time left does not run down).
    ``text``: what an agent reads next to the handoff."""

    state: TargetState
    due: datetime
    text: str
    left: timedelta = timedelta()
    took: timedelta | None = None
    closed: bool = False

    @property
    def breached(self) -> bool:
        return self.state == BREACHED


class FirstResponseTargets:
    """The first-response targets of the configured teams."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._hours: dict[str, _TeamClock] = {}

    def target(self, team: str | None) -> timedelta | None:
        """The team's first-response target in working time; None: the team has none."""
        minutes = self._settings.team(team).first_response_minutes
        return timedelta(minutes=minutes) if minutes > 0 else None

    def due(self, team: str | None, created: datetime) -> datetime | None:
        """When the first agent reply to a handoff made at ``created`` is due: ``created`` plus
        the target, counted in the team's business hours. None: the team has no target."""
        target = self.target(team)
        return None if target is None else self._clock(team).after(created, target)

    def reminder_at(self, team: str | None, created: datetime) -> datetime | None:
        """When to remind the team: ``remind_before_minutes`` of working time before the due
        time, never before the handoff (nor outside the team's hours: a target shorter than
        the reminder lead reminds when the handoff is made, or when the team next opens).
        None: no target, or ``remind_before_minutes`` is 0 (the breach notice only)."""
        target = self.target(team)
        before = timedelta(minutes=self._settings.team(team).remind_before_minutes)
        if target is None or before <= timedelta():
            return None
        return self._clock(team).after(created, max(timedelta(), target - before))

    def met(
        self, team: str | None, created: datetime, first_reply_at: datetime | None
    ) -> bool | None:
        """Whether the first agent reply came within the target (at or before the due time);
        None when the team has no target or nobody has replied (no verdict yet)."""
        due = self.due(team, created)
        if due is None or first_reply_at is None:
            return None
        return first_reply_at <= due

    def status(
        self,
        team: str | None,
        created: datetime,
        first_reply_at: datetime | None,
        now: datetime,
    ) -> TargetStatus | None:
        """How the handoff stands at ``now``; None when its team has no target.

        Answered: "met in 8 min" or "missed by 5 min" (the working time it took, and how much
        past the target). Not answered: "12 min left" (working time; "(closed now)" while the
        team is outside its hours) until the due time, then "breached 5 min ago" (clock time
        since the due time)."""
        due = self.due(team, created)
        if due is None:
            return None
        clock = self._clock(team)
        if first_reply_at is not None:
            took = clock.between(created, first_reply_at)
            if first_reply_at <= due:
                return TargetStatus(MET, due, f"met in {duration_words(took)}", took=took)
            late = clock.between(due, first_reply_at)
            return TargetStatus(BREACHED, due, f"missed by {duration_words(late)}", took=took)
        if now >= due:
            return TargetStatus(BREACHED, due, f"breached {duration_words(now - due)} ago")
        left = clock.between(now, due)
        closed = not clock.is_open(now)
        text = f"{duration_words(left)} left" + (" (closed now)" if closed else "")
        return TargetStatus(RUNNING, due, text, left=left, closed=closed)

    def _clock(self, team: str | None) -> _TeamClock:
        name = self._settings.team(team).name
        if name not in self._hours:
            self._hours[name] = _TeamClock(self._settings.hours_of(name))
        return self._hours[name]


class _TeamClock:
    """Working time of one team: its business hours, or the clock when it has none."""

    def __init__(self, settings: BusinessHoursSettings) -> None:
        self._settings = settings
        self._zone = settings.zone()
        self._hours = BusinessHours(settings)
        self._always = not any(settings.opening(day) for day in range(7))

    def is_open(self, when: datetime) -> bool:
        return self._always or self._hours.is_open(when)

    def between(self, start: datetime, end: datetime) -> timedelta:
        """The working time in [start, end]."""
        if self._always:
            return max(timedelta(), end - start)
        return self._hours.open_between(start, end)

    def after(self, start: datetime, work: timedelta) -> datetime:
        """The moment ``work`` of working time after ``start`` (with no work: the first
        working moment at or after ``start``)."""
        if self._always:
            return start + work
        left = work
        for opens, closes in self._spans(start):
            begin = max(opens, start)
            if closes <= begin:
                continue
            if left <= closes - begin:
                return begin + left
            left -= closes - begin
        raise ValueError(f"no working time within {_MAX_DAYS} days of {start.isoformat()}")

    def _spans(self, start: datetime) -> Iterator[tuple[datetime, datetime]]:
        """The opening spans (UTC) from the day of ``start`` on, in order."""
        first = start.astimezone(self._zone).date()
        for offset in range(_MAX_DAYS):
            span = self._opening_on(first + timedelta(days=offset))
            if span is not None:
                yield span

    def _opening_on(self, day: date) -> tuple[datetime, datetime] | None:
        hours = self._settings.opening(day.weekday())
        if hours is None:
            return None
        opens = datetime.combine(day, hours[0], tzinfo=self._zone)
        if hours[1] == time.max:  # open until midnight ("24:00")
            closes = datetime.combine(day + timedelta(days=1), time(), tzinfo=self._zone)
        else:
            closes = datetime.combine(day, hours[1], tzinfo=self._zone)
        return opens.astimezone(UTC), closes.astimezone(UTC)


def duration_words(span: timedelta) -> str:
    """A duration for agents, to the minute (down): "under a minute", "8 min", "2 h 5 min",
    "3 d 4 h"."""
    minutes = int(span.total_seconds() // 60)
    if minutes < 1:
        return "under a minute"
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h" + (f" {minutes} min" if minutes else "")
    days, hours = divmod(hours, 24)
    return f"{days} d" + (f" {hours} h" if hours else "")
