"""The open handoff of a conversation (not yet resolved, withdrawn or closed): the row every
store that changes a handoff starts from."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from carebot.store.tables import Handoff


async def open_handoff(
    session: AsyncSession, conversation_id: int, *, lock: bool = True
) -> Handoff | None:
    """The conversation's latest unresolved handoff, locked for the transaction (``lock``, on
    PostgreSQL; SQLite writes one at a time anyway); None when none is open."""
    query = (
        select(Handoff)
        .where(Handoff.conversation_id == conversation_id, Handoff.resolved_at.is_(None))
        .order_by(Handoff.id.desc())
        .limit(1)
    )
    return await session.scalar(query.with_for_update() if lock else query)
