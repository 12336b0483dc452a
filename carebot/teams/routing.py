"""Which team a handoff goes to: the ``[[routing.rules]]``, first match wins, else the default
team (README, "Teams").

A rule matches when every condition it gives holds; a condition given as a list holds when any
of its items does, and an empty list is no condition. ``intents`` and ``intent_tags`` are one
condition: the handoff's intent is one of ``intents`` *or* carries one of ``intent_tags``.
``words`` are whole words or phrases, matched case-insensitively anywhere in the customer's
message ("refund" matches "Refund please!" but not "refunded"; the phrase "credit card" matches
"my Credit  Card" whatever the spacing). The router is pure: it reads only the facts it is
given, so the store gathers them (the customer's e-mail domains, the message) and the caller
adds what only it knows (the intent's tags).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from carebot.config import RouteRule, Settings

DEFAULT_ROUTE = "default team"  # the route of a handoff no rule matched


@dataclass(frozen=True, slots=True)
class RouteFacts:
    """What routing knows of a handoff: the best intent and its tags, the channel, the reason
    codes, the customer's message, whether it was public (a comment others can read) or
    private, the customer (number, the domains of their e-mail addresses) and the language they
    write in."""

    intent: str | None = None
    intent_tags: tuple[str, ...] = ()
    channel: str = ""
    reasons: tuple[str, ...] = ()
    text: str = ""
    public: bool = False
    customer_id: int | None = None
    email_domains: tuple[str, ...] = ()
    language: str | None = None  # detected in the customer's latest message placed


@dataclass(frozen=True, slots=True)
class Route:
    """The team a handoff goes to, and why, as agents read it ("rule 2: billing questions",
    "default team")."""

    team: str
    rule_label: str


def rule_label(number: int, rule: RouteRule) -> str:
    """How agents see a rule: "rule 2: billing questions", or "rule 2" for a rule with no name."""
    return f"rule {number}: {rule.name}" if rule.name.strip() else f"rule {number}"


def words_pattern(words: Sequence[str]) -> re.Pattern[str] | None:
    """One case-insensitive pattern for whole words and phrases (None: no words)."""
    phrases = [w.split() for w in words if w.strip()]
    if not phrases:
        return None
    alternatives = "|".join(r"\s+".join(re.escape(part) for part in p) for p in phrases)
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


def email_domain(address: str) -> str:
    """The domain of an e-mail address, lower-cased ("" when it has none)."""
    _, at, domain = address.strip().rpartition("@")
    return domain.lower().rstrip(".") if at else ""


class _Compiled:
    """One rule, ready to test facts against."""

    def __init__(self, number: int, rule: RouteRule) -> None:
        self.rule = rule
        self.route = Route(rule.team, rule_label(number, rule))
        self.words = words_pattern(rule.words)
        self.domains = frozenset(d.strip().lstrip("@").lower() for d in rule.email_domains)

    def matches(self, facts: RouteFacts) -> bool:
        rule = self.rule
        return (
            self._intent(facts)
            and (not rule.channels or facts.channel in rule.channels)
            and (not rule.reasons or any(r in rule.reasons for r in facts.reasons))
            and (self.words is None or self.words.search(facts.text) is not None)
            and (rule.visibility == "any" or (rule.visibility == "public") == facts.public)
            and (not rule.customer_ids or facts.customer_id in rule.customer_ids)
            and (not self.domains or any(d.lower() in self.domains for d in facts.email_domains))
            and (not rule.languages or facts.language in rule.languages)
        )

    def _intent(self, facts: RouteFacts) -> bool:
        rule = self.rule
        if not rule.intents and not rule.intent_tags:
            return True
        if facts.intent is not None and facts.intent in rule.intents:
            return True
        return any(tag in rule.intent_tags for tag in facts.intent_tags)


class Router:
    """The routing rules in order, and the team of a handoff none of them matches."""

    def __init__(self, rules: Sequence[RouteRule], default_team: str) -> None:
        self._rules = [_Compiled(n, rule) for n, rule in enumerate(rules, start=1)]
        self.default = Route(default_team, DEFAULT_ROUTE)

    @classmethod
    def configured(cls, settings: Settings) -> Router:
        return cls(settings.routing.rules, settings.default_team().name)

    def route(self, facts: RouteFacts) -> Route:
        """The first rule that matches ``facts``, else the default team."""
        return next((c.route for c in self._rules if c.matches(facts)), self.default)
