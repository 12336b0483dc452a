"""The agents' queue: conversations waiting for or with an agent (the most urgent first, then
the longest waiting), those recently closed, and everything an agent sees about one (the
customer, their channels, their history, why the bot handed over and what changed since, its
draft, how it ended, its internal notes, labels and audit trail).

A customer shows by their display name, else the name, e-mail or phone their channel identity
gave (a web chat visitor's pre-chat details), else its channel and user id
(:func:`customer_label`; the Slack card reads the same name)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from carebot.clock import Clock
from carebot.exceptions import StoreError
from carebot.models import REASON_WORDS, WITHDRAWN_BY_CUSTOMER, ConversationState, Reason
from carebot.reply_window import NO_WINDOWS, ReplyWindows
from carebot.store.closing import closed_view
from carebot.store.customers import display_label, visitor_details
from carebot.store.database import Database
from carebot.store.labels import labels_of
from carebot.store.notes import note_rows
from carebot.store.outbox import FAILED, PENDING, last_customer_message
from carebot.store.public_items import PublicView, public_view
from carebot.store.tables import (
    Conversation,
    Customer,
    DecisionRow,
    Handoff,
    Identity,
    Message,
    OutboxRow,
)
from carebot.store.teamwork import audit_trail

AGENT_INITIATED_WORDS = "an agent took the conversation over"


@dataclass(frozen=True, slots=True)
class QueueRow:
    id: int
    customer_name: str
    channel: str
    state: str
    agent: str | None
    reason_words: str
    reasons: list[str]
    waiting_since: str
    waiting_for: str
    last_text: str
    emotion: float
    priority: float = 0.0
    cues: list[str] = field(default_factory=list)  # what the emotion shown rests on


@dataclass(frozen=True, slots=True)
class ClosedRow:
    """A recently closed conversation an agent had a part in, for the queue page."""

    id: int
    customer_name: str
    channel: str
    agent: str | None
    closed: dict[str, Any]  # see closed_view
    last_text: str


@dataclass(frozen=True, slots=True)
class MessageView:
    id: int
    author: str
    agent: str | None
    text: str
    at: str
    channel: str
    conversation_id: int
    delivery: str | None = None  # for replies: sending / sent / delivered / read / not delivered
    # an outgoing public action (its outbox meta "public"): reply / private_reply / hide / unhide
    public_action: str | None = None
    language: str | None = None  # a customer message's detected language (ISO 639-1)


@dataclass(frozen=True, slots=True)
class Case:
    """One conversation as an agent sees it."""

    id: int
    state: str
    agent: str | None
    channel: str
    customer: dict[str, Any]
    handoff: dict[str, Any] | None
    top_intents: list[dict[str, Any]]
    messages: list[MessageView]
    past: list[dict[str, Any]] = field(default_factory=list)
    window: dict[str, Any] | None = None  # the channel's reply window: text, closing, closed
    closed: dict[str, Any] | None = None  # how the conversation ended (see closed_view)
    withdrawn: dict[str, Any] | None = None  # the customer withdrew the latest handoff: at
    notes: list[dict[str, Any]] = field(default_factory=list)  # internal notes, oldest first
    trail: list[dict[str, Any]] = field(default_factory=list)  # the audit trail, oldest first
    tags: list[str] = field(default_factory=list)  # the conversation's labels
    public: PublicView | None = None  # a public conversation: its post and comments
    # a private conversation that answers a private reply to a comment: the public thread's id
    from_public: int | None = None

    @property
    def language(self) -> str | None:
        """The customer's language: detected in their latest message that could be placed."""
        placed = [m.language for m in self.messages if m.author == "customer" and m.language]
        return placed[-1] if placed else None

    @property
    def timeline(self) -> list[dict[str, Any]]:
        """Messages, internal notes and audit-trail lines in time order (at the same time, the
        message first): ``{"type": "message" | "note" | "event", "item": ...}``."""
        kinds = {"message": 0, "note": 1, "event": 2}
        items = [{"type": "message", "item": m, "at": m.at, "n": m.id} for m in self.messages]
        items += [{"type": "note", "item": n, "at": n["at"], "n": n["id"]} for n in self.notes]
        items += [{"type": "event", "item": e, "at": e["at"], "n": e["id"]} for e in self.trail]
        return sorted(
            items,
            key=lambda i: (datetime.fromisoformat(i["at"]), kinds[i["type"]], i["n"]),
        )

    @property
    def can_take_over(self) -> bool:
        return self.state in (ConversationState.BOT, ConversationState.WAITING_FOR_AGENT)

    @property
    def can_reply(self) -> bool:
        return self.state != ConversationState.CLOSED

    @property
    def can_send_draft(self) -> bool:
        unsent = bool(self.handoff and self.handoff.get("draft") and not self.handoff["draft_sent"])
        return unsent and self.can_reply

    @property
    def can_resolve(self) -> bool:
        return ConversationState(self.state).human_owned

    @property
    def can_close(self) -> bool:
        return self.state != ConversationState.CLOSED


def describe_reasons(codes: list[str]) -> str:
    """The first (most important) reason in words, for agents."""
    if not codes:
        return ""
    try:
        return REASON_WORDS[Reason(codes[0])]
    except ValueError:
        return AGENT_INITIATED_WORDS if codes[0] == "agent_initiated" else codes[0]


def describe_change(change: dict[str, Any] | None) -> str:
    """What a waiting customer's latest message changed on the handoff, in words for agents:
    "Now also: the customer asked for a person. Emotion rose 0.31 -> 0.82 (cues: ...)."."""
    if not change:
        return ""
    parts = []
    if change.get("reasons"):
        parts.append("Now also: " + "; ".join(describe_reasons([c]) for c in change["reasons"]))
    if change.get("emotion"):
        before, after = change["emotion"]
        cues = change.get("cues") or []
        rose = f"Emotion rose {before:.2f} -> {after:.2f}"
        parts.append(rose + (f" (cues: {', '.join(cues)})" if cues else ""))
    return ". ".join(parts) + "." if parts else ""


def waiting_text(since: datetime, now: datetime) -> str:
    minutes = int((now - since) / timedelta(minutes=1))
    if minutes < 1:
        return "just now"
    hours, minutes = divmod(minutes, 60)
    if not hours:
        return f"{minutes} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if days else f"{hours} h {minutes} min"


class AgentQueue:
    def __init__(self, db: Database, *, clock: Clock, windows: ReplyWindows = NO_WINDOWS) -> None:
        self._db = db
        self._clock = clock
        self._windows = windows

    async def rows(self) -> tuple[list[QueueRow], list[QueueRow]]:
        """(waiting for an agent, with an agent): each the highest priority first, then the
        longest waiting."""
        async with self._db.session() as session:
            result = (
                await session.execute(
                    select(Conversation, Customer, Identity, Handoff)
                    .join(Customer, Customer.id == Conversation.customer_id)
                    .join(Identity, Identity.id == Conversation.identity_id)
                    .join(Handoff, Handoff.conversation_id == Conversation.id)
                    .where(
                        Conversation.state.in_(
                            [ConversationState.WAITING_FOR_AGENT, ConversationState.WITH_AGENT]
                        ),
                        Handoff.resolved_at.is_(None),
                    )
                    .order_by(Handoff.priority.desc(), Handoff.created_at, Handoff.id)
                )
            ).all()
            rows = [await self._row(session, c, cu, i, h) for c, cu, i, h in result]
        waiting = [r for r in rows if r.state == ConversationState.WAITING_FOR_AGENT]
        with_agent = [r for r in rows if r.state == ConversationState.WITH_AGENT]
        return waiting, with_agent

    async def _row(
        self,
        session: AsyncSession,
        conversation: Conversation,
        customer: Customer,
        identity: Identity,
        handoff: Handoff,
    ) -> QueueRow:
        last = await last_customer_text(session, conversation.id)
        reasons = handoff.reasons.split(",") if handoff.reasons else []
        return QueueRow(
            id=conversation.id,
            customer_name=customer_label(customer, identity),
            channel=identity.channel,
            state=conversation.state,
            agent=conversation.agent,
            reason_words=describe_reasons(reasons),
            reasons=reasons,
            waiting_since=handoff.created_at.isoformat(),
            waiting_for=waiting_text(handoff.created_at, self._clock()),
            last_text=last,
            emotion=handoff.emotion or 0.0,
            priority=handoff.priority or 0.0,
            cues=list(handoff.emotion_cues or []),
        )

    async def recently_closed(
        self, *, within: timedelta = timedelta(days=1), limit: int = 20
    ) -> list[ClosedRow]:
        """Conversations closed ``within`` the last while that had been handed to a person,
        the most recently closed first."""
        handed = select(Handoff.id).where(Handoff.conversation_id == Conversation.id).exists()
        async with self._db.session() as session:
            result = (
                await session.execute(
                    select(Conversation, Customer, Identity)
                    .join(Customer, Customer.id == Conversation.customer_id)
                    .join(Identity, Identity.id == Conversation.identity_id)
                    .where(
                        Conversation.closed_at >= self._clock() - within,
                        Conversation.state == ConversationState.CLOSED,
                        handed,
                    )
                    .order_by(Conversation.closed_at.desc(), Conversation.id.desc())
                    .limit(limit)
                )
            ).all()
            return [
                ClosedRow(
                    id=c.id,
                    customer_name=customer_label(customer, identity),
                    channel=identity.channel,
                    agent=c.agent,
                    closed=await closed_view(session, c) or {},
                    last_text=await last_customer_text(session, c.id),
                )
                for c, customer, identity in result
            ]

    async def history(self, customer_id: int, *, limit: int = 50) -> list[MessageView]:
        """The customer's latest messages across all their conversations, oldest first."""
        async with self._db.session() as session:
            rows = (
                await session.scalars(
                    select(Message)
                    .join(Conversation, Conversation.id == Message.conversation_id)
                    .where(Conversation.customer_id == customer_id)
                    .order_by(Message.id.desc())
                    .limit(limit)
                )
            ).all()
        return [_view(m) for m in reversed(rows)]

    async def case(self, conversation_id: int) -> Case:
        async with self._db.session() as session:
            conversation = await session.get(Conversation, conversation_id)
            if conversation is None:
                raise StoreError(f"No conversation with id {conversation_id}")
            customer = await session.get_one(Customer, conversation.customer_id)
            identity = await session.get_one(Identity, conversation.identity_id)
            identities = (
                await session.scalars(select(Identity).where(Identity.customer_id == customer.id))
            ).all()
            past = await _past(session, conversation, {i.id: i.channel for i in identities})
            closed = conversation.state == ConversationState.CLOSED
            # A closed conversation shows the handoff it ended with, resolved or not.
            handoff, decision = await self._latest_handoff(
                session, conversation_id, resolved_too=closed
            )
            withdrawn = None if handoff or closed else await _withdrawn(session, conversation_id)
            public = await public_view(session, conversation_id)
            latest = decision or await session.scalar(
                select(DecisionRow)
                .where(DecisionRow.conversation_id == conversation_id)
                .order_by(DecisionRow.id.desc())
                .limit(1)
            )
            return Case(
                id=conversation.id,
                state=conversation.state,
                agent=conversation.agent,
                channel=identity.channel,
                customer=_customer_view(customer, identity, identities, len(past) + 1),
                handoff=self._handoff_view(
                    handoff,
                    (await first_replies(session, [handoff.id])).get(handoff.id)
                    if handoff
                    else None,
                ),
                top_intents=list(latest.details.get("top", [])) if latest else [],
                messages=await _messages(session, conversation.id),
                past=past,
                window=None if closed or public else await self._window(session, identity),
                closed=await closed_view(session, conversation),
                withdrawn=withdrawn,
                notes=await note_rows(session, conversation_id),
                trail=await _trail(session, conversation_id),
                tags=await labels_of(session, conversation_id),
                public=public,
                from_public=(conversation.context or {}).get("from_public"),
            )

    async def _window(self, session: AsyncSession, identity: Identity) -> dict[str, Any] | None:
        last = await last_customer_message(session, identity.id)
        window = self._windows.window(identity.channel, last)
        if window is None:
            return None
        now = self._clock()
        return {
            "text": window.describe(now),
            "closing": window.closing(now),
            "closed": not window.is_open(now),
            "closes_at": window.closes_at.isoformat(),
        }

    async def _latest_handoff(
        self, session: AsyncSession, conversation_id: int, *, resolved_too: bool = False
    ) -> tuple[Handoff | None, DecisionRow | None]:
        query = select(Handoff).where(Handoff.conversation_id == conversation_id)
        if not resolved_too:
            query = query.where(Handoff.resolved_at.is_(None))
        handoff = await session.scalar(query.order_by(Handoff.id.desc()).limit(1))
        if handoff is None or handoff.decision_id is None:
            return handoff, None
        return handoff, await session.get(DecisionRow, handoff.decision_id)

    def _handoff_view(
        self, handoff: Handoff | None, first_reply: datetime | None = None
    ) -> dict[str, Any] | None:
        if handoff is None:
            return None
        reasons = handoff.reasons.split(",") if handoff.reasons else []
        change = handoff.last_change or None
        return {
            "reason_words": describe_reasons(reasons),
            "reasons": reasons,
            "emotion": handoff.emotion or 0.0,
            "cues": list(handoff.emotion_cues or []),
            "priority": handoff.priority or 0.0,
            "change": {"words": describe_change(change), "at": change["at"]} if change else None,
            "withdrawn": handoff.resolution == WITHDRAWN_BY_CUSTOMER,
            "draft": handoff.draft,
            "draft_sent": handoff.draft_sent_at is not None,
            "created_at": handoff.created_at.isoformat(),
            "created": handoff.created_at,  # for the first-response target
            "first_reply_at": first_reply,  # the first agent message since (None: not yet)
            "waiting_for": waiting_text(handoff.created_at, self._clock()),
            "claimed_by": handoff.claimed_by,
            "team": handoff.team,
            "route": handoff.route,
            "assigned_to": handoff.assigned_to,
            "assigned_at": handoff.assigned_at.isoformat() if handoff.assigned_at else None,
            "open": handoff.resolved_at is None,
        }

    @property
    def db(self) -> Database:
        return self._db

    @property
    def clock(self) -> Clock:
        return self._clock

    async def new_handoff(self, conversation_id: int) -> dict[str, Any] | None:
        """The conversation's open handoff, if no customer message came after the one that
        caused it (a new handoff, for agents' notifications): ``{"id", "team"}``."""
        async with self._db.session() as session:
            handoff, decision = await self._latest_handoff(session, conversation_id)
            if handoff is None or decision is None:
                return None
            latest = await session.scalar(
                select(func.max(Message.id)).where(
                    Message.conversation_id == conversation_id, Message.direction == "in"
                )
            )
            if latest != decision.inbound_message_id:
                return None
            return {"id": handoff.id, "team": handoff.team}


async def _withdrawn(session: AsyncSession, conversation_id: int) -> dict[str, Any] | None:
    """When the customer withdrew the conversation's latest handoff, if that is how it ended."""
    latest = await session.scalar(
        select(Handoff)
        .where(Handoff.conversation_id == conversation_id)
        .order_by(Handoff.id.desc())
        .limit(1)
    )
    if latest is None or latest.resolution != WITHDRAWN_BY_CUSTOMER or latest.resolved_at is None:
        return None
    reasons = latest.reasons.split(",") if latest.reasons else []
    return {"at": latest.resolved_at.isoformat(), "reason_words": describe_reasons(reasons)}


async def _past(
    session: AsyncSession, conversation: Conversation, channels: dict[int, str]
) -> list[dict[str, Any]]:
    """The customer's other conversations, on any channel, newest first."""
    others = (
        await session.scalars(
            select(Conversation)
            .where(
                Conversation.customer_id == conversation.customer_id,
                Conversation.id != conversation.id,
            )
            .order_by(Conversation.id.desc())
        )
    ).all()
    return [
        {
            "id": other.id,
            "channel": channels.get(other.identity_id, ""),
            "state": other.state,
            "started_at": other.created_at.isoformat(),
            "messages": await _messages(session, other.id),
            "closed": await closed_view(session, other),
        }
        for other in others
    ]


async def last_customer_text(session: AsyncSession, conversation_id: int) -> str:
    last = await session.scalar(
        select(Message.text)
        .where(Message.conversation_id == conversation_id, Message.direction == "in")
        .order_by(Message.id.desc())
        .limit(1)
    )
    return last or ""


def _customer_view(
    customer: Customer, identity: Identity, identities: Sequence[Identity], conversations: int
) -> dict[str, Any]:
    return {
        "id": customer.id,
        "name": customer_label(customer, identity),
        "visitor": visitor_details(identity),  # what the identity told of itself (web chat)
        "since": customer.created_at.isoformat(),
        "conversations": conversations,
        "identities": [
            {
                "channel": i.channel,
                "external_user_id": i.external_user_id,
                "profile": {k: str(v) for k, v in i.profile.items()},
                "linked_by": i.linked_by,
            }
            for i in identities
        ],
    }


async def _messages(session: AsyncSession, conversation_id: int) -> list[MessageView]:
    rows = (
        await session.execute(
            select(Message, OutboxRow)
            .outerjoin(OutboxRow, OutboxRow.message_id == Message.id)
            .where(Message.conversation_id == conversation_id)
            .order_by(Message.id)
        )
    ).all()
    return [_view(m, _delivery(outbox), _public_action(outbox)) for m, outbox in rows]


async def _trail(session: AsyncSession, conversation_id: int) -> list[dict[str, Any]]:
    events = await audit_trail(session, conversation_id)
    return [
        {
            "id": e.id,
            "kind": e.kind,
            "actor": e.actor,
            "detail": dict(e.detail or {}),
            "at": e.created_at.isoformat(),
        }
        for e in events
    ]


def _delivery(row: OutboxRow | None) -> str | None:
    """How far a reply got, in words for agents."""
    if row is None:
        return None
    if row.status == FAILED or row.delivery_status == "failed":
        return f"not delivered: {row.delivery_error or row.last_error or 'refused'}"
    if row.delivery_status:
        return row.delivery_status
    if row.status == PENDING:
        return f"retrying: {row.last_error}" if row.attempts else "sending"
    return "sent"


def _public_action(row: OutboxRow | None) -> str | None:
    """The public action an outgoing message carried out (None: an ordinary message)."""
    public = (row.meta or {}).get("public") if row is not None else None
    return str(public["kind"]) if isinstance(public, dict) and public.get("kind") else None


def _view(m: Message, delivery: str | None = None, public_action: str | None = None) -> MessageView:
    return MessageView(
        m.id,
        m.author,
        m.agent,
        m.text,
        m.created_at.isoformat(),
        m.channel,
        m.conversation_id,
        delivery,
        public_action,
        m.language,
    )


def customer_label(customer: Customer, identity: Identity) -> str:
    """How agents see the customer of a conversation on ``identity``: see the module's notes."""
    return display_label(identity, customer.display_name or "")


async def first_replies(session: AsyncSession, handoff_ids: Sequence[int]) -> dict[int, datetime]:
    """The first agent message at or after each handoff was made, by handoff id (handoffs
    nobody has answered yet are left out): when the first-response target was met or missed."""
    if not handoff_ids:
        return {}
    rows = await session.execute(
        select(Handoff.id, func.min(Message.created_at))
        .join(Message, Message.conversation_id == Handoff.conversation_id)
        .where(
            Handoff.id.in_(handoff_ids),
            Message.author == "agent",
            Message.created_at >= Handoff.created_at,
        )
        .group_by(Handoff.id)
    )
    return {handoff_id: at for handoff_id, at in rows.all() if at is not None}
