"""Migrated databases for the tests, copied from a template instead of migrated one by one.

Running every migration (:meth:`Database.upgrade`) costs a third of a second per database, and
about 1,400 tests start from a migrated one. So each test process (each xdist worker) migrates a
template of each kind once, the first time one is needed, and copies it:

- SQLite: the template file, copied to the test's path (file copy);
- PostgreSQL: ``CREATE DATABASE ... TEMPLATE`` when the database is made already migrated
  (:func:`create_postgres`, for conftest's ``database`` and ``runtime`` fixtures); an existing,
  empty database that set-up migrates later (:func:`migrate`: ``running_service``, a module's
  own fixture) gets the template's ``pg_dump`` replayed in one transaction.

The copy is what ``upgrade`` would have left: ``upgrade`` runs the migrations in one
transaction and nothing else that lasts (PostgreSQL's advisory lock is transaction-scoped; of
SQLite's pragmas only ``journal_mode=WAL`` is kept in the file, and the template has it; the
others are set on every connection by :class:`Database`, as ever). The migrations themselves
are tested for real, on ``database_url``'s empty databases (tests/test_store.py and the
``test_migration_*`` tests). The templates go at the end of the session
(:func:`remove_templates`); a PostgreSQL one left by a killed run has a unique name, so it
cannot change a later run's result.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sqlite3
import tempfile
import uuid
import weakref
from pathlib import Path

import asyncpg
from sqlalchemy.engine import URL, make_url

from carebot.store.database import MIGRATION_LOCK, Database

PG_ENV = "CAREBOT_TEST_DATABASE_URL"


class _Templates:
    """This process's templates, made on first use."""

    sqlite: Path | None = None
    postgres: str | None = None  # the template database's name, on PG_ENV's server
    dump: str | None = None  # its pg_dump, as SQL that asyncpg can run


_made = _Templates()
# One template of each kind even when a test migrates two databases at once; a lock per event
# loop, since each test has its own loop.
_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock]
_locks = weakref.WeakKeyDictionary()


def _lock() -> asyncio.Lock:
    return _locks.setdefault(asyncio.get_running_loop(), asyncio.Lock())


def admin_url() -> URL:
    """The PostgreSQL server of the tests (``CAREBOT_TEST_DATABASE_URL``)."""
    value = os.environ.get(PG_ENV)
    if not value:
        raise RuntimeError(f"{PG_ENV} is not set: no PostgreSQL for a migrated template")
    return make_url(value)


def asyncpg_dsn(url: URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


async def _admin(statement: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(admin_url()))
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def sqlite_template() -> Path:
    """This process's migrated SQLite file (made on first call)."""
    if _made.sqlite is None:
        folder = Path(tempfile.mkdtemp(prefix="carebot-template-"))
        path = folder / "migrated.db"
        db = Database(f"sqlite+aiosqlite:///{path}")
        try:
            await db.upgrade()
        finally:
            await db.close()
        # Everything in the main file, so that copying it alone copies the database.
        with contextlib.closing(sqlite3.connect(path)) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        for extra in ("-wal", "-shm"):
            Path(f"{path}{extra}").unlink(missing_ok=True)
        _made.sqlite = path
    return _made.sqlite


def copy_sqlite(template: Path, path: Path) -> None:
    """The template's copy at ``path`` (written beside it, then renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.copy")
    shutil.copyfile(template, partial)
    os.replace(partial, path)


async def postgres_template() -> str:
    """This process's migrated PostgreSQL database's name (made on first call)."""
    if _made.postgres is None:
        name = f"carebot_template_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        await _admin(f'CREATE DATABASE "{name}"')
        db = Database(admin_url().set(database=name).render_as_string(hide_password=False))
        try:
            await db.upgrade()
        except BaseException:
            await db.close()
            await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            raise
        await db.close()
        _made.postgres = name
    return _made.postgres


async def create_postgres(name: str) -> None:
    """A new database ``name``, already migrated: a copy of the template."""
    async with _lock():
        template = await postgres_template()
        await _admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')


async def _postgres_dump() -> str:
    if _made.dump is None:
        template = await postgres_template()
        pg_dump = shutil.which("pg_dump")
        if pg_dump is None:
            raise RuntimeError(
                "pg_dump is not on PATH: it copies the migrated template into an existing "
                "database (Debian's postgresql-client, which the postgresql package brings)"
            )
        process = await asyncio.create_subprocess_exec(
            *(pg_dump, "--inserts", "--no-owner", "--no-privileges"),
            f"--dbname={asyncpg_dsn(admin_url().set(database=template))}",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await process.communicate()
        if process.returncode:
            raise RuntimeError(f"pg_dump of {template} failed: {err.decode(errors='replace')}")
        # psql's meta-commands (\restrict ...) are for psql; the rest is plain SQL.
        lines = out.decode().splitlines()
        _made.dump = "\n".join(line for line in lines if not line.startswith("\\"))
    return _made.dump


async def migrate(url: str) -> None:
    """The database at ``url`` at the newest migration, as :meth:`Database.upgrade` leaves it.

    A database that is not there yet (SQLite) or has no table yet (PostgreSQL) gets a copy of
    the migrated template; any other is upgraded for real."""
    target = make_url(url)
    if target.get_backend_name() == "sqlite":
        path = Path(target.database or "")
        if target.database not in (None, "", ":memory:") and not path.exists():
            async with _lock():
                copy_sqlite(await sqlite_template(), path)
            return
    elif await _filled_postgres(target):
        return
    db = Database(url)
    try:
        await db.upgrade()
    finally:
        await db.close()


async def _filled_postgres(target: URL) -> bool:
    """The template's dump replayed into ``target`` if it has no table yet; False otherwise.
    Under ``upgrade``'s own advisory lock, so that it takes turns with a real upgrade."""
    async with _lock():
        dump = await _postgres_dump()
    conn = await asyncpg.connect(asyncpg_dsn(target))
    try:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
            relations = await conn.fetchval(
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'public'"
            )
            if relations:
                return False
            await conn.execute(dump)
    finally:
        await conn.close()
    return True


async def remove_templates() -> None:
    """Drop this process's templates (at the end of the session)."""
    if _made.sqlite is not None:
        shutil.rmtree(_made.sqlite.parent, ignore_errors=True)
        _made.sqlite = None
    if _made.postgres is not None:
        await _admin(f'DROP DATABASE IF EXISTS "{_made.postgres}" WITH (FORCE)')
        _made.postgres = None
        _made.dump = None
