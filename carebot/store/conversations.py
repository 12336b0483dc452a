"""Customers, their channel identities, conversations, messages, decisions and handoffs.

Every method is one transaction. The store knows nothing of channels beyond their names.
A customer's messages while they wait for a person are recorded by
:class:`carebot.store.waiting.WaitingStore`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import ColumnElement, Select, bindparam, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from carebot.clock import Clock
from carebot.config import Settings
from carebot.exceptions import StoreError
from carebot.models import (
    Attachment,
    Choice,
    ConversationState,
    Decision,
    DecisionKind,
    InboundKind,
    InboundMessage,
    PublicContext,
    TranscriptLine,
)
from carebot.store.customers import created_identities, find_or_create_identity
from carebot.store.database import Database
from carebot.store.decision_call import HANDLED, record_in_one_call
from carebot.store.embeddings import embedding_row
from carebot.store.newcomer import may_store_newcomer, store_newcomer
from carebot.store.outbox import Outgoing, Queued, add_reply
from carebot.store.prepared import Prepared
from carebot.store.public_items import (
    add_public_item,
    answered_thread,
    private_reply_origin,
    public_context,
    thread_columns,
)
from carebot.store.returning import store_returning
from carebot.store.rows import fixed, insert_pair, insert_row
from carebot.store.surveys import Question, Reply, answered, asked
from carebot.store.tables import (
    Conversation,
    DecisionRow,
    Handoff,
    Identity,
    Message,
    OutboxRow,
    PublicItem,
    Survey,
)
from carebot.store.teamwork import handoff_facts, placed_language, route_handoff
from carebot.teams.directory import TeamDirectory


@dataclass(frozen=True, slots=True)
class Received:
    """An inbound message once stored: where it belongs, and whether it was seen before."""

    message_id: int
    conversation_id: int
    customer_id: int
    identity_id: int
    state: ConversationState
    duplicate: bool
    handled: bool = False  # for a duplicate: already decided on, or recorded for an agent
    # The message opened its conversation, and its customer's identity is new: nothing came
    # before it there (no earlier message to decide first, no earlier decision or question).
    opened: bool = False
    new_identity: bool = False
    # The bot's last decision in the conversation, when it was read with the message (None:
    # not read; triage's context is read when it decides).
    last_turn: LastTurn | None = None


class AlreadyHandled(StoreError):
    """An inbound message something else handled first (another worker deciding it, or an
    earlier delivery): its outcome stands and nothing more is done with it."""

    def __init__(self, message_id: int) -> None:
        super().__init__(
            f"Message {message_id} was already handled (by another worker or an earlier "
            "delivery); its decision stands and nothing more is sent for it"
        )
        self.message_id = message_id


_CLAIM = Prepared(
    update(Message)
    .where(Message.id == bindparam("message"), Message.handled_at.is_(None))
    .values(handled_at=bindparam("now"))
    .returning(Message.id)
)


async def claim_message(session: AsyncSession, message_id: int, now: datetime) -> None:
    """Mark an inbound message handled in the caller's transaction, only if nothing handled it
    yet: a conditional update (``WHERE handled_at IS NULL``), so that of two workers handling
    one message, one answers and the other gets :class:`AlreadyHandled` (on PostgreSQL the
    second waits for the first's commit, then finds the row handled)."""
    claimed = await _CLAIM.scalar(session, {"message": message_id, "now": now})
    if claimed is None:
        raise AlreadyHandled(message_id)


_PARTY = (
    select(Conversation, Identity)
    .join(Identity, Identity.id == Conversation.identity_id)
    .where(Conversation.id == bindparam("conversation"))
    .with_for_update(of=Conversation)
)


# ...the columns a decision's reply needs (per message).
_PARTY_COLUMNS = Prepared(
    _PARTY.with_only_columns(
        Conversation.state,
        Conversation.customer_id,
        Conversation.identity_id,
        Identity.channel,
        Identity.external_user_id,
    )
)


async def locked_party(
    session: AsyncSession, conversation_id: int, *, to_change: bool = True
) -> tuple[Conversation, Identity]:
    """A conversation, locked until the caller's transaction ends (PostgreSQL), and the
    customer's identity in it, in one query. Without ``to_change``, both are read outside
    the session, with what a reply needs (state, ids, channel): loading them into it cost
    more than the query; :func:`locked_party` again (the lock is held) gives them to change."""
    if not to_change:
        found = await _PARTY_COLUMNS.rows(session, {"conversation": conversation_id})
        ((state, customer_id, identity_id, channel, external_user_id),) = found
        conversation = Conversation(
            id=conversation_id, state=state, customer_id=customer_id, identity_id=identity_id
        )
        identity = Identity(
            id=identity_id,
            customer_id=customer_id,
            channel=channel,
            external_user_id=external_user_id,
        )
        return conversation, identity
    row = (await session.execute(_PARTY, {"conversation": conversation_id})).one()
    return row[0], row[1]


# The bot's latest decision in a conversation (per message: prepared once, read on a plain
# connection without an ORM session).
_LAST_DECISION = (
    select(DecisionRow.kind, DecisionRow.details)
    .where(DecisionRow.conversation_id == bindparam("conversation"))
    .order_by(DecisionRow.id.desc())
    .limit(1)
)

# A customer's open conversation in a thread (private messages: ""), the newest, locked until
# the message is stored (PostgreSQL).
_OPEN_CONVERSATION = (
    select(Conversation)
    .where(
        Conversation.identity_id == bindparam("identity"),
        Conversation.thread == bindparam("thread"),
        Conversation.state != fixed(ConversationState.CLOSED.value),
    )
    .order_by(Conversation.id.desc())
    .limit(1)
    .with_for_update()
)
# ...the columns a private message stored in it needs (per message).
_OPEN_IDS = Prepared(_OPEN_CONVERSATION.with_only_columns(Conversation.id, Conversation.state))


# An inbound message nobody decided on or recorded yet.
_UNHANDLED = (Message.direction == "in", Message.handled_at.is_(None))


def _unhandled_where(
    *where: ColumnElement[bool],
) -> Select[Message, Conversation, Identity, PublicItem]:
    """Inbound messages not handled yet, with what rebuilds them, oldest first."""
    return (
        select(Message, Conversation, Identity, PublicItem)
        .join(Conversation, Conversation.id == Message.conversation_id)
        .join(Identity, Identity.id == Conversation.identity_id)
        .outerjoin(PublicItem, PublicItem.message_id == Message.id)
        .where(*_UNHANDLED, *where)
        .order_by(Message.id)
    )


_UNHANDLED_IN = _unhandled_where(
    Message.conversation_id == bindparam("conversation"), Message.id <= bindparam("up_to")
)
_UNHANDLED_BEFORE = _unhandled_where(Message.created_at < bindparam("before"))
# ...only their ids, with the conversation's state and the bot's last decision (per message:
# nearly always just the one; the decision is triage's context for it).
_EARLIER = aliased(DecisionRow)
# The conversation's own id, not the outer row's: the subquery then runs once, and the decision
# is one look-up by its id (a correlated one let PostgreSQL's generic plan, made while the tables
# were empty, hash the whole decisions table for every message).
_LATEST = (
    select(func.max(_EARLIER.id))
    .where(_EARLIER.conversation_id == bindparam("conversation"))
    .scalar_subquery()
)
_UNHANDLED_IDS = Prepared(
    select(Message.id, Conversation.state, DecisionRow.kind, DecisionRow.details)
    .join(Conversation, Conversation.id == Message.conversation_id)
    .outerjoin(DecisionRow, DecisionRow.id == _LATEST)
    .where(
        *_UNHANDLED,
        Message.conversation_id == bindparam("conversation"),
        Message.id <= bindparam("up_to"),
    )
    .order_by(Message.id)
)

# Inbound messages to decide, oldest first, each rebuilt as the adapter gave it.
Pending = list[tuple[Received, InboundMessage]]

# How urgent a handoff is, from its reason codes and emotion (carebot.triage.Priority).
PriorityRule = Callable[[Sequence[str], float], float]


@dataclass(frozen=True, slots=True)
class Embedding:
    """A message's embedding and the model that made it (the encoder's ``model_id``)."""

    vector: np.ndarray
    model: str


@dataclass(frozen=True, slots=True)
class LastTurn:
    """The bot's previous decision in a conversation (triage reads it for its context)."""

    kind: DecisionKind | None
    offered: tuple[Choice, ...]


def _last_turn(kind: str | None, details: dict[str, Any] | None) -> LastTurn:
    """The bot's last decision as triage's context (none yet: ``kind`` None)."""
    if kind is None or details is None or details.get("waiting"):
        return LastTurn(None, ())  # while waiting, the bot's last word was the handoff
    offered = tuple(Choice(c["id"], c["label"]) for c in details.get("choices", []))
    return LastTurn(DecisionKind(kind), offered)


def _no_priority(reasons: Sequence[str], emotion: float) -> float:
    return 0.0


class ConversationStore:
    def __init__(
        self,
        db: Database,
        *,
        clock: Clock,
        lease_replies: bool = True,
        link_by: Sequence[str] = ("phone", "email"),
        priority: PriorityRule = _no_priority,  # of the handoffs it opens
        teams: TeamDirectory | None = None,  # routes the handoffs it opens (None: one team)
        one_call: bool = True,
    ) -> None:
        """``one_call``: on PostgreSQL, a new customer's first message is stored in one
        statement (:mod:`carebot.store.newcomer`) and a decision that does not hand over is
        recorded in one call of a database function (:mod:`carebot.store.decision_call`);
        False: both in the transactions of the SQLite path (the tests compare the two)."""
        self._db = db
        self._one_call = one_call and not db.is_sqlite
        self._teams = teams or TeamDirectory(Settings())
        self._clock = clock
        self._lease = lease_replies
        self._link_by = tuple(link_by)
        self._priority = priority

    @property
    def clock(self) -> Clock:
        return self._clock

    async def receive(self, inbound: InboundMessage) -> Received:
        """Store an inbound message first; a redelivered one comes back with ``duplicate``."""
        try:
            return await self._receive_once(inbound)
        except IntegrityError:
            # Another delivery created the same customer, identity or conversation at the same
            # moment; they exist now, so one more try takes the ordinary path.
            return await self._receive_once(inbound)

    async def _receive_once(self, inbound: InboundMessage) -> Received:
        """Stored at the first try; a redelivery (rare) meets the unique index on the channel
        and the message id, and is found then, instead of every message being looked for."""
        try:
            stored = await store_returning(self._db, inbound, self._clock())
            if stored is not None:  # nearly every message on PostgreSQL: one statement
                message_id, conversation_id, state, identity_id, customer_id = stored
                return Received(
                    message_id, conversation_id, customer_id, identity_id, state, duplicate=False
                )
            if self._one_call and may_store_newcomer(inbound, self._link_by):
                new = await store_newcomer(self._db, inbound, self._clock())
                if new is not None:  # a new customer's first message, on PostgreSQL
                    return Received(
                        new.message_id,
                        new.conversation_id,
                        new.customer_id,
                        new.identity_id,
                        ConversationState.BOT,
                        duplicate=False,
                        opened=True,
                        new_identity=True,
                    )
            async with self._db.transaction() as session:
                identity = await find_or_create_identity(
                    session,
                    inbound.channel,
                    inbound.external_user_id,
                    inbound.profile,
                    now=self._clock(),
                    link_by=self._link_by,
                )
                conversation, opened = await self._open_conversation(session, identity, inbound)
                message = Message(
                    conversation_id=conversation.id,
                    direction="in",
                    author="customer",
                    channel=inbound.channel,
                    external_id=inbound.external_message_id,
                    text=inbound.stored_text(),
                    created_at=self._clock(),
                    language=inbound.language,
                )
                await insert_row(session, message)
                if inbound.public is not None:
                    add_public_item(session, message, conversation, inbound)
                return Received(
                    message.id,
                    conversation.id,
                    identity.customer_id,
                    identity.id,
                    ConversationState(conversation.state),
                    duplicate=False,
                    opened=opened,
                    new_identity=identity.id in created_identities(session),
                )
        except IntegrityError:
            # Delivered before (or twice at the same moment: the other delivery stored it
            # first); anything else (a customer created at the same moment) is tried again.
            again = await self._find_inbound(inbound)
            if again is None:
                raise
            return again

    async def _find_inbound(self, inbound: InboundMessage) -> Received | None:
        async with self._db.session() as session:
            row = (
                await session.execute(
                    select(Message, Conversation)
                    .join(Conversation, Conversation.id == Message.conversation_id)
                    .where(
                        Message.channel == inbound.channel,
                        Message.external_id == inbound.external_message_id,
                    )
                )
            ).first()
            if row is None:
                return None
            message, conversation = row
            return Received(
                message.id,
                conversation.id,
                conversation.customer_id,
                conversation.identity_id,
                ConversationState(conversation.state),
                duplicate=True,
                handled=message.handled_at is not None,
            )

    async def _open_conversation(
        self, session: AsyncSession, identity: Identity, inbound: InboundMessage
    ) -> tuple[Conversation, bool]:
        """The identity's open conversation in the message's thread (private messages, or one
        post's comments), locked until the message is stored (PostgreSQL), or a new one; and
        whether it is new. The lock is what keeps a message out of a conversation being closed:
        a close that got the row first leaves it closed, and the query then finds none."""
        thread = inbound.public.thread if inbound.public is not None else ""
        if identity.id in created_identities(session):  # a new customer: nothing to look for
            return await self._new_conversation(session, identity, inbound, origin=False), True
        if inbound.public is None:
            found = await _OPEN_IDS.rows(session, {"identity": identity.id, "thread": thread})
            if found:  # outside the session, for reading: what the message needs
                conversation_id, state = found[0]
                return Conversation(id=conversation_id, state=state), False
            return await self._new_conversation(session, identity, inbound, origin=True), True
        conversation = await session.scalar(
            _OPEN_CONVERSATION, {"identity": identity.id, "thread": thread}
        )
        if conversation is None:
            conversation = await answered_thread(session, identity, inbound)
        if conversation is None:
            return await self._new_conversation(session, identity, inbound, origin=True), True
        return conversation, False

    async def _new_conversation(
        self, session: AsyncSession, identity: Identity, inbound: InboundMessage, *, origin: bool
    ) -> Conversation:
        """A new conversation for the message; with ``origin``, a private one that answers a
        private reply to a comment is linked to its public thread (a new customer has none)."""
        now = self._clock()
        conversation = Conversation(
            customer_id=identity.customer_id,
            identity_id=identity.id,
            state=ConversationState.BOT.value,
            created_at=now,
            updated_at=now,
            **thread_columns(inbound.public),
        )
        if origin and inbound.public is None:
            conversation.context = await private_reply_origin(session, identity, now)
        return await insert_row(session, conversation)  # only read afterwards

    async def last_turn(self, conversation_id: int) -> LastTurn:
        async with self._db.reads() as conn:
            row = (await conn.execute(_LAST_DECISION, {"conversation": conversation_id})).first()
        return _last_turn(None, None) if row is None else _last_turn(row.kind, row.details)

    async def record_decision(
        self,
        received: Received,
        decision: Decision,
        timings: dict[str, float],
        *,
        ask: Question | None = None,
        answers: Reply | None = None,
        embedding: Embedding | None = None,
    ) -> Queued | None:
        """Store the decision, its reply in the outbox and any handoff, in one transaction.

        ``ask``: a question asked with the reply ("did that answer your question?", with its
        buttons), recorded as asked. ``answers``: the question this message answered (a "no"
        that hands over), recorded as answered. ``embedding``: the message's, kept with it.

        Returns the queued reply, or None when an agent took the conversation over or closed
        it while the bot was thinking (the decision is kept, the reply is not sent). Raises
        :class:`AlreadyHandled` when another worker handled the message first.
        """
        try:
            return await self._record_decision(received, decision, timings, ask, answers, embedding)
        except IntegrityError:
            # The message's decision is unique: a peer stored one without marking the message
            # handled (an older version); its decision stands. Anything else is re-raised.
            if await self._decided(received.message_id):
                raise AlreadyHandled(received.message_id) from None
            raise

    async def _record_decision(
        self,
        received: Received,
        decision: Decision,
        timings: dict[str, float],
        ask: Question | None,
        answers: Reply | None,
        embedding: Embedding | None,
    ) -> Queued | None:
        now = self._clock()
        if self._one_call and answers is None and not decision.hands_off:
            return await self._record_in_one_call(received, decision, timings, ask, embedding, now)
        async with self._db.transaction() as session:
            # Locked (PostgreSQL), so an agent taking over meanwhile is not overwritten.
            conversation, identity = await locked_party(
                session, received.conversation_id, to_change=False
            )
            await claim_message(session, received.message_id, now)
            row = decision_row(received, decision, timings, now)
            if embedding is not None:
                vector = embedding_row(received.message_id, embedding.vector, embedding.model)
                await insert_pair(session, row, vector)
            else:
                await insert_row(session, row)
            if answers is not None:
                survey = await session.get_one(Survey, answers.pending.survey_id)
                if survey.answer is None:
                    answered(survey, answers, received.message_id, now)
            if bot_silent(conversation) or not decision.reply:
                return None
            ask = ask if ask is not None and not decision.hands_off else None
            outgoing = bot_reply(decision, ask, decision_id=row.id)
            queued = await add_reply(
                session,
                conversation=conversation,
                identity=identity,
                outgoing=outgoing,
                now=now,
                lease=self._lease,
            )
            if ask is not None:
                survey = asked(conversation, ask.kind, queued, now, decision_id=row.id)
                await insert_row(session, survey)
            if decision.hands_off:
                conversation, identity = await locked_party(session, conversation.id)
                await self.hand_off(session, conversation, identity, row, decision)
            return queued

    async def _record_in_one_call(
        self,
        received: Received,
        decision: Decision,
        timings: dict[str, float],
        ask: Question | None,
        embedding: Embedding | None,
        now: datetime,
    ) -> Queued | None:
        """:meth:`_record_decision` for a decision that does not hand over, on PostgreSQL: one
        call of a function (:mod:`carebot.store.decision_call`)."""
        row = decision_row(received, decision, timings, now)
        vector = None
        if embedding is not None:
            vector = embedding_row(received.message_id, embedding.vector, embedding.model)
        reply = bot_reply(decision, ask) if decision.reply else None
        recorded = await record_in_one_call(
            self._db,
            row,
            embedding=vector,
            reply=reply,
            ask_kind=ask.kind if ask is not None else None,
            silent=_SILENT_STATES,
            lease=self._lease,
        )
        if recorded.outcome == HANDLED:
            raise AlreadyHandled(received.message_id)
        return recorded.queued

    async def hand_off(
        self,
        session: AsyncSession,
        conversation: Conversation,
        identity: Identity,
        row: DecisionRow,
        decision: Decision,
    ) -> None:
        """The conversation waits for a person: its handoff, routed to a team (the routing
        rules read the message that handed over, :mod:`carebot.store.teamwork`)."""
        conversation.state = ConversationState.WAITING_FOR_AGENT.value
        conversation.updated_at = row.created_at
        handoff = self._handoff_row(conversation.id, row, decision)
        session.add(handoff)
        facts = await handoff_facts(
            session,
            conversation,
            identity,
            intent=decision.intent,
            reasons=tuple(r.value for r in decision.reasons),
            text=(await session.get_one(Message, row.inbound_message_id)).text,
        )
        await route_handoff(session, handoff, self._teams.route(facts), self._teams, row.created_at)

    def _handoff_row(self, conversation_id: int, row: DecisionRow, decision: Decision) -> Handoff:
        reasons = [r.value for r in decision.reasons]
        return Handoff(
            conversation_id=conversation_id,
            decision_id=row.id,
            reason=decision.reason.value,
            reasons=row.reasons,
            draft=decision.draft,
            created_at=row.created_at,
            emotion=decision.emotion,
            emotion_cues=list(decision.cues),
            priority=self._priority(reasons, decision.emotion),
        )

    async def record_notice(self, received: Received, text: str) -> Queued | None:
        """Answer a message triage does not read (a greeting, files without text) with ``text``
        and mark it handled; nothing is sent while a human owns the conversation, or after it
        was closed. Raises :class:`AlreadyHandled`, sending nothing, when the message was
        handled already (a second notice for it, or another worker's)."""
        now = self._clock()
        async with self._db.transaction() as session:
            conversation = await session.get_one(
                Conversation, received.conversation_id, with_for_update=True
            )
            await claim_message(session, received.message_id, now)
            if bot_silent(conversation):
                return None
            identity = await session.get_one(Identity, conversation.identity_id)
            return await add_reply(
                session,
                conversation=conversation,
                identity=identity,
                outgoing=Outgoing(text),
                now=now,
                lease=self._lease,
            )

    async def is_handled(self, message_id: int) -> bool:
        async with self._db.session() as session:
            handled = await session.scalar(
                select(Message.handled_at).where(Message.id == message_id)
            )
        return handled is not None

    async def _decided(self, message_id: int) -> bool:
        async with self._db.session() as session:
            found = await session.scalar(
                select(DecisionRow.id).where(DecisionRow.inbound_message_id == message_id)
            )
        return found is not None

    async def mark_handled(self, message_id: int) -> None:
        """An inbound message recorded for the agent (the bot stays silent). Raises
        :class:`AlreadyHandled` when something handled it first."""
        async with self._db.transaction() as session:
            await claim_message(session, message_id, self._clock())

    async def unhandled(self, *, stored_before: datetime) -> Pending:
        """Inbound messages stored before ``stored_before`` but never decided on (the process
        that stored them stopped midway), oldest first. Younger ones are left out: another
        worker may be deciding them right now (see :data:`carebot.inbox.RECOVERY_GRACE`)."""
        return await self._unhandled(_UNHANDLED_BEFORE, {"before": stored_before})

    async def unhandled_in_hand(
        self, received: Received, inbound: InboundMessage
    ) -> Pending | None:
        """:meth:`unhandled_in` up to ``received``, when that is nothing but ``received``
        itself (or nothing at all: handled meanwhile), which is nearly always: then its
        conversation's current state is all there is to read, and the message in hand is the
        one stored. None when earlier messages wait too (read them with :meth:`unhandled_in`)."""
        params = {"conversation": received.conversation_id, "up_to": received.message_id}
        async with self._db.reads() as conn:
            found = await _UNHANDLED_IDS.rows(conn, params)
        if not found:
            return []
        ((message_id, state, kind, details), *earlier) = found
        if earlier or message_id != received.message_id:
            return None
        current = Received(
            received.message_id,
            received.conversation_id,
            received.customer_id,
            received.identity_id,
            ConversationState(state),
            duplicate=False,
            last_turn=_last_turn(kind, details),
        )
        return [(current, inbound)]

    async def unhandled_in(self, conversation_id: int, *, up_to: int) -> Pending:
        """The conversation's inbound messages not handled yet, stored up to and including
        message ``up_to``, oldest first (the inbox decides them in this order while it holds
        the conversation's lock). A message a peer is storing right now is not seen until
        its transaction commits."""
        return await self._unhandled(
            _UNHANDLED_IN, {"conversation": conversation_id, "up_to": up_to}
        )

    async def _unhandled(
        self,
        statement: Select[Message, Conversation, Identity, PublicItem],
        params: dict[str, Any],
    ) -> Pending:
        async with self._db.read_session() as session:
            rows = (await session.execute(statement, params)).all()
        return [
            (
                Received(
                    m.id,
                    c.id,
                    c.customer_id,
                    c.identity_id,
                    ConversationState(c.state),
                    duplicate=False,
                ),
                restored(m, i, public_context(c, p)),
            )
            for m, c, i, p in rows
        ]

    async def transcript(
        self, channel: str, external_user_id: str, *, limit: int = 100
    ) -> list[TranscriptLine]:
        """The latest messages of this channel identity's conversations, oldest first."""
        async with self._db.session() as session:
            rows = (
                await session.execute(
                    select(Message, OutboxRow.meta, OutboxRow.id)
                    .join(Conversation, Conversation.id == Message.conversation_id)
                    .join(Identity, Identity.id == Conversation.identity_id)
                    .outerjoin(OutboxRow, OutboxRow.message_id == Message.id)
                    .where(
                        Identity.channel == channel, Identity.external_user_id == external_user_id
                    )
                    .order_by(Message.id.desc())
                    .limit(limit)
                )
            ).all()
        return [_line(message, meta or {}, outbox) for message, meta, outbox in reversed(rows)]

    async def conversation(self, conversation_id: int) -> Conversation:
        async with self._db.session() as session:
            conversation = await session.get(Conversation, conversation_id)
        if conversation is None:
            raise StoreError(f"No conversation with id {conversation_id}")
        return conversation

    async def language(self, conversation_id: int) -> str | None:
        """The customer's language: of their latest message that could be placed (None: none
        could be, or [languages] detect tells nothing apart)."""
        async with self._db.reads() as conn:
            return await conn.scalar(placed_language(conversation_id))

    async def party(self, conversation_id: int) -> tuple[str, str]:
        """The channel and the channel's user id of the customer in a conversation."""
        async with self._db.session() as session:
            row = (
                await session.execute(
                    select(Identity.channel, Identity.external_user_id)
                    .join(Conversation, Conversation.identity_id == Identity.id)
                    .where(Conversation.id == conversation_id)
                )
            ).first()
        if row is None:
            raise StoreError(f"No conversation with id {conversation_id}")
        return row[0], row[1]


# A line InboundMessage.stored_text writes for an attachment: "[kind name] url".
_ATTACHMENT_LINE = re.compile(r"\[(?P<kind>[^\]\s]+)(?: (?P<name>[^\]]*))?\](?: (?P<url>\S+))?")
_START = "/start"  # what opens a chat (Telegram's command): stored as the message's text


def restored(
    message: Message, identity: Identity, public: PublicContext | None = None
) -> InboundMessage:
    """An inbound message rebuilt from its stored row, as the adapter gave it, for deciding it
    later: its text and attachments (split from :meth:`InboundMessage.stored_text`'s lines, so
    that files without text are still told apart) and its kind (a greeting is stored as the
    command that opened the chat). A customer who typed an attachment's line or the command
    themselves reads the same; the platform's raw event is not kept."""
    lines = message.text.split("\n")
    attachments: list[Attachment] = []
    while lines and (found := _ATTACHMENT_LINE.fullmatch(lines[-1])):
        lines.pop()
        attachments.insert(0, Attachment(found["kind"], found["url"] or "", found["name"] or ""))
    text = "\n".join(lines)
    start = text == _START or text.startswith(f"{_START} ")
    return InboundMessage(
        channel=message.channel,
        external_user_id=identity.external_user_id,
        external_message_id=message.external_id or str(message.id),
        text=text,
        sent_at=message.created_at,
        profile=identity.profile,
        kind=InboundKind.START if start else InboundKind.TEXT,
        attachments=tuple(attachments),
        public=public,
    )


def bot_silent(conversation: Conversation) -> bool:
    """A human owns the conversation, or an agent closed it while the bot was deciding."""
    state = ConversationState(conversation.state)
    return state.human_owned or state is ConversationState.CLOSED


# ...its states, for the function that records a decision in one call (decision_call.py).
_SILENT_STATES = tuple(
    s.value for s in ConversationState if bot_silent(Conversation(state=s.value))
)


def bot_reply(decision: Decision, ask: Question | None, decision_id: int | None = None) -> Outgoing:
    """The bot's reply for ``decision`` (which has one), with the question ``ask`` after it."""
    assert decision.reply
    return Outgoing(
        f"{decision.reply}\n\n{ask.text}" if ask else decision.reply,
        decision_id=decision_id,
        choices=ask.choices if ask else decision.choices,
        handoff=decision.hands_off,
        language=decision.language,
    )


def decision_row(
    received: Received, decision: Decision, timings: dict[str, float], now: datetime
) -> DecisionRow:
    return DecisionRow(
        conversation_id=received.conversation_id,
        inbound_message_id=received.message_id,
        kind=decision.kind.value,
        intent=decision.intent,
        score=decision.score,
        margin=decision.margin,
        emotion=decision.emotion,
        reasons=",".join(r.value for r in decision.reasons),
        draft=decision.draft,
        details=_details(decision, timings),
        created_at=now,
    )


def _line(message: Message, meta: dict[str, Any], outbox_id: int | None) -> TranscriptLine:
    choices = tuple(Choice(c["id"], c["label"]) for c in meta.get("choices", []))
    return TranscriptLine(
        author=message.author,
        text=message.text,
        at=message.created_at,
        agent=message.agent,
        choices=choices,
        handoff=bool(meta.get("handoff", False)),
        external_id=message.external_id,
        outbox_id=outbox_id,
    )


def _details(decision: Decision, timings: dict[str, float]) -> dict[str, Any]:
    small_talk = {"small_talk": True} if decision.small_talk else {}
    return {
        **small_talk,
        "top": [{"intent": s.intent, "score": round(s.score, 4)} for s in decision.top],
        "choices": [{"id": c.id, "label": c.label} for c in decision.choices],
        "cues": list(decision.cues),
        "timings_ms": {k: round(v, 3) for k, v in timings.items()},
    }
