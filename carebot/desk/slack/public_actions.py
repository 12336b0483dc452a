"""What agents do in Slack about a public conversation (issue 18, section 3).

* A thread reply in a public conversation is posted in public, under the customer's latest
  comment, signed as the brand configures (:meth:`carebot.agents.AgentDesk.reply` does that);
  a reply starting with ``private:`` goes as the comment's private reply instead (an X direct
  message), the prefix removed (:func:`private_reply`). In a private conversation the prefix is
  removed too: every reply there is private.
* A reply the personal-data guard or a platform's rule refuses is not sent, and the agent is
  told why, privately, in plain words (:func:`not_sent`): "Not posted in public: the reply
  contains an e-mail address (an…@…com). Reply privately instead ..." Nothing reaches the
  customer.
* The card's "Hide comment" / "Unhide comment" buttons hide or unhide the latest comment on its
  platform (never delete it): :class:`PublicButtons`. The card then shows it hidden, and the
  thread says who hid it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from carebot.agents import AgentDesk
from carebot.desk.slack import public_card
from carebot.desk.slack.mrkdwn import escape
from carebot.exceptions import PublicRefused, SlackError, StoreError

log = logging.getLogger(__name__)
PRIVATE_PREFIX = "private:"
HIDDEN_WHY = "hidden by an agent in Slack"
Listener = Callable[..., Awaitable[Any]]
Track = Callable[[Listener], Listener]
Allowed = Callable[..., Awaitable[bool]]  # (user, conversation_id, *, respond) -> may act
Tell = Callable[..., Awaitable[None]]  # (user, text, *, respond) -> said privately


def private_reply(reply: str) -> tuple[bool, str]:
    """Whether a thread reply starts with ``private:`` (a comment's private reply), and its
    text without the prefix. Slack markup around the prefix (``*private:*``) is allowed, as for
    ``note:``."""
    written = reply.lstrip("*_~> ")
    if not written.casefold().startswith(PRIVATE_PREFIX):
        return False, reply
    return True, written[len(PRIVATE_PREFIX) :].lstrip("*_~ ").strip()


def not_sent(
    exc: StoreError, head: str = "Not sent to the customer", *, private: bool = False
) -> str:
    """What an agent is told when their reply was refused: a public refusal in plain words
    (:func:`public_card.refused_words`), anything else after ``head``."""
    if isinstance(exc, PublicRefused):
        return public_card.refused_words(exc.reason, private=private)
    return f"{head}: {exc}"


class PublicButtons:
    """The card's Hide and Unhide buttons. ``allowed``, ``agent_name`` and ``tell`` are the
    Slack listeners' own (:class:`carebot.desk.slack.listeners.Listeners`): who may act on the
    conversation, the name they act under, and a message only they see."""

    def __init__(
        self,
        desk: AgentDesk,
        allowed: Allowed,
        agent_name: Callable[[str], Awaitable[str]],
        tell: Tell,
    ) -> None:
        self._desk = desk
        self._allowed = allowed
        self._agent_name = agent_name
        self._tell = tell

    def register(self, app: AsyncApp, *, track: Track) -> None:
        for action in (public_card.HIDE, public_card.UNHIDE):
            app.action(action)(track(self.on_hide))

    async def on_hide(
        self,
        ack: AsyncAck,
        body: dict[str, Any],
        action: dict[str, Any],
        respond: AsyncRespond | None = None,
    ) -> None:
        """Hide (or unhide) the comment the button was shown for; a refusal is said why."""
        await ack()
        user = body["user"]["id"]
        conversation_id, message_id = public_card.pressed(action["value"])
        hide = action["action_id"] == public_card.HIDE
        try:
            if not await self._allowed(user, conversation_id, respond=respond):
                return
            name = await self._agent_name(user)
            try:
                await self._desk.set_hidden(
                    conversation_id,
                    name,
                    message_id=message_id,
                    hidden=hide,
                    why=HIDDEN_WHY if hide else "",
                    via="slack",
                )
            except StoreError as exc:
                said = exc.reason if isinstance(exc, PublicRefused) else str(exc)
                done = "hidden" if hide else "unhidden"
                await self._tell(user, f"Not {done}: {escape(said)}", respond=respond)
        except SlackError as exc:
            log.warning("Slack failed on %s in %s: %s", action["action_id"], conversation_id, exc)
