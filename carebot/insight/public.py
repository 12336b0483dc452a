"""The public side of the period: what came in public (comments, mentions) and what carebot and
agents did with it, read from what production wrote (public_items, the decisions, the
conversations' audit trail of hiding), for the "Public messages" figures of
:mod:`carebot.insight.metrics`, defined there in the same words.

Unlike the other figures these count public *messages*, of every public conversation of the
period, including those that ask nothing (praise, spam, chatter) and so are not contacts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from carebot.insight.facts import DecisionFact, population_ids, reading, reason_codes
from carebot.insight.report import Period, PublicMessages, Share
from carebot.models import DecisionKind, PublicCategory, Reason, Visibility
from carebot.store.database import Database
from carebot.store.tables import ConversationEvent, DecisionRow, PublicItem
from carebot.store.teamwork import CAREBOT

UNCLASSIFIED = "unclassified"  # a public message the classifier never saw (an agent had it)


@dataclass(frozen=True, slots=True)
class PublicItemFact:
    """One public message, what was decided on it and what happened to it since."""

    conversation_id: int
    message_id: int
    category: str | None
    decision: DecisionFact | None
    private_reply_by: str | None  # who sent its one private reply ("carebot" or an agent)
    shadowed: tuple[str, ...]  # the public actions shadow mode held back (reply, hide...)
    hides: tuple[tuple[str, str], ...]  # ("hidden" | "unhidden", actor), in time order


async def load_public_items(db: Database, period: Period) -> list[PublicItemFact]:
    """The public messages of ``period``'s public conversations (contacts or not), by id."""
    if period.visibility not in (None, Visibility.PUBLIC.value):
        return []
    public = Period(period.since, period.until, period.channel, period.team, period.label, "public")
    ids = population_ids(public)
    async with reading(db) as conn:
        rows = (await conn.execute(_items(ids))).all()
        hides = await _hides(conn, ids)
    return [
        PublicItemFact(
            conversation_id=cid,
            message_id=mid,
            category=category,
            decision=(
                None
                if decided is None
                else DecisionFact(decided, kind, reason_codes(reasons), intent, bool(chat))
            ),
            private_reply_by=private_by,
            shadowed=_shadowed(plan),
            hides=tuple(hides.get(mid, ())),
        )
        for cid, mid, category, private_by, decided, kind, reasons, intent, chat, plan in rows
    ]


def _items(ids: Any) -> Any:
    return (
        select(
            PublicItem.conversation_id,
            PublicItem.message_id,
            PublicItem.category,
            PublicItem.private_reply_by,
            DecisionRow.created_at,
            DecisionRow.kind,
            DecisionRow.reasons,
            DecisionRow.intent,
            DecisionRow.details["small_talk"].as_boolean(),
            DecisionRow.details["public"],
        )
        .outerjoin(DecisionRow, DecisionRow.inbound_message_id == PublicItem.message_id)
        .where(PublicItem.conversation_id.in_(ids))
        .order_by(PublicItem.message_id)
    )


async def _hides(conn: Any, ids: Any) -> dict[int, list[tuple[str, str]]]:
    """Each public message's hidden / unhidden events (the audit trail), in time order."""
    query = (
        select(ConversationEvent.kind, ConversationEvent.actor, ConversationEvent.detail)
        .where(
            ConversationEvent.conversation_id.in_(ids),
            ConversationEvent.kind.in_(("hidden", "unhidden")),
        )
        .order_by(ConversationEvent.created_at, ConversationEvent.id)
    )
    found: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for kind, actor, detail in await conn.execute(query):
        message_id = (detail or {}).get("message_id")
        if isinstance(message_id, int):
            found[message_id].append((kind, actor))
    return found


def _shadowed(plan: Any) -> tuple[str, ...]:
    """The kinds of the steps shadow mode held back (decision details "public" "shadowed")."""
    if not isinstance(plan, dict):
        return ()
    steps = plan.get("shadowed") or ()
    return tuple(str(step.get("kind", "")) for step in steps if isinstance(step, dict))


def public_messages(items: list[PublicItemFact]) -> PublicMessages:
    """The "Public messages" figures of ``items`` (see :mod:`carebot.insight.metrics`)."""

    def count(counted: Callable[[PublicItemFact], bool]) -> Share:
        return _share(items, counted)

    categories = [c.value for c in PublicCategory]
    if any(i.category is None for i in items):
        categories.append(UNCLASSIFIED)
    shadowed_kinds = sorted({kind for i in items for kind in i.shadowed})
    return PublicMessages(
        messages=count(lambda i: True),
        categories={c: count(_in_category(c)) for c in categories},
        answered_public=count(lambda i: i.decision is not None and i.decision.intent_answer),
        thanked=count(_thanked),
        left=count(lambda i: _kind(i) == DecisionKind.LEAVE.value),
        handed_over=count(lambda i: _kind(i) == DecisionKind.HANDOFF.value),
        moved_private_bot=count(lambda i: i.private_reply_by == CAREBOT),
        moved_private_agents=count(lambda i: i.private_reply_by not in (None, CAREBOT)),
        hidden_by_carebot=count(lambda i: ("hidden", CAREBOT) in i.hides),
        hidden_by_agents=count(lambda i: any(k == "hidden" and a != CAREBOT for k, a in i.hides)),
        unhidden_by_agents=count(_unhidden_by_agents),
        shadowed=count(lambda i: bool(i.shadowed)),
        shadowed_actions={k: count(_would_have(k)) for k in shadowed_kinds},
    )


def _in_category(category: str) -> Callable[[PublicItemFact], bool]:
    return lambda item: (item.category or UNCLASSIFIED) == category


def _would_have(kind: str) -> Callable[[PublicItemFact], bool]:
    return lambda item: kind in item.shadowed


def _kind(item: PublicItemFact) -> str | None:
    return item.decision.kind if item.decision is not None else None


def _thanked(item: PublicItemFact) -> bool:
    """The bot posted [public] thanks under it: kind answer, reason praise."""
    d = item.decision
    return (
        d is not None and d.kind == DecisionKind.ANSWER.value and Reason.PRAISE.value in d.reasons
    )


def _unhidden_by_agents(item: PublicItemFact) -> bool:
    """carebot hid it, and an agent unhid it after that."""
    hidden = next((n for n, (k, a) in enumerate(item.hides) if (k, a) == ("hidden", CAREBOT)), None)
    if hidden is None:
        return False
    return any(k == "unhidden" and a != CAREBOT for k, a in item.hides[hidden + 1 :])


def _share(items: Iterable[PublicItemFact], counted: Callable[[PublicItemFact], bool]) -> Share:
    everyone = list(items)
    found = [i.conversation_id for i in everyone if counted(i)]
    return Share(len(found), len(everyone), tuple(dict.fromkeys(found)))
