"""Business hours: is the care team at work now, and if not, when does it come back?"""

from __future__ import annotations

from datetime import datetime, timedelta

from carebot.config import DAYS, BusinessHoursSettings


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

    def describe_next_open(self, when: datetime) -> str:
        """'today at 09:00', 'tomorrow at 09:00' or 'Monday at 09:00', for customer messages."""
        start = self.next_open(when)
        if start is None:
            return "as soon as possible"
        days = (start.date() - when.astimezone(self._zone).date()).days
        day = {0: "today", 1: "tomorrow"}.get(days, DAYS[start.weekday()].capitalize())
        return f"{day} at {start:%H:%M} ({self._settings.timezone})"
