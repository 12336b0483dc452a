"""The channel protocol that every adapter implements.

An adapter translates and nothing else: platform event -> :class:`InboundMessage` handed to the
``deliver`` callback; :class:`OutboundReply` -> platform call in :meth:`Channel.send`. A send that
fails raises :class:`carebot.exceptions.DeliveryError` (with the platform's ``retry_after`` when
it gave one) and the outbox tries again later.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from carebot.models import InboundMessage, OutboundReply

Deliver = Callable[[InboundMessage], Awaitable[None]]


class Channel(Protocol):
    @property
    def name(self) -> str: ...

    async def start(self, deliver: Deliver) -> None:
        """Begin receiving; each inbound message is passed to ``deliver``."""

    async def stop(self) -> None: ...

    async def send(self, reply: OutboundReply) -> None: ...
