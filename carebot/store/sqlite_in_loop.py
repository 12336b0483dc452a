"""SQLite on the event loop: a driver connection that runs each statement right away, in the
loop's own thread, for SQLAlchemy's aiosqlite dialect (``create_async_engine(async_creator=)``).

aiosqlite runs every call (open a cursor, execute, fetch, close, commit) in a thread of its own
and wakes the event loop for each result: four or five thread hand-offs per statement. A short
indexed statement takes SQLite some microseconds, the hand-offs a hundred or more, far more on a
loaded machine, and a message's store work is some twenty statements. Here the statement simply
runs, and the awaitables SQLAlchemy waits on are already done.

What waits is never the loop: the connection's busy timeout is 0, so a statement that meets
another connection's write lock (another process, or another connection of this one) fails at
once with "database is locked", and is tried again after an ``asyncio.sleep`` that lets the loop
run, in growing steps up to :data:`BUSY_TIMEOUT` in all, as SQLite's own busy handler would
have waited. Long reads (the care leads' reports) are not for this connection: they would hold
the loop; :class:`carebot.store.database.Database` gives them an aiosqlite engine of their own.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

BUSY_TIMEOUT = 5.0  # seconds a statement keeps trying while another connection writes
FIRST_WAIT = 0.001  # seconds before the first retry; doubled up to MAX_WAIT
MAX_WAIT = 0.05

T = TypeVar("T")


def _locked(error: sqlite3.OperationalError) -> bool:
    code = getattr(error, "sqlite_errorcode", None)
    if code is not None:  # the extended code: a stale snapshot never succeeds by waiting
        return code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "database is locked" in str(error) or "database table is locked" in str(error)


async def _patiently(call: Callable[[], T]) -> T:
    """``call()``, tried again while the database is locked by another connection."""
    try:
        return call()
    except sqlite3.OperationalError as error:
        if not _locked(error):
            raise
        deadline = time.monotonic() + BUSY_TIMEOUT
        wait = FIRST_WAIT
        while True:
            await asyncio.sleep(wait)
            try:
                return call()
            except sqlite3.OperationalError as again:
                if not _locked(again) or time.monotonic() >= deadline:
                    raise
            wait = min(wait * 2, MAX_WAIT)


class Cursor:
    """aiosqlite's cursor interface over a :class:`sqlite3.Cursor`, run on the spot."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    async def __aenter__(self) -> Cursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._cursor.close()

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> Cursor:
        args = () if parameters is None else parameters
        await _patiently(lambda: self._cursor.execute(sql, args))
        return self

    async def executemany(self, sql: str, parameters: Iterable[Sequence[Any]]) -> Cursor:
        rows = list(parameters)  # a generator could not be read again after a retry
        await _patiently(lambda: self._cursor.executemany(sql, rows))
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(size if size is not None else self._cursor.arraysize)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()

    async def nextset(self) -> None:
        return None

    async def setinputsizes(self, *sizes: Any) -> None:
        return None

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value


class Connection:
    """aiosqlite's connection interface (what SQLAlchemy's adapter calls) over a
    :class:`sqlite3.Connection` used only from the event loop's thread."""

    def __init__(
        self, connection: sqlite3.Connection, after_commit: Callable[[], None] | None = None
    ) -> None:
        self._connection: sqlite3.Connection | None = connection
        self._after_commit = after_commit

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._connection is None:
            raise ValueError("Connection closed")
        return self._connection

    def cursor(self) -> Cursor:
        return Cursor(self._conn.cursor())

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> Cursor:
        return await self.cursor().execute(sql, parameters)

    async def rows(self, sql: str, parameters: Sequence[Any]) -> list[Any]:
        """Run one statement and fetch its rows (:mod:`carebot.store.prepared`)."""

        def run() -> list[Any]:
            cursor = self._conn.execute(sql, parameters)
            try:
                return cursor.fetchall()
            finally:
                cursor.close()

        return await _patiently(run)

    async def commit(self) -> None:
        await _patiently(self._conn.commit)
        if self._after_commit is not None:
            self._after_commit()

    async def rollback(self) -> None:
        self._conn.rollback()

    async def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def stop(self) -> None:
        """Close at once (SQLAlchemy's terminate)."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._conn.create_function(*args, **kwargs)

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    @isolation_level.setter
    def isolation_level(self, value: Any) -> None:
        self._conn.isolation_level = value

    @property
    def in_transaction(self) -> bool:
        return self._conn.in_transaction


def connector(
    path: str, *, uri: bool = False, after_commit: Callable[[], None] | None = None
) -> Callable[[], Awaitable[Connection]]:
    """The ``async_creator`` for an engine on the SQLite file at ``path``; ``after_commit`` is
    called after each commit (:class:`carebot.store.checkpoints.Checkpoints`)."""

    async def connect() -> Connection:
        raw = sqlite3.connect(path, uri=uri, check_same_thread=False, timeout=0)
        return Connection(raw, after_commit)

    return connect
