"""What a care agent does with a conversation, whatever desk they use (the built-in inbox,
Slack): take it over, reply, send the bot's draft, resolve it, close it, merge two customers
into one.

Each action is stored (see :class:`carebot.store.handoffs.HandoffStore`), wakes the outbox when
it queued a reply, and is published as a live event.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from carebot.events import Event, EventHub
from carebot.store.customers import CustomerStore
from carebot.store.handoffs import HandoffStore
from carebot.store.outbox import Queued


class AgentDesk:
    def __init__(
        self,
        *,
        handoffs: HandoffStore,
        customers: CustomerStore,
        events: EventHub,
        on_outbox: Callable[[Queued], Awaitable[None]],
    ) -> None:
        self._handoffs = handoffs
        self._customers = customers
        self._events = events
        self._on_outbox = on_outbox

    async def take_over(self, conversation_id: int, agent: str) -> None:
        await self._handoffs.take_over(conversation_id, agent)
        self._events.publish(Event("agent_action", conversation_id))

    async def reply(
        self, conversation_id: int, agent: str, text: str, *, via: str = "inbox"
    ) -> int:
        """Send ``text`` to the customer on their channel; returns the outbox id.

        ``via`` names the desk the agent wrote from (the other desks mirror the reply)."""
        queued = await self._handoffs.reply(conversation_id, agent, text.strip(), via=via)
        return await self._sent(conversation_id, queued)

    async def send_draft(
        self, conversation_id: int, agent: str, *, text: str | None = None, via: str = "inbox"
    ) -> int:
        """Send the bot's draft of the open handoff (or ``text``, the agent's edit of it) as the
        agent's reply. A draft is sent once: asking again raises StoreError."""
        edited = text.strip() if text is not None else None
        queued = await self._handoffs.send_draft(conversation_id, agent, text=edited, via=via)
        return await self._sent(conversation_id, queued)

    async def resolve(self, conversation_id: int, agent: str) -> None:
        """Hand the conversation back to the bot."""
        await self._handoffs.resolve(conversation_id, agent)
        self._events.publish(Event("agent_action", conversation_id))

    async def close(self, conversation_id: int, agent: str) -> None:
        """End the conversation now; the customer's next message starts a new one."""
        await self._handoffs.close(conversation_id, agent)
        self._events.publish(Event("closed", conversation_id))

    async def merge(self, conversation_id: int, agent: str, other: str) -> int:
        """The agent knows the customer of this conversation is also the one ``other`` names
        (a customer number, phone number, e-mail address or channel:user id): from now on one
        customer, with one history. Returns the customer id."""
        customer_id = await self._customers.merge(conversation_id, other, agent=agent)
        self._events.publish(Event("agent_action", conversation_id))
        return customer_id

    async def _sent(self, conversation_id: int, queued: Queued) -> int:
        """Announce a queued agent reply and hand it to the outbox; returns the outbox id."""
        self._events.publish(Event("agent_action", conversation_id))
        await self._on_outbox(queued)
        return queued.reply.outbox_id
