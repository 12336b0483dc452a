"""The channel protocol that every adapter implements.

An adapter translates and nothing else: platform event -> :class:`InboundMessage` (or a
:class:`DeliveryStatus` of a reply, or :class:`ContactDetails`) handed to the ``deliver``
callback; :class:`OutboundReply` -> platform call in :meth:`Channel.send`, which returns the
platform's id of the sent message (None when it has none). A send that fails raises
:class:`carebot.exceptions.DeliveryError` (with the platform's ``retry_after`` when it gave one)
and the outbox tries again later; ``permanent=True`` when the platform refused it for good.

``deliver`` raises when the event could not be stored: a webhook adapter then answers 5xx so
the platform delivers it again (duplicates are dropped by the core).

Lifecycle, as python-telegram-bot splits its own: :meth:`Channel.start` opens the platform
clients and begins receiving; :meth:`Channel.stop` stops receiving (nothing new is taken, the
message in hand is finished) while sending still works, so the outbox can be flushed;
:meth:`Channel.close` releases the platform clients, after which :meth:`Channel.send` raises
:class:`DeliveryError`. Stopping or closing twice is harmless, and so is either on a channel
that never started; closing a channel that is still receiving stops it first. The contract
suite (tests/test_channel_contract.py) holds every adapter, and the tests' fake, to this.
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
        """Open the platform clients and begin receiving; each inbound message is passed to
        ``deliver``."""

    async def stop(self) -> None:
        """Stop receiving: take nothing new, finish what is in hand. ``send`` still works."""

    async def close(self) -> None:
        """Release the platform clients (stopping first if need be); ``send`` refuses after."""

    async def send(self, reply: OutboundReply) -> str | None:
        """Send one reply; the platform's id of the sent message (None when it has none)."""
