"""The numbers a care lead sees, as data: one :class:`Report` per period, the same for the
dashboard (``/insights``), the terminal (``carebot report``) and Prometheus (``/metrics``).

Each figure is defined once, in :mod:`carebot.insight.metrics` and in the README ("Insight"),
in the same words. Every rate says what it is over: a :class:`Share` keeps its count and its
total, and the conversations behind the count, so that every number can link to them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta


@dataclass(frozen=True, slots=True)
class Period:
    """Conversations whose first customer message is in ``[since, until)``, on every channel
    or on one; with ``team``, only the conversations handed to that team, and only that
    team's handoffs count (:mod:`carebot.insight.metrics`, "team"); with ``label``, only the
    conversations agents put that label on (in the inbox); with ``visibility`` ("public" or
    "private"), only the conversations of that visibility (None: both)."""

    since: datetime
    until: datetime
    channel: str | None = None
    team: str | None = None
    label: str | None = None
    visibility: str | None = None

    def previous(self) -> Period:
        """The period of the same length just before this one (for the change shown)."""
        length = self.until - self.since
        return Period(
            self.since - length,
            self.since,
            self.channel,
            self.team,
            self.label,
            self.visibility,
        )


@dataclass(frozen=True, slots=True)
class Share:
    """``count`` of ``total`` (conversations, customers, messages or ratings: the metric's
    definition says which). ``ids``: the conversations behind ``count``."""

    count: int
    total: int
    ids: tuple[int, ...] = ()

    @property
    def value(self) -> float | None:
        """count / total; None (shown as "-") when there is nothing to count, never 0."""
        return self.count / self.total if self.total else None


@dataclass(frozen=True, slots=True)
class Spread:
    """The median and 90th percentile of some durations; None when there are no samples
    (shown as "-", never as 0). ``ids``: the conversations sampled."""

    samples: int
    p50: timedelta | None
    p90: timedelta | None
    ids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Money:
    """What durable bot resolutions saved. ``amount`` is None while ``pending``: some bot
    resolutions of the period are younger than the 7 days durability takes to know."""

    amount: float | None
    currency: str
    resolutions: int  # the durable bot resolutions counted
    cost_per_contact: float
    pending: bool


@dataclass(frozen=True, slots=True)
class IntentRow:
    """One intent's conversations (a conversation counts for every intent it was about) and
    how they went."""

    intent: str
    conversations: Share  # of all conversations of the period
    automation: Share  # bot resolutions / this intent's conversations
    handoffs: Share  # handed over / this intent's conversations
    emotional: Share  # customer messages flagged emotional / this intent's customer messages


@dataclass(frozen=True, slots=True)
class WeekRow:
    """One week (Monday to Sunday in the business time zone) of the period."""

    start: date
    conversations: Share
    automation: Share
    handoffs: Share
    handoff_reasons: Mapping[str, Share]  # by main reason
    first_response: Spread
    emotional: Share  # customer messages


@dataclass(frozen=True, slots=True)
class TeamRow:
    """One team's handoffs and how people answered them (a conversation handed to two teams
    counts for each; handoffs from before teams existed are the default team's)."""

    team: str  # the team's name
    label: str  # its display name
    handoffs: Share  # conversations handed to this team / conversations handed over
    first_response: Spread  # first agent reply - the handoff it answers, clock time
    first_response_business: Spread | None  # the same in the team's hours; None: no hours
    within_target: Share | None  # answered within target / judged; None: the team has none
    resolution_time_human: Spread  # resolved - first customer message, resolved by this team
    csat_human: Share  # ratings 4-5 / ratings, of conversations this team resolved

    def figure(self, part: str) -> Share | Spread | None:
        """One of its figures by name (``handoffs``, ``within_target``...); None: unknown."""
        return named_figure(self, part, TEAM_FIGURES)


def named_figure(row: object, part: str, names: tuple[str, ...]) -> Share | Spread | None:
    """A breakdown row's figure by name, when ``part`` is one of its ``names`` and set."""
    if part not in names:
        return None
    found = getattr(row, part)
    return found if isinstance(found, Share | Spread) else None


TEAM_FIGURES = (
    "handoffs",
    "first_response",
    "first_response_business",
    "within_target",
    "resolution_time_human",
    "csat_human",
)


@dataclass(frozen=True, slots=True)
class VisibilityRow:
    """The headline figures of the public or of the private conversations of the period (the
    definitions of :mod:`carebot.insight.metrics`, "by visibility")."""

    visibility: str  # public / private
    conversations: Share  # of this visibility / all conversations of the period
    involvement: Share  # the bot sent an intent answer / conversations of this visibility
    automation: Share  # bot resolutions / conversations of this visibility
    handoffs: Share  # handed over / conversations of this visibility
    first_response: Spread  # first agent reply - the handoff it answers, clock time
    first_response_business: Spread | None  # the same in business hours; None: no hours set
    resolution_time_bot: Spread  # resolved - first customer message
    resolution_time_human: Spread
    csat_bot: Share  # ratings 4-5 / ratings, of bot-resolved conversations
    csat_human: Share

    def figure(self, part: str) -> Share | Spread | None:
        """One of its figures by name (:data:`VISIBILITY_FIGURES`); None: unknown."""
        return named_figure(self, part, VISIBILITY_FIGURES)


VISIBILITY_FIGURES = (
    "conversations",
    "involvement",
    "automation",
    "handoffs",
    "first_response",
    "first_response_business",
    "resolution_time_bot",
    "resolution_time_human",
    "csat_bot",
    "csat_human",
)


@dataclass(frozen=True, slots=True)
class PublicMessages:
    """What came in public and what was done with it: the public messages (comments,
    mentions) of the period's public conversations, those with nothing asked included
    (:mod:`carebot.insight.metrics`, "public messages"). Every share counts messages over
    ``messages.total``; its ids are the conversations they are in."""

    messages: Share = Share(0, 0)  # every public message (count = total)
    categories: Mapping[str, Share] = field(default_factory=dict)  # by the classifier's class
    answered_public: Share = Share(0, 0)  # the bot posted an intent answer under it
    thanked: Share = Share(0, 0)  # the bot posted [public] thanks under it (praise)
    left: Share = Share(0, 0)  # recorded, nothing to answer (decision kind leave)
    handed_over: Share = Share(0, 0)  # its decision handed it to a person
    moved_private_bot: Share = Share(0, 0)  # carebot sent its private reply
    moved_private_agents: Share = Share(0, 0)  # an agent sent its private reply
    hidden_by_carebot: Share = Share(0, 0)  # carebot hid it (spam, [public] hide_spam)
    hidden_by_agents: Share = Share(0, 0)  # an agent hid it
    unhidden_by_agents: Share = Share(0, 0)  # carebot hid it and an agent unhid it since
    shadowed: Share = Share(0, 0)  # shadow mode held back what carebot would have done
    shadowed_actions: Mapping[str, Share] = field(default_factory=dict)  # by would-have kind

    def figure(self, part: str) -> Share | None:
        """``messages``, ``answered_public``..., ``category.<class>`` or
        ``shadowed_action.<kind>``; None: unknown."""
        head, _, rest = part.partition(".")
        if head == "category" and rest:
            return self.categories.get(rest)
        if head == "shadowed_action" and rest:
            return self.shadowed_actions.get(rest)
        if rest or head not in PUBLIC_FIGURES:
            return None
        found = getattr(self, head)
        return found if isinstance(found, Share) else None


PUBLIC_FIGURES = (
    "messages",
    "answered_public",
    "thanked",
    "left",
    "handed_over",
    "moved_private_bot",
    "moved_private_agents",
    "hidden_by_carebot",
    "hidden_by_agents",
    "unhidden_by_agents",
    "shadowed",
)


@dataclass(frozen=True, slots=True)
class ConversationRow:
    """One conversation, for the export a lead joins to other data (``carebot report
    conversations --format csv``)."""

    id: int
    customer_id: int
    channel: str
    started: datetime
    resolver: str | None  # bot / human / None (not resolved)
    first_handoff_reason: str | None
    resolved_at: datetime | None
    first_human_response: timedelta | None
    csat: int | None
    intents: tuple[str, ...]
    visibility: str = "private"  # public / private


@dataclass(frozen=True, slots=True)
class Report:
    """The figures of one period; see the README's "Insight" section for each definition."""

    period: Period
    generated_at: datetime
    conversations: Share  # count = total = the conversations of the period
    involvement: Share  # the bot sent at least one intent answer / conversations
    confirmed: Share  # bot resolutions, confirmed ("yes") / conversations
    assumed: Share  # bot resolutions, assumed / conversations
    automation: Share  # bot resolutions / conversations
    resolution_rate: Share  # bot resolutions / involved conversations
    durable: Share  # durable / bot resolutions at least 7 days old
    handoffs: Share  # handed over / conversations
    handoff_main_reason: Mapping[str, Share]  # by the first handoff's reason / conversations
    handoff_any_reason: Mapping[str, Share]  # by every reason of any handoff / conversations
    not_helpful: Share  # "no" / answers to "did that answer your question?"
    repeat_contact: Share  # customers who came back within 7 days / customers with a resolution
    first_response: Spread  # first agent reply - the handoff it answers, clock time
    first_response_business: Spread | None  # the same in business hours; None: no hours set
    resolution_time_bot: Spread  # resolved - first customer message
    resolution_time_human: Spread
    csat_bot: Share  # ratings 4-5 / ratings, of bot-resolved conversations
    csat_human: Share
    rating_response_bot: Share  # ratings / rating requests sent
    rating_response_human: Share
    cost_saved: Money
    emotional: Share  # customer messages flagged emotional / customer messages decided on
    top_intents: tuple[IntentRow, ...]
    weeks: tuple[WeekRow, ...]
    notes: tuple[str, ...] = field(default=())  # what a reader should know (e.g. pending)
    # handoffs answered within their team's first-response target / handoffs judged (of
    # teams with a target only)
    within_target: Share = Share(0, 0)
    teams: tuple[TeamRow, ...] = ()  # the human figures by team, teams in config order
    # the headline figures of the public and of the private conversations (only the one asked
    # for when the period names a visibility)
    visibilities: tuple[VisibilityRow, ...] = ()
    public: PublicMessages = PublicMessages()  # what came in public and what was done with it

    def lookup(self, key: str) -> Share | Spread | None:
        """A figure by its key: a field name (``automation``), or a breakdown's
        ``handoff_main_reason.emotional`` / ``handoff_any_reason.emotional`` /
        ``intent.<id>.automation`` (also ``conversations``, ``handoffs``, ``emotional``) /
        ``team.<name>.within_target`` (any of :data:`TEAM_FIGURES`) /
        ``visibility.<public|private>.automation`` (any of :data:`VISIBILITY_FIGURES`) /
        ``public.hidden_by_carebot``, ``public.category.<class>`` (:meth:`PublicMessages.figure`).
        None for an unknown key."""
        head, _, rest = key.partition(".")
        if head == "visibility" and rest:
            name, _, part = rest.partition(".")
            side = next((v for v in self.visibilities if v.visibility == name), None)
            return None if side is None else side.figure(part)
        if head == "public" and rest:
            return self.public.figure(rest)
        if head == "team" and rest:
            name, _, part = rest.partition(".")
            team = next((t for t in self.teams if t.team == name), None)
            return None if team is None else team.figure(part)
        if head in ("handoff_main_reason", "handoff_any_reason") and rest:
            found = getattr(self, head).get(rest)
            return found if isinstance(found, Share) else None
        if head == "intent" and rest:
            intent, _, part = rest.rpartition(".")
            for row in self.top_intents:
                if row.intent == intent and part in ("conversations", "automation", "handoffs"):
                    return getattr(row, part)
                if row.intent == intent and part == "emotional":
                    return row.emotional
            return None
        if rest or head not in self.__dataclass_fields__:
            return None
        value = getattr(self, head)
        return value if isinstance(value, Share | Spread) else None


@dataclass(frozen=True, slots=True)
class Topic:
    """A group of customer messages the bot did not answer, about the same thing.

    ``near_intent`` is the verdict: the existing intent its messages score close to ("add these
    as examples of it"), or None: a new topic ("no intent covers this")."""

    keywords: tuple[str, ...]  # c-TF-IDF over its messages, most telling first
    examples: tuple[str, ...]  # up to three of its messages
    messages: int
    customers: int
    last_seen: datetime
    near_intent: str | None
    near_score: float | None  # how close its messages score to near_intent (median)
    message_ids: tuple[int, ...] = ()
    conversation_ids: tuple[int, ...] = ()
