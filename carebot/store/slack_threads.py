"""Where the Slack desk keeps its state: each conversation's thread (card message, how far the
conversation is mirrored into it, which reminder went out, which inbox notes it shows) and the
Slack events already handled.

The conversation itself stays the source of truth: the desk compares it with this record and
posts what Slack has not seen yet, so nothing is lost while Slack is unreachable.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, exists, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from carebot.clock import Clock
from carebot.models import ConversationState
from carebot.store.database import Database
from carebot.store.outbox import FAILED, last_customer_message
from carebot.store.tables import (
    Conversation,
    ConversationEvent,
    DecisionRow,
    Handoff,
    Identity,
    Message,
    Note,
    OutboxRow,
    SlackEvent,
    SlackThread,
)


@dataclass(frozen=True, slots=True)
class Mirrored:
    """A message to copy into a thread; ``via`` is the desk an agent's reply came from."""

    id: int
    author: str
    agent: str | None
    text: str
    channel: str
    created_at: datetime
    via: str | None
    public: str | None = None  # a public action's kind (reply, private_reply, hide, unhide)


@dataclass(frozen=True, slots=True)
class Undelivered:
    """A reply of the conversation that was refused for good, and why."""

    outbox_id: int
    message_id: int  # the reply's message, which the thread mirrors first
    author: str
    agent: str | None
    text: str
    reason: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Latest:
    handoff: Handoff
    emotion: float  # the highest since the handoff (the customer's later messages count)
    top: list[dict[str, Any]]  # the top intents of the decision that handed over


@dataclass(frozen=True, slots=True)
class Snapshot:
    updated_at: datetime
    state: str
    last_message_id: int
    handoff: Handoff | None
    channel: str = ""  # the conversation's channel, and when the customer last wrote on it
    last_customer_message: datetime | None = None
    last_failed_id: int = 0  # the conversation's last reply refused for good (outbox id)
    unposted_notes: bool = False  # an inbox note the thread does not show yet


class SlackThreadStore:
    def __init__(self, db: Database, *, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def get(self, conversation_id: int) -> SlackThread | None:
        """The conversation's live thread (not superseded by a newer card)."""
        async with self._db.session() as session:
            return await session.scalar(select(SlackThread).where(*_live(conversation_id)))

    async def claim(
        self, conversation_id: int, channel: str, *, team: str | None = None
    ) -> SlackThread:
        """The conversation's live thread record, created (card not yet posted) in ``channel``
        for ``team`` if it has none."""
        async with self._db.transaction() as session:
            await session.execute(
                self._insert(SlackThread)
                .values(
                    conversation_id=conversation_id,
                    channel=channel,
                    team=team,
                    card_hash="",
                    mirrored_message_id=0,
                    created_at=self._clock(),
                )
                .on_conflict_do_nothing(index_elements=["conversation_id"], index_where=LIVE_THREAD)
            )
        thread = await self.get(conversation_id)
        assert thread is not None
        return thread

    async def supersede(self, conversation_id: int, holder: str, transferred_to: str) -> None:
        """The live thread (locked by ``holder``) is replaced by a new card for the team
        ``transferred_to``: it stays for the listeners to recognise, and is no longer synced."""
        async with self._db.transaction() as session:
            await session.execute(
                update(SlackThread)
                .where(*_live(conversation_id), SlackThread.locked_by == holder)
                .values(
                    superseded_at=self._clock(),
                    transferred_to=transferred_to,
                    locked_by=None,
                    locked_until=None,
                )
            )

    async def superseded(self, channel: str, ts: str) -> SlackThread | None:
        """The superseded thread whose card is the message ``ts`` in ``channel``, if any."""
        async with self._db.session() as session:
            return await session.scalar(
                select(SlackThread).where(
                    SlackThread.channel == channel,
                    SlackThread.ts == ts,
                    SlackThread.superseded_at.is_not(None),
                )
            )

    async def transfer_of(self, conversation_id: int, handoff_id: int) -> ConversationEvent | None:
        """The latest transfer of the handoff (who moved it, from which team, the note)."""
        async with self._db.session() as session:
            return await session.scalar(
                select(ConversationEvent)
                .where(
                    ConversationEvent.conversation_id == conversation_id,
                    ConversationEvent.handoff_id == handoff_id,
                    ConversationEvent.kind == "transferred",
                )
                .order_by(ConversationEvent.id.desc())
                .limit(1)
            )

    async def without_card(self, conversation_ids: Collection[int]) -> set[int]:
        """Those of ``conversation_ids`` whose card is not posted yet (no thread record, or
        one without a ts): new handoffs, which the desk posts before anything else."""
        if not conversation_ids:
            return set()
        async with self._db.session() as session:
            posted = await session.scalars(
                select(SlackThread.conversation_id).where(
                    SlackThread.conversation_id.in_(list(conversation_ids)),
                    SlackThread.ts.is_not(None),
                    LIVE_THREAD,
                )
            )
            return set(conversation_ids) - set(posted)

    async def save(self, conversation_id: int, **values: Any) -> None:
        """Record what was posted (``ts``, ``card_hash``, ``mirrored_message_id``, ...)."""
        async with self._db.transaction() as session:
            await session.execute(
                update(SlackThread)
                .where(*_live(conversation_id))
                .values(**values, synced_at=self._clock())
            )

    async def lock(self, conversation_id: int, holder: str, seconds: float) -> bool:
        """Take the thread for one sync pass; False while another process has it (so two
        processes never post the same card). A crashed holder's lock runs out."""
        now = self._clock()
        free = or_(
            SlackThread.locked_until.is_(None),
            SlackThread.locked_until < now,
            SlackThread.locked_by == holder,
        )
        async with self._db.transaction() as session:
            result = await session.execute(
                update(SlackThread)
                .where(*_live(conversation_id), free)
                .values(locked_by=holder, locked_until=now + timedelta(seconds=seconds))
            )
        return bool(getattr(result, "rowcount", 0))

    async def unlock(self, conversation_id: int, holder: str) -> None:
        async with self._db.transaction() as session:
            await session.execute(
                update(SlackThread)
                .where(*_live(conversation_id))
                .where(SlackThread.locked_by == holder)
                .values(locked_by=None, locked_until=None)
            )

    async def conversation_of(self, channel: str, ts: str) -> int | None:
        """The conversation whose live card is the message ``ts`` in ``channel``."""
        async with self._db.session() as session:
            return await session.scalar(
                select(SlackThread.conversation_id).where(
                    SlackThread.channel == channel, SlackThread.ts == ts, LIVE_THREAD
                )
            )

    async def first_delivery(self, event_id: str) -> bool:
        """True the first time an event id is seen; False for Slack's redeliveries."""
        async with self._db.transaction() as session:
            result = await session.execute(
                self._insert(SlackEvent)
                .values(event_id=event_id, received_at=self._clock())
                .on_conflict_do_nothing(index_elements=["event_id"])
            )
        return bool(getattr(result, "rowcount", 0))

    async def forget_events(self, before: datetime) -> None:
        async with self._db.transaction() as session:
            await session.execute(delete(SlackEvent).where(SlackEvent.received_at < before))

    async def due(self) -> list[int]:
        """Conversations Slack may be behind on: with a human or waiting for one, with a card
        not yet posted, changed since their thread was last brought up to date, or with an
        inbox note their thread does not show yet."""
        owned = [ConversationState.WAITING_FOR_AGENT.value, ConversationState.WITH_AGENT.value]
        async with self._db.session() as session:
            waiting = await session.scalars(
                select(Conversation.id).where(Conversation.state.in_(owned))
            )
            behind = await session.scalars(
                select(SlackThread.conversation_id)
                .join(Conversation, Conversation.id == SlackThread.conversation_id)
                .where(
                    LIVE_THREAD,
                    or_(
                        SlackThread.ts.is_(None),
                        SlackThread.synced_at.is_(None),
                        Conversation.updated_at >= SlackThread.synced_at,
                        SlackThread.failures_told_id < _last_failed(SlackThread.conversation_id),
                        _unposted_note(SlackThread.conversation_id),
                    ),
                )
            )
            return sorted({*waiting, *behind})

    async def latest_handoff(self, conversation_id: int) -> Latest | None:
        """The conversation's latest handoff, open or resolved, with its decision's signals."""
        async with self._db.session() as session:
            row = (
                await session.execute(
                    select(Handoff, DecisionRow.details)
                    .outerjoin(DecisionRow, DecisionRow.id == Handoff.decision_id)
                    .where(Handoff.conversation_id == conversation_id)
                    .order_by(Handoff.id.desc())
                    .limit(1)
                )
            ).first()
        if row is None:
            return None
        handoff, details = row
        return Latest(handoff, handoff.emotion or 0.0, list((details or {}).get("top", [])))

    async def snapshot(self, conversation_id: int, *, windowed: Collection[str] = ()) -> Snapshot:
        """What decides whether a thread is behind, in one read. For a conversation on one of
        the ``windowed`` channels, also when the customer last wrote (its reply window)."""
        async with self._db.session() as session:
            updated_at, state, identity_id, channel = (
                await session.execute(
                    select(
                        Conversation.updated_at,
                        Conversation.state,
                        Conversation.identity_id,
                        Identity.channel,
                    )
                    .join(Identity, Identity.id == Conversation.identity_id)
                    .where(Conversation.id == conversation_id)
                )
            ).one()
            last = await session.scalar(
                select(func.max(Message.id)).where(Message.conversation_id == conversation_id)
            )
            wrote = (
                await last_customer_message(session, identity_id) if channel in windowed else None
            )
            failed = await session.scalar(select(_last_failed(conversation_id)))
            unposted = bool(await session.scalar(select(_unposted_note(conversation_id))))
        latest = await self.latest_handoff(conversation_id)
        handoff = latest.handoff if latest else None
        return Snapshot(
            updated_at, state, last or 0, handoff, channel, wrote, failed or 0, unposted
        )

    async def notes_to_post(self, conversation_id: int) -> list[Note]:
        """The conversation's inbox notes its thread does not show yet, oldest first (notes
        written in Slack are there already)."""
        async with self._db.session() as session:
            notes = await session.scalars(
                select(Note)
                .where(Note.conversation_id == conversation_id, *_UNPOSTED)
                .order_by(Note.id)
            )
            return list(notes)

    async def note_posted(self, note_id: int, ts: str) -> None:
        """The note is in the thread, as the message ``ts``: never posted again."""
        async with self._db.transaction() as session:
            await session.execute(update(Note).where(Note.id == note_id).values(slack_ts=ts))

    async def undelivered_after(self, conversation_id: int, after_id: int) -> list[Undelivered]:
        """The conversation's replies refused for good after outbox id ``after_id``."""
        async with self._db.session() as session:
            rows = (
                await session.execute(
                    select(OutboxRow, Message)
                    .join(Message, Message.id == OutboxRow.message_id)
                    .where(
                        OutboxRow.conversation_id == conversation_id,
                        OutboxRow.status == FAILED,
                        OutboxRow.id > after_id,
                    )
                    .order_by(OutboxRow.id)
                )
            ).all()
        return [
            Undelivered(
                row.id,
                message.id,
                message.author,
                message.agent,
                message.text,
                row.delivery_error or row.last_error or "refused",
                message.created_at,
            )
            for row, message in rows
        ]

    async def before_last_customer_message(self, conversation_id: int, at: datetime) -> int:
        """The id just before the conversation's last customer message at or before ``at``
        (0 when there is none): mirroring after it starts with that message."""
        async with self._db.session() as session:
            found = await session.scalar(
                select(func.max(Message.id)).where(
                    Message.conversation_id == conversation_id,
                    Message.author == "customer",
                    Message.created_at <= at,
                )
            )
        return found - 1 if found else 0

    async def messages_after(self, conversation_id: int, after_id: int) -> list[Mirrored]:
        async with self._db.session() as session:
            rows = (
                await session.execute(
                    select(Message, OutboxRow.meta)
                    .outerjoin(OutboxRow, OutboxRow.message_id == Message.id)
                    .where(Message.conversation_id == conversation_id, Message.id > after_id)
                    .order_by(Message.id)
                )
            ).all()
        return [
            Mirrored(
                m.id,
                m.author,
                m.agent,
                m.text,
                m.channel,
                m.created_at,
                (meta or {}).get("via"),
                ((meta or {}).get("public") or {}).get("kind"),
            )
            for m, meta in rows
        ]

    def _insert(self, table: Any) -> Any:
        return sqlite_insert(table) if self._db.is_sqlite else pg_insert(table)


LIVE_THREAD = SlackThread.superseded_at.is_(None)


def _live(conversation_id: int) -> tuple[Any, ...]:
    """The conditions that pick a conversation's live thread."""
    return (SlackThread.conversation_id == conversation_id, LIVE_THREAD)


_UNPOSTED = (Note.via == "inbox", Note.slack_ts.is_(None))


def _unposted_note(conversation_id: Any) -> Any:
    """Whether the conversation has an inbox note not yet posted in its thread."""
    return exists().where(Note.conversation_id == conversation_id, *_UNPOSTED)


def _last_failed(conversation_id: Any) -> Any:
    """The id of the conversation's last reply refused for good (NULL when none was)."""
    return (
        select(func.max(OutboxRow.id))
        .where(OutboxRow.conversation_id == conversation_id, OutboxRow.status == FAILED)
        .scalar_subquery()
    )
