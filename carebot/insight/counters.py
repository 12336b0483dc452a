"""Running totals of what production wrote, read back from the store for ``/metrics``.

Nothing is counted on the side (DESIGN.md section 10): every total is derived from the rows
themselves (:mod:`carebot.insight.counter_queries`), so every worker reports the same totals
and a restart loses nothing. To keep a scrape cheap on a big store, the totals are kept
incrementally: each source has a high-water mark (its rows' ids grow), and a scrape reads only
the rows past it.

Ids grow in the order rows are *inserted*, not committed: on PostgreSQL a row with a lower id
can become visible after a higher one was read. So a row is only *settled* (added for good,
and the mark moved past it) once it is older than its source's ``grace``; the younger rows
form the *tail*, read again at every scrape and added to the settled totals afresh. A row
that stayed uncommitted longer than the grace (minutes; carebot's transactions take
milliseconds) would be missed. Helpful surveys are answered after they are asked, so theirs
is the time an answer may take (``[survey] reply_hours``) plus an hour.

Settling is summed by the database where a source allows it (a first scrape of a store with a
million messages brings no message into Python); the tail is read row by row.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession

from carebot.clock import Clock
from carebot.insight.counter_queries import Row, Source, sources
from carebot.insight.totals import Totals
from carebot.store.database import Database

PAGE = 10_000  # rows read per query


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
        self.rows_read = 0  # rows brought into Python by the last refresh (what it cost)

    async def refresh(self) -> Totals:
        """Count the rows written since the last refresh (and the young ones again) and
        return the totals. Concurrent scrapes wait for one another."""
        async with self._lock, self._db.session() as session:
            now = self._clock()
            tail, self.rows_read = Totals(), 0
            for source in self._sources:
                await self._settle(session, source, now - source.grace)
                after = self._marks[source.name]
                self.rows_read += await _each(session, source, after, None, tail)
            self.totals = self._settled.plus(tail)
            return self.totals

    async def _settle(self, session: AsyncSession, source: Source, cutoff: datetime) -> None:
        """Add ``source``'s rows past its mark that are older than ``cutoff`` (up to the first
        younger one) to the settled totals, and move the mark past them."""
        mark = self._marks[source.name]
        upto = await _settle_bound(session, source, mark, cutoff)
        if upto <= mark:
            return
        if source.summed is not None and source.add_summed is not None:
            source.add_summed(
                self._settled, (await session.execute(source.summed(mark, upto))).all()
            )
        else:
            self.rows_read += await _each(session, source, mark, upto, self._settled)
        self._marks[source.name] = upto


async def _settle_bound(session: AsyncSession, source: Source, mark: int, cutoff: datetime) -> int:
    """The last id to settle: the one before the first row at or after ``cutoff``, or the
    last row when all are older (``mark`` when there is nothing new)."""
    query = source.rows(mark)
    id_, at = query.selected_columns[0], query.selected_columns[1]
    young = await session.scalar(
        query.with_only_columns(id_).where(at >= cutoff).order_by(id_).limit(1)
    )
    if young is not None:
        return max(mark, int(young) - 1)
    last = await session.scalar(query.with_only_columns(func.max(id_)))
    return mark if last is None else int(last)


async def _each(
    session: AsyncSession, source: Source, after: int, upto: int | None, totals: Totals
) -> int:
    """Add ``source``'s rows with ids in ``(after, upto]`` (no upper bound: None) to
    ``totals``, a page at a time; returns how many there were."""
    read = 0
    add: Callable[[Totals, Row], None] = source.add
    while True:
        query = source.rows(after)
        id_ = query.selected_columns[0]
        if upto is not None:
            query = query.where(id_ <= upto)
        rows = (await session.execute(query.order_by(id_).limit(PAGE))).all()
        for row in rows:
            add(totals, row)
        read += len(rows)
        if len(rows) < PAGE:
            return read
        after = rows[-1][0]
