"""How one conversation went, by the definitions of :mod:`carebot.insight.metrics`: whether the
bot was involved and resolved it (confirmed or assumed), whether a person resolved it, how fast
people answered its handoffs, what it was about, and its rating."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from carebot.insight.facts import HELPFUL, RATING, ConversationFacts, HandoffFact, SurveyFact
from carebot.models import DecisionKind, Reason

RECOGNISED_BY_HANDOFF = frozenset({Reason.SENSITIVE_INTENT.value, Reason.NO_ANSWER.value})


@dataclass(frozen=True, slots=True)
class FirstResponse:
    """A handoff the bot opened, and the first agent message that answered it."""

    handed_over_at: datetime
    answered_at: datetime
    team: str | None = None  # the handoff's team (None: from before teams existed)

    @property
    def wait(self) -> timedelta:
        return self.answered_at - self.handed_over_at


@dataclass(frozen=True, slots=True)
class Outcome:
    """One conversation of the period and how it went."""

    facts: ConversationFacts
    week: date  # the Monday of its start's week, in the business time zone
    involved: bool
    confirmed_at: datetime | None  # bot resolution, confirmed
    assumed_at: datetime | None  # bot resolution, assumed (only when not confirmed)
    human_resolved_at: datetime | None
    first_responses: tuple[FirstResponse, ...]
    intents: tuple[str, ...]
    ratings: tuple[SurveyFact, ...]  # rating surveys that count as answered

    @property
    def bot_resolved_at(self) -> datetime | None:
        return self.confirmed_at or self.assumed_at

    @property
    def resolver(self) -> str | None:
        """resolver of a conversation: "bot" if bot-resolved, else "human" if human-resolved,
        else None."""
        if self.bot_resolved_at is not None:
            return "bot"
        return "human" if self.human_resolved_at is not None else None

    @property
    def resolved_at(self) -> datetime | None:
        """When its resolver resolved it."""
        return self.bot_resolved_at or self.human_resolved_at

    @property
    def handed_over(self) -> bool:
        return bool(self.facts.handoffs)


class Rules:
    """The per-conversation definitions, with the settings they depend on."""

    def __init__(
        self, *, assume_resolved: timedelta, rating_window: timedelta, zone: ZoneInfo
    ) -> None:
        self.assume_resolved = assume_resolved
        self.rating_window = rating_window
        self.zone = zone

    def outcome(self, facts: ConversationFacts, now: datetime) -> Outcome:
        confirmed = confirmed_at(facts)
        return Outcome(
            facts=facts,
            week=self.week_of(facts.started),
            involved=involved(facts),
            confirmed_at=confirmed,
            assumed_at=None if confirmed else self.assumed_at(facts, now),
            human_resolved_at=human_resolved_at(facts),
            first_responses=first_responses(facts),
            intents=intents(facts),
            ratings=self.ratings(facts),
        )

    def week_of(self, when: datetime) -> date:
        """weeks: buckets Monday-start in [business_hours] timezone, by conversation start."""
        day = when.astimezone(self.zone).date()
        return day - timedelta(days=day.weekday())

    def assumed_at(self, facts: ConversationFacts, now: datetime) -> datetime | None:
        """bot resolution, assumed (only when not confirmed): let A = the conversation's last
        intent answer; no request in the same conversation in (A, A + assume_resolved_hours],
        now >= A + assume_resolved_hours, and no handoff in the conversation at all.
        resolved_at = A."""
        answers = [m.decision.at for m in facts.messages if m.decision and m.decision.intent_answer]
        if not answers or facts.handoffs:
            return None
        last = max(answers)
        until = last + self.assume_resolved
        if now < until:
            return None
        if any(m.request and last < m.at <= until for m in facts.messages):
            return None
        return last

    def ratings(self, facts: ConversationFacts) -> tuple[SurveyFact, ...]:
        """A rating answered later than [survey] reply_hours after asked_at does not count
        (and is not counted as answered)."""
        return tuple(
            s
            for s in facts.surveys
            if s.kind == RATING
            and s.answer is not None
            and s.answered_at is not None
            and s.answered_at - s.asked_at <= self.rating_window
        )


def involved(facts: ConversationFacts) -> bool:
    """involvement: the conversation has >= 1 intent answer (a decision of kind answer that is
    not small talk)."""
    return any(m.decision and m.decision.intent_answer for m in facts.messages)


def confirmed_at(facts: ConversationFacts) -> datetime | None:
    """bot resolution, confirmed: the conversation has a helpful survey answered "yes"
    (resolved_at = answered_at, of the first such answer)."""
    yes = [s.answered_at for s in facts.surveys if s.kind == HELPFUL and s.answer == "yes"]
    return min((at for at in yes if at is not None), default=None)


def human_resolved_at(facts: ConversationFacts) -> datetime | None:
    """human resolution: a handoff of the conversation resolved by an agent (resolved_by not
    null, resolution null); resolved_at = the latest such."""
    return max(
        (h.resolved_at for h in facts.handoffs if h.resolved_by_agent and h.resolved_at),
        default=None,
    )


def first_responses(facts: ConversationFacts) -> tuple[FirstResponse, ...]:
    """first human response: for each handoff opened by the bot, the first agent message in the
    conversation at or after the handoff (and not after its resolution)."""
    found = []
    for handoff in facts.handoffs:
        if not handoff.by_bot:
            continue
        reply = first_reply(facts, handoff)
        if reply is not None:
            found.append(FirstResponse(handoff.at, reply, handoff.team))
    return tuple(found)


def first_reply(facts: ConversationFacts, handoff: HandoffFact) -> datetime | None:
    """The first agent message in the conversation at or after ``handoff`` and not after its
    resolution; None: nobody answered it."""
    end = handoff.resolved_at
    return next(
        (at for at in facts.agent_replies if at >= handoff.at and (end is None or at <= end)),
        None,
    )


def intents(facts: ConversationFacts) -> tuple[str, ...]:
    """top intents: a conversation counts for each distinct intent of its decisions that
    recognised one (kind answer or draft, or handoff whose reasons include sensitive_intent or
    no_answer; small talk excluded), in the order they came."""
    found: dict[str, None] = {}
    for message in facts.messages:
        decision = message.decision
        if decision is None or decision.intent is None or decision.small_talk:
            continue
        recognised = decision.kind in (DecisionKind.ANSWER.value, DecisionKind.DRAFT.value) or (
            decision.kind == DecisionKind.HANDOFF.value
            and RECOGNISED_BY_HANDOFF.intersection(decision.reasons)
        )
        if recognised:
            found.setdefault(decision.intent)
    return tuple(found)
