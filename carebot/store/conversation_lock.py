"""One conversation decided by one worker at a time, across processes.

The inbox decides a conversation's messages one after the other (reading the conversation,
triage, then the transaction that records the decision). Within a process an asyncio lock per
conversation does it; with several workers on one PostgreSQL database a transaction-scoped
advisory lock on the conversation id does it across processes: it is taken on a connection of
its own, in a transaction that spans the deciding, and released by that transaction's end
(also when the worker dies: PostgreSQL ends its session). The deciding itself runs on other
connections: the advisory lock only keeps the other deciders of that conversation waiting.

The asyncio lock stays in front on PostgreSQL, so that one process never spends several
connections waiting for the same conversation. Each conversation being decided costs one
extra connection from the pool; at most ``limit`` are held at once, so the deciders holding
them always find a connection for their own queries (with as many lock connections as the
pool has, every decider would wait for a connection that never comes back).

SQLite serves one process, so the asyncio lock is the whole story there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from carebot.exceptions import StoreError
from carebot.store.database import Database
from carebot.store.pool_share import PoolShare

log = logging.getLogger(__name__)

LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL's error for a lock not granted within lock_timeout


class ConversationBusy(StoreError):
    """Another worker has held the conversation longer than the database's lock timeout (it is
    deciding a long batch, or it stopped): the message stays stored and undecided, for a
    redelivery or the next recovery pass."""

    def __init__(self, conversation_id: int) -> None:
        super().__init__(
            f"Conversation {conversation_id} is held by another worker past the lock timeout; "
            "its message stays stored and is decided later (redelivery or recovery)"
        )
        self.conversation_id = conversation_id


# The advisory lock's first key: the conversation locks' own key space, apart from any other
# advisory lock of the application (the two-key form never meets the one-key form).
CONVERSATION_LOCKS = 1


class ConversationLocks:
    def __init__(self, db: Database, *, limit: int) -> None:
        if limit < 1:
            raise ValueError(
                f"ConversationLocks needs a limit of at least 1 held lock, got {limit}: "
                "raise [store] max_connections"
            )
        self._db = db
        self._local: weakref.WeakValueDictionary[int, asyncio.Lock] = weakref.WeakValueDictionary()
        self._slots = PoolShare(limit)

    @contextlib.asynccontextmanager
    async def hold(self, conversation_id: int) -> AsyncIterator[None]:
        """Held by one decider of the conversation at a time, in this process and (PostgreSQL)
        in every process on the database."""
        lock = self._local.setdefault(conversation_id, asyncio.Lock())
        async with lock:
            if self._db.is_sqlite:
                yield
                return
            async with self._slots.turn(), self._held(conversation_id):
                yield

    @contextlib.asynccontextmanager
    async def _held(self, conversation_id: int) -> AsyncIterator[None]:
        """The lock's transaction, begun and locked in one round trip (one simple query of
        two statements, on a connection in autocommit whose transaction is this block's own),
        ended by a ROLLBACK, or by closing the connection when that cannot be sent."""
        async with self._db.reads() as conn:
            driver = (await conn.get_raw_connection()).driver_connection
            assert driver is not None
            try:
                await driver.execute(
                    f"BEGIN; SELECT pg_advisory_xact_lock({CONVERSATION_LOCKS:d}, "
                    f"{conversation_id:d})"
                )
            except BaseException as exc:
                await _end(conn, driver, conversation_id)
                if getattr(exc, "sqlstate", None) == LOCK_NOT_AVAILABLE:
                    raise ConversationBusy(conversation_id) from exc
                raise
            try:
                yield
            finally:
                await _end(conn, driver, conversation_id)


async def _end(conn: AsyncConnection, driver: Any, conversation_id: int) -> None:
    """End the lock's transaction (a ROLLBACK: nothing was written in it). When that fails
    or is interrupted, the connection is closed: PostgreSQL then ends the transaction and
    releases the lock with the session, and the pool opens a new connection. What was decided
    under the lock stands."""
    try:
        await driver.execute("ROLLBACK")
    except BaseException as exc:
        log.warning(
            "Could not end the lock transaction of conversation %s (%r); its connection is "
            "closed, which releases the lock",
            conversation_id,
            exc,
        )
        await conn.invalidate()
        if not isinstance(exc, Exception):
            raise
