"""The change preview: before an edit of the intents goes live, which of the last customer
messages would be decided differently, and how.

The last ``limit`` customer messages in the store (inbound, from the customer; newest first by
storage order; survey replies excluded, they are never triaged) are decided twice, now, through
the real triage rules (:class:`carebot.triage.Triage`): against the live matcher and against the
edited intent set. Both sides are computed now, not compared with the decision stored when the
message came: stored decisions may come from older intents, thresholds or models, and would
show changes the edit did not make.

Each message is replayed on its own, at the time it came (``TriageContext(now=...)``), with no
previous turn: a reply to a clarification, or a second non-answer in a row, is decided as a first
message would be. Its emotion is scored once, from its vector, and the same signal serves both
sides.

Vectors come from the store (:mod:`carebot.store.embeddings`) when the live encoder made them
(``encoder.model_id``); the others are encoded again (:attr:`Preview.reencoded`), in batches in
the model's thread (``in_model_thread``: the service passes its match queue's, so live messages
wait one batch at most). The preview writes nothing: neither the store nor the live matcher.

The edited matcher is built as the live reload builds one: only examples never seen are
encoded (the embedding cache holds the rest) and its classifier head starts from the live one.

A change is a change of the decision's kind or of the intent it recognised (an intent whose
score stays below its draft threshold is not recognised: :attr:`Outcome.intent` is None), or a
clarification becoming or ceasing to be "Did you mean A or B?". A change of score alone is not a
change.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import TypeVar, cast

import numpy as np
from sqlalchemy import exists, select

from carebot.config import Settings
from carebot.models import Decision, DecisionKind, Reason
from carebot.nlu.embedding_cache import EmbeddingCache
from carebot.nlu.emotion import EmotionScorer
from carebot.nlu.encoder import Encoder
from carebot.nlu.intents import IntentSet
from carebot.nlu.matcher import Match, Matcher
from carebot.store.database import Database
from carebot.store.embeddings import MessageEmbeddingStore
from carebot.store.tables import Message, Survey
from carebot.triage import Triage, TriageContext

T = TypeVar("T")
InModelThread = Callable[[Callable[[], object]], Awaitable[object]]
DEFAULT_LIMIT = 2000
ENCODE_BATCH = 64  # messages encoded per call into the model's thread (the match queue's batch)
TEXT_WIDTH = 48  # characters of a message shown in the terminal table


class Group(Enum):
    """How a message's decision changes, in the order they are shown."""

    NEWLY_ANSWERED = "newly answered"
    NO_LONGER_ANSWERED = "no longer answered"
    DIFFERENT_INTENT = "answered with a different intent"
    NEWLY_AMBIGUOUS = "newly ambiguous"
    OTHER = "other changes"

    @property
    def label(self) -> str:
        return self.value


@dataclass(frozen=True)
class Outcome:
    """One side of a change: what triage decides for the message.

    ``intent``: the intent recognised (the best one, at or above its draft threshold), None when
    nothing was; ``score``: the best intent's score either way."""

    kind: DecisionKind
    intent: str | None
    score: float
    reasons: tuple[Reason, ...]

    @property
    def ambiguous(self) -> bool:
        """A clarification that asks "Did you mean A or B?"."""
        return self.kind is DecisionKind.CLARIFY and Reason.AMBIGUOUS in self.reasons

    def __str__(self) -> str:
        return f"{self.kind.value} {self.intent or '-'} {self.score:.2f}"


@dataclass(frozen=True)
class Change:
    message_id: int
    conversation_id: int
    text: str
    at: datetime  # when the message came (the time it is replayed at)
    old: Outcome  # against the live intents
    new: Outcome  # against the edited intents
    group: Group


@dataclass(frozen=True)
class Preview:
    messages: int  # replayed
    reencoded: int  # of them, encoded again (no stored vector of the live model)
    changes: tuple[Change, ...]  # newest message first
    seconds: float

    def counts(self) -> dict[Group, int]:
        """Changes per group: every group, in order, zeros included."""
        counts = dict.fromkeys(Group, 0)
        for change in self.changes:
            counts[change.group] += 1
        return counts

    def by_group(self) -> dict[Group, list[Change]]:
        """The changes of every group, in order (empty lists included), newest first."""
        groups: dict[Group, list[Change]] = {group: [] for group in Group}
        for change in self.changes:
            groups[change.group].append(change)
        return groups


def group_of(old: Outcome, new: Outcome) -> Group | None:
    """The group of a change from ``old`` to ``new``; None when nothing but the score changed.
    An answer that becomes a "Did you mean A or B?" is newly ambiguous, not only no longer
    answered: that group names the likely cause (two intents too alike)."""
    if (old.kind, old.intent, old.ambiguous) == (new.kind, new.intent, new.ambiguous):
        return None
    answer = DecisionKind.ANSWER
    if old.kind is not answer and new.kind is answer:
        return Group.NEWLY_ANSWERED
    if new.ambiguous and not old.ambiguous:
        return Group.NEWLY_AMBIGUOUS  # an answer that becomes "A or B?" too: it tells why
    if old.kind is answer and new.kind is not answer:
        return Group.NO_LONGER_ANSWERED
    if old.kind is answer and new.kind is answer:
        return Group.DIFFERENT_INTENT
    return Group.OTHER


@dataclass(frozen=True, slots=True)
class _Stored:
    id: int
    conversation_id: int
    text: str
    at: datetime


class ChangePreview:
    """Replays stored customer messages against an edited intent set (see the module)."""

    def __init__(
        self,
        *,
        db: Database,
        settings: Settings,
        emotion: EmotionScorer,
        cache: EmbeddingCache | None,
        in_model_thread: InModelThread | None = None,
    ) -> None:
        """``cache``: the live matcher's example embeddings (examples of the edited set never
        seen are encoded, and kept there); ``in_model_thread``: runs encoding work in the
        model's thread (default: a worker thread of its own)."""
        self._db = db
        self._settings = settings
        self._emotion = emotion
        self._cache = cache
        self._embeddings = MessageEmbeddingStore(db)
        self._in_model_thread = in_model_thread

    async def run(
        self,
        live: Matcher,
        edited: IntentSet,
        *,
        limit: int = DEFAULT_LIMIT,
        matcher: Matcher | None = None,
    ) -> Preview:
        """The last ``limit`` customer messages decided against ``live`` and ``edited``; every
        message whose decision would change. ``matcher``: ``edited``'s, if already built
        (:meth:`edited_matcher`)."""
        if limit < 1:
            raise ValueError(f"The preview replays at least 1 message (limit {limit})")
        started = time.perf_counter()
        (messages, vectors, reencoded), matcher = await asyncio.gather(
            self._messages(limit, live.encoder),
            _ready(matcher) if matcher is not None else self.edited_matcher(live, edited),
        )
        changes = await asyncio.to_thread(self._compare, messages, vectors, live, matcher)
        return Preview(
            messages=len(messages),
            reencoded=reencoded,
            changes=tuple(changes),
            seconds=time.perf_counter() - started,
        )

    async def _in_model(self, work: Callable[[], T]) -> T:
        if self._in_model_thread is None:
            return await asyncio.to_thread(work)
        return cast(T, await self._in_model_thread(work))

    async def _messages(
        self, limit: int, encoder: Encoder
    ) -> tuple[list[_Stored], np.ndarray, int]:
        """The messages, newest first, their vectors row for row, and how many were encoded."""
        survey_reply = exists().where(Survey.answer_message_id == Message.id)
        query = (
            select(Message.id, Message.conversation_id, Message.text, Message.created_at)
            .where(Message.direction == "in", Message.author == "customer", ~survey_reply)
            .order_by(Message.id.desc())
            .limit(limit)
        )
        async with self._db.session() as session:
            rows = (await session.execute(query)).all()
        messages = [_Stored(r.id, r.conversation_id, r.text, r.created_at) for r in rows]
        if not messages:
            return [], np.zeros((0, 0), dtype=np.float32), 0
        loaded = await self._embeddings.load([m.id for m in messages], encoder.model_id)
        found = dict(zip(loaded.ids, loaded.vectors, strict=True))
        stale = [m for m in messages if m.id not in found]
        for start in range(0, len(stale), ENCODE_BATCH):
            batch = stale[start : start + ENCODE_BATCH]
            texts = [m.text for m in batch]
            encoded = await self._in_model(functools.partial(encoder.encode, texts))
            found.update((m.id, v) for m, v in zip(batch, encoded, strict=True))
        vectors = np.stack([found[m.id] for m in messages]).astype(np.float32, copy=False)
        return messages, vectors, len(stale)

    async def edited_matcher(self, live: Matcher, edited: IntentSet) -> Matcher:
        """The edited set's matcher, as the live reload builds it (head warm-started)."""
        cfg, cache = self._settings.matcher, self._cache

        def build() -> Matcher:
            return Matcher.configured(
                cfg, encoder=live.encoder, intents=edited, cache=cache, previous=live
            )

        if cache is None:  # every example is encoded: all of it is the model's work
            return await self._in_model(build)
        texts, _ = edited.examples()
        await self._in_model(lambda: cache.encode(texts, live.encoder))  # only the new ones
        return await asyncio.to_thread(build)

    def _compare(
        self, messages: list[_Stored], vectors: np.ndarray, live: Matcher, edited: Matcher
    ) -> list[Change]:
        if not messages:
            return []
        triage = Triage(matcher=live, emotion=self._emotion, settings=self._settings)
        changes = []
        old_matches = live.match_vectors(vectors)
        new_matches = edited.match_vectors(vectors)
        for message, vector, old_match, new_match in zip(
            messages, vectors, old_matches, new_matches, strict=True
        ):
            signal = self._emotion.score(message.text, vector)
            context = TriageContext(now=message.at)
            old = self._outcome(
                triage, old_match, triage.decide_scored(message.text, old_match, signal, context)
            )
            new = self._outcome(
                triage, new_match, triage.decide_scored(message.text, new_match, signal, context)
            )
            group = group_of(old, new)
            if group is not None:
                changes.append(
                    Change(
                        message_id=message.id,
                        conversation_id=message.conversation_id,
                        text=message.text,
                        at=message.at,
                        old=old,
                        new=new,
                        group=group,
                    )
                )
        return changes

    @staticmethod
    def _outcome(triage: Triage, match: Match, decision: Decision) -> Outcome:
        intent = decision.intent
        if intent is not None and intent in match.intents:
            _, draft_threshold = triage.thresholds(match.intents[intent])
            if decision.score < draft_threshold:
                intent = None  # the nearest intent, not recognised
        return Outcome(decision.kind, intent, decision.score, decision.reasons)


async def _ready(matcher: Matcher) -> Matcher:
    return matcher


def preview_table(preview: Preview, title: Callable[[str], str] = str) -> str:
    """The preview for a terminal: the counts on top, then each group's messages (id, time in
    UTC, text shortened, old -> new kind, intent and score). ``title`` styles the headings."""
    counts = preview.counts()
    lines = [
        title(
            f"Replayed {preview.messages} customer message(s) against the edited intents "
            f"({preview.reencoded} encoded again) in {preview.seconds:.2f} s: "
            f"{len(preview.changes)} would be decided differently"
        ),
        "",
    ]
    width = max(len(group.label) for group in Group)
    lines += [f"  {group.label:<{width}}  {counts[group]:>5}" for group in Group]
    rows = {
        group: [_row(change) for change in changes]
        for group, changes in preview.by_group().items()
        if changes
    }
    every = [row for group_rows in rows.values() for row in group_rows]
    if not every:
        return "\n".join([*lines, "", "No decision would change."]) + "\n"
    header = ("message", "time (UTC)", "text", "old -> new")
    widths = [max(len(row[i]) for row in [header, *every]) for i in range(len(header))]
    for group, group_rows in rows.items():
        lines += ["", title(f"{group.label.capitalize()} ({counts[group]})")]
        lines.append(_line(header, widths))
        lines += [_line(row, widths) for row in group_rows]
    return "\n".join(lines) + "\n"


def _row(change: Change) -> tuple[str, str, str, str]:
    return (
        str(change.message_id),
        change.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M"),
        _shortened(change.text),
        f"{change.old} -> {change.new}",
    )


def _line(cells: tuple[str, ...], widths: list[int]) -> str:
    ident, at, text, outcome = cells
    return f"  {ident:>{widths[0]}}  {at:<{widths[1]}}  {text:<{widths[2]}}  {outcome}".rstrip()


def _shortened(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= TEXT_WIDTH else flat[: TEXT_WIDTH - 3].rstrip() + "..."
