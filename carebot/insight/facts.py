"""What the store holds about the conversations of a period, read with a handful of set-based
queries (never one query per conversation) into plain per-conversation facts.

:func:`load_conversations` reads the period's conversations with their customer messages (and
each one's decision), handoffs, agent replies and surveys; :func:`load_followups` reads what
the same customers did afterwards, on any channel (durability and repeat contact).
The definitions that turn these facts into figures live in :mod:`carebot.insight.metrics`.
"""

from __future__ import annotations

import contextlib
import functools
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVarTuple

from sqlalchemy import ColumnElement, Select, exists, select
from sqlalchemy.ext.asyncio import AsyncConnection

from carebot.insight.report import Period
from carebot.models import DecisionKind, PublicCategory, Reason
from carebot.store.database import Database
from carebot.store.tables import (
    Conversation,
    DecisionRow,
    Handoff,
    Identity,
    Message,
    PublicItem,
    Survey,
)

HELPFUL, RATING = "helpful", "rating"
# The public messages that ask nothing of the brand (the classifier's classes): never requests.
NOTHING_ASKED = frozenset(
    {PublicCategory.PRAISE.value, PublicCategory.SPAM.value, PublicCategory.CHATTER.value}
)
# Decisions of kind answer that answer no question: a public thanks for praise, and the move of
# a public question to private messages (it goes on, and is counted, in the private one).
NOT_INTENT_ANSWERS = frozenset({Reason.PRAISE.value, Reason.MOVED_PRIVATE.value})
Row = TypeVarTuple("Row")


@dataclass(frozen=True, slots=True)
class DecisionFact:
    """What triage decided for one customer message."""

    at: datetime
    kind: str
    reasons: tuple[str, ...]
    intent: str | None
    small_talk: bool  # ``details["small_talk"]``; a missing key is False

    @property
    def intent_answer(self) -> bool:
        """An intent answer: a decision of kind answer that is not small talk, nor a public
        thanks (reason praise) or a move to private (reason moved_private). A decision of kind
        leave is never one."""
        return (
            self.kind == DecisionKind.ANSWER.value
            and not self.small_talk
            and NOT_INTENT_ANSWERS.isdisjoint(self.reasons)
        )


@dataclass(frozen=True, slots=True)
class CustomerMessage:
    """One message of the customer, with its decision (None: recorded while an agent had the
    conversation, or never decided on)."""

    id: int
    at: datetime
    decision: DecisionFact | None
    survey_reply: bool  # it answered a survey (``surveys.answer_message_id``)
    category: str | None = None  # a public message's class (public_items.category)

    @property
    def asked(self) -> bool:
        """It asks something of the brand: it is not a public message classified praise,
        spam or chatter (a public message not classified, e.g. recorded while an agent had
        the conversation, asks)."""
        return self.category not in NOTHING_ASKED

    @property
    def request(self) -> bool:
        """A request: a customer message that is not a survey reply, asks something (see
        :attr:`asked`) and was not answered as small talk (its decision, if any, is not
        small_talk)."""
        return (
            not self.survey_reply
            and self.asked
            and not (self.decision and self.decision.small_talk)
        )


@dataclass(frozen=True, slots=True)
class HandoffFact:
    """One handoff of a conversation."""

    at: datetime
    reason: str  # its main reason
    reasons: tuple[str, ...]
    by_bot: bool  # opened by a decision of the bot (else an agent took the conversation)
    resolved_by: str | None
    resolved_at: datetime | None
    resolution: str | None  # how it ended when no agent resolved it (withdrawn_by_customer)
    team: str | None = None  # the team it was routed to (None: from before teams existed)

    @property
    def resolved_by_agent(self) -> bool:
        """An agent resolved it (resolved_by not null, resolution null)."""
        return self.resolved_by is not None and self.resolution is None


@dataclass(frozen=True, slots=True)
class SurveyFact:
    """A question put to the customer about the conversation, and their answer."""

    kind: str  # helpful / rating
    asked_at: datetime
    answer: str | None
    answered_at: datetime | None
    resolver: str | None  # rating: bot / human


@dataclass(frozen=True, slots=True)
class ConversationFacts:
    """One conversation of the period, its parts each in time order."""

    id: int
    customer_id: int
    channel: str
    started: datetime  # its first customer message
    messages: tuple[CustomerMessage, ...]
    handoffs: tuple[HandoffFact, ...]
    agent_replies: tuple[datetime, ...]
    surveys: tuple[SurveyFact, ...]
    visibility: str = "private"  # public (comments under one post) / private

    @property
    def contact(self) -> bool:
        """False when its only customer messages are survey replies or public messages that
        ask nothing (praise, spam, chatter): not a contact."""
        return any(not m.survey_reply and m.asked for m in self.messages)


@dataclass(frozen=True, slots=True)
class Followups:
    """What some customers did in a span of time, on every channel."""

    requests: dict[int, list[datetime]]  # customer id -> their requests' times, in order
    # customer id -> (start, id) of the contacts (not survey-only) they started, in order
    started: dict[int, list[tuple[datetime, int]]]


async def load_conversations(db: Database, period: Period) -> list[ConversationFacts]:
    """The conversations of ``period`` that are contacts, by start (then id)."""
    ids = _population(period, select(Conversation.id)).scalar_subquery()
    async with reading(db) as conn:
        heads = (await conn.execute(_population(period, _head_columns()))).all()
        messages = await _customer_messages(conn, Message.conversation_id.in_(ids))
        handoffs = await _handoffs(conn, ids)
        replies = await _agent_replies(conn, ids)
        surveys = await _surveys(conn, ids)
    found = [
        ConversationFacts(
            id=cid,
            customer_id=customer_id,
            channel=channel,
            started=started,
            messages=tuple(sorted(messages[cid], key=lambda m: (m.at, m.id))),
            handoffs=tuple(handoffs[cid]),
            agent_replies=tuple(sorted(replies[cid])),
            surveys=tuple(surveys[cid]),
            visibility=visibility,
        )
        for cid, customer_id, channel, started, visibility in heads
    ]
    return sorted((f for f in found if f.contact), key=lambda f: (f.started, f.id))


async def load_followups(
    db: Database,
    period: Period,
    conversations: list[ConversationFacts],
    after: datetime,
    until: datetime,
) -> Followups:
    """What the customers of ``period``'s ``conversations`` did in ``(after, until]``, on
    every channel: their requests, and the contacts (conversations not survey-only) they
    started. The period's conversations are read from ``conversations``, the others from the
    store."""
    requests: dict[int, list[datetime]] = defaultdict(list)
    started: dict[int, list[tuple[datetime, int]]] = defaultdict(list)
    for facts in conversations:
        if after < facts.started <= until:
            started[facts.customer_id].append((facts.started, facts.id))
        requests[facts.customer_id].extend(
            m.at for m in facts.messages if m.request and after < m.at <= until
        )
    customers = _population(period, select(Conversation.customer_id)).scalar_subquery()
    others = (
        Conversation.customer_id.in_(customers),
        Conversation.id.not_in(_population(period, select(Conversation.id)).scalar_subquery()),
    )
    async with reading(db) as conn:
        for customer_id, at, chat in await conn.execute(_requests(others, after, until)):
            if not chat:
                requests[customer_id].append(at)
        query = select(Conversation.customer_id, Conversation.created_at, Conversation.id).where(
            *others, Conversation.created_at > after, Conversation.created_at <= until, _a_contact()
        )
        for customer_id, at, cid in await conn.execute(query):
            started[customer_id].append((at, cid))
    for times in requests.values():
        times.sort()
    for starts in started.values():
        starts.sort()
    return Followups(requests, started)


def population_ids(period: Period) -> Any:
    """The ids of ``period``'s conversations (contacts or not), as a subquery."""
    return _population(period, select(Conversation.id)).scalar_subquery()


def reason_codes(reasons: str | None) -> tuple[str, ...]:
    """The reason codes of a decision's comma-separated ``reasons``."""
    return _split(reasons)


@contextlib.asynccontextmanager
async def reading(db: Database) -> AsyncIterator[AsyncConnection]:
    """A connection for some queries that must agree with each other: on PostgreSQL they read
    one snapshot (REPEATABLE READ), even while messages keep coming. On SQLite they run off
    the event loop (:attr:`Database.reports`)."""
    async with db.reports.connect() as conn:
        if not db.is_sqlite:
            await conn.execution_options(isolation_level="REPEATABLE READ")
        yield conn


def _requests(
    conversations: tuple[ColumnElement[bool], ...], after: datetime, until: datetime
) -> Select[int, datetime, bool]:
    """Customer messages of ``conversations`` in (after, until] that are not survey replies
    and ask something (not public praise, spam or chatter), with their decision's small_talk
    flag."""
    survey_reply = exists().where(Survey.answer_message_id == Message.id)
    return (
        select(Conversation.customer_id, Message.created_at, _small_talk())
        .join(Conversation, Conversation.id == Message.conversation_id)
        .outerjoin(DecisionRow, DecisionRow.inbound_message_id == Message.id)
        .where(
            *conversations,
            Message.author == "customer",
            Message.created_at > after,
            Message.created_at <= until,
            ~survey_reply,
            ~_nothing_asked(Message.id),
        )
    )


def _nothing_asked(message_id: Any) -> ColumnElement[bool]:
    """The message is a public one classified praise, spam or chatter."""
    return exists().where(
        PublicItem.message_id == message_id, PublicItem.category.in_(sorted(NOTHING_ASKED))
    )


def _small_talk() -> ColumnElement[bool]:
    return DecisionRow.details["small_talk"].as_boolean()


def _head_columns() -> Select[int, int, str, datetime, str]:
    return select(
        Conversation.id,
        Conversation.customer_id,
        Identity.channel,
        Conversation.created_at,
        Conversation.visibility,
    ).join(Identity, Identity.id == Conversation.identity_id)


def _population(period: Period, query: Select[*Row]) -> Select[*Row]:
    """Conversations whose first customer message is in [since, until) (Conversation.created_at),
    of the period's visibility if it names one, on the period's channel if it names one (the
    channel of the conversation's identity)."""
    query = query.where(
        Conversation.created_at >= period.since, Conversation.created_at < period.until
    )
    if period.visibility is not None:
        query = query.where(Conversation.visibility == period.visibility)
    if period.channel is None:
        return query
    on_channel = select(Identity.id).where(Identity.channel == period.channel)
    return query.where(Conversation.identity_id.in_(on_channel))


def _a_contact() -> ColumnElement[bool]:
    """The conversation has a customer message that is not a survey reply and asks something
    (not public praise, spam or chatter)."""
    m = Message.__table__.alias("contact_message")
    reply = exists().where(Survey.answer_message_id == m.c.id)
    return exists().where(
        m.c.conversation_id == Conversation.id,
        m.c.author == "customer",
        ~reply,
        ~_nothing_asked(m.c.id),
    )


async def _customer_messages(
    conn: AsyncConnection, which: ColumnElement[bool]
) -> dict[int, list[CustomerMessage]]:
    survey_reply = exists().where(Survey.answer_message_id == Message.id)
    query = (
        select(
            Message.conversation_id,
            Message.id,
            Message.created_at,
            survey_reply,
            DecisionRow.created_at,
            DecisionRow.kind,
            DecisionRow.reasons,
            DecisionRow.intent,
            _small_talk(),
            PublicItem.category,
        )
        .outerjoin(DecisionRow, DecisionRow.inbound_message_id == Message.id)
        .outerjoin(PublicItem, PublicItem.message_id == Message.id)
        .where(which, Message.author == "customer")
    )
    found: dict[int, list[CustomerMessage]] = defaultdict(list)
    rows = await conn.execute(query)
    for cid, mid, at, reply, decided, kind, reasons, intent, chat, category in rows:
        decision = None
        if decided is not None:
            decision = DecisionFact(decided, kind, _split(reasons), intent, bool(chat))
        found[cid].append(CustomerMessage(mid, at, decision, bool(reply), category))
    return found


async def _handoffs(conn: AsyncConnection, ids: Any) -> dict[int, list[HandoffFact]]:
    query = (
        select(
            Handoff.conversation_id,
            Handoff.created_at,
            Handoff.reason,
            Handoff.reasons,
            Handoff.decision_id.is_not(None),
            Handoff.resolved_by,
            Handoff.resolved_at,
            Handoff.resolution,
            Handoff.team,
        )
        .where(Handoff.conversation_id.in_(ids))
        .order_by(Handoff.created_at, Handoff.id)
    )
    found: dict[int, list[HandoffFact]] = defaultdict(list)
    for cid, at, reason, reasons, by_bot, by, resolved, resolution, team in await conn.execute(
        query
    ):
        found[cid].append(
            HandoffFact(at, reason, _split(reasons), bool(by_bot), by, resolved, resolution, team)
        )
    return found


async def _agent_replies(conn: AsyncConnection, ids: Any) -> dict[int, list[datetime]]:
    query = select(Message.conversation_id, Message.created_at).where(
        Message.conversation_id.in_(ids), Message.author == "agent"
    )
    found: dict[int, list[datetime]] = defaultdict(list)
    for cid, at in await conn.execute(query):
        found[cid].append(at)
    return found


async def _surveys(conn: AsyncConnection, ids: Any) -> dict[int, list[SurveyFact]]:
    query = (
        select(
            Survey.conversation_id,
            Survey.kind,
            Survey.asked_at,
            Survey.answer,
            Survey.answered_at,
            Survey.resolver,
        )
        .where(Survey.conversation_id.in_(ids))
        .order_by(Survey.asked_at, Survey.id)
    )
    found: dict[int, list[SurveyFact]] = defaultdict(list)
    for cid, kind, asked, answer, answered, resolver in await conn.execute(query):
        found[cid].append(SurveyFact(kind, asked, answer, answered, resolver))
    return found


@functools.lru_cache(maxsize=4096)
def _split(reasons: str | None) -> tuple[str, ...]:
    """The reason codes of a comma-separated list (the same few lists repeat: cached)."""
    return tuple(r for r in (reasons or "").split(",") if r)
