"""The channel protocol that every adapter implements.

An adapter translates and nothing else: platform event -> :class:`InboundMessage` (or a
:class:`DeliveryStatus` of a reply, or :class:`ContactDetails`) handed to the ``deliver``
callback; :class:`OutboundReply` -> platform call in :meth:`Channel.send`, which returns the
platform's id of the sent message (None when it has none). A send that fails raises
:class:`carebot.exceptions.DeliveryError` (with the platform's ``retry_after`` when it gave one)
and the outbox tries again later; ``permanent=True`` when the platform refused it for good.

``deliver`` raises when the event could not be stored: a webhook adapter then answers 5xx so
the platform delivers it again (duplicates are dropped by the core).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from carebot.models import ChannelEvent, OutboundReply

Deliver = Callable[[ChannelEvent], Awaitable[None]]


class Channel(Protocol):
    @property
    def name(self) -> str: ...

    async def start(self, deliver: Deliver) -> None:
        """Begin receiving; each inbound message is passed to ``deliver``."""

    async def stop(self) -> None: ...

    async def send(self, reply: OutboundReply) -> str | None: ...
