"""A share of the connection pool for one kind of work.

Some work comes in storms: when a worker stops, its web chat tabs (a third of them, with three
workers) come back to the others within a second, and each reads its visitor's history on a
pooled connection. Queued with everything else, the messages customers send meanwhile waited
behind them for a connection: in the chaos bench, stores of up to 3.6 s in bursts right after
each kill, and the inbox's live views seeing those messages that late. A :class:`PoolShare`
lets at most ``size`` of such work hold connections at once; the rest wait their turn here, not
in the pool's queue in front of the stores. The conversation locks keep to a share of their own
(:mod:`carebot.store.conversation_lock`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class PoolShare:
    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"A pool share needs at least 1 connection, got {size}")
        self.size = size
        self.running = 0  # holding a turn now
        self.waiting = 0  # waiting for one
        self._slots = asyncio.Semaphore(size)

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Held while the work uses the database; waits while ``size`` others hold theirs."""
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        self.running += 1
        try:
            yield
        finally:
            self.running -= 1
            self._slots.release()
