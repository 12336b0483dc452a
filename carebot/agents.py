"""What a care agent does with a conversation, whatever desk they use (the built-in inbox,
Slack): take it over, reply, send the bot's draft, resolve it, close it, merge two customers
into one, label a customer message upset or not (for retraining the emotion signal), transfer
it to another team, and say whether they are available for new handoffs.

Only the members of the team a conversation's handoff belongs to (and leads) may take it over,
reply, send the draft, resolve, close or transfer it (:mod:`carebot.teams.membership`); a team
without members lets every agent act, as before teams existed.

Each action is stored (see :class:`carebot.store.handoffs.HandoffStore`), hands what it queued
for the customer (a reply, a notice that the conversation changed hands) to the outbox in order,
and is published as a live event.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from carebot.events import Event, EventHub
from carebot.exceptions import StoreError
from carebot.store.customers import CustomerStore
from carebot.store.emotion_labels import EmotionLabel, EmotionLabelStore
from carebot.store.handoffs import HandoffStore, Sent
from carebot.store.outbox import Queued
from carebot.store.public_actions import PublicActionStore
from carebot.store.teamwork import TeamworkStore, Transferred
from carebot.teams.membership import Membership


class AgentDesk:
    def __init__(
        self,
        *,
        handoffs: HandoffStore,
        customers: CustomerStore,
        labels: EmotionLabelStore,
        events: EventHub,
        on_outbox: Callable[[Sequence[Queued]], Awaitable[None]],
        membership: Membership | None = None,  # None: every agent may act on every handoff
        teamwork: TeamworkStore | None = None,  # transfers and availability
        public: PublicActionStore | None = None,  # hiding and unhiding public messages
    ) -> None:
        self._handoffs = handoffs
        self._customers = customers
        self._labels = labels
        self._events = events
        self._on_outbox = on_outbox
        self._membership = membership
        self._teamwork = teamwork
        self._public = public

    async def take_over(
        self, conversation_id: int, agent: str, *, from_colleague: bool = False
    ) -> None:
        """The agent owns the conversation; the customer is told they joined. Taking it from a
        colleague raises OwnedByColleague unless confirmed (``from_colleague``)."""
        await self._may_act(conversation_id, agent)
        sent = await self._handoffs.take_over(conversation_id, agent, from_colleague=from_colleague)
        await self._sent(conversation_id, sent)

    async def reply(
        self,
        conversation_id: int,
        agent: str,
        text: str,
        *,
        via: str = "inbox",
        from_colleague: bool = False,
        private: bool = False,
    ) -> int:
        """Send ``text`` to the customer on their channel; returns the outbox id.

        ``via`` names the desk the agent wrote from (the other desks mirror the reply);
        ``from_colleague`` confirms taking the conversation from another agent. In a public
        conversation the reply goes under the customer's latest comment, or (``private``) as
        its private reply; PublicRefused says why when it may not."""
        await self._may_act(conversation_id, agent)
        sent = await self._handoffs.reply(
            conversation_id,
            agent,
            text.strip(),
            via=via,
            from_colleague=from_colleague,
            private=private,
        )
        await self._sent(conversation_id, sent)
        return sent[-1].reply.outbox_id

    async def send_draft(
        self,
        conversation_id: int,
        agent: str,
        *,
        text: str | None = None,
        via: str = "inbox",
        from_colleague: bool = False,
    ) -> int:
        """Send the bot's draft of the open handoff (or ``text``, the agent's edit of it) as the
        agent's reply. A draft is sent once: asking again raises StoreError."""
        await self._may_act(conversation_id, agent)
        edited = text.strip() if text is not None else None
        sent = await self._handoffs.send_draft(
            conversation_id, agent, text=edited, via=via, from_colleague=from_colleague
        )
        await self._sent(conversation_id, sent)
        return sent[-1].reply.outbox_id

    async def set_hidden(
        self,
        conversation_id: int,
        agent: str,
        *,
        message_id: int,
        hidden: bool,
        why: str = "",
        via: str = "inbox",
    ) -> None:
        """Hide (or unhide) one of the conversation's public messages on its platform; never
        deleted. Raises PublicRefused when the platform's rules forbid it. ``via``: the desk."""
        await self._may_act(conversation_id, agent)
        if self._public is None:
            raise StoreError("public actions are not configured here")
        queued = await self._public.set_hidden(
            conversation_id, agent, message_id=message_id, hidden=hidden, why=why, via=via
        )
        await self._sent(conversation_id, [queued])

    async def resolve(self, conversation_id: int, agent: str) -> None:
        """Hand the conversation back to the bot; the customer is told so."""
        await self._may_act(conversation_id, agent)
        await self._sent(conversation_id, await self._handoffs.resolve(conversation_id, agent))

    async def close(self, conversation_id: int, agent: str) -> None:
        """End the conversation now; the customer's next message starts a new one."""
        await self._may_act(conversation_id, agent)
        await self._handoffs.close(conversation_id, agent)
        self._events.publish(Event("closed", conversation_id))

    async def merge(self, conversation_id: int, agent: str, other: str) -> int:
        """The agent knows the customer of this conversation is also the one ``other`` names
        (a customer number, phone number, e-mail address or channel:user id): from now on one
        customer, with one history. Returns the customer id."""
        customer_id = await self._customers.merge(conversation_id, other, agent=agent)
        self._events.publish(Event("agent_action", conversation_id))
        return customer_id

    async def label_emotion(
        self,
        message_id: int,
        agent: str,
        label: EmotionLabel | str,
        *,
        conversation_id: int | None = None,
    ) -> int:
        """The agent says a customer message sounds upset or not (``upset`` / ``not_upset``;
        again: their label changes). Returns the conversation id."""
        found = await self._labels.label(message_id, agent, label, conversation_id=conversation_id)
        self._events.publish(Event("agent_action", found))
        return found

    async def _sent(self, conversation_id: int, sent: Sent) -> None:
        """Announce an agent's action and hand what it queued to the outbox, to be delivered
        in order."""
        self._events.publish(Event("agent_action", conversation_id))
        if sent:
            await self._on_outbox(sent)

    async def _may_act(self, conversation_id: int, agent: str) -> None:
        """Raise NotAMember (a StoreError) when the conversation's open handoff belongs to a
        team the agent may not act on; a conversation without one (with the bot, or closed)
        is for the store to accept or refuse."""
        if self._membership is None or self._teamwork is None:
            return
        team = await self._teamwork.team_of(conversation_id)
        if team is not None:
            self._membership.check(conversation_id, team, agent)

    def _teams(self) -> TeamworkStore:
        if self._teamwork is None:
            raise StoreError("Teams are not set up on this desk (no teamwork store)")
        return self._teamwork

    async def transfer(
        self, conversation_id: int, agent: str, to_team: str, *, note: str = ""
    ) -> Transferred:
        """Move the conversation to another team's queue (with an optional note for them); the
        customer is not messaged. Refused with the reason for a closed conversation, an unknown
        team, the team it is with, or an agent who is not a member of its team."""
        teamwork = self._teams()
        await self._may_act(conversation_id, agent)
        moved = await teamwork.transfer(conversation_id, to_team, agent, note)
        self._events.publish(Event("agent_action", conversation_id))
        return moved

    async def set_available(self, agent: str, available: bool) -> None:
        """The agent is available for new handoffs (round-robin assigns them in turn), or away."""
        await self._teams().set_available(agent, available)
