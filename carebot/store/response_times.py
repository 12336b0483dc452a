"""How fast people answer: the time from a handoff to the first agent reply.

What a waiting customer is told ("our team usually answers within about 10 minutes") comes
from here, and so will the care lead's response-time figures: the same records, read once.

Only working time counts (:meth:`carebot.hours.BusinessHours.open_between`): a handoff made
on Friday evening and answered on Monday morning waited minutes of the team's time, not days.
A handoff counts once a person answered it; one withdrawn, closed or never answered has no
response time, so it is not a sample.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import aliased

from carebot.clock import Clock
from carebot.hours import BusinessHours
from carebot.store.database import Database
from carebot.store.tables import Handoff, Message


@dataclass(frozen=True, slots=True)
class FirstResponse:
    """One handoff the bot made and when a person first answered it."""

    handoff_id: int
    conversation_id: int
    handed_over_at: datetime
    answered_at: datetime


class ResponseTimes:
    def __init__(self, db: Database, *, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def first_responses(self, *, since: datetime, limit: int) -> list[FirstResponse]:
        """The latest ``limit`` handoffs made by the bot since ``since`` that an agent
        answered (an agent-initiated handoff had nobody waiting), newest first."""
        reply = aliased(Message)
        first_reply = (
            select(func.min(reply.created_at))
            .where(
                reply.conversation_id == Handoff.conversation_id,
                reply.author == "agent",
                reply.created_at >= Handoff.created_at,
                or_(Handoff.resolved_at.is_(None), reply.created_at <= Handoff.resolved_at),
            )
            .scalar_subquery()
        )
        async with self._db.session() as session:
            rows = (
                await session.execute(
                    select(Handoff.id, Handoff.conversation_id, Handoff.created_at, first_reply)
                    .where(
                        and_(
                            Handoff.created_at >= since,
                            Handoff.decision_id.is_not(None),
                            first_reply.is_not(None),
                        )
                    )
                    .order_by(Handoff.created_at.desc(), Handoff.id.desc())
                    .limit(limit)
                )
            ).all()
        return [FirstResponse(*row) for row in rows]

    async def typical_wait(
        self, hours: BusinessHours, *, days: float, handoffs: int, min_samples: int
    ) -> timedelta | None:
        """The median working time to the first agent reply, over the latest ``handoffs``
        answered handoffs of the last ``days`` days; None with fewer than ``min_samples``."""
        since = self._clock() - timedelta(days=days)
        found = await self.first_responses(since=since, limit=handoffs)
        if len(found) < min_samples:
            return None
        waits = [hours.open_between(r.handed_over_at, r.answered_at) for r in found]
        return timedelta(seconds=statistics.median(w.total_seconds() for w in waits))
