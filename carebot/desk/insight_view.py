"""A :class:`~carebot.insight.report.Report` laid out for ``/insights``: the headline cards,
the top intents, the handoff reasons and the unanswered topics (the weekly charts are
:mod:`carebot.desk.insight_charts`). Every number carries the key of the figure behind it
(:func:`lookup`), which the page turns into a link to those conversations.

Nothing here computes a metric: the numbers are the report's, only formatted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Literal
from zoneinfo import ZoneInfo

from carebot.desk import insight_format as fmt
from carebot.desk.insight_format import Change
from carebot.insight.report import IntentRow, Report, Share, Spread, TeamRow, Topic

Link = Callable[[str], str]
_WEEK_FIGURES = ("conversations", "automation", "handoffs", "emotional", "first_response")


def lookup(report: Report, key: str) -> Share | Spread | None:
    """A figure by its key: :meth:`Report.lookup`'s keys, and a week's
    ``week.<monday>.<conversations|automation|handoffs|emotional|first_response>`` or
    ``week.<monday>.handoff_reason.<reason>``. None for an unknown key."""
    head, _, rest = key.partition(".")
    if head != "week":
        return report.lookup(key)
    start, _, part = rest.partition(".")
    row = next((w for w in report.weeks if w.start.isoformat() == start), None)
    if row is None:
        return None
    if part in _WEEK_FIGURES:
        found = getattr(row, part)
        return found if isinstance(found, Share | Spread) else None
    kind, _, reason = part.partition(".")
    return row.handoff_reasons.get(reason) if kind == "handoff_reason" else None


_TITLES = {
    "conversations": "Conversations",
    "involvement": "The bot sent an intent answer",
    "confirmed": "Bot resolutions, confirmed by the customer",
    "assumed": "Bot resolutions, assumed",
    "automation": "Bot resolutions",
    "resolution_rate": "Bot resolutions (of involved conversations)",
    "durable": "Durable bot resolutions",
    "handoffs": "Handed over",
    "not_helpful": "“No” to “did that answer your question?”",
    "repeat_contact": "Resolved, and the customer came back within 7 days",
    "first_response": "First human response",
    "first_response_business": "First human response, business hours",
    "resolution_time_bot": "Resolved by the bot",
    "resolution_time_human": "Resolved by a person",
    "csat_bot": "Bot-resolved, rated 4 or 5",
    "csat_human": "Human-resolved, rated 4 or 5",
    "rating_response_bot": "Bot-resolved, rated",
    "rating_response_human": "Human-resolved, rated",
    "emotional": "Customer messages flagged emotional",
    "within_target": "Answered within the team's first-response target",
}
_TEAM_TITLES = {
    "handoffs": "handed over",
    "first_response": "first human response",
    "first_response_business": "first human response, the team's business hours",
    "within_target": "answered within target",
    "resolution_time_human": "resolved by a person",
    "csat_human": "human-resolved, rated 4 or 5",
}


def describe(key: str, intent_title: Callable[[str], str] = str) -> str:
    """A figure's key in words, as the title of its conversations' list."""
    head, _, rest = key.partition(".")
    if head == "handoff_main_reason":
        return f"Handed over, main reason: {reason_label(rest)}"
    if head == "handoff_any_reason":
        return f"Handed over at least once for: {reason_label(rest)}"
    if head == "intent":
        intent, _, part = rest.rpartition(".")
        return f"Intent “{intent_title(intent)}”: {_TITLES.get(part, part).lower()}"
    if head == "team":
        name, _, part = rest.partition(".")
        return f"Team {name}: {_TEAM_TITLES.get(part, part)}"
    if head == "week":
        start, _, part = rest.partition(".")
        what = _TITLES.get(part) or describe(part.replace("handoff_reason", "handoff_main_reason"))
        return f"Week of {fmt.day(date.fromisoformat(start))}: {what[:1].lower()}{what[1:]}"
    return _TITLES.get(key, key)


# The cards of one rate: title, definition, what it is out of, and +1 when a higher figure is
# better (-1 lower, 0 neither).
_RATE_CARDS: dict[str, tuple[str, str, str, int]] = {
    "involvement": (
        "Involvement",
        "The bot sent at least one intent answer.",
        "conversations",
        1,
    ),
    "durable": (
        "Durable resolution",
        "No new message from the customer, on any channel, for 7 days.",
        "bot resolutions 7+ days old",
        1,
    ),
    "handoffs": ("Handoff rate", "Handed to a person at least once.", "conversations", -1),
    "repeat_contact": (
        "Repeat contact",
        "Came back, on any channel, within 7 days of a resolution.",
        "customers",
        -1,
    ),
    "not_helpful": (
        "Not helpful",
        "“No” to “did that answer your question?”.",
        "answers",
        -1,
    ),
    "emotional": ("Emotional", "Customer messages flagged emotional.", "customer messages", 0),
}


@dataclass(frozen=True, slots=True)
class Figure:
    """One number as shown: ``text`` ("40.4%"), what it is out of (``of``: "412 of 1,020
    conversations"), the link to its conversations and its change against the previous period."""

    label: str
    text: str
    of: str
    key: str
    href: str
    change: Change | None = None


@dataclass(frozen=True, slots=True)
class Card:
    """A headline: one or two big figures side by side, and smaller ones under them."""

    id: str
    title: str
    definition: str
    figures: tuple[Figure, ...]
    details: tuple[Figure, ...] = ()


@dataclass(frozen=True, slots=True)
class Dashboard:
    """A period's report and the previous period's, laid out."""

    report: Report
    previous: Report
    link: Link  # a figure's key -> the URL of its conversations
    intent_title: Callable[[str], str] = field(default=lambda intent: intent)

    def figure(
        self, label: str, key: str, text: str, of: str, change: Change | None = None
    ) -> Figure:
        return Figure(label, text, of, key, self.link(key), change)

    def rate(self, label: str, key: str, unit: str, better: int) -> Figure:
        """A share of the report as a percentage, with its count and its change."""
        now, before = self.report.lookup(key), self.previous.lookup(key)
        assert isinstance(now, Share) and isinstance(before, Share), key
        change = fmt.rate_change(now, before, better)
        return self.figure(label, key, fmt.percent(now.value), fmt.share_of(now, unit), change)

    def spread(self, label: str, key: str, which: Literal["p50", "p90"]) -> Figure:
        """A duration of the report (median or 90th percentile), with its change."""
        now, before = self.report.lookup(key), self.previous.lookup(key)
        pick = fmt.spread_p50 if which == "p50" else fmt.spread_p90
        now_spread = now if isinstance(now, Spread) else None
        before_spread = before if isinstance(before, Spread) else None
        if now_spread is None:
            of = "no business hours configured" if key.endswith("_business") else "no samples"
        else:
            of = f"{fmt.count(now_spread.samples)} sampled"
        change = fmt.time_change(pick(now_spread), pick(before_spread))
        return self.figure(label, key, fmt.duration(pick(now_spread)), of, change)

    def cards(self) -> tuple[Card, ...]:
        """The headline numbers, in the order a lead reads them."""
        return (
            self._conversations_card(),
            self._rate_card("involvement"),
            self._automation_card(),
            self._rate_card("durable"),
            self._rate_card("handoffs"),
            Card(
                "first-response",
                "First human response",
                "First agent reply after the handoff it answers.",
                (
                    self.spread("Median", "first_response", "p50"),
                    self.spread("90th percentile", "first_response", "p90"),
                ),
                (
                    self.spread("Business hours, median", "first_response_business", "p50"),
                    self.spread("Business hours, 90th", "first_response_business", "p90"),
                ),
            ),
            Card(
                "resolution-time",
                "Time to resolution",
                "Resolved minus the first customer message (median).",
                (
                    self.spread("Bot", "resolution_time_bot", "p50"),
                    self.spread("Human", "resolution_time_human", "p50"),
                ),
            ),
            self._csat_card(),
            self._cost_card(),
            self._rate_card("repeat_contact"),
            self._rate_card("not_helpful"),
            self._rate_card("emotional"),
        )

    def _rate_card(self, key: str) -> Card:
        title, definition, unit, better = _RATE_CARDS[key]
        return Card(key.replace("_", "-"), title, definition, (self.rate("", key, unit, better),))

    def _conversations_card(self) -> Card:
        now, before = self.report.conversations.count, self.previous.conversations.count
        figure = self.figure(
            "",
            "conversations",
            fmt.count(now),
            "conversations started in the period",
            fmt.count_change(now, before),
        )
        return Card(
            "conversations", "Conversations", "First customer message in the period.", (figure,)
        )

    def _automation_card(self) -> Card:
        return Card(
            "automation",
            "Automation",
            "Bot resolutions, confirmed and assumed, over all conversations.",
            (self.rate("", "automation", "conversations", 1),),
            (
                self.rate("Confirmed", "confirmed", "conversations", 1),
                self.rate("Assumed", "assumed", "conversations", 1),
                self.rate("Resolution rate", "resolution_rate", "involved conversations", 1),
            ),
        )

    def _csat_card(self) -> Card:
        return Card(
            "csat",
            "CSAT",
            "Ratings of 4 or 5 over ratings, never mixing bot and human.",
            (
                self.rate("Bot-resolved", "csat_bot", "ratings", 1),
                self.rate("Human-resolved", "csat_human", "ratings", 1),
            ),
            (
                self.rate("Bot response rate", "rating_response_bot", "requests", 1),
                self.rate("Human response rate", "rating_response_human", "requests", 1),
            ),
        )

    def _cost_card(self) -> Card:
        saved = self.report.cost_saved
        if saved.pending:
            of = "known once the period's bot resolutions are 7 days old"
        else:
            of = (
                f"{fmt.count(saved.resolutions)} durable resolutions at "
                f"{saved.cost_per_contact:,.2f} {saved.currency} each"
            )
        change = fmt.money_change(saved, self.previous.cost_saved)
        return Card(
            "cost-saved",
            "Cost saved",
            "Durable bot resolutions times the cost of a contact with a person.",
            (self.figure("", "durable", fmt.money(saved), of, change),),
        )

    # --- tables --------------------------------------------------------------------------

    def intents(self) -> tuple[tuple[str, tuple[Figure, ...]], ...]:
        """Top intents: each intent's title and its conversations, automation, handoff rate
        and emotional share."""
        return tuple(
            (self.intent_title(row.intent), self._intent_cells(row))
            for row in self.report.top_intents
        )

    def _intent_cells(self, row: IntentRow) -> tuple[Figure, ...]:
        base = f"intent.{row.intent}"
        shares = (
            (row.conversations, "conversations", "conversations", True),
            (row.automation, "automation", "conversations", False),
            (row.handoffs, "handoffs", "conversations", False),
            (row.emotional, "emotional", "customer messages", False),
        )
        cells = []
        for share, part, unit, as_count in shares:
            text = fmt.count(share.count) if as_count else fmt.percent(share.value)
            cells.append(self.figure("", f"{base}.{part}", text, fmt.share_of(share, unit)))
        return tuple(cells)

    def handoff_reasons(self) -> tuple[tuple[str, str, Figure | None, Figure | None], ...]:
        """Each reason: its code, its words, the conversations it was the main reason of and
        those any handoff gave it for (both over all conversations; None: not one)."""
        r = self.report
        reasons = sorted(
            set(r.handoff_main_reason) | set(r.handoff_any_reason),
            key=lambda code: (-_count(r.handoff_main_reason.get(code)), code),
        )
        rows = []
        for code in reasons:
            main = r.handoff_main_reason.get(code)
            rows.append(
                (
                    code,
                    reason_label(code),
                    self._share_cell(f"handoff_main_reason.{code}", main),
                    self._share_cell(f"handoff_any_reason.{code}", r.handoff_any_reason.get(code)),
                )
            )
        return tuple(rows)

    def teams(self) -> tuple[tuple[TeamRow, tuple[Figure | None, ...]], ...]:
        """The human figures by team: each team and its handoffs, answered within target
        (None: the team has no target), first response (median and 90th percentile, and the
        median in the team's hours), time to a person's resolution and human CSAT."""
        return tuple((row, self._team_cells(row)) for row in self.report.teams)

    def _team_cells(self, row: TeamRow) -> tuple[Figure | None, ...]:
        base = f"team.{row.team}"
        handoffs = self.figure(
            "",
            f"{base}.handoffs",
            f"{fmt.count(row.handoffs.count)} ({fmt.percent(row.handoffs.value)})",
            fmt.share_of(row.handoffs, "conversations handed over"),
        )
        within = None
        if row.within_target is not None:
            within = self._percent(f"{base}.within_target", row.within_target, "handoffs judged")
        return (
            handoffs,
            within,
            self._time(f"{base}.first_response", row.first_response, "p50"),
            self._time(f"{base}.first_response", row.first_response, "p90"),
            self._time(f"{base}.first_response_business", row.first_response_business, "p50"),
            self._time(f"{base}.resolution_time_human", row.resolution_time_human, "p50"),
            self._percent(f"{base}.csat_human", row.csat_human, "ratings"),
        )

    def within_target(self) -> Figure:
        """Answered within target, over every team with a target."""
        return self._percent("within_target", self.report.within_target, "handoffs judged")

    def _percent(self, key: str, share: Share, unit: str) -> Figure:
        return self.figure("", key, fmt.percent(share.value), fmt.share_of(share, unit))

    def _time(self, key: str, spread: Spread | None, which: Literal["p50", "p90"]) -> Figure:
        pick = fmt.spread_p50 if which == "p50" else fmt.spread_p90
        if spread is None:
            of = "no business hours configured"
        else:
            of = f"{fmt.count(spread.samples)} sampled"
        return self.figure("", key, fmt.duration(pick(spread)), of)

    def _share_cell(self, key: str, share: Share | None) -> Figure | None:
        if share is None:
            return None
        text = f"{fmt.count(share.count)} ({fmt.percent(share.value)})"
        return self.figure("", key, text, fmt.share_of(share, "conversations"))


def _count(share: Share | None) -> int:
    return 0 if share is None else share.count


def reason_label(code: str) -> str:
    """A reason code as a short label: ``asked_for_human`` -> "asked for human"."""
    return code.replace("_", " ")


@dataclass(frozen=True, slots=True)
class TopicView:
    """An unanswered topic as shown, with its verdict in words."""

    ref: str
    keywords: tuple[str, ...]
    examples: tuple[str, ...]
    messages: str
    customers: str
    last_seen: str
    verdict: str
    near: bool
    href: str


def topic_ref(topic: Topic) -> str:
    """What names a topic in a link: its keywords (a topic is recomputed, not stored)."""
    return ",".join(topic.keywords)


def topic_view(
    topic: Topic, href: str, intent_title: Callable[[str], str], zone: ZoneInfo
) -> TopicView:
    """A topic with its verdict: near an intent, "add these as examples of X"; new, "no intent
    covers this"."""
    if topic.near_intent is not None:
        verdict = f"Add these as examples of “{intent_title(topic.near_intent)}”"
    else:
        verdict = "No intent covers this"
    return TopicView(
        ref=topic_ref(topic),
        keywords=topic.keywords,
        examples=topic.examples[:3],
        messages=fmt.plural(topic.messages, "message"),
        customers=fmt.plural(topic.customers, "customer"),
        last_seen=fmt.moment(topic.last_seen, zone),
        verdict=verdict,
        near=topic.near_intent is not None,
        href=href,
    )
