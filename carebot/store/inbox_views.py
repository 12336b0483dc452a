"""The queue page's views of the conversations: waiting, mine, my teams', with an agent,
resolved and all, each with its count, narrowed by a search (:mod:`carebot.store.search`) or a
label, a page at a time.

The open views (waiting, mine, my teams', with an agent) list conversations whose latest
handoff is open, the waiting ones first, then the highest priority, then the longest waiting.
With first-response targets (:class:`carebot.teams.targets.FirstResponseTargets`) the waiting
handoffs nobody has answered yet that have a target come first, by due time soonest (so the
breached ones lead), then the others in that priority order; each open handoff's row says how
it stands against its target ("12 min left", "breached 5 min ago", "met in 8 min"). Due times
count business hours, so those views are ordered here rather than in SQL: they hold the open
handoffs only, which a team works down.
Resolved lists conversations that were handed to a person and are no longer (handed back to
the bot, withdrawn, or closed), the most recently resolved first; all lists every conversation,
the most recently active first.

Every view can be narrowed to public conversations (comments and mentions) or private ones
(``visibility``); a public row names its platform and the kind of its latest public message
("Facebook comment", "X mention") and what the classifier made of it (its category)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, and_, case, false, func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from carebot.clock import Clock
from carebot.exceptions import StoreError
from carebot.models import ConversationState, Visibility
from carebot.public.rules import platform_name
from carebot.store.closing import closed_view
from carebot.store.database import Database
from carebot.store.labels import normalise_label
from carebot.store.queue import (
    customer_label,
    describe_reasons,
    first_replies,
    last_customer_text,
    waiting_text,
)
from carebot.store.search import matching_conversations
from carebot.store.tables import (
    Conversation,
    ConversationLabel,
    Customer,
    Handoff,
    Identity,
    PublicItem,
)
from carebot.teams.targets import FirstResponseTargets, TargetStatus

_S = TypeVar("_S", bound=Select[*tuple[Any, ...]])
VIEWS = ("teams", "waiting", "mine", "with_agent", "resolved", "all")
OPEN_VIEWS = ("teams", "waiting", "mine", "with_agent")  # ordered by first-response target
PAGE_SIZE = 50
VISIBILITIES = ("", Visibility.PRIVATE.value, Visibility.PUBLIC.value)  # "": both
_NO_DUE = datetime.min.replace(tzinfo=UTC)  # the sort key's due time of rows without one


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who looks: their agent name (assignments), display name (conversations they took over)
    and teams (``None`` in ``teams`` stands for handoffs from before teams: the default team)."""

    name: str
    display_name: str
    teams: frozenset[str | None] = frozenset()


@dataclass(frozen=True, slots=True)
class ViewRow:
    id: int
    customer_name: str
    channel: str
    state: str
    agent: str | None
    last_text: str
    updated_at: str
    handed_over: bool = False
    open: bool = False  # its latest handoff is open
    team: str | None = None
    route: str | None = None
    assigned_to: str | None = None
    reason_words: str = ""
    reasons: list[str] = field(default_factory=list)
    cues: list[str] = field(default_factory=list)
    priority: float = 0.0
    emotion: float = 0.0
    waiting_since: str | None = None
    waiting_for: str = ""
    closed: dict[str, Any] | None = None
    labels: list[str] = field(default_factory=list)
    target: str = ""  # how an open handoff stands against its team's target: "12 min left"
    target_state: str = ""  # running / met / breached ("": no target)
    target_due: str | None = None  # when the first reply is (was) due
    visibility: str = Visibility.PRIVATE.value
    public_where: str = ""  # a public row's platform and kind: "Facebook comment", "X mention"
    category: str | None = None  # a public row's latest message's classification: complaint


@dataclass(frozen=True, slots=True)
class ViewPage:
    view: str
    rows: list[ViewRow]
    counts: dict[str, int]
    page: int
    more: bool  # a next page exists


def _latest_handoff() -> ColumnElement[int]:
    return (
        select(func.max(Handoff.id))
        .where(Handoff.conversation_id == Conversation.id)
        .correlate(Conversation)
        .scalar_subquery()
    )


_ACTIVE = (ConversationState.WAITING_FOR_AGENT.value, ConversationState.WITH_AGENT.value)


def _is_open() -> ColumnElement[bool]:
    return and_(
        Handoff.id.is_not(None), Handoff.resolved_at.is_(None), Conversation.state.in_(_ACTIVE)
    )


def view_filter(view: str, viewer: Viewer) -> ColumnElement[bool]:
    """Which conversations ``view`` shows to ``viewer``."""
    if view == "waiting":
        return and_(_is_open(), Conversation.state == ConversationState.WAITING_FOR_AGENT.value)
    if view == "with_agent":
        return and_(_is_open(), Conversation.state == ConversationState.WITH_AGENT.value)
    if view == "mine":
        return and_(
            _is_open(),
            or_(Handoff.assigned_to == viewer.name, Conversation.agent == viewer.display_name),
        )
    if view == "teams":
        named = [t for t in viewer.teams if t is not None]
        ours = [Handoff.team.in_(named)] if named else []
        if None in viewer.teams:
            ours.append(Handoff.team.is_(None))
        return and_(_is_open(), or_(*ours) if ours else false())
    if view == "resolved":
        return and_(Handoff.id.is_not(None), ~_is_open())
    if view == "all":
        return true()
    raise StoreError(f"Unknown view {view!r}: use one of {', '.join(VIEWS)}")


def _order(view: str) -> list[Any]:
    if view == "all":
        return [Conversation.updated_at.desc(), Conversation.id.desc()]
    if view == "resolved":
        ended = func.coalesce(Handoff.resolved_at, Conversation.closed_at, Conversation.updated_at)
        return [ended.desc(), Conversation.id.desc()]
    waiting_first = case(
        (Conversation.state == ConversationState.WAITING_FOR_AGENT.value, 0), else_=1
    )
    return [waiting_first, Handoff.priority.desc(), Handoff.created_at, Handoff.id]


class InboxViews:
    def __init__(
        self, db: Database, *, clock: Clock, targets: FirstResponseTargets | None = None
    ) -> None:
        self._db = db
        self._clock = clock
        self._targets = targets  # None: no first-response targets shown or ordered by

    async def page(
        self,
        view: str,
        viewer: Viewer,
        *,
        words: str = "",
        label: str = "",
        page: int = 1,
        size: int = PAGE_SIZE,
        views: Collection[str] = VIEWS,
        visibility: str = "",
    ) -> ViewPage:
        """Page ``page`` (from 1) of ``view``, and the count of each of ``views``, all narrowed
        by the search ``words``, the ``label`` and the ``visibility`` (when given)."""
        if page < 1:
            raise StoreError(f"page must be 1 or more, not {page}")
        if visibility not in VISIBILITIES:
            raise StoreError(f"visibility must be public or private, not {visibility!r}")
        narrow = self._narrowing(words, label)
        if visibility:
            narrow.append(Conversation.visibility == visibility)
        query = (
            self._base(select(Conversation, Customer, Identity, Handoff))
            .where(view_filter(view, viewer), *narrow)
            .order_by(*_order(view))
        )
        by_target = self._targets is not None and view in OPEN_VIEWS
        if not by_target:  # ordered by the database: only the page is read
            query = query.offset((page - 1) * size).limit(size + 1)
        async with self._db.session() as session:
            found = list((await session.execute(query)).all())
            handoffs = [h.id for _, _, _, h in found if h is not None]
            replied = await first_replies(session, handoffs)
            statuses = {h.id: self._status(h, replied.get(h.id)) for _, _, _, h in found if h}
            if by_target:
                found.sort(key=lambda r: _target_order(r[0], r[3], statuses, replied))
                found = found[(page - 1) * size :]
            rows = [await self._row(session, *r, statuses) for r in found[:size]]
            counts = {v: await self._count(session, v, viewer, narrow) for v in views}
            labels = await _labels(session, [r.id for r in rows])
            public = await _public_facts(session, [r.id for r in rows if r.visibility != "private"])
        rows = [_with_labels(r, labels.get(r.id, [])) for r in rows]
        rows = [replace(r, **public[r.id]) if r.id in public else r for r in rows]
        return ViewPage(view, rows, counts, page, len(found) > size)

    def _status(self, handoff: Handoff, first_reply: datetime | None) -> TargetStatus | None:
        """How an open handoff stands against its team's first-response target (None: no
        target, or the handoff is resolved)."""
        if self._targets is None or handoff.resolved_at is not None:
            return None
        return self._targets.status(handoff.team, handoff.created_at, first_reply, self._clock())

    def _narrowing(self, words: str, label: str) -> list[ColumnElement[bool]]:
        narrow: list[ColumnElement[bool]] = []
        found = matching_conversations(words, postgresql=not self._db.is_sqlite)
        if found is not None:
            narrow.append(Conversation.id.in_(found))
        if label.strip():
            labelled = select(ConversationLabel.conversation_id).where(
                ConversationLabel.label == normalise_label(label)
            )
            narrow.append(Conversation.id.in_(labelled))
        return narrow

    @staticmethod
    def _base(query: _S) -> _S:
        return (
            query.join(Customer, Customer.id == Conversation.customer_id)
            .join(Identity, Identity.id == Conversation.identity_id)
            .outerjoin(Handoff, Handoff.id == _latest_handoff())
        )

    async def _count(
        self, session: AsyncSession, view: str, viewer: Viewer, narrow: list[ColumnElement[bool]]
    ) -> int:
        query = select(func.count(Conversation.id)).select_from(Conversation)
        query = self._base(query).where(view_filter(view, viewer), *narrow)
        return int(await session.scalar(query) or 0)

    async def _row(
        self,
        session: AsyncSession,
        conversation: Conversation,
        customer: Customer,
        identity: Identity,
        handoff: Handoff | None,
        statuses: dict[int, TargetStatus | None],
    ) -> ViewRow:
        base: dict[str, Any] = {
            "id": conversation.id,
            "customer_name": customer_label(customer, identity),
            "channel": identity.channel,
            "state": conversation.state,
            "agent": conversation.agent,
            "last_text": await last_customer_text(session, conversation.id),
            "updated_at": conversation.updated_at.isoformat(),
            "closed": await closed_view(session, conversation),
            "visibility": conversation.visibility,
        }
        if handoff is None:
            return ViewRow(**base)
        reasons = handoff.reasons.split(",") if handoff.reasons else []
        is_open = handoff.resolved_at is None and conversation.state in _ACTIVE
        status = statuses.get(handoff.id) if is_open else None
        if status is not None:
            base["target"], base["target_state"] = status.text, status.state
            base["target_due"] = status.due.isoformat()
        return ViewRow(
            **base,
            handed_over=True,
            open=is_open,
            team=handoff.team,
            route=handoff.route,
            assigned_to=handoff.assigned_to,
            reason_words=describe_reasons(reasons),
            reasons=reasons,
            cues=list(handoff.emotion_cues or []),
            priority=handoff.priority or 0.0,
            emotion=handoff.emotion or 0.0,
            waiting_since=handoff.created_at.isoformat(),
            waiting_for=waiting_text(handoff.created_at, self._clock()),
        )


def _target_order(
    conversation: Conversation,
    handoff: Handoff | None,
    statuses: dict[int, TargetStatus | None],
    replied: dict[int, datetime],
) -> tuple[int, int, datetime]:
    """The sort key of an open view's row (a stable sort on the database's priority order):
    the waiting first; among them, those with a target and no reply yet by due time (the
    breached ones are due earliest), then the others as they were."""
    waiting = conversation.state == ConversationState.WAITING_FOR_AGENT.value
    status = statuses.get(handoff.id) if handoff is not None else None
    if waiting and status is not None and handoff is not None and handoff.id not in replied:
        return (0, 0, status.due)
    return (0 if waiting else 1, 1, _NO_DUE)


async def _labels(session: AsyncSession, ids: list[int]) -> dict[int, list[str]]:
    if not ids:
        return {}
    found: dict[int, list[str]] = {}
    rows = await session.execute(
        select(ConversationLabel.conversation_id, ConversationLabel.label)
        .where(ConversationLabel.conversation_id.in_(ids))
        .order_by(ConversationLabel.label)
    )
    for conversation_id, label in rows.all():
        found.setdefault(conversation_id, []).append(label)
    return found


async def _public_facts(session: AsyncSession, ids: list[int]) -> dict[int, dict[str, Any]]:
    """Each public conversation's platform and kind, and its category, from its latest public
    message (a conversation whose message is still being stored has none yet)."""
    if not ids:
        return {}
    found: dict[int, dict[str, Any]] = {}
    rows = await session.execute(
        select(PublicItem.conversation_id, PublicItem.channel, PublicItem.kind, PublicItem.category)
        .where(PublicItem.conversation_id.in_(ids))
        .order_by(PublicItem.message_id)
    )
    for conversation_id, channel, kind, category in rows.all():  # the latest wins
        found[conversation_id] = {
            "public_where": f"{platform_name(channel)} {kind}",
            "category": category or found.get(conversation_id, {}).get("category"),
        }
    return found


def _with_labels(row: ViewRow, labels: list[str]) -> ViewRow:
    return replace(row, labels=labels) if labels else row
