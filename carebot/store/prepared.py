"""The per-message statements, run by the database driver itself: each compiled once per
dialect into its SQL, its parameters' order and SQLAlchemy's conversions of them (a timestamp to
SQLite's text, a mapping to JSON), then executed on the driver's connection of the caller's
transaction (sqlite3 on the event loop, or asyncpg) with no SQLAlchemy execution in between.

SQLAlchemy's execution of an already compiled statement (its cache key, execution context,
result object, and the greenlet hop of its asyncio layer) costs far more than the statement:
measured here (SQLite), 165 us for an INSERT through SQLAlchemy's Core against some 20 us in
sqlite3, and a message has a dozen such statements. The rows come back as tuples, their values
converted by SQLAlchemy's result processors (JSON read, timestamps made aware); nothing is
loaded into an ORM session.

On asyncpg, SQLAlchemy begins the transaction with the first statement it runs; a prepared
statement that comes first begins it the same way (the adapter's own call), so it belongs to
the transaction. A driver this module does not know (another SQLite driver, an in-memory
database, psycopg) is given the statement through SQLAlchemy. A driver's error is raised as
SQLAlchemy's (``IntegrityError`` for a unique index, ``OperationalError``/``DBAPIError`` for
the rest), as the callers expect.

This reads some of SQLAlchemy's internals (a compiled statement's processors, the asyncpg
adapter's transaction), hence the upper bound on SQLAlchemy in pyproject.toml;
tests/test_prepared.py fails if a release changes them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import ClauseElement, Executable
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.sql.compiler import SQLCompiler

from carebot.store import sqlite_in_loop

try:  # PostgreSQL's driver is an optional dependency of SQLite-only installs
    import asyncpg
except ImportError:  # pragma: no cover
    asyncpg = None

_DRIVER = "carebot.store.prepared.driver"  # Session.info's key: the transaction's driver


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]  # the parameters, in the order the SQL takes them
    fixed: Mapping[str, Any]  # values the statement carries itself
    convert: Mapping[str, Callable[[Any], Any]]  # SQLAlchemy's bind processors
    results: tuple[Callable[[Any], Any] | None, ...] | None  # its result processors, if any

    def rows(self, found: Sequence[Sequence[Any]]) -> Sequence[Sequence[Any]]:
        """The driver's rows, their values converted as SQLAlchemy would (JSON read, a
        timestamp made aware)."""
        if self.results is None:
            return found
        return [
            tuple(
                v if p is None or v is None else p(v)
                for p, v in zip(self.results, row, strict=True)
            )
            for row in found
        ]

    def arguments(self, params: Mapping[str, Any]) -> list[Any]:
        values = {**self.fixed, **params}
        out = []
        for name in self.names:
            value = values[name]
            convert = self.convert.get(name)
            out.append(value if convert is None or value is None else convert(value))
        return out


def _compile(statement: Executable, dialect: Dialect, **kw: Any) -> _Compiled:
    compiled = cast(ClauseElement, statement).compile(dialect=dialect, **kw)
    assert isinstance(compiled, SQLCompiler)
    base = compiled.construct_params(_check=False)
    expanded = compiled._process_parameters_for_postcompile(base, _populate_self=False)
    positions = expanded.positiontup or []
    results = tuple(
        column.type._cached_result_processor(dialect, None) for column in compiled._result_columns
    )
    return _Compiled(
        expanded.statement,
        tuple(positions),
        {k: v for k, v in expanded.parameters.items() if not _required(v)},
        {k: v for k, v in compiled._bind_processors.items() if callable(v)},
        results if any(results) else None,
    )


def _required(value: Any) -> bool:
    return getattr(value, "name", None) == "REQUIRED"


class Prepared:
    """``statement`` (Core), ready to run on the driver; its rows are tuples."""

    def __init__(self, statement: Executable, *, column_keys: Sequence[str] | None = None) -> None:
        """``column_keys``: an INSERT's columns (all of them, their defaults included)."""
        self.statement = statement
        self._column_keys = list(column_keys) if column_keys is not None else None
        self._compiled: dict[tuple[str, str], _Compiled] = {}

    def compiled(self, dialect: Dialect) -> _Compiled:
        key = (dialect.name, dialect.driver)
        found = self._compiled.get(key)
        if found is None:
            kw = {} if self._column_keys is None else {"column_keys": self._column_keys}
            found = self._compiled[key] = _compile(self.statement, dialect, **kw)
        return found

    async def rows(
        self, on: AsyncSession | AsyncConnection, params: Mapping[str, Any] | None = None
    ) -> Sequence[Sequence[Any]]:
        """The result's rows (tuples of plain values)."""
        if isinstance(on, AsyncSession):
            await flushed(on)
            held = _held(on)
            driver = None if held is None else await _driver_of(held)
            if driver is not None:  # the session's transaction has its connection already
                assert held is not None
                return await _execute(driver, self.compiled(held.dialect), params or {})
            on = await on.connection()
        return await run(on, self, params or {})

    async def scalar(
        self, on: AsyncSession | AsyncConnection, params: Mapping[str, Any] | None = None
    ) -> Any:
        """The first row's first value, or None when there is no row."""
        rows = await self.rows(on, params)
        return rows[0][0] if rows else None


async def flushed(session: AsyncSession) -> None:
    """Pending ORM changes of the session written first, so that statements keep their order."""
    if session.new or session.dirty or session.deleted:
        await session.flush()


async def run(
    connection: AsyncConnection,
    prepared: Prepared,
    params: Mapping[str, Any],
) -> Sequence[Sequence[Any]]:
    """Run ``prepared`` with ``params`` on ``connection``'s driver (or through SQLAlchemy
    where the driver is not one of ours, see the module's note)."""
    sync = connection.sync_connection
    driver = None if sync is None else await _driver_of(sync)
    if driver is None:
        result = await connection.execute(cast(Any, prepared.statement), dict(params))
        return result.all() if result.returns_rows else []
    return await _execute(driver, prepared.compiled(connection.dialect), params)


def _held(session: AsyncSession) -> Connection | None:
    """The connection of the session's transaction, when it has begun one: taken without
    SQLAlchemy's asyncio bridge (``session.connection()`` costs a greenlet switch each time,
    four per message). None: ask the session for it."""
    transaction = session.sync_session.get_transaction()
    if transaction is None or not transaction.is_active:
        return None
    held: frozenset[Connection] = getattr(transaction, "connections", frozenset())
    return next(iter(held)) if len(held) == 1 else None


async def _execute(driver: Any, compiled: _Compiled, params: Mapping[str, Any]) -> Any:
    arguments = compiled.arguments(params)
    try:
        if isinstance(driver, sqlite_in_loop.Connection):
            return compiled.rows(await driver.rows(compiled.sql, arguments))
        return compiled.rows(await driver.fetch(compiled.sql, *arguments))
    except sqlite3.IntegrityError as error:
        raise sa_exc.IntegrityError(compiled.sql, None, error) from error
    except sqlite3.Error as error:
        raise sa_exc.OperationalError(compiled.sql, None, error) from error
    except Exception as error:
        if asyncpg is None or not isinstance(error, asyncpg.PostgresError | asyncpg.InterfaceError):
            raise
        if isinstance(error, asyncpg.IntegrityConstraintViolationError):
            raise sa_exc.IntegrityError(compiled.sql, None, error) from error
        raise sa_exc.DBAPIError(compiled.sql, None, error) from error


async def _driver_of(sync: Connection) -> Any:
    """The driver's connection under ``sync``, when it is one to run statements on
    directly: sqlite3 on the event loop, or asyncpg (its transaction begun first, as
    SQLAlchemy's adapter would have begun it)."""
    if sync.closed or sync.invalidated:
        return None  # SQLAlchemy's own execution reports it, or connects again
    fairy = sync.connection
    driver = fairy.driver_connection
    if isinstance(driver, sqlite_in_loop.Connection):
        return driver
    if asyncpg is None or not isinstance(driver, asyncpg.Connection):
        return None
    adapted: Any = fairy.dbapi_connection  # SQLAlchemy's adapter
    if getattr(adapted, "isolation_level", None) == "autocommit":
        return driver
    if getattr(adapted, "_transaction", None) is None:
        try:
            await adapted._start_transaction()
        except Exception:
            return None  # SQLAlchemy tries again, and raises its own error if it fails too
    return driver if getattr(adapted, "_transaction", None) is not None else None
