"""Business hours: is the care team at work now, and if not, when does it come back? How much
working time lies between two moments, and a wait in words for customers."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, time, timedelta

from carebot.config import BusinessHoursSettings, MessageSettings

ENGLISH = MessageSettings()  # the texts of {next_open} and {wait} when none are given


class BusinessHours:
    def __init__(self, settings: BusinessHoursSettings) -> None:
        self._settings = settings
        self._zone = settings.zone()

    def is_open(self, when: datetime) -> bool:
        local = when.astimezone(self._zone)
        hours = self._settings.opening(local.weekday())
        return hours is not None and hours[0] <= local.time() < hours[1]

    def next_open(self, when: datetime) -> datetime | None:
        """The next opening time after ``when`` (local time), or None if never open."""
        local = when.astimezone(self._zone)
        for offset in range(8):
            day = (local + timedelta(days=offset)).date()
            hours = self._settings.opening(day.weekday())
            if hours is None:
                continue
            start = datetime.combine(day, hours[0], tzinfo=self._zone)
            if start > local:
                return start
        return None

    def describe_next_open(self, when: datetime, said: MessageSettings = ENGLISH) -> str:
        """'today at 09:00 (Europe/Berlin)', 'tomorrow at 09:00 (...)' or 'Monday at 09:00
        (...)', for customer messages, in ``said``'s language ([messages] next_open_*)."""
        start = self.next_open(when)
        if start is None:
            return said.next_open_never
        days = (start.date() - when.astimezone(self._zone).date()).days
        time_of_day = f"{start:%H:%M}"
        if days == 0:
            phrase = said.next_open_today.format(time=time_of_day)
        elif days == 1:
            phrase = said.next_open_tomorrow.format(time=time_of_day)
        else:
            day = said.day_name(start.weekday())
            phrase = said.next_open_later.format(day=day, time=time_of_day)
        return f"{phrase} ({self._settings.timezone})"

    def open_between(self, start: datetime, end: datetime) -> timedelta:
        """The working time between ``start`` and ``end``: only the hours the team is open
        count (a handoff at 19:50 answered at 08:10 the next working day waited 20 minutes of
        a team that works 08:00-20:00)."""
        if end <= start:
            return timedelta()
        first = start.astimezone(self._zone).date()
        last = end.astimezone(self._zone).date()
        total = timedelta()
        for offset in range((last - first).days + 1):
            opened = self._opening_on(first + timedelta(days=offset))
            if opened is None:
                continue
            begin, finish = max(opened[0], start), min(opened[1], end)
            if finish > begin:
                total += finish.astimezone(UTC) - begin.astimezone(UTC)
        return total

    def _opening_on(self, day: date) -> tuple[datetime, datetime] | None:
        hours = self._settings.opening(day.weekday())
        if hours is None:
            return None
        start = datetime.combine(day, hours[0], tzinfo=self._zone)
        if hours[1] == time.max:  # open until midnight ("24:00")
            return start, datetime.combine(day + timedelta(days=1), time(), tzinfo=self._zone)
        return start, datetime.combine(day, hours[1], tzinfo=self._zone)


def describe_wait(wait: timedelta, said: MessageSettings = ENGLISH) -> str:
    """A wait in words a customer reads at a glance, in ``said``'s language ([messages]
    wait_*): minutes rounded up (to the minute under 10, else to five), hours to the nearest,
    halves up: "about a minute", "about 5 minutes", "about 15 minutes", "about an hour",
    "about 2 hours"."""
    minutes = max(1.0, wait / timedelta(minutes=1))
    if minutes < 10:
        whole = math.ceil(minutes)
        return said.wait_one_minute if whole == 1 else said.wait_minutes.format(count=whole)
    if minutes < 55:
        return said.wait_minutes.format(count=math.ceil(minutes / 5) * 5)
    hours = math.floor(minutes / 60 + 0.5)  # halves up: better early than late
    return said.wait_one_hour if hours <= 1 else said.wait_hours.format(count=hours)
