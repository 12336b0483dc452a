"""``/care faq <words>`` in Slack: the FAQ answers matching the words, shown only to the agent
who asked (through the command's response URL), to copy into a conversation's thread.

``/care`` alone, or with another sub-command, answers with the usage line. Only care agents
(see :mod:`.people`) get answers; anyone else is told so, privately. Slack is acknowledged
first (it wants an answer within 3 seconds), then the member list is checked and the words
are searched (:mod:`carebot.console.answer_search`, in the model's thread).
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from carebot.console.answer_search import AnswerSearch, Hit
from carebot.desk.slack.listeners import Track
from carebot.desk.slack.mrkdwn import LIMIT, escape, plain
from carebot.desk.slack.people import People
from carebot.exceptions import SlackError

log = logging.getLogger(__name__)
COMMAND = "/care"
SHOWN = 5  # answers per search
USAGE = (
    "Usage: `/care faq <words>`: find the FAQ answers for those words, to copy into a reply "
    "(only you see them). Example: `/care faq refund`"
)
NO_WORDS = "Type what to look for after `/care faq`, e.g. `/care faq refund`."
NOT_ALLOWED = (
    "Only care agents can look up FAQ answers: members of the care channel, or the agents "
    "listed in carebot's [slack] settings."
)
CANNOT_CHECK = (
    "Slack did not let carebot check that you are a care agent ({reason}): try again in a moment."
)
HINT = (
    "Only you see this. Copy an answer into the conversation's thread to send it to the "
    "customer; edit it there first if it needs it."
)


class FaqCommand:
    def __init__(self, *, answers: AnswerSearch, people: People) -> None:
        self._answers = answers
        self._people = people

    def register(self, app: AsyncApp, *, track: Track | None = None) -> None:
        """Listen on ``app``; ``track`` wraps the listener (see :meth:`Listeners.register`)."""
        app.command(COMMAND)(track(self.on_command) if track else self.on_command)

    async def on_command(
        self, ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond
    ) -> None:
        await ack()
        user = str(command.get("user_id"))
        parts = plain(str(command.get("text") or "")).split(maxsplit=1)
        if not parts or parts[0].casefold() != "faq":
            await _private(respond, USAGE)
            return
        words = parts[1] if len(parts) > 1 else ""
        if not words.strip():
            await _private(respond, NO_WORDS)
            return
        if not await self._allowed(user, respond):
            return
        hits = await self._answers.find(words, SHOWN)
        await _private(respond, _summary(words, hits), blocks=answer_blocks(words, hits))

    async def _allowed(self, user: str, respond: AsyncRespond) -> bool:
        """Whether ``user`` is a care agent; if not (or Slack cannot say), they are told."""
        try:
            if await self._people.may_act(user):
                return True
            await _private(respond, NOT_ALLOWED)
        except SlackError as exc:
            log.warning("Cannot check whether %s may search the FAQ answers: %s", user, exc)
            await _private(respond, CANNOT_CHECK.format(reason=exc))
        return False


def answer_blocks(words: str, hits: list[Hit]) -> list[dict[str, Any]]:
    """The answers found for ``words`` as Block Kit: one section per answer, then the hint."""
    asked = fit(" ".join(words.split()), 200)
    if not hits:
        text = f"No FAQ answer matches “{asked}”. Try other words, or fewer."
        return [_section(text)]
    blocks = [_section(f"FAQ answers for “{asked}”:")]
    for hit in hits:
        head = f"*{fit(hit.title, 200)}*  `{hit.intent}`\n"
        blocks.append(_section(head + fit(hit.answer, LIMIT - len(head))))
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": HINT}]})
    return blocks


def _summary(words: str, hits: list[Hit]) -> str:
    """The message's plain text (notifications, and clients that do not show blocks)."""
    found = "; ".join(f"{hit.title}: {hit.answer}" for hit in hits)
    return fit(f"FAQ answers for “{words}”: {found}" if hits else "No FAQ answer", 3000)


def fit(text: str, limit: int) -> str:
    """``text`` escaped for mrkdwn in at most ``limit`` characters (cut with "…", never inside
    an escape: escaping makes the text longer, so it is cut after)."""
    escaped = escape(text)
    if len(escaped) <= limit:
        return escaped
    cut = escaped[: limit - 1]
    amp = cut.rfind("&")
    if amp >= 0 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut.rstrip() + "…"


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


async def _private(respond: AsyncRespond, text: str, **extra: Any) -> None:
    """A reply only the agent sees, through the command's response URL."""
    answer = await respond(text=text, response_type="ephemeral", **extra)
    if answer.status_code != 200:
        log.warning(
            "Slack refused the answer to %s (HTTP %s: %s)", COMMAND, answer.status_code, answer.body
        )
