"""The platforms' rules for public actions, checked before any API is called.

A public action the platform would refuse is refused here first, with the reason in words an
agent can act on (the inbox and Slack show it). The platforms' own limits:

* Facebook and Instagram allow **one private reply per comment**, within **7 days** of it.
* Instagram allows public replies only to **top-level comments that are not hidden**.
* X's API lets a brand reply in public only to posts that **mention or quote** it, and hide
  only **replies** in its own conversations; Instagram hides no mention on another account's
  post.
* Nothing can be posted under, or hidden, a comment that was **removed**; only a hidden one
  can be unhidden.

Rate limits and X's monthly call cap are checked where the calls are made (the Graph and X
clients, and the outbox: :mod:`carebot.store.public_items`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from carebot.models import PublicActionKind

PRIVATE_REPLY_WINDOW = timedelta(days=7)
# The longest public reply each platform takes, in characters (X counts a link as 23).
MAX_PUBLIC_TEXT = {"x": 280, "instagram": 2200, "messenger": 8000}
_LINK = re.compile(r"https?://\S+")
PLATFORMS = {"messenger": "Facebook", "instagram": "Instagram", "x": "X"}
ONE_PRIVATE_REPLY = ("messenger", "instagram")


def platform_name(channel: str) -> str:
    """The platform a brand knows a channel's public side by (``messenger`` is Facebook)."""
    return PLATFORMS.get(channel, channel)


@dataclass(frozen=True, slots=True)
class ItemFacts:
    """What the rules read of a public message."""

    channel: str
    kind: str  # comment / mention / reply / quote / post
    top_level: bool
    addressed: bool
    hidden: bool
    removed: bool
    sent_at: datetime
    private_reply_at: datetime | None = None


def refusal(action: PublicActionKind, item: ItemFacts, now: datetime) -> str | None:
    """Why the platform would refuse ``action`` on ``item`` now; None when it is allowed."""
    where = platform_name(item.channel)
    if item.removed:
        return f"the {item.kind} was removed on {where}: nothing can be done with it there"
    if action is PublicActionKind.REPLY:
        return _reply_refusal(item, where)
    if action is PublicActionKind.PRIVATE_REPLY:
        return _private_refusal(item, where, now)
    if action is PublicActionKind.HIDE:
        if item.hidden:
            return f"the {item.kind} is hidden already"
        if item.channel == "x" and item.kind != "reply":
            return "X lets a brand hide only replies in its own conversations, not mentions"
        if item.channel == "instagram" and item.kind == "mention":
            return "Instagram does not let a brand hide a comment on another account's post"
        return None
    return None if item.hidden else f"the {item.kind} is not hidden"


def text_refusal(channel: str, text: str) -> str | None:
    """Why ``text`` cannot be posted as a public reply on ``channel`` (too long); None: it can.
    A reply is never cut: a cut answer in public reads worse than a person's short one."""
    limit = MAX_PUBLIC_TEXT.get(channel)
    if limit is None:
        return None
    length = len(_LINK.sub("x" * 23, text)) if channel == "x" else len(text)
    if length <= limit:
        return None
    return (
        f"{platform_name(channel)} takes public replies of at most {limit} characters and this "
        f"one has {length}; shorten it, or reply privately"
    )


def _reply_refusal(item: ItemFacts, where: str) -> str | None:
    if item.channel == "instagram" and (not item.top_level or item.hidden):
        return (
            "Instagram allows public replies only to top-level comments that are not hidden; "
            "reply privately instead"
        )
    if item.channel == "x" and not item.addressed:
        return (
            "X lets a brand reply only to posts that mention or quote it, and this one does "
            "neither; reply privately (a direct message) instead"
        )
    return None


def _private_refusal(item: ItemFacts, where: str, now: datetime) -> str | None:
    if item.channel not in ONE_PRIVATE_REPLY:
        return None
    if item.private_reply_at is not None:
        return (
            f"this comment was already answered privately on "
            f"{item.private_reply_at:%Y-%m-%d %H:%M} UTC; {where} allows one private reply "
            "per comment (once the customer answers, the private conversation goes on)"
        )
    if now - item.sent_at > PRIVATE_REPLY_WINDOW:
        return (
            f"the comment is more than 7 days old; {where} allows a private reply only within "
            "7 days of it"
        )
    return None
