"""Labels agents put on conversations ("refund", "vip", "bug-1234"): free text, kept lower-case,
1 to 64 characters. The queue filters by them, and insight can select conversations by one
(:meth:`ConversationLabels.conversations_with_label`). Adding and removing one is kept in the
conversation's audit trail."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from carebot.clock import Clock
from carebot.exceptions import StoreError
from carebot.store.database import Database
from carebot.store.tables import Conversation, ConversationEvent, ConversationLabel

MAX_LABEL = 64
_SPACES = re.compile(r"\s+")


def normalise_label(value: str) -> str:
    """The label as stored: trimmed, inner spaces made single, lower-case; a clear error for an
    empty or too long one."""
    label = _SPACES.sub(" ", value).strip().lower()
    if not label:
        raise StoreError("The label is empty: type a word such as 'refund' or 'vip'.")
    if len(label) > MAX_LABEL:
        raise StoreError(
            f"The label {label[:20]!r}... is {len(label)} characters long; "
            f"keep it to {MAX_LABEL} at most."
        )
    return label


class ConversationLabels:
    def __init__(self, db: Database, *, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def add(self, conversation_id: int, label: str, agent: str) -> bool:
        """Put ``label`` on the conversation; False if it was there already."""
        label = normalise_label(label)
        now = self._clock()
        try:
            async with self._db.transaction() as session:
                conversation = await session.get(Conversation, conversation_id)
                if conversation is None:
                    raise StoreError(f"No conversation with id {conversation_id}")
                if await self._has(session, conversation_id, label):
                    return False
                session.add(
                    ConversationLabel(
                        conversation_id=conversation_id, label=label, added_by=agent, created_at=now
                    )
                )
                session.add(_event(conversation_id, "labelled", agent, label, now))
        except IntegrityError:  # a colleague added the same label at the same moment
            return False
        return True

    async def remove(self, conversation_id: int, label: str, agent: str) -> bool:
        """Take ``label`` off the conversation; False if it was not there."""
        label = normalise_label(label)
        now = self._clock()
        async with self._db.transaction() as session:
            removed = await session.execute(
                delete(ConversationLabel).where(
                    ConversationLabel.conversation_id == conversation_id,
                    ConversationLabel.label == label,
                )
            )
            if not getattr(removed, "rowcount", 0):
                return False
            session.add(_event(conversation_id, "unlabelled", agent, label, now))
        return True

    @staticmethod
    async def _has(session: AsyncSession, conversation_id: int, label: str) -> bool:
        found = await session.scalar(
            select(ConversationLabel.id).where(
                ConversationLabel.conversation_id == conversation_id,
                ConversationLabel.label == label,
            )
        )
        return found is not None

    async def of_conversation(self, conversation_id: int) -> list[str]:
        """The conversation's labels, alphabetically."""
        return (await self.of_conversations([conversation_id])).get(conversation_id, [])

    async def of_conversations(self, ids: Iterable[int]) -> dict[int, list[str]]:
        """The labels of each of these conversations (alphabetically; absent: none)."""
        wanted = list(ids)
        if not wanted:
            return {}
        async with self._db.session() as session:
            rows = await session.execute(
                select(ConversationLabel.conversation_id, ConversationLabel.label)
                .where(ConversationLabel.conversation_id.in_(wanted))
                .order_by(ConversationLabel.label)
            )
            found: dict[int, list[str]] = defaultdict(list)
            for conversation_id, label in rows.all():
                found[conversation_id].append(label)
        return dict(found)

    async def in_use(self) -> list[tuple[str, int]]:
        """Every label in use with how many conversations have it, alphabetically."""
        async with self._db.session() as session:
            rows = await session.execute(
                select(ConversationLabel.label, func.count())
                .group_by(ConversationLabel.label)
                .order_by(ConversationLabel.label)
            )
            return [(label, int(count)) for label, count in rows.all()]

    async def conversations_with_label(self, label: str) -> list[int]:
        """The ids of the conversations that have ``label`` (normalised as agents type it),
        oldest first: what insight filters by."""
        label = normalise_label(label)
        async with self._db.session() as session:
            ids = await session.scalars(
                select(ConversationLabel.conversation_id)
                .where(ConversationLabel.label == label)
                .order_by(ConversationLabel.conversation_id)
            )
            return list(ids)


def _event(
    conversation_id: int, kind: str, agent: str, label: str, now: datetime
) -> ConversationEvent:
    return ConversationEvent(
        conversation_id=conversation_id,
        kind=kind,
        actor=agent,
        detail={"label": label},
        created_at=now,
    )


async def labels_of(session: AsyncSession, conversation_id: int) -> list[str]:
    """The conversation's labels, alphabetically (in an open session)."""
    labels = await session.scalars(
        select(ConversationLabel.label)
        .where(ConversationLabel.conversation_id == conversation_id)
        .order_by(ConversationLabel.label)
    )
    return list(labels)
