"""Recording the bot's plan for a public message (:class:`carebot.public.decide.PublicPlan`):
the decision, the item's category, the public actions carebot carries out and any handoff, in
one transaction, as :meth:`ConversationStore.record_decision` does for a private message."""

from __future__ import annotations

import logging

from carebot.exceptions import PublicRefused
from carebot.models import PublicActionKind, PublicCategory
from carebot.public.decide import PublicPlan, PublicStep
from carebot.store.conversations import (
    ConversationStore,
    Embedding,
    Received,
    bot_silent,
    claim_message,
    decision_row,
)
from carebot.store.database import Database
from carebot.store.embeddings import embedding_row
from carebot.store.outbox import Queued
from carebot.store.public_actions import Step, queue_step, target_item
from carebot.store.tables import Conversation, Identity, PublicItem
from carebot.store.teamwork import CAREBOT

log = logging.getLogger(__name__)


class PublicDecisions:
    def __init__(
        self, db: Database, *, conversations: ConversationStore, lease_replies: bool = True
    ) -> None:
        self._db = db
        self._conversations = conversations
        self._clock = conversations.clock
        self._lease = lease_replies

    async def record(
        self,
        received: Received,
        plan: PublicPlan,
        timings: dict[str, float],
        embedding: Embedding | None = None,
    ) -> list[Queued]:
        """Store the plan; what it queued (nothing while an agent owns the conversation, or
        in shadow mode). Raises AlreadyHandled when another worker handled it first."""
        now = self._clock()
        async with self._db.transaction() as session:
            conversation = await session.get_one(
                Conversation, received.conversation_id, with_for_update=True
            )
            await claim_message(session, received.message_id, now)
            row = decision_row(received, plan.decision, timings, now)
            row.details = {**row.details, "public": _details(plan)}
            session.add(row)
            if embedding is not None:
                session.add(embedding_row(received.message_id, embedding.vector, embedding.model))
            await session.flush()
            item, message = await target_item(session, conversation.id, received.message_id)
            item.category = plan.category.value
            if bot_silent(conversation):
                return []
            queued = []
            for planned in plan.steps:
                step = Step(planned.kind, planned.text, planned.why)
                try:
                    queued.append(
                        await queue_step(
                            session,
                            conversation=conversation,
                            item=item,
                            message=message,
                            step=step,
                            actor=CAREBOT,
                            author="bot",
                            now=now,
                            lease=self._lease,
                            decision_id=row.id,
                        )
                    )
                except PublicRefused as refused:  # e.g. removed since: the rest still holds
                    log.info(
                        "Public %s on message %s refused: %s", step.kind, item.message_id, refused
                    )
            if plan.hands_off:
                identity = await session.get_one(Identity, conversation.identity_id)
                await self._conversations.hand_off(
                    session, conversation, identity, row, plan.decision
                )
            return queued

    async def record_category(self, message_id: int, category: PublicCategory) -> None:
        """What a public message is, for agents, when it was only recorded (a person has the
        conversation): no plan, nothing carried out."""
        async with self._db.transaction() as session:
            item = await session.get(PublicItem, message_id)
            if item is not None and item.category is None:
                item.category = category.value


def described(steps: tuple[PublicStep, ...]) -> list[dict[str, str]]:
    return [{"kind": s.kind.value, "text": s.text, "why": s.why} for s in steps]


def _details(plan: PublicPlan) -> dict[str, object]:
    """What the decision's details keep of the plan: agents and insight read it."""

    return {
        "category": plan.category.value,
        "steps": described(plan.steps),
        "shadowed": described(plan.shadowed),
        "blocked": plan.blocked,
        "hidden": any(s.kind is PublicActionKind.HIDE for s in plan.steps),
    }
