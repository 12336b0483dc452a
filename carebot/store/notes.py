"""Internal notes in a conversation: agents write them (in the inbox, or as a ``note:`` reply in
the conversation's Slack thread) and see them beside the messages; the customer never does, and
nothing here goes to the outbox.

A note from Slack carries the Slack message's ts as ``external_id``: adding it again (Slack
redelivers events) returns the note already stored, so each Slack reply is one note.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from carebot.clock import Clock
from carebot.exceptions import StoreError
from carebot.store.database import Database
from carebot.store.tables import Conversation, Note

VIA = ("inbox", "slack")  # where a note was written
MAX_NOTE = 4000  # characters


@dataclass(frozen=True, slots=True)
class NoteView:
    id: int
    conversation_id: int
    agent: str
    text: str
    via: str
    at: str  # ISO time


class Notes:
    def __init__(self, db: Database, *, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def add(
        self,
        conversation_id: int,
        agent: str,
        text: str,
        via: str,
        external_id: str | None = None,
    ) -> NoteView:
        """Store ``agent``'s note in the conversation (``via``: inbox or slack). With an
        ``external_id`` (a Slack message's ts), a second call for the same one returns the
        first note unchanged."""
        text = text.strip()
        if not text:
            raise StoreError("The note is empty: write what your colleagues should know.")
        if len(text) > MAX_NOTE:
            raise StoreError(
                f"The note is {len(text)} characters long; keep it to {MAX_NOTE} at most."
            )
        if via not in VIA:
            raise StoreError(f"A note comes via {' or '.join(VIA)}, not {via!r}")
        if external_id is not None:
            known = await self._find(via, external_id)
            if known is not None:
                return known
        try:
            async with self._db.transaction() as session:
                conversation = await session.get(Conversation, conversation_id)
                if conversation is None:
                    raise StoreError(f"No conversation with id {conversation_id}")
                note = Note(
                    conversation_id=conversation_id,
                    agent=agent,
                    text=text,
                    via=via,
                    external_id=external_id,
                    created_at=self._clock(),
                )
                session.add(note)
                await session.flush()
                return _view(note)
        except IntegrityError:  # the same Slack reply, stored by another worker just now
            known = await self._find(via, external_id) if external_id is not None else None
            if known is None:
                raise
            return known

    async def _find(self, via: str, external_id: str) -> NoteView | None:
        async with self._db.session() as session:
            note = await session.scalar(
                select(Note).where(Note.via == via, Note.external_id == external_id)
            )
            return None if note is None else _view(note)

    async def of_conversation(self, conversation_id: int) -> list[NoteView]:
        """The conversation's notes, oldest first."""
        async with self._db.session() as session:
            notes = await session.scalars(
                select(Note)
                .where(Note.conversation_id == conversation_id)
                .order_by(Note.created_at, Note.id)
            )
            return [_view(n) for n in notes]


def _view(note: Note) -> NoteView:
    return NoteView(
        note.id,
        note.conversation_id,
        note.agent,
        note.text,
        note.via,
        note.created_at.isoformat(),
    )


async def note_rows(session: AsyncSession, conversation_id: int) -> list[dict[str, Any]]:
    """The conversation's notes as dicts for a page, oldest first."""
    notes = await session.scalars(
        select(Note).where(Note.conversation_id == conversation_id).order_by(Note.id)
    )
    return [
        {"id": n.id, "agent": n.agent, "text": n.text, "via": n.via, "at": n.created_at.isoformat()}
        for n in notes
    ]
