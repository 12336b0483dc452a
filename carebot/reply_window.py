"""Customer-service windows: channels that accept replies only for a while after the customer's
last message (WhatsApp, Messenger and Instagram: 24 hours).

Agents are warned before a window closes (in the inbox and in Slack), and a reply after it has
closed is refused with the reason, instead of failing at the platform later.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from carebot.exceptions import ReplyWindowClosed


@dataclass(frozen=True, slots=True)
class Window:
    """The reply window of one conversation's channel."""

    channel: str
    hours: float
    last_customer_message: datetime
    warning: timedelta

    @property
    def closes_at(self) -> datetime:
        return self.last_customer_message + timedelta(hours=self.hours)

    def is_open(self, now: datetime) -> bool:
        return now < self.closes_at

    def closing(self, now: datetime) -> bool:
        """Open, but closing within the warning time."""
        return self.is_open(now) and self.closes_at - now <= self.warning

    def describe(self, now: datetime) -> str:
        """One line for agents."""
        at = self.closes_at.strftime("%Y-%m-%d %H:%M UTC")
        if not self.is_open(now):
            return (
                f"The {self.channel} reply window closed at {at}: {self.channel} accepts replies "
                f"only within {self.hours:g} h of the customer's last message."
            )
        return (
            f"Replies on {self.channel} are possible until {at} (in {_span(self.closes_at - now)})."
        )

    def check(self, now: datetime) -> None:
        """Raise :class:`ReplyWindowClosed` with the reason when the window has closed."""
        if not self.is_open(now):
            ago = _span(now - self.last_customer_message)
            raise ReplyWindowClosed(
                f"Not sent: {self.channel} accepts replies only within {self.hours:g} h of the "
                f"customer's last message, and they last wrote {ago} ago. The window reopens "
                "when they write again; meanwhile reach them on another channel."
            )


@dataclass(frozen=True, slots=True)
class ReplyWindows:
    """Which channels have a window, how long it is, and how early agents are warned."""

    hours: Mapping[str, float]
    warning_minutes: float = 60.0

    def window(self, channel: str, last_customer_message: datetime | None) -> Window | None:
        """The window of a conversation on ``channel``; None when the channel has none (or the
        customer has not written yet)."""
        hours = self.hours.get(channel)
        if hours is None or last_customer_message is None:
            return None
        return Window(
            channel, hours, last_customer_message, timedelta(minutes=self.warning_minutes)
        )


NO_WINDOWS = ReplyWindows({})


def _span(delta: timedelta) -> str:
    minutes = max(0, int(delta.total_seconds() // 60))
    hours, minutes = divmod(minutes, 60)
    if hours >= 48:
        return f"{hours // 24} days"
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"
