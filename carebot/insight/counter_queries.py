"""Where each of ``/metrics``' totals comes from in the store: one :class:`Source` per kind
of row counted, with the query of its rows past a mark and what one row adds, and (for the
big tables) the same totals summed by the database, so a first scrape of a big store does not
bring every row into Python."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeAlias

from sqlalchemy import ColumnElement, Select, and_, case, exists, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute, aliased

from carebot.insight.totals import DECISION_SECONDS, MATCH_SCORE, NO_REASON, Totals
from carebot.store.tables import DecisionRow, Handoff, Message, Survey

if TYPE_CHECKING:
    Query: TypeAlias = Select[*tuple[Any, ...]]  # rows of any columns

Row = Sequence[Any]
GRACE = timedelta(minutes=5)  # how long a row may take to commit after it was written


@dataclass(frozen=True, slots=True)
class Source:
    """One kind of row counted. ``rows(after)``: its rows with an id past ``after``, as
    ``(id, at, ...)``; ``add``: what one of them adds. ``summed(after, upto)``: the totals of
    its rows with ids in ``(after, upto]``, summed by the database, and ``add_summed`` adds
    them (None: the rows are added one by one). ``grace``: how long after ``at`` a row may
    still appear or change."""

    name: str
    rows: Callable[[int], Query]
    add: Callable[[Totals, Row], None]
    summed: Callable[[int, int], Query] | None = None
    add_summed: Callable[[Totals, Sequence[Row]], None] | None = None
    grace: timedelta = GRACE


def sources(reply_hours: float) -> tuple[Source, ...]:
    """What is counted; ``reply_hours``: how long after asking a survey may be answered."""
    return (
        Source("messages", _messages, _add_message, _messages_summed, _add_messages_summed),
        Source("decisions", _decisions, _add_decision, _decisions_summed, _add_decisions_summed),
        Source("match scores", _decisions, _add_score, _scores_summed, _add_scores_summed),
        Source("decision times", _decisions, _add_time, _times_summed, _add_times_summed),
        Source("handoffs", _handoffs, _add_handoff, _handoffs_summed, _add_handoffs_summed),
        Source("helpful surveys", _helpful, _add_helpful, _helpful_summed, _add_helpful_summed,
               grace=timedelta(hours=reply_hours + 1)),
        Source("first replies", _first_replies, _add_first_reply),
    )  # fmt: skip


def _messages(after: int) -> Query:
    m = Message
    return select(m.id, m.created_at, m.direction, m.author, m.channel).where(m.id > after)


def _add_message(totals: Totals, row: Row) -> None:
    totals.messages[(row[2], row[3], row[4])] += 1


def _messages_summed(after: int, upto: int) -> Query:
    m = Message
    labels = (m.direction, m.author, m.channel)
    return select(*labels, func.count()).where(m.id > after, m.id <= upto).group_by(*labels)


def _add_messages_summed(totals: Totals, rows: Sequence[Row]) -> None:
    for direction, author, channel, count in rows:
        totals.messages[(direction, author, channel)] += count


def _triage_seconds() -> ColumnElement[float]:
    return DecisionRow.details[("timings_ms", "triage_ms")].as_float() / 1000.0


def _decisions(after: int) -> Query:
    d = DecisionRow
    return select(d.id, d.created_at, d.kind, d.reasons, d.score, _triage_seconds()).where(
        d.id > after
    )


def _main_reason(reasons: str) -> str:
    return reasons.split(",")[0] or NO_REASON


def _add_decision(totals: Totals, row: Row) -> None:
    totals.decisions[(row[2], _main_reason(row[3]))] += 1


def _decisions_summed(after: int, upto: int) -> Query:
    d = DecisionRow
    return (
        select(d.kind, d.reasons, func.count())
        .where(d.id > after, d.id <= upto)
        .group_by(d.kind, d.reasons)
    )


def _add_decisions_summed(totals: Totals, rows: Sequence[Row]) -> None:
    for kind, reasons, count in rows:
        totals.decisions[(kind, _main_reason(reasons))] += count


def _add_score(totals: Totals, row: Row) -> None:
    totals.match_score.observe(row[4])


def _add_time(totals: Totals, row: Row) -> None:
    if row[5] is not None:  # a decision recorded without its timings
        totals.decision_seconds.observe(row[5])


def _buckets(
    value: ColumnElement[float] | InstrumentedAttribute[float],
    bounds: Sequence[float],
    after: int,
    upto: int,
) -> Query:
    """``(bucket, count, sum)`` of the decisions' non-null ``value`` in ``(after, upto]``,
    bucket being the index of the first bound the value is at most (``len(bounds)``: +Inf)."""
    d = DecisionRow
    bucket = case(*((value <= bound, i) for i, bound in enumerate(bounds)), else_=len(bounds))
    return (
        select(bucket, func.count(), func.sum(value))
        .where(d.id > after, d.id <= upto, value.is_not(None))
        .group_by(bucket)
    )


def _scores_summed(after: int, upto: int) -> Query:
    return _buckets(DecisionRow.score, MATCH_SCORE, after, upto)


def _add_scores_summed(totals: Totals, rows: Sequence[Row]) -> None:
    for bucket, count, total in rows:
        totals.match_score.add(bucket, count, total)


def _times_summed(after: int, upto: int) -> Query:
    return _buckets(_triage_seconds(), DECISION_SECONDS, after, upto)


def _add_times_summed(totals: Totals, rows: Sequence[Row]) -> None:
    for bucket, count, total in rows:
        totals.decision_seconds.add(bucket, count, total)


def _handoffs(after: int) -> Query:
    return select(Handoff.id, Handoff.created_at, Handoff.reason).where(Handoff.id > after)


def _add_handoff(totals: Totals, row: Row) -> None:
    totals.handoffs[row[2] or NO_REASON] += 1


def _handoffs_summed(after: int, upto: int) -> Query:
    h = Handoff
    return select(h.reason, func.count()).where(h.id > after, h.id <= upto).group_by(h.reason)


def _add_handoffs_summed(totals: Totals, rows: Sequence[Row]) -> None:
    for reason, count in rows:
        totals.handoffs[reason or NO_REASON] += count


def _helpful(after: int) -> Query:
    s = Survey
    return select(s.id, s.asked_at, s.answer).where(s.id > after, s.kind == "helpful")


def _add_helpful(totals: Totals, row: Row) -> None:
    if row[2] == "yes":
        totals.confirmed += 1


def _helpful_summed(after: int, upto: int) -> Query:
    s = Survey
    return select(func.count()).where(
        s.id > after, s.id <= upto, s.kind == "helpful", s.answer == "yes"
    )


def _add_helpful_summed(totals: Totals, rows: Sequence[Row]) -> None:
    totals.confirmed += sum(row[0] for row in rows)


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


def _add_first_reply(totals: Totals, row: Row) -> None:
    _, answered_at, handed_over_at = row
    totals.first_response.observe((answered_at - handed_over_at).total_seconds())
