"""The check of the routing rules (``carebot routes check``): every intent, intent tag, channel
and reason code a rule names exists, and every rule can match some handoff.

A rule can never match when an earlier rule matches every handoff it would: each condition of
the earlier rule is absent or at least as wide (its lists hold every item of the later rule's;
for intents, every intent the later rule names or tags). A rule whose team has no members and
no Slack channel sends its handoffs to no one in particular. The configuration itself (team
names, members) is checked when it loads (:meth:`carebot.config.Settings._teams_fit_together`).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from carebot.config import RouteRule, Settings
from carebot.models import Reason
from carebot.teams.routing import rule_label

# The channels carebot has (adapters/; "terminal" is `carebot chat`'s).
CHANNELS = (
    "telegram",
    "whatsapp",
    "messenger",
    "instagram",
    "x",
    "webchat",
    "webhook",
    "terminal",
)
REASONS = tuple(reason.value for reason in Reason)

IntentTags = Mapping[str, Sequence[str]]  # the loaded intents: id -> tags


@dataclass(frozen=True, slots=True)
class RouteProblem:
    """Something wrong with one rule: its number, the key at fault, and what to do."""

    number: int
    rule: RouteRule
    key: str
    message: str

    def __str__(self) -> str:
        key = f"{self.key}: " if self.key else ""  # no key: the rule as a whole
        return f"[[routing.rules]] {rule_label(self.number, self.rule)}: {key}{self.message}"


def check_routes(settings: Settings, intents: IntentTags) -> list[RouteProblem]:
    """Every problem of the ``[[routing.rules]]``, in rule order."""
    rules = settings.routing.rules
    problems: list[RouteProblem] = []
    for number, rule in enumerate(rules, start=1):
        found = [
            *_unknown_names(rule, intents),
            *_empty_words(rule),
            *_shadowed(number, rule, rules, intents),
            *_nobody(rule, settings),
        ]
        problems += [RouteProblem(number, rule, key, message) for key, message in found]
    return problems


Found = Iterable[tuple[str, str]]  # (key, message)


def _unknown_names(rule: RouteRule, intents: IntentTags) -> Found:
    tags = sorted({tag for ts in intents.values() for tag in ts})
    for intent in rule.intents:
        if intent not in intents:
            yield "intents", f"no intent is named {intent!r}{_hint(intent, intents)}"
    for tag in rule.intent_tags:
        if tag not in tags:
            known = f" (tags in use: {', '.join(tags)})" if tags else " (no intent has tags)"
            yield "intent_tags", f"no intent has the tag {tag!r}{_hint(tag, tags) or known}"
    for channel in rule.channels:
        if channel not in CHANNELS:
            yield "channels", f"unknown channel {channel!r} (channels: {', '.join(CHANNELS)})"
    for reason in rule.reasons:
        if reason not in REASONS:
            yield "reasons", f"unknown reason code {reason!r} (codes: {', '.join(REASONS)})"


def _hint(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _empty_words(rule: RouteRule) -> Found:
    if any(not word.strip() for word in rule.words):
        yield "words", "an empty word matches nothing; remove it"


def _shadowed(
    number: int, rule: RouteRule, rules: Sequence[RouteRule], intents: IntentTags
) -> Found:
    for earlier_number, earlier in enumerate(rules[: number - 1], start=1):
        if _covers(earlier, rule, intents):
            yield (
                "",
                f"can never match: {rule_label(earlier_number, earlier)} comes first and "
                "matches every handoff this rule would (its conditions are this rule's, or "
                "wider); move this rule above it, or narrow that one",
            )
            return


def _nobody(rule: RouteRule, settings: Settings) -> Found:
    team = settings.team(rule.team)
    if not settings.team_members(team.name) and not settings.slack_channel(team.name):
        yield (
            "team",
            f"team {team.name!r} has no members and no Slack channel, so no one is told of its "
            "handoffs or answers for them: give it members (or list it in agents' teams), or "
            "a slack_channel",
        )


def _covers(first: RouteRule, later: RouteRule, intents: IntentTags) -> bool:
    """Whether every handoff ``later`` matches is matched by ``first``."""
    if first.visibility != "any" and first.visibility != later.visibility:
        return False
    if first.intents or first.intent_tags:
        if not (later.intents or later.intent_tags):
            return False
        if not _intent_set(later, intents) <= _intent_set(first, intents):
            return False
    lists: Sequence[Callable[[RouteRule], Iterable[object]]] = (
        lambda r: r.channels,
        lambda r: r.reasons,
        lambda r: (" ".join(w.lower().split()) for w in r.words),
        lambda r: r.customer_ids,
        lambda r: (d.strip().lstrip("@").lower() for d in r.email_domains),
        lambda r: r.languages,
    )
    for values in lists:
        wide, narrow = set(values(first)), set(values(later))
        if wide and not (narrow and narrow <= wide):
            return False
    return True


def _intent_set(rule: RouteRule, intents: IntentTags) -> set[str]:
    """The intents a rule's intent condition accepts: those it names, and those with its tags."""
    tagged = {i for i, tags in intents.items() if set(tags) & set(rule.intent_tags)}
    return set(rule.intents) | tagged


def route_table(settings: Settings) -> list[str]:
    """The rules in order, as lines ("rule 1: billing questions -> billing")."""
    lines = [
        f"{rule_label(n, rule)} -> {rule.team}"
        for n, rule in enumerate(settings.routing.rules, start=1)
    ]
    return [*lines, f"otherwise -> {settings.default_team().name} (default team)"]
