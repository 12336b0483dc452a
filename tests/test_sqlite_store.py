"""SQLite as the service runs it: statements on the event loop (carebot/store/sqlite_in_loop.py)
that wait for another connection's lock with the loop free, and the write-ahead log copied into
the file by a thread of its own (carebot/store/checkpoints.py), not by the commit that fills it."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text

from carebot.store.checkpoints import Checkpoints
from carebot.store.database import Database
from carebot.store.sqlite_in_loop import _patiently


async def migrated(tmp_path: Path) -> tuple[Database, Path]:
    path = tmp_path / "carebot.db"
    db = Database(f"sqlite+aiosqlite:///{path}")
    await db.upgrade()
    return db, path


def log_frames(path: Path) -> tuple[int, int]:
    """(frames in the write-ahead log, of them copied into the file), as SQLite reports them
    for a passive checkpoint that copies nothing new (another connection, autocheckpoint off)."""
    other = sqlite3.connect(path)
    try:
        other.execute("PRAGMA wal_autocheckpoint=0")
        busy, frames, copied = other.execute("PRAGMA wal_checkpoint(NOOP)").fetchone()
    finally:
        other.close()
    assert busy == 0
    return frames, copied


async def write_customers(db: Database, count: int) -> None:
    for n in range(count):
        async with db.transaction() as session:
            await session.execute(
                text("INSERT INTO customers (display_name, created_at) VALUES (:n, :at)"),
                {"n": f"customer {n}", "at": "2026-12-06 12:00:00"},
            )


async def test_the_loops_connections_leave_the_log_to_the_checkpoint_thread(
    tmp_path: Path,
) -> None:
    db, path = await migrated(tmp_path)
    assert db.checkpoints is not None
    async with db.engine.connect() as conn:
        settings = [
            (await conn.exec_driver_sql(f"PRAGMA {name}")).scalar()
            for name in ("journal_mode", "wal_autocheckpoint", "busy_timeout")
        ]
    assert settings == ["wal", 0, 0]  # commits never copy the log themselves
    await write_customers(db, 50)
    before = db.checkpoints.done
    await db.checkpoints.flush()
    frames, copied = log_frames(path)
    assert frames > 0 and copied == frames and db.checkpoints.done == before + 1
    await db.close()


async def test_commits_ask_for_one_checkpoint_after_a_delay_and_closing_runs_it(
    tmp_path: Path,
) -> None:
    _, path = await migrated(tmp_path)
    checkpoints = Checkpoints(str(path), delay=3600)
    checkpoints.committed()
    timer = checkpoints._timer
    assert timer is not None
    checkpoints.committed()
    assert checkpoints._timer is timer  # the commits of one delay share a checkpoint
    await checkpoints.close()
    assert timer.cancelled() and checkpoints.done == 1  # closing copied what was left
    checkpoints.committed()  # after closing: nothing more is asked
    assert checkpoints._timer is None


async def test_a_statement_meeting_another_writers_lock_is_tried_again_with_the_loop_free() -> None:
    attempts: list[bool] = []
    other_ran = asyncio.Event()

    def statement() -> str:
        attempts.append(other_ran.is_set())
        if len(attempts) < 3:
            raise sqlite3.OperationalError("database is locked")
        return "done"

    async def other_work() -> None:
        other_ran.set()

    other = asyncio.create_task(other_work())
    assert await _patiently(statement) == "done"
    assert attempts == [False, True, True]  # the loop ran other work between the tries
    await other


async def test_any_other_error_of_a_statement_is_raised_at_once() -> None:
    calls: list[int] = []

    def statement() -> None:
        calls.append(1)
        raise sqlite3.OperationalError("no such table: nowhere")

    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        await _patiently(statement)
    assert calls == [1]
