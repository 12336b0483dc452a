"""The database: an async SQLAlchemy engine, its sessions, and the Alembic migrations."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import AsyncAdaptedQueuePool

from carebot.exceptions import StoreError
from carebot.store import sqlite_in_loop
from carebot.store.checkpoints import Checkpoints

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
# Of [store] max_connections, kept out of the pool: the cross-process events' connection, the
# leader's lock's, and the outbox's sent marks' (a delivered reply is marked sent at once, never
# behind a pool that a worker far behind has exhausted: a mark that waited out the pool's
# timeout failed, and the reply went to the customer again when its lease ran out).
KEPT_APART = 3
POOL_TIMEOUT = 30.0  # seconds a session waits for a free connection of the pool
MIGRATION_LOCK = 0x63617265626F74  # pg_advisory_xact_lock's key around 'db upgrade' ("carebot")
BOT_INTRO = "carebot.bot_intro"  # the key of Session.info that holds the bot's introduction
# PostgreSQL sessions of the pool: a statement waits at most LOCK_TIMEOUT for a lock, and a
# transaction left idle (its worker stopped: SIGSTOP, a debugger, a frozen VM) is ended after
# IDLE_IN_TRANSACTION, which releases its locks. Without them one stopped worker held the
# conversations it had locked, every worker's connections queued behind those locks, and the
# whole service stalled until it resumed. What a timeout interrupts is redone: a message not
# stored is refused (the platform sends it again), one stored but not decided is recovered.
LOCK_TIMEOUT_MS = 5_000
IDLE_IN_TRANSACTION_MS = 30_000


class _BudgetPool(AsyncAdaptedQueuePool):
    """The pool of a worker's connection budget: exhausting it says which setting to raise."""

    _sqla_logger_namespace = "sqlalchemy.pool.impl.AsyncAdaptedQueuePool"  # its usual logger

    def _do_get(self) -> Any:
        try:
            return super()._do_get()
        except sa_exc.TimeoutError as exc:
            size = self.size()
            raise sa_exc.TimeoutError(
                f"All {size} pooled database connections of this worker stayed busy for "
                f"{self._timeout:g} s ([store] max_connections = {size + KEPT_APART}: the pool, "
                "plus one connection each for cross-process events, the leader's lock and the "
                "outbox's sent marks). "
                "Raise [store] max_connections (keeping workers x machines x max_connections "
                "below PostgreSQL's max_connections), or look for slow queries."
            ) from exc


class Database:
    """Owns the engine. SQLite gets WAL, a busy timeout and enforced foreign keys; PostgreSQL
    a pool of ``max_connections`` - 3 connections and no overflow (``[store] max_connections``:
    the other three are the cross-process events', the leader's lock's and the sent marks',
    see :data:`KEPT_APART`).

    ``bot_intro``: the text put before the bot's first message of every conversation (``[messages]
    bot_intro``, filled in; empty: none); or a mapping of language code to that text (key "":
    the default language's, see :func:`carebot.store.outbox.introduction`). Every session
    carries it (``session.info[BOT_INTRO]``),
    so every outgoing message, whichever store writes it, meets it in
    :func:`carebot.store.outbox.add_reply`."""

    def __init__(
        self,
        url: str,
        *,
        echo: bool = False,
        max_connections: int = 20,  # [store] max_connections's default
        pool_timeout: float = POOL_TIMEOUT,
        bot_intro: str | Mapping[str, str] = "",
        lock_timeout_ms: int = LOCK_TIMEOUT_MS,
    ) -> None:
        self.url = make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        if self.is_sqlite and self.url.database not in (None, "", ":memory:"):
            Path(self.url.database).parent.mkdir(parents=True, exist_ok=True)
        pool: dict[str, Any] = {}
        if not self.is_sqlite:
            pool = {
                "poolclass": _BudgetPool,
                "pool_size": max(1, max_connections - KEPT_APART),
                "max_overflow": 0,
                "pool_timeout": pool_timeout,
            }
            if self.url.get_driver_name() == "asyncpg":
                settings = {
                    "lock_timeout": str(lock_timeout_ms),
                    "idle_in_transaction_session_timeout": str(IDLE_IN_TRANSACTION_MS),
                }
                pool["connect_args"] = {"server_settings": settings}
        # hide_parameters: SQL parameters (customer text) never appear in errors and logs.
        # SQLite on the event loop: its write-ahead log is copied by a thread of its own.
        self.checkpoints: Checkpoints | None = None
        in_loop: dict[str, Any] = {}
        if self.is_sqlite and self.url.database not in (None, "", ":memory:"):
            uri = str(self.url.query.get("uri", "")).lower() in ("1", "true")
            self.checkpoints = Checkpoints(self.url.database, uri=uri)
            in_loop["async_creator"] = sqlite_in_loop.connector(
                self.url.database, uri=uri, after_commit=self.checkpoints.committed
            )
        self.engine: AsyncEngine = create_async_engine(
            self.url, echo=echo, hide_parameters=True, **pool, **in_loop
        )
        # The sent marks' connection (see KEPT_APART); SQLite's writers share its write lock.
        self._marks: AsyncEngine = self.engine
        if not self.is_sqlite:
            apart = {**pool, "poolclass": AsyncAdaptedQueuePool, "pool_size": 1}
            if "connect_args" in pool:
                # A mark's plan made for its own ids: the plan asyncpg's prepared statement
                # kept from the first marks, made while the outbox was a few rows, scanned the
                # whole table for every mark ever after (0.57 sequential scans of the outbox
                # a message in bench/workers.py on a fresh database), until an ANALYZE.
                marks_settings = {**settings, "plan_cache_mode": "force_custom_plan"}
                apart["connect_args"] = {"server_settings": marks_settings}
            self._marks = create_async_engine(self.url, echo=echo, hide_parameters=True, **apart)
        # Long reads (the care leads' reports): on SQLite, off the event loop (aiosqlite's
        # thread), so that a report over a year of messages does not hold up the service.
        self.reports: AsyncEngine = self.engine
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas_in_loop)
            self.reports = create_async_engine(self.url, echo=echo, hide_parameters=True)
            event.listen(self.reports.sync_engine, "connect", _sqlite_pragmas)
        # Reads that need no transaction of their own, and single statements: on PostgreSQL in
        # autocommit, which spares each the BEGIN and the ROLLBACK or COMMIT round trips
        # (SQLite begins none for a read).
        self._autocommit: AsyncEngine = _autocommitting(self.engine)
        self._marks_autocommit: AsyncEngine = _autocommitting(self._marks)
        self.bot_intro = {"": bot_intro} if isinstance(bot_intro, str) else dict(bot_intro)
        self.sessions = async_sessionmaker(
            self.engine, expire_on_commit=False, info={BOT_INTRO: self.bot_intro}
        )
        self._write_lock: contextlib.AbstractAsyncContextManager[Any] = (
            asyncio.Lock() if self.is_sqlite else contextlib.nullcontext()
        )

    def session(self) -> AsyncSession:
        """A session for reads."""
        return self.sessions()

    def reads(self) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
        """A connection for reads that need no snapshot of their own: one statement, or
        several that may each see the latest commits (the per-message reads)."""
        return self._autocommit.connect()

    def read_session(self) -> AsyncSession:
        """An ORM session for such reads (see :meth:`reads`)."""
        return AsyncSession(
            self._autocommit, expire_on_commit=False, info={BOT_INTRO: self.bot_intro}
        )

    def report_session(self) -> AsyncSession:
        """A session for long reads (reports over many messages): on SQLite off the event
        loop, see :attr:`reports`."""
        return AsyncSession(self.reports, expire_on_commit=False, info={BOT_INTRO: self.bot_intro})

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session in a transaction, committed on success, rolled back on error.

        SQLite allows one writer at a time; its busy handler makes waiting writers sleep in
        growing steps. Writers of this process therefore queue on an asyncio lock instead, which
        keeps the tail latency flat under load (other processes still meet the busy timeout).
        """
        async with self._write_lock, self.sessions() as session, session.begin():
            yield session

    @contextlib.asynccontextmanager
    async def writes(
        self, *, one_statement: bool = False, sent_marks: bool = False
    ) -> AsyncIterator[AsyncConnection]:
        """A plain connection in a transaction (no ORM session: for prepared Core statements
        only), committed on success, rolled back on error; queued like :meth:`transaction`.
        ``one_statement``: the block runs one statement, which PostgreSQL then commits by
        itself (autocommit: no BEGIN and COMMIT round trips). ``sent_marks``: on PostgreSQL
        the connection kept for the outbox's sent marks, not one of the pool (one writer at a
        time: the outbox's group commit)."""
        if one_statement and not self.is_sqlite:
            single = self._marks_autocommit if sent_marks else self._autocommit
            async with single.connect() as connection:
                yield connection
            return
        async with (
            self._write_lock,
            (self._marks if sent_marks else self.engine).begin() as connection,
        ):
            yield connection

    async def upgrade(self) -> None:
        """Apply every Alembic migration not yet applied (``carebot db upgrade``). On
        PostgreSQL a transaction-scoped advisory lock comes first: two upgrades at once take
        turns, and the second finds the schema at head already."""
        try:
            async with self.engine.begin() as conn:
                if not self.is_sqlite:
                    lock = text("SELECT pg_advisory_xact_lock(:key)")
                    await conn.execute(lock, {"key": MIGRATION_LOCK})
                await conn.run_sync(_upgrade_head)
        except (SQLAlchemyError, OSError) as exc:
            raise StoreError(f"Cannot migrate the database at {self.safe_url}: {exc}") from exc

    async def current_revision(self) -> str | None:
        async with self.engine.connect() as conn:
            return await conn.run_sync(_current_revision)

    async def check_migrated(self) -> None:
        """Raise unless every migration is applied (PostgreSQL is never migrated implicitly)."""
        from alembic.script import ScriptDirectory

        head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
        current = await self.current_revision()
        if current != head:
            raise StoreError(
                f"The database at {self.safe_url} is at migration {current or 'none'}, "
                f"this carebot needs {head}. Run 'carebot db upgrade'."
            )

    async def prepare(self) -> None:
        """Ready for the service: SQLite is migrated on the spot; PostgreSQL must be reachable
        and migrated already (``carebot db upgrade``), never implicitly."""
        if self.is_sqlite:
            await self.upgrade()
        else:
            await self.ping()
            await self.check_migrated()

    async def ping(self) -> None:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except (SQLAlchemyError, OSError) as exc:
            raise StoreError(f"The database at {self.safe_url} is unreachable: {exc}") from exc

    def asyncpg_dsn(self) -> str:
        """PostgreSQL's URL as asyncpg's own ``connect`` takes it, for the few connections a
        worker keeps outside the pool (events between workers, the leader's lock)."""
        return self.url.set(drivername="postgresql").render_as_string(hide_password=False)

    @property
    def safe_url(self) -> str:
        return self.url.render_as_string(hide_password=True)

    async def close(self) -> None:
        await self.engine.dispose()
        if self._marks is not self.engine:
            await self._marks.dispose()
        if self.reports is not self.engine:
            await self.reports.dispose()
        if self.checkpoints is not None:
            await self.checkpoints.close()


def _autocommitting(engine: AsyncEngine) -> AsyncEngine:
    """The engine's connections in autocommit on PostgreSQL (SQLite begins none for a read)."""
    if engine.dialect.name == "sqlite":
        return engine
    return engine.execution_options(isolation_level="AUTOCOMMIT")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any, *, busy_ms: int = 5000) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
    cursor.execute("PRAGMA synchronous=NORMAL")  # with WAL: durable across crashes, fewer fsyncs
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_pragmas_in_loop(dbapi_connection: Any, record: Any) -> None:
    """As :func:`_sqlite_pragmas`, but a locked database fails at once: the in-loop driver then
    waits with the loop free (:func:`carebot.store.sqlite_in_loop._patiently`)."""
    _sqlite_pragmas(dbapi_connection, record, busy_ms=0)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA wal_autocheckpoint=0")  # copied off the loop: store/checkpoints.py
    cursor.close()


def _alembic_config(connection: Connection) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _upgrade_head(connection: Connection) -> None:
    from alembic import command

    command.upgrade(_alembic_config(connection), "head")


def _current_revision(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()
