"""Text between Slack and customers.

Customer text shown in Slack is escaped (``&``, ``<``, ``>`` are control characters in Slack
messages) and quoted. An agent's reply arrives as Slack markup: links, mentions and escapes
become the plain text a customer on another channel can read.
"""

from __future__ import annotations

import re

_LINK = re.compile(r"<([^<>|]+)(?:\|([^<>]*))?>")
LIMIT = 2900  # a section block's text may hold 3000 characters


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def quote(text: str, limit: int = 600) -> str:
    """Customer text as a Slack block quote, escaped and cut to ``limit`` characters."""
    text = shorten(text, limit)
    return "\n".join("&gt; " + line for line in escape(text).splitlines() or [""])


def shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def plain(text: str) -> str:
    """An agent's Slack message as plain text for the customer."""

    def link(match: re.Match[str]) -> str:
        target, label = match.group(1), match.group(2)
        if target.startswith(("@", "#", "!")):
            return label or ""  # a mention keeps its label (a channel's name); a user's goes
        target = target.removeprefix("mailto:")
        return f"{label} ({target})" if label and label != target else target

    text = _LINK.sub(link, text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&").strip()


def when(moment_epoch: float, fallback: str) -> str:
    """A time every agent sees in their own time zone."""
    return f"<!date^{int(moment_epoch)}^{{date_short_pretty}} {{time}}|{fallback}>"
