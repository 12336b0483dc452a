"""Finding and closing idle conversations (the queries behind the closing sweep), and how a
closed conversation ended, in words for agents.

A conversation is idle when nobody owes the customer an answer (the bot has it and has handled
every customer message, or an agent has it and wrote last) and nobody, customer, bot or agent,
has written in it since the cutoff. A conversation waiting for an agent, or with an agent who
has not answered the customer's last message, is never idle.

Closing checks all of that again in the UPDATE itself, on rows it has locked first
(PostgreSQL; SQLite has one writer at a time). Everything else that writes to a conversation
locks its row first too (a customer message being stored, the bot's decision, an agent's
action), so whichever commits first wins: a message stored first keeps the conversation open,
and a close committed first makes the message start a new conversation. Rows locked by someone
else are skipped and looked at again by the next sweep, so several processes may sweep at once
and each conversation is closed once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from carebot.clock import Clock
from carebot.models import CloseReason, ConversationState
from carebot.store.database import Database
from carebot.store.tables import Conversation, Handoff, Message


class ClosingStore:
    def __init__(self, db: Database, *, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def idle(self, cutoff: datetime, *, after: int = 0, limit: int = 100) -> list[int]:
        """Ids above ``after`` of conversations idle since ``cutoff``, in id order. Read
        without locks: :meth:`close_idle` decides."""
        async with self._db.session() as session:
            found = await session.scalars(
                select(Conversation.id)
                .where(Conversation.id > after, idle_since(cutoff))
                .order_by(Conversation.id)
                .limit(limit)
            )
            return list(found.all())

    async def close_idle(self, ids: Sequence[int], cutoff: datetime) -> list[int]:
        """Close those of ``ids`` that are still idle since ``cutoff`` and that nobody else is
        writing to right now; returns the ids it closed. Their open handoffs end with them."""
        if not ids:
            return []
        now = self._clock()
        async with self._db.transaction() as session:
            locked = await session.scalars(
                select(Conversation.id)
                .where(Conversation.id.in_(ids))
                .with_for_update(skip_locked=True)
            )
            mine = list(locked.all())
            if not mine:
                return []
            # A new statement: on PostgreSQL it sees everything committed before the locks
            # were granted, so a message stored just before is counted.
            closed = await session.scalars(
                update(Conversation)
                .where(Conversation.id.in_(mine), idle_since(cutoff))
                .values(
                    state=ConversationState.CLOSED.value,
                    closed_at=now,
                    closed_reason=CloseReason.IDLE.value,
                    closed_by=None,
                    updated_at=now,
                )
                .returning(Conversation.id)
                .execution_options(synchronize_session=False)
            )
            done = sorted(closed.all())
            if done:
                await session.execute(
                    update(Handoff)
                    .where(Handoff.conversation_id.in_(done), Handoff.resolved_at.is_(None))
                    .values(resolved_at=now)
                    .execution_options(synchronize_session=False)
                )
            return done


def idle_since(cutoff: datetime) -> ColumnElement[bool]:
    """The condition, on a conversation row, that it may be closed for idleness."""
    m = aliased(Message)
    of_this = m.conversation_id == Conversation.id
    written_since = exists().where(of_this, m.created_at > cutoff)
    unhandled = exists().where(of_this, m.direction == "in", m.handled_at.is_(None))
    last_agent = select(func.max(m.id)).where(of_this, m.author == "agent").scalar_subquery()
    last_customer = (
        select(func.coalesce(func.max(m.id), 0))
        .where(of_this, m.direction == "in")
        .scalar_subquery()
    )
    nobody_owes = or_(
        Conversation.state == ConversationState.BOT.value,
        and_(
            Conversation.state == ConversationState.WITH_AGENT.value,
            last_agent > last_customer,
        ),
    )
    return and_(Conversation.created_at <= cutoff, nobody_owes, ~written_since, ~unhandled)


async def closed_view(session: AsyncSession, conversation: Conversation) -> dict[str, Any] | None:
    """How a closed conversation ended (None while it is open): ``reason``, ``by`` (the agent
    who closed it), ``at`` (ISO time) and ``words`` for agents."""
    at = conversation.closed_at
    if conversation.state != ConversationState.CLOSED or at is None:
        return None
    if conversation.closed_reason == CloseReason.CLOSED_BY_AGENT:
        words = f"Closed by {conversation.closed_by or 'an agent'}"
    elif conversation.closed_reason == CloseReason.IDLE:
        last = await session.scalar(
            select(func.max(Message.created_at)).where(Message.conversation_id == conversation.id)
        )
        quiet = _duration(at - (last or conversation.created_at))
        words = f"Closed automatically after {quiet} without a message"
    else:
        words = "Closed"
    return {
        "reason": conversation.closed_reason or "",
        "by": conversation.closed_by,
        "at": at.isoformat(),
        "words": words,
    }


def _duration(span: timedelta) -> str:
    """A span of quiet in words: "30 min", "24 h", "25 h 30 min", "3 d 2 h"."""
    minutes = int(span / timedelta(minutes=1))
    if minutes < 60:
        return f"{max(minutes, 1)} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"
