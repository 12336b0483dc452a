"""Running totals of what production wrote, read back from the store for ``/metrics``.

Nothing is counted on the side (DESIGN.md section 10): every total is derived from the rows
themselves, so every worker reports the same totals and a restart loses nothing. To keep a
scrape cheap on a big store, the totals are kept incrementally: each source has a high-water
mark (its rows' ids grow) and a scrape reads only the rows past it.

Ids grow in the order rows are *inserted*, not committed: on PostgreSQL a row with a lower id
can become visible after a higher one was read. So a row is only *settled* (added for good,
and the mark moved past it) once it is older than its source's ``grace``; younger rows form
the *tail*, read again at every scrape and added to the settled totals afresh. A row that
stays uncommitted longer than the grace (minutes; carebot's transactions take milliseconds)
would be missed. Helpful surveys are answered some time after they are asked, so their grace
is the time an answer may take (``[survey] reply_hours``) plus an hour.
"""

from __future__ import annotations

import asyncio
import bisect
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeAlias

from sqlalchemy import Select, and_, exists, or_, select
from sqlalchemy.orm import aliased

from carebot.clock import Clock
from carebot.store.database import Database
from carebot.store.tables import DecisionRow, Handoff, Message, Survey

if TYPE_CHECKING:
    Query: TypeAlias = Select[*tuple[Any, ...]]  # rows of any columns

PAGE = 10_000  # rows read per query
GRACE = timedelta(minutes=5)  # how long a row may take to commit after it was written
NO_REASON = "none"

# Histogram bucket bounds (Prometheus ``le``), each in the histogram's unit.
DECISION_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
MATCH_SCORE = tuple(round(0.05 * step, 2) for step in range(1, 21))  # 0.05 .. 1.0
FIRST_RESPONSE_SECONDS = (30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 86400,
                          172800, 604800)  # fmt: skip


@dataclass
class Histogram:
    """Counts of observations per bucket (not cumulative; the last one is +Inf) and their sum."""

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[str, int]]:
        """``(le, observations <= le)`` pairs, ending with ``+Inf``, as Prometheus shows them."""
        edges = [*(f"{bound:g}" for bound in self.bounds), "+Inf"]
        running, out = 0, []
        for edge, count in zip(edges, self.counts, strict=True):
            running += count
            out.append((edge, running))
        return out

    def plus(self, other: Histogram) -> Histogram:
        counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        return Histogram(self.bounds, counts, self.total + other.total)


@dataclass
class Totals:
    """Everything ``/metrics`` counts. Label tuples hold names and codes, never ids."""

    messages: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # dir/author/chan
    decisions: Counter[tuple[str, str]] = field(default_factory=Counter)  # kind, main reason
    handoffs: Counter[str] = field(default_factory=Counter)  # main reason
    confirmed: int = 0  # "did that answer your question?" answered yes
    decision_seconds: Histogram = field(default_factory=lambda: Histogram(DECISION_SECONDS))
    match_score: Histogram = field(default_factory=lambda: Histogram(MATCH_SCORE))
    first_response: Histogram = field(default_factory=lambda: Histogram(FIRST_RESPONSE_SECONDS))

    def plus(self, other: Totals) -> Totals:
        return Totals(
            self.messages + other.messages,
            self.decisions + other.decisions,
            self.handoffs + other.handoffs,
            self.confirmed + other.confirmed,
            self.decision_seconds.plus(other.decision_seconds),
            self.match_score.plus(other.match_score),
            self.first_response.plus(other.first_response),
        )


@dataclass(frozen=True, slots=True)
class Source:
    """One kind of row counted: a query of the rows past a mark (``(id, at, ...)``, by id)
    and what one row adds to the totals."""

    name: str
    rows: Callable[[int], Query]
    add: Callable[[Totals, Sequence[Any]], None]
    grace: timedelta = GRACE


def _messages(after: int) -> Query:
    m = Message
    return select(m.id, m.created_at, m.direction, m.author, m.channel).where(m.id > after)


def _add_message(totals: Totals, row: Sequence[Any]) -> None:
    totals.messages[(row[2], row[3], row[4])] += 1


def _decisions(after: int) -> Query:
    d = DecisionRow
    triage_ms = d.details[("timings_ms", "triage_ms")].as_float()
    return select(d.id, d.created_at, d.kind, d.reasons, d.score, triage_ms).where(d.id > after)


def _add_decision(totals: Totals, row: Sequence[Any]) -> None:
    _, _, kind, reasons, score, triage_ms = row
    totals.decisions[(kind, reasons.split(",")[0] or NO_REASON)] += 1
    totals.match_score.observe(score)
    if triage_ms is not None:
        totals.decision_seconds.observe(triage_ms / 1000)


def _handoffs(after: int) -> Query:
    return select(Handoff.id, Handoff.created_at, Handoff.reason).where(Handoff.id > after)


def _add_handoff(totals: Totals, row: Sequence[Any]) -> None:
    totals.handoffs[row[2] or NO_REASON] += 1


def _helpful(after: int) -> Query:
    s = Survey
    return select(s.id, s.asked_at, s.answer).where(s.id > after, s.kind == "helpful")


def _add_helpful(totals: Totals, row: Sequence[Any]) -> None:
    if row[2] == "yes":
        totals.confirmed += 1


def _first_replies(after: int) -> Query:
    """Agent replies past ``after`` that are the first reply to a handoff the bot made, with
    that handoff's time: the same pairs as :meth:`ResponseTimes.first_responses`."""
    reply, earlier, h = aliased(Message), aliased(Message), Handoff
    answers = and_(
        h.conversation_id == reply.conversation_id,
        h.decision_id.is_not(None),  # an agent's own take-over had nobody waiting
        h.created_at <= reply.created_at,
        or_(h.resolved_at.is_(None), reply.created_at <= h.resolved_at),
    )
    answered_before = exists().where(
        earlier.conversation_id == reply.conversation_id,
        earlier.author == "agent",
        earlier.created_at >= h.created_at,
        or_(
            earlier.created_at < reply.created_at,
            and_(earlier.created_at == reply.created_at, earlier.id < reply.id),
        ),
    )
    return (
        select(reply.id, reply.created_at, h.created_at)
        .join(h, answers)
        .where(reply.id > after, reply.author == "agent", ~answered_before)
    )


def _add_first_reply(totals: Totals, row: Sequence[Any]) -> None:
    _, answered_at, handed_over_at = row
    totals.first_response.observe((answered_at - handed_over_at).total_seconds())


def sources(reply_hours: float) -> tuple[Source, ...]:
    """What is counted; ``reply_hours``: how long after asking a survey may be answered."""
    survey_grace = timedelta(hours=reply_hours + 1)
    return (
        Source("messages", _messages, _add_message),
        Source("decisions", _decisions, _add_decision),
        Source("handoffs", _handoffs, _add_handoff),
        Source("helpful surveys", _helpful, _add_helpful, survey_grace),
        Source("first replies", _first_replies, _add_first_reply),
    )


class StoreCounters:
    """The running totals of ``/metrics``, brought up to date by :meth:`refresh`."""

    def __init__(self, *, db: Database, clock: Clock, reply_hours: float = 24.0) -> None:
        self._db = db
        self._clock = clock
        self._sources = sources(reply_hours)
        self._marks = {source.name: 0 for source in self._sources}
        self._settled = Totals()
        self._lock = asyncio.Lock()
        self.totals = Totals()  # as of the last refresh
        self.rows_read = 0  # by the last refresh (what a scrape cost)

    async def refresh(self) -> Totals:
        """Read the rows written since the last refresh (and the tail of young rows again)
        and return the totals. Concurrent scrapes wait for one another."""
        async with self._lock:
            now = self._clock()
            tail, read = Totals(), 0
            for source in self._sources:
                read += await self._read(source, tail, now - source.grace)
            self.totals, self.rows_read = self._settled.plus(tail), read
            return self.totals

    async def _read(self, source: Source, tail: Totals, cutoff: datetime) -> int:
        """Add ``source``'s rows past its mark: the leading ones older than ``cutoff`` to the
        settled totals (moving the mark), the rest to ``tail``. Returns the rows read."""
        after, settling, read = self._marks[source.name], True, 0
        async with self._db.session() as session:
            while True:
                query = source.rows(after)
                query = query.order_by(query.selected_columns[0]).limit(PAGE)
                rows = (await session.execute(query)).all()
                for row in rows:
                    settling = settling and row[1] < cutoff
                    source.add(self._settled if settling else tail, row)
                    if settling:
                        self._marks[source.name] = row[0]
                read += len(rows)
                if len(rows) < PAGE:
                    return read
                after = rows[-1][0]
