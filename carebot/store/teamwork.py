"""Teams at work on handoffs: routing a new handoff to its team, round-robin assignment,
transfers between teams, agents' availability, and the conversation's audit trail.

- A handoff triage opens is routed by the rules (:class:`carebot.teams.directory.TeamDirectory`)
  from facts gathered here, in the handoff's transaction: the intent, the reason codes, the
  channel, the customer's message, whether it was public, the customer and the domains of
  their e-mail addresses (from every identity of the customer). A handoff an agent starts goes
  to the agent's team. Each writes ``routed`` to the audit trail (``{team, rule}``). A waiting
  customer's later messages do not open a handoff, so they never re-route it.
- A team with ``round_robin`` assigns each new handoff to the next available member after the
  one who got the previous (``team_rotation``), ``assigned`` in the trail; with no member
  available it stays unassigned. The team's rotation row is locked while choosing (PostgreSQL),
  so workers opening handoffs at once take turns, not the same agent.
- :meth:`TeamworkStore.transfer` moves the open handoff to another team: the new team's queue,
  unassigned, waiting for one of its members (an agent who had taken the conversation over
  gives it up); the customer is not messaged.
- An agent is available unless they said they are away (``agent_presence``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from carebot.clock import Clock
from carebot.exceptions import StoreError
from carebot.models import ConversationState
from carebot.store.database import Database
from carebot.store.open_handoffs import open_handoff
from carebot.store.tables import (
    AgentPresence,
    ContactPoint,
    Conversation,
    ConversationEvent,
    Handoff,
    Identity,
    Message,
    TeamRotation,
)
from carebot.teams.directory import TeamDirectory
from carebot.teams.routing import Route, RouteFacts, email_domain

CAREBOT = "carebot"  # the actor of what the service does by itself


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One entry of a conversation's audit trail."""

    kind: str  # routed / assigned / transferred
    actor: str  # an agent's name, or "carebot"
    detail: dict[str, Any]
    at: datetime
    handoff_id: int | None


@dataclass(frozen=True, slots=True)
class Transferred:
    """A transfer done: the teams, and the agent who had the conversation (None: nobody)."""

    from_team: str
    to_team: str
    previous_agent: str | None


async def handoff_facts(
    session: AsyncSession,
    conversation: Conversation,
    identity: Identity,
    *,
    intent: str | None,
    reasons: tuple[str, ...],
    text: str,
) -> RouteFacts:
    """The facts the routing rules read, for a handoff in ``conversation``. A message is
    public when its channel identity's profile says ``visibility = "public"`` (an adapter of
    public comments sets it); anything else is a private message."""
    addresses = await session.scalars(
        select(ContactPoint.value)
        .join(Identity, Identity.id == ContactPoint.identity_id)
        .where(Identity.customer_id == conversation.customer_id, ContactPoint.kind == "email")
    )
    domains = sorted({d for d in map(email_domain, addresses) if d})
    language = await session.scalar(placed_language(conversation.id))
    return RouteFacts(
        intent=intent,
        channel=identity.channel,
        reasons=reasons,
        text=text,
        public=(identity.profile or {}).get("visibility") == "public",
        customer_id=conversation.customer_id,
        email_domains=tuple(domains),
        language=language,
    )


def placed_language(conversation_id: int) -> Select[str | None]:
    """The language of the conversation's latest customer message that could be placed."""
    return (
        select(Message.language)
        .where(
            Message.conversation_id == conversation_id,
            Message.direction == "in",
            Message.language.is_not(None),
        )
        .order_by(Message.id.desc())
        .limit(1)
    )


async def route_handoff(
    session: AsyncSession, handoff: Handoff, route: Route, teams: TeamDirectory, now: datetime
) -> None:
    """Give a new handoff (added to ``session``) its team and route, record it in the audit
    trail, and assign it in turn when the team assigns round-robin."""
    handoff.team, handoff.route = route.team, route.rule_label
    await session.flush()  # the handoff's id, for the trail
    detail = {"team": route.team, "rule": route.rule_label}
    session.add(_event(handoff, "routed", CAREBOT, detail, now))
    rotation = teams.rotation(route.team)
    if rotation:
        agent = await _next_in_turn(session, route.team, rotation, now)
        if agent is not None:
            handoff.assigned_to, handoff.assigned_at = agent, now
            detail = {"agent": agent, "team": route.team, "how": "round robin"}
            session.add(_event(handoff, "assigned", CAREBOT, detail, now))


async def _next_in_turn(
    session: AsyncSession, team: str, members: tuple[str, ...], now: datetime
) -> str | None:
    """The first available member after the team's last assignee (in ``members``' order,
    wrapping round), recorded as the new last assignee; None when nobody is available."""
    dialect = session.get_bind().dialect.name
    insert = sqlite_insert if dialect == "sqlite" else pg_insert
    await session.execute(
        insert(TeamRotation)
        .values(team=team, last_agent="", updated_at=now)
        .on_conflict_do_nothing(index_elements=["team"])
    )
    # Locked until commit (PostgreSQL): a peer choosing for the same team waits, then reads
    # the agent chosen here.
    rotation = await session.scalar(
        select(TeamRotation)
        .where(TeamRotation.team == team)
        .with_for_update()
        .execution_options(populate_existing=True)  # the committed turn, not a stale copy
    )
    assert rotation is not None
    away = set(
        await session.scalars(
            select(AgentPresence.agent).where(
                AgentPresence.agent.in_(members), AgentPresence.available.is_(False)
            )
        )
    )
    candidates = [m for m in members if m not in away]
    if not candidates:
        return None
    order = list(members)
    last = order.index(rotation.last_agent) if rotation.last_agent in order else -1
    chosen = min(candidates, key=lambda m: (order.index(m) - last - 1) % len(order))
    rotation.last_agent, rotation.updated_at = chosen, now
    return chosen


async def agent_handoff(
    session: AsyncSession,
    conversation_id: int,
    agent: str,
    *,
    reason: str,
    teams: TeamDirectory,
    now: datetime,
) -> Handoff:
    """The handoff of a conversation an agent takes from the bot themselves (``reason``:
    agent-initiated), added to ``session``: it goes to the agent's team when they are in
    exactly one, else to the default team (no rules: nothing was asked), and is routed in the
    audit trail. No round-robin: the agent has it."""
    handoff = Handoff(
        conversation_id=conversation_id, reason=reason, reasons=reason, created_at=now
    )
    session.add(handoff)
    route = teams.agent_route(agent)
    handoff.team, handoff.route = route.team, route.rule_label
    await session.flush()
    detail = {"team": route.team, "rule": route.rule_label}
    session.add(_event(handoff, "routed", CAREBOT, detail, now))
    return handoff


def _event(
    handoff: Handoff, kind: str, actor: str, detail: dict[str, Any], now: datetime
) -> ConversationEvent:
    return ConversationEvent(
        conversation_id=handoff.conversation_id,
        handoff_id=handoff.id,
        kind=kind,
        actor=actor,
        detail=detail,
        created_at=now,
    )


class TeamworkStore:
    def __init__(self, db: Database, *, clock: Clock, teams: TeamDirectory) -> None:
        self._db = db
        self._clock = clock
        self._teams = teams

    async def team_of(self, conversation_id: int) -> str | None:
        """The team of the conversation's open handoff (the default team for one from before
        teams existed); None when no handoff is open."""
        async with self._db.session() as session:
            found = await session.execute(
                select(Handoff.team)
                .where(Handoff.conversation_id == conversation_id, Handoff.resolved_at.is_(None))
                .order_by(Handoff.id.desc())
                .limit(1)
            )
            row = found.first()
        if row is None:
            return None
        return row[0] or self._teams.default_team

    async def transfer(
        self, conversation_id: int, to_team: str, agent: str, note: str = ""
    ) -> Transferred:
        """Move the conversation's open handoff to ``to_team``'s queue, unassigned, waiting for
        one of its members. The customer is not messaged. Refused (StoreError) for a closed
        conversation, one with no open handoff, an unknown team and the team it is with."""
        now, note = self._clock(), note.strip()
        async with self._db.transaction() as session:
            conversation = await session.get(Conversation, conversation_id, with_for_update=True)
            if conversation is None:
                raise StoreError(f"No conversation with id {conversation_id}")
            if conversation.state == ConversationState.CLOSED.value:
                raise StoreError(f"Conversation {conversation_id} is closed; it cannot be moved")
            if not self._teams.has(to_team):
                known = ", ".join(self._teams.names)
                raise StoreError(f"No team is named {to_team!r} (the teams: {known})")
            handoff = await open_handoff(session, conversation_id)
            if handoff is None:
                raise StoreError(
                    f"Conversation {conversation_id} is with the bot; only a conversation "
                    "handed to people can be transferred"
                )
            from_team = handoff.team or self._teams.default_team
            if from_team == to_team:
                raise StoreError(
                    f"Conversation {conversation_id} is already with the "
                    f"{self._teams.label(to_team)} team"
                )
            previous = self._give_up(conversation, now)
            handoff.team, handoff.route = to_team, f"transferred by {agent}"
            handoff.assigned_to = handoff.assigned_at = None
            detail = {"from": from_team, "to": to_team, "note": note}
            if previous:
                detail["agent"] = previous
            session.add(_event(handoff, "transferred", agent, detail, now))
            return Transferred(from_team, to_team, previous)

    def _give_up(self, conversation: Conversation, now: datetime) -> str | None:
        """An agent who had the conversation gives it up: it waits for the new team."""
        if conversation.state != ConversationState.WITH_AGENT.value:
            return None
        previous = conversation.agent
        conversation.state = ConversationState.WAITING_FOR_AGENT.value
        conversation.agent, conversation.updated_at = None, now
        return previous

    async def set_available(self, agent: str, available: bool) -> None:
        """The agent is available for new handoffs, or away (round-robin skips them)."""
        now = self._clock()
        insert = sqlite_insert if self._db.is_sqlite else pg_insert
        statement = insert(AgentPresence).values(agent=agent, available=available, updated_at=now)
        async with self._db.transaction() as session:
            await session.execute(
                statement.on_conflict_do_update(
                    index_elements=["agent"],
                    set_={"available": available, "updated_at": now},
                )
            )

    async def available(self, agent: str) -> bool:
        """Whether the agent is available (one who never said is)."""
        async with self._db.session() as session:
            found = await session.scalar(
                select(AgentPresence.available).where(AgentPresence.agent == agent)
            )
        return True if found is None else bool(found)

    async def presence(self) -> dict[str, bool]:
        """Every agent who said whether they are available, and what they said."""
        async with self._db.session() as session:
            rows = (
                await session.execute(select(AgentPresence.agent, AgentPresence.available))
            ).all()
        return {agent: bool(available) for agent, available in rows}

    async def events(self, conversation_id: int) -> list[AuditEvent]:
        """The conversation's audit trail, oldest first."""
        async with self._db.session() as session:
            return [
                AuditEvent(e.kind, e.actor, dict(e.detail), e.created_at, e.handoff_id)
                for e in await audit_trail(session, conversation_id)
            ]


async def audit_trail(session: AsyncSession, conversation_id: int) -> list[ConversationEvent]:
    """The rows of a conversation's audit trail, oldest first (the inbox's case reads them in
    its own session)."""
    rows = await session.scalars(
        select(ConversationEvent)
        .where(ConversationEvent.conversation_id == conversation_id)
        .order_by(ConversationEvent.id)
    )
    return list(rows)
