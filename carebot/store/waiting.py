"""A customer waiting for a person (handed over, no agent has taken over yet): what their
messages do to the open handoff, and what the bot answers them (carebot/inbox.py decides
which answer; this records it, in one transaction with the decision).

Each message updates the handoff: reasons that hand off on their own are added (the customer
now asks for a person, sounds upset, raises a sensitive topic); the emotion shown is the
highest since the handoff, with the cues behind it, so a calm "ok" after an angry message
does not hide it; the priority follows; and ``last_change`` says what the latest message
changed. The bot's reply is a FAQ answer, an acknowledgement (once per handoff, again after
``ack_every``), nothing, or, when the customer withdraws the request, a confirmation, with the
handoff closed as withdrawn by the customer and the conversation back to the bot.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from carebot.clock import Clock
from carebot.models import (
    HANDOFF_REASONS,
    WITHDRAWN_BY_CUSTOMER,
    ConversationState,
    Decision,
    Reason,
    WaitingAction,
)
from carebot.store.conversations import (
    Embedding,
    PriorityRule,
    Received,
    claim_message,
    decision_row,
)
from carebot.store.database import Database
from carebot.store.embeddings import embedding_row
from carebot.store.open_handoffs import open_handoff
from carebot.store.outbox import Outgoing, Queued, add_reply
from carebot.store.tables import Conversation, Handoff, Identity

EMOTION_STEP = 0.1  # a rise of the emotion shown this large is worth a line on the handoff


@dataclass(frozen=True, slots=True)
class WaitingReply:
    """What the bot would say to a customer waiting for a person: a FAQ ``answer`` (with the
    line that a colleague still follows up), the confirmation that they ``withdraw`` the
    request, or else the acknowledgement ``ack``, sent when none was in ``ack_every``."""

    answer: str | None = None
    withdraw: str | None = None
    ack: str | None = None
    ack_every: timedelta = timedelta(minutes=30)


@dataclass(frozen=True, slots=True)
class Waited:
    """What :meth:`WaitingStore.record` did. ``action`` is None when the customer was no
    longer waiting (an agent took over, resolved or closed the conversation meanwhile)."""

    action: WaitingAction | None
    queued: Queued | None = None
    changed: bool = False  # the handoff's reasons, emotion or priority changed


class WaitingStore:
    def __init__(
        self, db: Database, *, clock: Clock, priority: PriorityRule, lease_replies: bool = True
    ) -> None:
        self._db = db
        self._clock = clock
        self._priority = priority
        self._lease = lease_replies

    async def record(
        self,
        received: Received,
        decision: Decision | None,
        timings: dict[str, float],
        reply: WaitingReply,
        *,
        embedding: Embedding | None = None,
    ) -> Waited:
        """A message from a customer waiting for a person: store the decision (None for files
        without text or a greeting, which triage does not read) with the message's
        ``embedding``, update the open handoff, and queue what ``reply`` says, in one
        transaction. If the customer is no longer waiting (an agent took over, resolved or
        closed it meanwhile), nothing is sent. Raises
        :class:`~carebot.store.conversations.AlreadyHandled` when another worker handled the
        message first."""
        now = self._clock()
        async with self._db.transaction() as session:
            conversation = await session.get_one(
                Conversation, received.conversation_id, with_for_update=True
            )
            await claim_message(session, received.message_id, now)
            row = None
            if decision is not None:
                row = decision_row(received, decision, timings, now)
                session.add(row)
                if embedding is not None:
                    session.add(
                        embedding_row(received.message_id, embedding.vector, embedding.model)
                    )
                await session.flush()
            handoff = await open_handoff(session, conversation.id)
            if conversation.state != ConversationState.WAITING_FOR_AGENT or handoff is None:
                return Waited(None)
            action, text, changed = self._act(handoff, decision, reply, now)
            if action is WaitingAction.WITHDRAWN:
                conversation.state = ConversationState.BOT.value
            if changed or action is WaitingAction.WITHDRAWN:
                conversation.updated_at = now
            if row is not None:
                row.details = {**row.details, "waiting": action.value}
            queued = None
            if text is not None:
                decision_id = row.id if row is not None else None
                queued = await self._reply(session, conversation, text, decision_id, now)
            return Waited(action, queued, changed)

    async def _reply(
        self,
        session: AsyncSession,
        conversation: Conversation,
        text: str,
        decision_id: int | None,
        now: datetime,
    ) -> Queued:
        identity = await session.get_one(Identity, conversation.identity_id)
        return await add_reply(
            session,
            conversation=conversation,
            identity=identity,
            outgoing=Outgoing(text, decision_id=decision_id),
            now=now,
            lease=self._lease,
        )

    def _act(
        self, handoff: Handoff, decision: Decision | None, reply: WaitingReply, now: datetime
    ) -> tuple[WaitingAction, str | None, bool]:
        """What to do (and say) with the open handoff, which it changes accordingly."""
        if reply.withdraw is not None:
            handoff.resolved_at, handoff.resolution = now, WITHDRAWN_BY_CUSTOMER
            return WaitingAction.WITHDRAWN, reply.withdraw, False
        changed = decision is not None and self._follow(handoff, decision, now)
        if reply.answer is not None:
            return WaitingAction.ANSWERED, reply.answer, changed
        last = handoff.acked_at
        if reply.ack is not None and (last is None or now - last >= reply.ack_every):
            handoff.acked_at = now
            return WaitingAction.ACKNOWLEDGED, reply.ack, changed
        return WaitingAction.SILENT, None, changed

    def _follow(self, handoff: Handoff, decision: Decision, now: datetime) -> bool:
        """Add the decision's handing-off reasons to the handoff, raise its emotion to the
        decision's if higher (with its cues), recompute the priority. True if it changed."""
        reasons = handoff.reasons.split(",") if handoff.reasons else []
        added = [r.value for r in decision.reasons if r in HANDOFF_REASONS and r not in reasons]
        before = handoff.emotion or 0.0
        rose = decision.emotion > before
        if added:
            reasons = sorted([*reasons, *added], key=_rank)
            handoff.reasons, handoff.reason = ",".join(reasons), reasons[0]
        if rose:
            handoff.emotion, handoff.emotion_cues = decision.emotion, list(decision.cues)
        priority = self._priority(reasons, handoff.emotion)
        if not added and not rose and priority == handoff.priority:
            return False
        handoff.priority, handoff.updated_at = priority, now
        risen = decision.emotion - before >= EMOTION_STEP  # worth a line
        if added or risen:
            handoff.last_change = {
                "at": now.isoformat(),
                "reasons": added,
                "emotion": [before, decision.emotion] if risen else None,
                "cues": list(decision.cues) if risen else [],
            }
        return True


def _rank(code: str) -> int:
    """Reason codes most important first; codes that are no triage reason go last."""
    try:
        return Reason(code).rank
    except ValueError:
        return len(Reason)
