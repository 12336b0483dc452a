"""The customer messages the bot did not answer in a period, grouped into topics.

A customer message is **unanswered** when it is in a conversation of the period (its first
customer message in ``[since, until)``, on the period's channel if it names one) and

* its decision is a clarification without reason ``ambiguous``: the bot asked to rephrase; or
* its decision's reasons include ``below_threshold`` (drafts for an agent included: the bot was
  not sure enough to answer), ``no_answer`` (the intent has no answer written yet) or
  ``repeated_failure`` (handed over after a second non-answer); or
* the customer answered "no" to "did that answer your question?" about its answer (a
  ``helpful`` survey answered ``no``: the survey's decision's message);

unless the decision was small talk (``details["small_talk"]``: a greeting or thanks is no
question). A message that is both counts once.

Their embeddings are those the pipeline stored when it decided (:mod:`carebot.store.embeddings`).
A message whose stored embedding was made by another model than the live matcher's encoder (a
model change), or that has none, is encoded again when an ``encode`` function is given (and the
new vector is stored, so it is encoded once); without one it is left out, and
:attr:`Unanswered.skipped` says how many. The live matcher scores them against the live
intents, and :func:`carebot.insight.topics.group` groups them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import Select, and_, or_, select

from carebot.insight.report import Period, Topic
from carebot.insight.topics import DEFAULTS, Asked, Grouping, TopicSettings, group
from carebot.models import DecisionKind, Reason
from carebot.nlu.matcher import Matcher
from carebot.store.database import Database
from carebot.store.embeddings import MessageEmbeddingStore, as_stored
from carebot.store.tables import Conversation, DecisionRow, Message, Survey

log = logging.getLogger(__name__)
UNANSWERED_REASONS = frozenset({Reason.BELOW_THRESHOLD, Reason.NO_ANSWER, Reason.REPEATED_FAILURE})
ENCODE_CHUNK = 256  # texts per encode call
Encode = Callable[[list[str]], Awaitable[np.ndarray]]


def is_unanswered(kind: str, reasons: Iterable[str], details: Mapping[str, Any]) -> bool:
    """Whether a decision left its message unanswered (module docstring; a "no" to "did that
    answer?" is the other way a message is unanswered)."""
    if details.get("small_talk"):
        return False
    given = set(reasons)
    if kind == DecisionKind.CLARIFY and Reason.AMBIGUOUS not in given:
        return True
    return bool(given & UNANSWERED_REASONS)


@dataclass(frozen=True, slots=True)
class Unanswered:
    """The unanswered messages of a period, grouped; ``skipped``: left out for want of an
    embedding by the live model (no ``encode`` given); ``encoded``: encoded now."""

    grouping: Grouping
    messages: int
    skipped: int
    encoded: int

    @property
    def topics(self) -> list[Topic]:
        return list(self.grouping.topics)


async def unanswered_topics(
    *,
    db: Database,
    matcher: Matcher,
    period: Period,
    now: datetime,
    encode: Encode | None = None,
    settings: TopicSettings = DEFAULTS,
) -> list[Topic]:
    """The topics of the period's unanswered messages, ranked (:func:`find_topics`)."""
    found = await find_topics(
        db=db, matcher=matcher, period=period, now=now, encode=encode, settings=settings
    )
    return found.topics


async def find_topics(
    *,
    db: Database,
    matcher: Matcher,
    period: Period,
    now: datetime,
    encode: Encode | None = None,
    settings: TopicSettings = DEFAULTS,
) -> Unanswered:
    """Group the period's unanswered messages into topics, with the live ``matcher``'s intents
    and its encoder's fingerprint (``matcher.encoder.model_id``). ``encode(texts)`` encodes with
    that same encoder; in a serving process it must run where the model runs (the match
    queue's ``in_model_thread``)."""
    asked = await unanswered_messages(db, period)
    model = matcher.encoder.model_id
    store = MessageEmbeddingStore(db)
    loaded = await store.load([a.message_id for a in asked], model)
    vectors = dict(zip(loaded.ids, loaded.vectors, strict=True))
    stale = loaded.stale
    encoded = 0
    if stale and encode is not None:
        by_id = {a.message_id: a for a in asked}
        fresh = [as_stored(v) for v in await _encode([by_id[i].text for i in stale], encode)]
        await store.save(zip(stale, fresh, strict=True), model)
        vectors.update(zip(stale, fresh, strict=True))
        encoded = len(stale)
    kept = [a for a in asked if a.message_id in vectors]
    if len(kept) < len(asked):
        log.warning(
            "%d unanswered message(s) have no embedding by %s and were left out of the topics",
            len(asked) - len(kept),
            model,
        )
    grouping = await asyncio.to_thread(_group, kept, vectors, matcher, now, settings)
    return Unanswered(grouping, len(kept), len(asked) - len(kept), encoded)


def _group(
    kept: Sequence[Asked],
    vectors: Mapping[int, np.ndarray],
    matcher: Matcher,
    now: datetime,
    settings: TopicSettings,
) -> Grouping:
    ids = [intent.id for intent in matcher.intents.intents]
    if not kept:
        return group([], np.zeros((0, 0)), np.zeros((0, len(ids))), ids, now=now)
    matrix = np.stack([vectors[a.message_id] for a in kept]).astype(np.float32)
    matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
    scores = matcher.scores(matrix) if ids else np.zeros((len(kept), 0), dtype=np.float32)
    return group(kept, matrix, scores, ids, now=now, settings=settings)


async def _encode(texts: list[str], encode: Encode) -> list[np.ndarray]:
    parts = [
        await encode(texts[start : start + ENCODE_CHUNK])
        for start in range(0, len(texts), ENCODE_CHUNK)
    ]
    return list(np.concatenate(parts)) if parts else []


async def unanswered_messages(db: Database, period: Period) -> list[Asked]:
    """The period's unanswered customer messages (module docstring), oldest first."""
    found: dict[int, Asked] = {}
    async with db.report_session() as session:
        decided = await session.execute(_in_period(_decided(), period))
        for row in decided:
            if is_unanswered(row.kind, row.reasons.split(","), row.details or {}):
                found[row.id] = _asked(row)
        said_no = await session.execute(_in_period(_said_no(), period))
        for row in said_no:
            if not (row.details or {}).get("small_talk"):
                found.setdefault(row.id, _asked(row))
    return sorted(found.values(), key=lambda a: (a.at, a.message_id))


def _columns() -> tuple[Any, ...]:
    return (
        Message.id,
        Message.conversation_id,
        Conversation.customer_id,
        Message.text,
        Message.created_at,
        DecisionRow.kind,
        DecisionRow.reasons,
        DecisionRow.details,
    )


def _decided() -> Select[Any]:
    """Customer messages whose decision may have left them unanswered (narrowed in Python)."""
    maybe = or_(
        DecisionRow.kind == DecisionKind.CLARIFY.value,
        *(DecisionRow.reasons.contains(reason.value) for reason in UNANSWERED_REASONS),
    )
    return (
        select(*_columns())
        .join(DecisionRow, DecisionRow.inbound_message_id == Message.id)
        .where(maybe)
    )


def _said_no() -> Select[Any]:
    """Customer messages whose answer the customer said did not help."""
    return (
        select(*_columns())
        .join(DecisionRow, DecisionRow.inbound_message_id == Message.id)
        .join(
            Survey,
            and_(
                Survey.decision_id == DecisionRow.id,
                Survey.kind == "helpful",
                Survey.answer == "no",
            ),
        )
    )


def _in_period(query: Select[Any], period: Period) -> Select[Any]:
    query = query.join(Conversation, Conversation.id == Message.conversation_id).where(
        Message.author == "customer",
        Conversation.created_at >= period.since,
        Conversation.created_at < period.until,
    )
    if period.channel is not None:
        query = query.where(Message.channel == period.channel)
    if period.visibility is not None:
        query = query.where(Conversation.visibility == period.visibility)
    return query


def _asked(row: Any) -> Asked:
    return Asked(
        message_id=row.id,
        conversation_id=row.conversation_id,
        customer_id=row.customer_id,
        text=row.text,
        at=row.created_at,
    )
