"""The outbox table: replies written with what caused them, claimed, delivered, retried.

Rows are delivered in order per conversation: a later reply waits while an earlier one of the
same conversation is still pending. A claimed row is leased for a while, so a crashed worker's
rows are picked up again and two workers never send the same row at once.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement

from carebot.clock import Clock, as_utc
from carebot.models import Choice, OutboundReply
from carebot.store.database import Database
from carebot.store.tables import Conversation, Identity, Message, OutboxRow

PENDING, SENT, FAILED = "pending", "sent", "failed"
_STATUS_ORDER = {"sent": 1, "delivered": 2, "read": 3, "failed": 4}
IMMEDIATE_LEASE = 60.0  # seconds the writer of a reply has to send it before the worker may


@dataclass(frozen=True, slots=True)
class Queued:
    """A reply just written to the outbox. ``immediate``: it is leased to its writer, who sends
    it right away (no earlier reply of the conversation is still pending); otherwise the worker
    delivers it in turn."""

    reply: OutboundReply
    immediate: bool
    message_id: int = 0  # the stored outgoing message


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message to a customer: the bot's reply (with its decision) or an agent's."""

    text: str
    author: str = "bot"
    agent: str | None = None
    decision_id: int | None = None
    choices: tuple[Choice, ...] = ()
    handoff: bool = False
    via: str | None = None  # the desk an agent's reply came from: inbox / slack
    notice: str | None = None  # tells the customer of a change of hands (store/handoffs.py)


async def add_reply(
    session: AsyncSession,
    *,
    conversation: Conversation,
    identity: Identity,
    outgoing: Outgoing,
    now: datetime,
    lease: bool = True,
) -> Queued:
    """Record an outgoing message and queue its delivery, inside the caller's transaction.

    With ``lease`` the writer gets the row to send right away, unless an earlier reply of the
    conversation is still pending (order comes first); without, the worker delivers it.
    """
    earlier = await session.scalar(
        select(OutboxRow.id)
        .where(OutboxRow.conversation_id == conversation.id, OutboxRow.status == PENDING)
        .limit(1)
    )
    immediate = lease and earlier is None
    message = Message(
        conversation_id=conversation.id,
        direction="out",
        author=outgoing.author,
        agent=outgoing.agent,
        channel=identity.channel,
        text=outgoing.text,
        decision_id=outgoing.decision_id,
        created_at=now,
    )
    session.add(message)
    await session.flush()
    row = _outbox_row(message, identity, outgoing, now, immediate=immediate)
    session.add(row)
    await session.flush()
    return Queued(to_reply(row), immediate=immediate, message_id=message.id)


def _outbox_row(
    message: Message, identity: Identity, outgoing: Outgoing, now: datetime, *, immediate: bool
) -> OutboxRow:
    return OutboxRow(
        conversation_id=message.conversation_id,
        message_id=message.id,
        channel=identity.channel,
        external_user_id=identity.external_user_id,
        text=outgoing.text,
        meta={
            "choices": [{"id": c.id, "label": c.label} for c in outgoing.choices],
            "handoff": outgoing.handoff,
            "author": outgoing.author,
            "agent": outgoing.agent,
            "via": outgoing.via,
            "notice": outgoing.notice,
        },
        status=PENDING,
        attempts=0,
        next_attempt_at=now,
        locked_until=now + timedelta(seconds=IMMEDIATE_LEASE) if immediate else None,
        created_at=now,
    )


class OutboxStore:
    def __init__(self, db: Database, *, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def claim_due(
        self, *, limit: int = 50, lease: float = 60.0, skip: Collection[str] = ()
    ) -> list[OutboundReply]:
        """Lease up to ``limit`` due rows: the oldest pending row of each conversation, if due.
        Rows on the ``skip`` channels are left alone (another process delivers them)."""
        now = self._clock()
        free = or_(OutboxRow.locked_until.is_(None), OutboxRow.locked_until <= now)
        heads = (
            select(func.min(OutboxRow.id))
            .where(OutboxRow.status == PENDING)
            .group_by(OutboxRow.conversation_id)
        )
        async with self._db.transaction() as session:
            rows = (
                await session.scalars(
                    select(OutboxRow)
                    .where(OutboxRow.id.in_(heads), OutboxRow.next_attempt_at <= now, free)
                    .where(*_not_on(skip))
                    .order_by(OutboxRow.id)
                    .limit(limit)
                )
            ).all()
            claimed: list[OutboundReply] = []
            for row in rows:
                result = await session.execute(
                    update(OutboxRow)
                    .where(OutboxRow.id == row.id, free)
                    .values(locked_until=now + timedelta(seconds=lease))
                    .execution_options(synchronize_session=False)
                )
                if result.rowcount == 1:  # type: ignore[attr-defined]
                    claimed.append(to_reply(row))
            return claimed

    async def claim(
        self, outbox_id: int, *, lease: float = IMMEDIATE_LEASE
    ) -> OutboundReply | None:
        """Lease one pending row to send it now, if nothing is in its way: nobody holds it and
        no earlier row of its conversation is pending. None otherwise (the worker sends it in
        turn)."""
        now = self._clock()
        earlier = aliased(OutboxRow)
        in_the_way = exists().where(
            earlier.conversation_id == OutboxRow.conversation_id,
            earlier.status == PENDING,
            earlier.id < OutboxRow.id,
        )
        async with self._db.transaction() as session:
            claimed = await session.scalar(
                update(OutboxRow)
                .where(
                    OutboxRow.id == outbox_id,
                    OutboxRow.status == PENDING,
                    or_(OutboxRow.locked_until.is_(None), OutboxRow.locked_until <= now),
                    ~in_the_way,
                )
                .values(locked_until=now + timedelta(seconds=lease))
                .returning(OutboxRow.id)
                .execution_options(synchronize_session=False)
            )
            if claimed is None:
                return None
            return to_reply(await session.get_one(OutboxRow, outbox_id))

    async def mark_sent(self, sent: Sequence[tuple[int, str | None]]) -> None:
        """Mark delivered replies as sent, several in one transaction. Each is (outbox id, the
        platform's id of the sent message or None)."""
        now = self._clock()
        async with self._db.transaction() as session:
            plain = [outbox_id for outbox_id, external_id in sent if external_id is None]
            named = [(outbox_id, external_id) for outbox_id, external_id in sent if external_id]
            done = {"status": SENT, "sent_at": now, "locked_until": None, "last_error": None}
            if plain:
                await session.execute(
                    update(OutboxRow)
                    .where(OutboxRow.id.in_(plain))
                    .values(attempts=OutboxRow.attempts + 1, **done)
                )
            for outbox_id, external_id in named:
                await session.execute(
                    update(OutboxRow)
                    .where(OutboxRow.id == outbox_id)
                    .values(attempts=OutboxRow.attempts + 1, external_id=external_id, **done)
                )

    async def mark_undeliverable(self, outbox_id: int, error: str) -> None:
        """The platform refused this reply for good (e.g. its reply window had closed): it is
        kept as failed, with the reason, and the conversation's later replies go ahead."""
        async with self._db.transaction() as session:
            row = await session.get_one(OutboxRow, outbox_id)
            row.attempts += 1
            row.status = FAILED
            row.last_error = row.delivery_error = error[:2000]
            row.locked_until = None
            row.status_at = self._clock()

    async def record_status(
        self, channel: str, external_id: str, status: str, at: datetime, error: str | None
    ) -> int | None:
        """A platform's delivery report on a sent reply; returns its conversation id (None when
        no reply has that id). A report never moves a reply back: read stays read."""
        async with self._db.transaction() as session:
            row = await session.scalar(
                select(OutboxRow).where(
                    OutboxRow.channel == channel, OutboxRow.external_id == external_id
                )
            )
            if row is None:
                return None
            if _STATUS_ORDER.get(status, 0) >= _STATUS_ORDER.get(row.delivery_status or "", 0):
                row.delivery_status = status[:20]
                row.status_at = at
                if error:
                    row.delivery_error = error[:2000]
            return row.conversation_id

    async def mark_failed(
        self, outbox_id: int, error: str, *, delay: Callable[[int], float]
    ) -> tuple[int, float]:
        """Record a failed attempt; ``delay(attempts)`` says when to retry. Returns both."""
        async with self._db.transaction() as session:
            row = await session.get_one(OutboxRow, outbox_id)
            row.attempts += 1
            wait = delay(row.attempts)
            row.last_error = error[:2000]
            row.next_attempt_at = self._clock() + timedelta(seconds=wait)
            row.locked_until = None
            return row.attempts, wait

    async def release(self, outbox_id: int) -> None:
        """Give up the lease on a reply this process does not deliver (its channel runs in
        another process), so that one claims it now; no attempt is counted."""
        async with self._db.transaction() as session:
            await session.execute(
                update(OutboxRow).where(OutboxRow.id == outbox_id).values(locked_until=None)
            )

    async def next_due(self, *, skip: Collection[str] = ()) -> datetime | None:
        """When the earliest pending row (not on the ``skip`` channels) is due, or None when
        nothing is pending."""
        async with self._db.session() as session:
            due = await session.scalar(
                select(func.min(OutboxRow.next_attempt_at)).where(
                    OutboxRow.status == PENDING, *_not_on(skip)
                )
            )
            return as_utc(due) if due else None

    async def pending(self) -> int:
        async with self._db.session() as session:
            return int(
                await session.scalar(
                    select(func.count()).select_from(OutboxRow).where(OutboxRow.status == PENDING)
                )
                or 0
            )


def _not_on(channels: Collection[str]) -> list[ColumnElement[bool]]:
    return [OutboxRow.channel.not_in(sorted(channels))] if channels else []


def to_reply(row: OutboxRow) -> OutboundReply:
    meta = row.meta
    return OutboundReply(
        outbox_id=row.id,
        channel=row.channel,
        external_user_id=row.external_user_id,
        text=row.text,
        choices=tuple(Choice(o["id"], o["label"]) for o in meta.get("choices", [])),
        author=meta.get("author", "bot"),
        agent=meta.get("agent"),
        handoff=bool(meta.get("handoff", False)),
        notice=meta.get("notice"),
        created_at=row.created_at,
        conversation_id=row.conversation_id,
    )


async def last_customer_message(session: AsyncSession, identity_id: int) -> datetime | None:
    """When the customer last wrote from this channel identity (what reply windows count from)."""
    return await session.scalar(
        select(func.max(Message.created_at))
        .join(Conversation, Conversation.id == Message.conversation_id)
        .where(Conversation.identity_id == identity_id, Message.direction == "in")
    )
