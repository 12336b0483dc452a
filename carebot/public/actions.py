"""Public actions: the small protocol beside :meth:`carebot.channel.Channel.send`.

A channel that takes public messages in (Facebook and Instagram comments, X mentions and
replies) also implements :class:`PublicActions`: reply under a comment or post, reply to its
author privately, hide or unhide it. Like ``send``, each call raises
:class:`~carebot.exceptions.DeliveryError` when the platform refuses (``permanent=True`` for
good) and is retried by the outbox otherwise; adapters only translate, so whether an action is
allowed at all (shadow mode, the personal-data guard, the platforms' rules) is decided before
it reaches them (:mod:`carebot.public.rules`, :mod:`carebot.public.guard`).

:func:`perform` carries out the action an :class:`~carebot.models.OutboundReply` holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from carebot.exceptions import DeliveryError
from carebot.models import OutboundReply, PublicAction, PublicActionKind

# What each action is called where people read it ("Ann hid the comment", "Replied in public").
ACTION_WORDS = {
    PublicActionKind.REPLY: "replied in public",
    PublicActionKind.PRIVATE_REPLY: "replied privately",
    PublicActionKind.HIDE: "hid the comment",
    PublicActionKind.UNHIDE: "unhid the comment",
}


@dataclass(frozen=True, slots=True)
class PrivateReplySent:
    """What a private reply became: the platform's id of the message, and the id of the
    person it reached in private messages (a Page-scoped id on Messenger, which may differ
    from the commenter's id), so their answer joins the same customer."""

    message_id: str | None
    recipient_id: str | None


@runtime_checkable
class PublicActions(Protocol):
    @property
    def name(self) -> str: ...

    async def reply_public(self, action: PublicAction, text: str) -> str | None:
        """Post ``text`` in public under ``action.target``; the platform's id of the reply."""

    async def reply_private(
        self, action: PublicAction, text: str, *, user_id: str
    ) -> PrivateReplySent:
        """Answer the author of ``action.target`` (``user_id``) in private messages."""

    async def set_hidden(self, action: PublicAction, hidden: bool) -> None:
        """Hide (or unhide) ``action.target`` on the platform; it is never deleted."""


async def perform(channel: object, reply: OutboundReply) -> tuple[str | None, str | None]:
    """Carry out ``reply.public`` on ``channel``: the platform's id of what was posted (None
    for hide and unhide), and, for a private reply, the recipient's private-message id."""
    action = reply.public
    if action is None:
        raise ValueError(f"reply {reply.outbox_id} holds no public action")
    if not isinstance(channel, PublicActions):
        raise DeliveryError(
            f"the {reply.channel} channel takes no public actions (reply {reply.outbox_id})",
            permanent=True,
        )
    if action.kind is PublicActionKind.REPLY:
        return await channel.reply_public(action, reply.text), None
    if action.kind is PublicActionKind.PRIVATE_REPLY:
        sent = await channel.reply_private(action, reply.text, user_id=reply.external_user_id)
        return sent.message_id, sent.recipient_id
    await channel.set_hidden(action, action.kind is PublicActionKind.HIDE)
    return None, None
