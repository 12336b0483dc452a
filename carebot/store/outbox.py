"""The outbox table: replies written with what caused them, claimed, delivered, retried.

Rows are delivered in order per conversation: a later reply waits while an earlier one of the
same conversation is still pending. A claimed row is leased for a while, so a crashed worker's
rows are picked up again and two workers never send the same row at once.

Several workers share one database. Claiming is one statement: on PostgreSQL it locks the rows
it takes with ``FOR UPDATE SKIP LOCKED``, so claimers never wait for each other and never take
the same row; on SQLite (one process) the database's single writer serialises claims. A claim
writes a fresh lease token (a random uuid) beside ``locked_until``, and every mark (sent,
failed with its retry time, undeliverable, released) applies only where ``id`` and token still
match: a worker that stalled past its lease while another claimed the row after it (fencing)
changes nothing with its late mark; the mark reports the lost lease, the worker logs it, and
the new holder's outcome is the one kept. A worker whose lease ran out but that nobody took
over still holds the token, and its mark applies.

Delivery is at least once, never exactly once. A reply can still reach its customer twice in
exactly one way: the platform accepted the send, and the sent-mark was not written before the
lease ran out. That is a process killed (or its database connection lost) between the
platform's answer and the commit of :meth:`OutboxStore.mark_sent`, or a worker stalled past
its lease (``IMMEDIATE_LEASE``, or the ``lease`` of :meth:`OutboxStore.claim_due`) after
sending: the row is still pending, and the next claimer sends it again. Nothing else sends a
row twice: two claimers never hold one row at the same time.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Integer, String, bindparam, exists, func, or_, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, aliased
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.expression import Update

from carebot.clock import Clock, as_utc
from carebot.models import Choice, OutboundReply, PublicAction
from carebot.store.database import BOT_INTRO, Database
from carebot.store.prepared import Prepared
from carebot.store.rows import execute_plain, fixed, insert_pair
from carebot.store.tables import Conversation, Identity, Message, OutboxRow

PENDING, SENT, FAILED = "pending", "sent", "failed"
_STATUS_ORDER = {"sent": 1, "delivered": 2, "read": 3, "failed": 4}
IMMEDIATE_LEASE = 60.0  # seconds the writer of a reply has to send it before the worker may
log = logging.getLogger(__name__)


def new_lease() -> str:
    """A claim's token: whoever claims a row next gets another one."""
    return str(uuid.uuid4())


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
    public: PublicAction | None = None  # a public action (store/public_actions.py)
    language: str | None = None  # the customer's (None: the default): of the bot's introduction


# Per reply, prepared once: is an earlier reply of the conversation still pending, which row
# came last (the reply's ``previous``), and has the bot said anything in it yet (its first
# message carries the introduction).
_EARLIER = (
    exists().where(
        OutboxRow.conversation_id == bindparam("conversation"),
        OutboxRow.status == fixed(PENDING),
    ),
    select(func.coalesce(func.max(OutboxRow.id), 0))
    .where(OutboxRow.conversation_id == bindparam("conversation"))
    .scalar_subquery(),
)
_PENDING = Prepared(select(*_EARLIER))
_PENDING_AND_SAID = Prepared(
    select(
        *_EARLIER,
        exists().where(
            Message.conversation_id == bindparam("conversation"),
            Message.direction == "out",
            Message.author == "bot",
        ),
    )
)


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

    The bot's first message of a conversation starts with the bot's introduction (the
    session's ``BOT_INTRO``, see :class:`~carebot.store.database.Database`), whatever kind of
    message it is: an answer, a handoff message, a survey question, a notice that an agent
    joined. The stored message carries it as the outbox row does, so agents read what the
    customer read.
    """
    params = {"conversation": conversation.id}
    intro = introduction(session.info.get(BOT_INTRO) or {}, outgoing)
    if intro:  # one query for all: is a reply pending, the last row, has the bot spoken
        ((waiting, previous, introduced),) = await _PENDING_AND_SAID.rows(session, params)
        if not introduced:
            outgoing = replace(outgoing, text=f"{intro}\n\n{outgoing.text}")
    else:
        ((waiting, previous),) = await _PENDING.rows(session, params)
    immediate = lease and not waiting
    message, row = reply_rows(conversation.id, identity, outgoing, now, immediate=immediate)
    await insert_pair(session, message, row, link="message_id")
    return Queued(to_reply(row, previous=previous), immediate=immediate, message_id=message.id)


def introduction(intros: Mapping[str, str], outgoing: Outgoing) -> str:
    """The bot's introduction (``intros``, the session's ``BOT_INTRO``: by language code, ""
    the default's) in ``outgoing``'s language, to put before it if it is the bot's first message
    of the conversation (an agent's reply never carries it; an empty introduction is none; in
    public the bot's replies carry ``[public] bot_tag`` instead, see carebot/public/decide.py).
    Every writer of a reply holds the conversation's row lock (``with_for_update``) by then, so
    two bot messages of one conversation written at once are not both introduced."""
    intro = (intros.get(outgoing.language or "") or intros.get("", "")).strip()
    if not intro or outgoing.author != "bot" or outgoing.public is not None:
        return ""
    return intro


def reply_rows(
    conversation_id: int, identity: Identity, outgoing: Outgoing, now: datetime, *, immediate: bool
) -> tuple[Message, OutboxRow]:
    """The stored message of ``outgoing`` and its outbox row (linked once both are written)."""
    message = Message(
        conversation_id=conversation_id,
        direction="out",
        author=outgoing.author,
        agent=outgoing.agent,
        channel=identity.channel,
        text=outgoing.text,
        decision_id=outgoing.decision_id,
        created_at=now,
    )
    return message, _outbox_row(message, identity, outgoing, now, immediate=immediate)


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
            **({"public": outgoing.public.as_dict()} if outgoing.public else {}),
        },
        status=PENDING,
        attempts=0,
        next_attempt_at=now,
        locked_until=now + timedelta(seconds=IMMEDIATE_LEASE) if immediate else None,
        lease=new_lease() if immediate else None,
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
        async with self._db.transaction() as session:
            return await claim_due_in(
                session, now=self._clock(), limit=limit, lease=lease, skip=skip
            )

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
            earlier.status == fixed(PENDING),
            earlier.id < OutboxRow.id,
        )
        async with self._db.transaction() as session:
            claimed = await session.scalar(
                update(OutboxRow)
                .where(
                    OutboxRow.id == outbox_id,
                    OutboxRow.status == fixed(PENDING),
                    or_(OutboxRow.locked_until.is_(None), OutboxRow.locked_until <= now),
                    ~in_the_way,
                )
                .values(locked_until=now + timedelta(seconds=lease), lease=new_lease())
                .returning(OutboxRow.id)
                .execution_options(synchronize_session=False)
            )
            if claimed is None:
                return None
            return to_reply(await session.get_one(OutboxRow, outbox_id))

    async def mark_sent(self, sent: Sequence[tuple[OutboundReply, str | None]]) -> list[int]:
        """Mark delivered replies as sent, several in one transaction. Each is (the claimed
        reply, the platform's id of the sent message or None). Returns the outbox ids whose
        lease was lost (another worker claimed them since): those are left as they are."""
        now = self._clock()
        if not self._db.is_sqlite:  # one statement for the batch: one round trip
            params = {
                "now": now,
                "ids": [reply.outbox_id for reply, _ in sent],
                "held": [_token(reply) for reply, _ in sent],
                "platform_ids": [external_id or None for _, external_id in sent],
            }
            async with self._db.writes(one_statement=True, sent_marks=True) as connection:
                marked = {row[0] for row in await _SENT_MANY.rows(connection, params)}
            for reply, _ in sent:
                if reply.outbox_id not in marked:
                    _lost(reply)
            return [reply.outbox_id for reply, _ in sent if reply.outbox_id not in marked]
        lost: list[int] = []
        async with self._db.writes(sent_marks=True) as connection:
            for reply, external_id in sent:
                params = {"outbox": reply.outbox_id, "held": _token(reply), "now": now}
                marked = await _SENT.scalar(
                    connection, {**params, "platform_id": external_id or None}
                )
                if marked is None:
                    _lost(reply)
                    lost.append(reply.outbox_id)
        return lost

    async def mark_undeliverable(self, reply: OutboundReply, error: str) -> bool:
        """The platform refused this reply for good (e.g. its reply window had closed): it is
        kept as failed, with the reason, and the conversation's later replies go ahead. False
        when the lease was lost (another worker holds the row: nothing changed)."""
        async with self._db.transaction() as session:
            return await _mark(
                session,
                reply,
                attempts=OutboxRow.attempts + 1,
                status=FAILED,
                last_error=error[:2000],
                delivery_error=error[:2000],
                status_at=self._clock(),
            )

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
        self, reply: OutboundReply, error: str, *, delay: Callable[[int], float]
    ) -> tuple[int, float] | None:
        """Record a failed attempt; ``delay(attempts)`` says when to retry. Returns both, or
        None when the lease was lost (another worker holds the row: nothing changed)."""
        async with self._db.transaction() as session:
            attempts = await session.scalar(
                select(OutboxRow.attempts)
                .where(OutboxRow.id == reply.outbox_id, OutboxRow.lease == _token(reply))
                .with_for_update()
            )
            if attempts is None:
                _lost(reply)
                return None
            attempts += 1
            wait = delay(attempts)
            marked = await _mark(
                session,
                reply,
                attempts=attempts,
                last_error=error[:2000],
                next_attempt_at=self._clock() + timedelta(seconds=wait),
            )
            return (attempts, wait) if marked else None

    async def release(self, reply: OutboundReply) -> bool:
        """Give up the lease on a reply this process does not deliver (its channel runs in
        another process), so that one claims it now; no attempt is counted. False when the
        lease was already lost."""
        async with self._db.transaction() as session:
            return await _mark(session, reply)

    async def reply_before(self, conversation_id: int, outbox_id: int) -> int | None:
        """The conversation's row before ``outbox_id`` (None: that one is its first)."""
        async with self._db.reads() as connection:
            return await connection.scalar(
                select(func.max(OutboxRow.id)).where(
                    OutboxRow.conversation_id == conversation_id, OutboxRow.id < outbox_id
                )
            )

    async def latest_replies(self, channel: str, users: Collection[str]) -> dict[str, int]:
        """The latest row of each of these users of ``channel`` (users with none are left out),
        in one query (a web chat worker's look at every visitor with a tab open on it)."""
        if not users:
            return {}
        async with self._db.reads() as connection:
            rows = await connection.execute(
                select(Identity.external_user_id, func.max(OutboxRow.id))
                .join(Conversation, Conversation.identity_id == Identity.id)
                .join(OutboxRow, OutboxRow.conversation_id == Conversation.id)
                .where(Identity.channel == channel, Identity.external_user_id.in_(list(users)))
                .group_by(Identity.external_user_id)
            )
            return {str(user): int(latest) for user, latest in rows}

    async def next_due(self, *, skip: Collection[str] = ()) -> datetime | None:
        """When the earliest pending row (not on the ``skip`` channels) is due, or None when
        nothing is pending."""
        async with self._db.session() as session:
            due = await session.scalar(
                select(func.min(OutboxRow.next_attempt_at)).where(
                    OutboxRow.status == fixed(PENDING), *_not_on(skip)
                )
            )
            return as_utc(due) if due else None

    async def pending(self) -> int:
        async with self._db.session() as session:
            return int(
                await session.scalar(
                    select(func.count())
                    .select_from(OutboxRow)
                    .where(OutboxRow.status == fixed(PENDING))
                )
                or 0
            )


async def claim_due_in(
    session: AsyncSession,
    *,
    now: datetime,
    limit: int = 50,
    lease: float = 60.0,
    skip: Collection[str] = (),
) -> list[OutboundReply]:
    """:meth:`OutboxStore.claim_due` inside the caller's transaction, in one statement.

    On PostgreSQL the rows are locked with ``FOR UPDATE SKIP LOCKED``: a concurrent claimer
    skips them instead of waiting, and takes others. SQLite has no row locks (the clause is
    left out for it): its single writer serialises claims. The rows' locks last until the
    caller commits; the lease (``locked_until``, and a fresh token) keeps them after."""
    due, head = aliased(OutboxRow), aliased(OutboxRow)
    heads = (
        select(func.min(head.id))
        .where(head.status == fixed(PENDING))
        .group_by(head.conversation_id)
    )
    free = or_(due.locked_until.is_(None), due.locked_until <= now)
    chosen = (
        select(due.id)
        .where(due.id.in_(heads), due.status == fixed(PENDING), due.next_attempt_at <= now, free)
        .where(*_not_on(skip, due.channel))
        .order_by(due.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    rows = (
        await session.scalars(
            update(OutboxRow)
            .where(OutboxRow.id.in_(chosen))
            .values(locked_until=now + timedelta(seconds=lease), lease=new_lease())
            .returning(OutboxRow)
            .execution_options(synchronize_session=False)
        )
    ).all()
    return [to_reply(row) for row in sorted(rows, key=lambda row: row.id)]


def _sent(held: ColumnElement[Any], platform_id: ColumnElement[Any]) -> Update:
    """The sent mark of the row that ``held`` its lease, with the platform's message id."""
    return (
        update(OutboxRow)
        .where(OutboxRow.lease == held)
        .values(
            locked_until=None,
            lease=None,
            attempts=OutboxRow.attempts + 1,
            status=SENT,
            sent_at=bindparam("now"),
            last_error=None,
            external_id=func.coalesce(platform_id, OutboxRow.external_id),
        )
        .returning(OutboxRow.id)
    )


# A delivered reply's mark (per reply: prepared once), if it still holds its lease; the
# platform's id of the sent message kept when there is one.
_SENT = Prepared(
    _sent(bindparam("held"), bindparam("platform_id", type_=String)).where(
        OutboxRow.id == bindparam("outbox")
    )
)
# ...of several rows at once (PostgreSQL): the rows' ids, lease tokens and platform ids as
# three arrays, unnested side by side. Planned for each batch (the marks' connection, see
# carebot.store.database): a plan kept from a fresh database's first marks scanned the whole
# outbox for every later one.
_MARKED = (
    func.unnest(
        bindparam("ids", type_=ARRAY(Integer)),
        bindparam("held", type_=ARRAY(String)),
        bindparam("platform_ids", type_=ARRAY(String)),
    )
    .table_valued("id", "held", "platform_id")
    .render_derived(name="marked")
)
_SENT_MANY = Prepared(
    _sent(_MARKED.c.held, _MARKED.c.platform_id).where(OutboxRow.id == _MARKED.c.id)
)


def _token(reply: OutboundReply) -> str:
    if reply.lease is None:
        raise ValueError(
            f"Reply {reply.outbox_id} carries no lease token: only a reply returned by a claim "
            "(OutboxStore.claim_due / claim, or add_reply's immediate one) can be marked"
        )
    return reply.lease


async def _mark(session: AsyncSession, reply: OutboundReply, **values: object) -> bool:
    """Update the reply's row and give up its lease, if the reply still holds it: whether it
    did. A lost lease is logged here, once for every kind of mark."""
    statement: Update = (
        update(OutboxRow)
        .where(OutboxRow.id == reply.outbox_id, OutboxRow.lease == _token(reply))
        .values(locked_until=None, lease=None, **values)
        .returning(OutboxRow.id)
    )
    if (await execute_plain(session, statement)).scalar() is not None:
        return True
    _lost(reply)
    return False


def _lost(reply: OutboundReply) -> None:
    log.warning(
        "Reply %s: this worker's lease on it was lost (it stalled past the lease and another "
        "worker claimed the reply since): its mark is dropped, the other worker's outcome stands",
        reply.outbox_id,
    )


def _not_on(
    channels: Collection[str], channel: InstrumentedAttribute[str] = OutboxRow.channel
) -> list[ColumnElement[bool]]:
    return [channel.not_in(sorted(channels))] if channels else []


def to_reply(row: OutboxRow, *, previous: int | None = None) -> OutboundReply:
    """The reply of an outbox row; ``previous``: the conversation's row before it, when the
    caller read it (0: none)."""
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
        lease=row.lease,
        public=PublicAction.from_dict(meta["public"]) if meta.get("public") else None,
        previous=previous,
    )


async def last_customer_message(session: AsyncSession, identity_id: int) -> datetime | None:
    """When the customer last wrote from this channel identity (what reply windows count from)."""
    return await session.scalar(
        select(func.max(Message.created_at))
        .join(Conversation, Conversation.id == Message.conversation_id)
        .where(Conversation.identity_id == identity_id, Message.direction == "in")
    )
