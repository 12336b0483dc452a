"""The period-level figures of :mod:`carebot.insight.metrics`, over the outcomes of the
period's conversations (:mod:`carebot.insight.outcomes`); each defined as the module docstring
of :mod:`carebot.insight.metrics` says, in the same words."""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta

from carebot.insight.facts import RATING, Followups
from carebot.insight.outcomes import Outcome
from carebot.insight.report import Share, Spread

DURABLE_DAYS = timedelta(days=7)  # how long a bot resolution must hold to be durable
REPEAT_DAYS = timedelta(days=7)  # how soon a new conversation is a repeat contact
EMOTIONAL = "emotional"


def share(outcomes: Iterable[Outcome], counted: Callable[[Outcome], bool]) -> Share:
    """``counted`` ones of ``outcomes`` over all of them, with the counted ones' ids."""
    everyone = list(outcomes)
    ids = tuple(o.facts.id for o in everyone if counted(o))
    return Share(len(ids), len(everyone), ids)


def durable_share(outcomes: list[Outcome], followups: Followups, now: datetime) -> Share:
    """durable: a bot resolution with no request from the same customer (customer_id; any
    conversation, any channel) in (resolved_at, resolved_at + 7 days], over bot resolutions
    with resolved_at <= now - 7 days."""
    old = [o for o in outcomes if o.bot_resolved_at and o.bot_resolved_at <= now - DURABLE_DAYS]
    return share(old, lambda o: not _asked_again(o, followups))


def _asked_again(o: Outcome, followups: Followups) -> bool:
    """A request of the customer in (resolved_at, resolved_at + 7 days]."""
    resolved = o.bot_resolved_at or o.facts.started
    times = followups.requests.get(o.facts.customer_id, [])
    following = bisect_right(times, resolved)
    return following < len(times) and times[following] <= resolved + DURABLE_DAYS


def main_reasons(outcomes: list[Outcome], total: int) -> dict[str, Share]:
    """handoff rate by main reason: the first handoff's reason / conversations."""
    found: dict[str, list[int]] = {}
    for o in outcomes:
        if o.facts.handoffs:
            found.setdefault(o.facts.handoffs[0].reason, []).append(o.facts.id)
    return _by_reason(found, total)


# Codes triage also records that say how the bot read the message, not why it handed over
# ("asked_for_human,confident": the talk-to-a-person intent was recognised with confidence).
NOT_HANDOFF_REASONS = frozenset({"confident", "clarified"})


def any_reasons(outcomes: list[Outcome]) -> dict[str, Share]:
    """handoff rate by any reason: every reason in any handoff's reasons (but "confident" and
    "clarified", which are no reasons to hand over), each conversation once per reason /
    conversations."""
    found: dict[str, list[int]] = {}
    for o in outcomes:
        reasons = {r for h in o.facts.handoffs for r in (h.reasons or (h.reason,))}
        reasons -= NOT_HANDOFF_REASONS
        for reason in reasons:
            found.setdefault(reason, []).append(o.facts.id)
    return _by_reason(found, len(outcomes))


def _by_reason(found: Mapping[str, list[int]], total: int) -> dict[str, Share]:
    """Most conversations first, then by reason."""
    order = sorted(found, key=lambda reason: (-len(found[reason]), reason))
    return {r: Share(len(found[r]), total, tuple(found[r])) for r in order}


def not_helpful(outcomes: list[Outcome]) -> Share:
    """not_helpful: helpful surveys answered "no" / helpful surveys answered, of the period's
    conversations."""
    answered = [
        (s.answer, o.facts.id)
        for o in outcomes
        for s in o.facts.surveys
        if s.kind != RATING and s.answer is not None
    ]
    ids = tuple(dict.fromkeys(cid for answer, cid in answered if answer == "no"))
    return Share(sum(answer == "no" for answer, _ in answered), len(answered), ids)


def repeat_contact(outcomes: list[Outcome], followups: Followups) -> Share:
    """repeat contact: customers with a resolved (bot or human) conversation in the period who
    start another conversation (any channel, not survey-only) within 7 days after that
    resolution, over customers with a resolved conversation in the period; ids = those later
    conversations."""
    customers: set[int] = set()
    returned: set[int] = set()
    later: dict[int, datetime] = {}
    for o in outcomes:
        resolved, customer = o.resolved_at, o.facts.customer_id
        if resolved is None:
            continue
        customers.add(customer)
        for started, cid in followups.started.get(customer, []):
            if resolved < started <= resolved + REPEAT_DAYS:
                returned.add(customer)
                later[cid] = started
    ids = tuple(sorted(later, key=lambda cid: (later[cid], cid)))
    return Share(len(returned), len(customers), ids)


def first_response(outcomes: list[Outcome]) -> Spread:
    """first human response, clock time: the first agent reply minus the handoff it answers."""
    return spread((r.wait, o.facts.id) for o in outcomes for r in o.first_responses)


def resolution_time(
    outcomes: list[Outcome], resolved: Callable[[Outcome], datetime | None]
) -> Spread:
    """time to resolution: resolved_at - conversation start."""
    return spread(
        (at - o.facts.started, o.facts.id) for o in outcomes if (at := resolved(o)) is not None
    )


def csat(outcomes: list[Outcome], resolver: str) -> Share:
    """CSAT: rating surveys answered with 4 or 5 / rating surveys answered, of one resolver."""
    answered = [
        (s.answer, o.facts.id) for o in outcomes for s in o.ratings if s.resolver == resolver
    ]
    ids = tuple(dict.fromkeys(cid for answer, cid in answered if answer in ("4", "5")))
    return Share(sum(answer in ("4", "5") for answer, _ in answered), len(answered), ids)


def rating_response(outcomes: list[Outcome], resolver: str) -> Share:
    """response rate: rating surveys answered / rating surveys sent, of one resolver."""
    sent = sum(
        1 for o in outcomes for s in o.facts.surveys if s.kind == RATING and s.resolver == resolver
    )
    answered = [o.facts.id for o in outcomes for s in o.ratings if s.resolver == resolver]
    return Share(len(answered), sent, tuple(dict.fromkeys(answered)))


def emotional_share(outcomes: Iterable[Outcome]) -> Share:
    """emotional share: customer messages whose decision has reason "emotional" / customer
    messages with a decision, in the period's conversations."""
    return emotional_by_intent(outcomes, by_intent=False).get(None, Share(0, 0))


def emotional_by_intent(
    outcomes: Iterable[Outcome], *, by_intent: bool = True
) -> dict[str | None, Share]:
    """The emotional share per intent (decision.intent), or of all (key None)."""
    flagged: dict[str | None, list[int]] = {}
    totals: dict[str | None, int] = {}
    for o in outcomes:
        for m in o.facts.messages:
            if m.decision is None:
                continue
            key = m.decision.intent if by_intent else None
            totals[key] = totals.get(key, 0) + 1
            if EMOTIONAL in m.decision.reasons:
                flagged.setdefault(key, []).append(o.facts.id)
    return {
        key: Share(len(flagged.get(key, ())), total, tuple(dict.fromkeys(flagged.get(key, ()))))
        for key, total in totals.items()
    }


def spread(samples: Iterable[tuple[timedelta, int]]) -> Spread:
    """p50 and p90 by the nearest-rank method (the ceil(p x n / 100)-th smallest sample) of
    (duration, conversation id) samples; ``ids`` the conversations sampled."""
    found = list(samples)
    if not found:
        return Spread(0, None, None)
    waits = sorted(wait for wait, _ in found)
    ids = tuple(dict.fromkeys(cid for _, cid in found))
    return Spread(len(waits), nearest_rank(waits, 50), nearest_rank(waits, 90), ids)


def nearest_rank(ordered: list[timedelta], percent: int) -> timedelta:
    """The smallest of ``ordered`` (sorted) with at least ``percent``% at or below it."""
    return ordered[max(1, math.ceil(percent * len(ordered) / 100)) - 1]
