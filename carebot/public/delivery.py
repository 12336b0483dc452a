"""Delivering what the outbox holds, when it is public or billed: the outbox hands every reply
to :meth:`PublicDelivery.send` instead of ``channel.send``.

* A public action (:class:`~carebot.models.PublicAction`) is checked once more (the comment may
  have been removed since it was queued: refused for good, with the reason shown to agents)
  and carried out through the channel's :class:`~carebot.public.actions.PublicActions`; a
  private reply that reached a different private-message id links it to the same customer.
* A channel with a monthly call cap (X bills per call: ``[x] monthly_call_cap``) has each call
  counted first; once the month's cap is reached the replies wait until the next month (they
  are retried then, never dropped) and the reason is shown to agents.
* Anything else goes to ``channel.send`` as before.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime

from carebot.channel import Channel
from carebot.clock import Clock
from carebot.exceptions import DeliveryError
from carebot.models import OutboundReply
from carebot.public.actions import perform
from carebot.public.rules import platform_name
from carebot.store.public_actions import PublicActionStore

log = logging.getLogger(__name__)


class PublicDelivery:
    def __init__(
        self, *, store: PublicActionStore, clock: Clock, caps: Mapping[str, int] | None = None
    ) -> None:
        self._store = store
        self._clock = clock
        self._caps = {name: cap for name, cap in (caps or {}).items() if cap > 0}

    async def send(self, channel: Channel, reply: OutboundReply) -> str | None:
        """Deliver ``reply`` on ``channel``; the platform's id of what was posted."""
        cap = self._caps.get(reply.channel)
        if cap is not None and not await self._store.take_call(reply.channel, cap):
            raise DeliveryError(
                f"the {platform_name(reply.channel)} monthly call cap ({cap} calls, "
                f"[{reply.channel}] monthly_call_cap) is reached; replies wait until the month "
                "ends, or raise the cap",
                retry_after=self._until_next_month(),
            )
        if reply.public is None:
            return await channel.send(reply)
        refused = await self._store.refusal_before_send(reply)
        if refused is not None:
            raise DeliveryError(f"Not posted: {refused}", permanent=True)
        external_id, recipient = await perform(channel, reply)
        if recipient:
            try:
                await self._store.link_recipient(reply, recipient)
            except Exception:  # the reply went out; the link is a convenience for agents
                log.exception("Could not link the private reply's recipient to the customer")
        return external_id

    def _until_next_month(self) -> float:
        now = self._clock()
        year, month = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
        return (datetime(year, month, 1, tzinfo=UTC) - now).total_seconds()
