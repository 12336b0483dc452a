"""Assigning a conversation to an agent: a colleague (or the team's rotation) names who is
expected to answer its open handoff. The conversation still waits until that agent takes it over
or replies; the customer is not told. Every assignment is kept in the audit trail
(``ConversationEvent`` "assigned", detail ``{"to", "from"}``; ``to`` None: unassigned)."""

from __future__ import annotations

from dataclasses import dataclass

from carebot.clock import Clock
from carebot.exceptions import StoreError
from carebot.store.database import Database
from carebot.store.open_handoffs import open_handoff
from carebot.store.tables import Conversation, ConversationEvent


@dataclass(frozen=True, slots=True)
class Assigned:
    conversation_id: int
    handoff_id: int
    to: str | None
    previous: str | None

    @property
    def changed(self) -> bool:
        return self.to != self.previous


class Assignments:
    def __init__(self, db: Database, *, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def assign(self, conversation_id: int, actor: str, to: str | None) -> Assigned:
        """``actor`` assigns the conversation's open handoff to the agent named ``to`` (None:
        to nobody). Assigning it to whom it is assigned already changes nothing."""
        now = self._clock()
        async with self._db.transaction() as session:
            conversation = await session.get(Conversation, conversation_id, with_for_update=True)
            if conversation is None:
                raise StoreError(f"No conversation with id {conversation_id}")
            handoff = await open_handoff(session, conversation_id, lock=False)
            if handoff is None:
                raise StoreError(
                    f"Conversation {conversation_id} is not waiting for or with an agent, so "
                    "there is nothing to assign: a conversation is assigned while it is handed "
                    "over."
                )
            done = Assigned(conversation_id, handoff.id, to, handoff.assigned_to)
            if not done.changed:
                return done
            handoff.assigned_to = to
            handoff.assigned_at = now if to else None
            session.add(
                ConversationEvent(
                    conversation_id=conversation_id,
                    handoff_id=handoff.id,
                    kind="assigned",
                    actor=actor,
                    detail={"to": to, "from": done.previous},
                    created_at=now,
                )
            )
            return done
