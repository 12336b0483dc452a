"""One leader among the workers of a database, for the work that must run once.

Some work must not run in two processes at once: Telegram's ``getUpdates`` (a second poller
gets 409 Conflict) and its ``setWebhook``, Slack's Socket Mode connection and thread sync (two
would post every card twice), the idle-conversation sweep and the rating requests. These are
the *singletons*: each a start/stop pair (:class:`Singleton`), run by the leader only.

On PostgreSQL the leader is the worker that holds a session advisory lock
(``pg_try_advisory_lock``) on one dedicated asyncpg connection, not one of the pool's. A
follower tries again every ``retry_interval`` seconds. The leader checks every
``check_interval`` seconds that its connection is alive (a query), and hears at once when it
closes (a termination listener): when the connection is lost, so is the lock, and the worker
stops its singletons at once, before another worker can take over, then connects again and
tries again. On SQLite there is one process: it leads at once, always.

One INFO line says when this worker begins to lead and one when it stops leading.

In the service's lifecycle the leadership starts with the workers, once the database and the
platform clients are up; at "stop inbound" the receiving singletons (polling, Socket Mode)
stop and a follower stops campaigning; at "finish in-flight work" the other singletons stop
and the lock is released, so another worker takes over only once nothing of this one runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from carebot.lifecycle import Worker, Workers
from carebot.store.database import Database
from carebot.wakeup import Wakeup

log = logging.getLogger(__name__)
LOCK_KEY = int.from_bytes(b"carebot!", "big")  # the advisory lock's fixed bigint key
RETRY_SECONDS = 5.0  # a follower tries for the lock this often (and reconnects after a loss)
CHECK_SECONDS = 5.0  # the leader checks its connection this often
CONNECT_TIMEOUT = 10.0
LEADS = "This worker leads"
STEPS_DOWN = "This worker no longer leads"
STOPPING = "this worker is stopping"


class Singleton(Protocol):
    """Work only the leader runs. ``stop`` must be harmless for a part that never started,
    whose start failed or was cut short, or that was stopped already."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Part:
    """A singleton made of two steps (a channel's or a desk's methods)."""

    on_start: Callable[[], Awaitable[object]]
    on_stop: Callable[[], Awaitable[object]]

    async def start(self) -> None:
        await self.on_start()

    async def stop(self) -> None:
        await self.on_stop()


class Resumable(Worker, Protocol):
    """A periodic worker that can run again after :meth:`stop` once :meth:`resume` was called."""

    def resume(self) -> None: ...


class LeadWorker:
    """A periodic worker as a singleton: it runs while this worker leads."""

    def __init__(self, worker: Resumable) -> None:
        self._worker = worker
        self._workers = Workers([worker])

    async def start(self) -> None:
        self._worker.resume()
        await self._workers.start()

    async def stop(self) -> None:
        await self._workers.stop()


@dataclass(frozen=True, slots=True)
class Duty:
    """A singleton with its name (for the logs); ``inbound`` ones take work from outside
    (polling, Socket Mode) and stop with the service's inbound."""

    name: str
    part: Singleton
    inbound: bool = False


class ConnectionLost(Exception):
    """The leader's connection closed or stopped answering."""


Connect = Callable[..., Awaitable[Any]]


class Leadership:
    """Campaigns for the lead, and runs its duties while it leads (see the module's notes)."""

    def __init__(
        self,
        *,
        dsn: str | None,
        retry_interval: float = RETRY_SECONDS,
        check_interval: float = CHECK_SECONDS,
        connect: Connect | None = None,
    ) -> None:
        self._dsn = dsn
        self._retry = retry_interval
        self._check = check_interval
        self._connect = connect
        self._duties: list[Duty] = []
        self._running: list[Duty] = []
        self._leading = False
        self._retiring = False
        self._wake = Wakeup()
        self._task: asyncio.Task[None] | None = None
        self._decided: asyncio.Event | None = None

    @classmethod
    def for_database(
        cls,
        db: Database,
        *,
        retry_interval: float = RETRY_SECONDS,
        check_interval: float = CHECK_SECONDS,
    ) -> Leadership:
        """The leadership of the workers of ``db``."""
        dsn = None if db.is_sqlite else db.asyncpg_dsn()
        return cls(dsn=dsn, retry_interval=retry_interval, check_interval=check_interval)

    @property
    def leading(self) -> bool:
        return self._leading

    def add(self, duty: Duty) -> None:
        """A duty of the leader (before :meth:`start`); started in the order added."""
        self._duties.append(duty)

    async def start(self) -> None:
        """Begin: lead at once on SQLite; on PostgreSQL, return once the first try for the
        lock is decided (won, lost, or failed: then tried again in the background)."""
        self._retiring = False
        if self._dsn is None:
            await self._lead("the only process of a SQLite database")
            return
        self._decided = asyncio.Event()
        self._task = asyncio.create_task(self._campaign(), name="leader-election")
        decided = asyncio.create_task(self._decided.wait())
        await asyncio.wait([self._task, decided], return_when=asyncio.FIRST_COMPLETED)
        decided.cancel()

    async def stop_inbound(self) -> None:
        """Stop the inbound duties; a follower stops campaigning (it is shutting down)."""
        self._retiring = True
        self._wake.set()
        if not self._leading:
            await self._end_campaign()
        await self._stop_duties([d for d in self._running if d.inbound], "stopping inbound")

    async def stop(self) -> None:
        """Stop every duty, then release the lead (another worker may take it from here)."""
        self._retiring = True
        self._wake.set()
        await self._end_campaign()
        await self._step_down(STOPPING)

    async def _end_campaign(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        if not self._leading:  # nothing to finish: connecting or waiting for the lock
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    # --- the campaign ------------------------------------------------------------------

    async def _campaign(self) -> None:
        while not self._retiring:
            try:
                await self._term()
            except Exception as exc:  # the database unreachable, the connection lost...
                self._decide()
                log.warning(
                    "Leader election: %s; connecting again in %gs",
                    str(exc) or repr(exc),
                    self._retry,
                )
            if not self._retiring:
                self._wake.clear()
                await self._wake.sleep(self._retry)

    async def _term(self) -> None:
        """One connection's life: try for the lock until won, lead until the connection is
        lost or this worker stops; the lock goes with the connection."""
        connect = self._connect or _asyncpg_connect()
        conn = await connect(self._dsn, timeout=CONNECT_TIMEOUT)
        lost = asyncio.Event()

        def on_lost(_conn: object) -> None:
            lost.set()
            self._wake.set()

        conn.add_termination_listener(on_lost)
        clean = False
        try:
            await self._win(conn, lost)
            if not self._retiring:
                await self._lead(f"pid {os.getpid()}")
                await self._hold(conn, lost)
            clean = True
        finally:
            reason = (
                "this worker is stopping" if clean else "the connection to the database was lost"
            )
            await self._step_down(reason)
            await _close(conn, clean=clean and not lost.is_set())

    async def _win(self, conn: Any, lost: asyncio.Event) -> None:
        said = False
        while not self._retiring:
            self._wake.clear()
            if await conn.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_KEY):
                return
            self._decide()
            if not said:
                log.info(
                    "Another worker leads; this one (pid %d) stands by, trying every %gs",
                    os.getpid(),
                    self._retry,
                )
                said = True
            await self._wake.sleep(self._retry)
            if lost.is_set():
                raise ConnectionLost("the connection to the database closed")

    async def _hold(self, conn: Any, lost: asyncio.Event) -> None:
        while not self._retiring:
            self._wake.clear()
            if not lost.is_set():
                await self._wake.sleep(self._check)
            if lost.is_set():
                raise ConnectionLost("the connection to the database closed")
            if self._retiring:
                return
            try:
                await conn.fetchval("SELECT 1", timeout=self._check)
            except Exception as exc:
                raise ConnectionLost(f"the connection to the database failed: {exc!r}") from exc

    def _decide(self) -> None:
        if self._decided is not None:
            self._decided.set()

    # --- leading -----------------------------------------------------------------------

    async def _lead(self, why: str) -> None:
        self._leading = True
        names = ", ".join(d.name for d in self._duties) or "nothing"
        log.info("%s (%s): %s", LEADS, why, names)
        for duty in self._duties:
            if duty.inbound and self._retiring:
                continue
            self._running.append(duty)
            try:
                await duty.part.start()
            except Exception:
                log.error("The leader could not start %s", duty.name, exc_info=True)
        self._decide()

    async def _step_down(self, reason: str) -> None:
        if not self._leading:
            return
        await self._stop_duties(list(self._running), reason)
        self._leading = False
        log.info("%s (%s)", STEPS_DOWN, reason)

    async def _stop_duties(self, duties: list[Duty], reason: str) -> None:
        for duty in reversed(duties):
            if duty in self._running:
                self._running.remove(duty)
            try:
                await duty.part.stop()
            except Exception:
                log.error("Could not stop %s (%s)", duty.name, reason, exc_info=True)


def _asyncpg_connect() -> Connect:
    import asyncpg

    return asyncpg.connect


async def _close(conn: Any, *, clean: bool) -> None:
    """Close the connection (releasing the lock); one that failed is cut off at once."""
    if clean:
        with contextlib.suppress(Exception):
            await conn.close(timeout=CONNECT_TIMEOUT)
            return
    conn.terminate()


@runtime_checkable
class LeadingChannel(Protocol):
    """A channel with work only the leader does (Telegram: polling, or setWebhook)."""

    async def start_leading(self) -> None: ...

    async def stop_leading(self) -> None: ...
