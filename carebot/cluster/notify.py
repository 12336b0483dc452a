"""Events between workers over PostgreSQL's LISTEN/NOTIFY.

Each worker keeps one connection of its own for this (outside the pool: a pooled connection
would be handed to other work and stop listening). It LISTENs on one channel and sends the
worker's events with ``pg_notify``, several in one round trip. A payload is a few dozen bytes
of JSON, the sending worker and the event's kind and ids (PostgreSQL's limit is 8000 bytes);
nothing a customer wrote travels this way. An event is published after its transaction
committed (:mod:`carebot.events`), so the notification is sent after the change is visible.

A lost connection is noticed two ways: asyncpg's termination listener (the server closed it,
e.g. ``pg_terminate_backend``) and a ping every ``ping_seconds`` (a network that went silent).
The worker then reconnects, waiting longer after each failure, and hands its own subscribers a
``resync`` event: notifications sent while it was away are lost, so whoever shows something
looks again. Its own events published meanwhile wait (the newest :data:`MAX_WAITING`) and are
sent once it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from carebot.events import RESYNC, Event, EventHub
from carebot.retry import Backoff
from carebot.wakeup import Wakeup

log = logging.getLogger(__name__)
CHANNEL = "carebot_events"
MAX_WAITING = 10_000  # events kept while disconnected; the oldest go first (a resync covers)
MAX_BATCH = 200  # events sent in one round trip
# Seconds an event waits for others to go with it: a message makes two or three events within
# a few milliseconds (stored, decided, sent), and each round trip costs the sender and the
# database more than the events in it: sent at once, 2.05 batches a message (counted in
# bench/workers.py, webhook, one worker on PostgreSQL), 0.2 gathered (a small saving: one pair
# of runs gave 7.36 and 7.04 ms of CPU a message, within the runs' noise). Other workers'
# views (the inbox's live view, a web chat tab on another worker) see an event up to that
# much later.
GATHER = 0.02
MAX_AGENT_CHARS = 200
LATE = 1.0  # seconds: an event sent later than this after it happened is logged (falling behind)
FLUSH_GRACE = 5.0  # seconds a stop may take to send the events still waiting
RECONNECT = Backoff(base=0.5, cap=30.0)
Connect = Callable[[str], Awaitable[Any]]
NOTIFY = "SELECT pg_notify($1, payload) FROM unnest($2::text[]) AS payload"
# What a lost connection raises. InternalClientError too: when the server ends the connection
# (pg_terminate_backend) while notifications are being sent, asyncpg may take the next call
# before it has noticed ("cannot switch to state 12; another operation (2) is in progress").
LOST = (
    OSError,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)


class Notifier:
    """Relays a worker's :class:`EventHub` to and from the other workers' hubs."""

    def __init__(
        self,
        dsn: str,
        hub: EventHub,
        *,
        ping_seconds: float = 10.0,
        backoff: Backoff = RECONNECT,
        connect: Connect = asyncpg.connect,
        gather_seconds: float = GATHER,
    ) -> None:
        self.origin = uuid.uuid4().hex[:12]  # this worker, in every payload it sends
        self._dsn = dsn
        self._hub = hub
        self._ping = ping_seconds
        self._backoff = backoff
        self._gather = gather_seconds
        self._connect_to = connect
        self._waiting: deque[tuple[float, Event]] = deque(maxlen=MAX_WAITING)  # (when, event)
        self._wakeup = Wakeup()
        self._conn: Any = None
        self._lost = False
        self._task: asyncio.Task[None] | None = None
        self.reconnects = 0  # for tests and metrics
        self.received = 0

    def send(self, event: Event) -> None:
        """Queue one of this worker's events for the others (returns at once)."""
        if event.kind == RESYNC:
            return  # about this worker's own view
        self._waiting.append((time.monotonic(), event))
        self._wakeup.set()

    async def start(self) -> None:
        """Connect and listen (a failure here stops the start: the database is unreachable),
        then relay the hub's events from now on."""
        await self._connect()
        self._task = asyncio.create_task(self._run(), name="events-between-workers")
        self._hub.relay_to(self.send)

    async def stop(self) -> None:
        """Stop relaying; the events still waiting are sent if the connection allows."""
        self._hub.relay_to(None)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._conn is not None and not self._lost and self._waiting:
            try:
                async with asyncio.timeout(FLUSH_GRACE):
                    while self._waiting:
                        await self._send_batch()
            except LOST as exc:
                left = len(self._waiting)
                log.warning("%d event(s) not sent to the other workers: %s", left, exc)
        await self._close()

    async def _run(self) -> None:
        while True:
            try:
                await self._serve()
            except LOST as exc:
                log.warning("Lost the connection for events between workers: %s", exc)
            except Exception:  # the relay must outlive whatever it meets: reconnect
                log.exception("The connection for events between workers failed; reconnecting")
            await self._close()
            failures = 0
            while True:
                failures += 1
                await asyncio.sleep(self._backoff.delay(failures))
                try:
                    await self._connect()
                    break
                except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
                    log.warning("Cannot reconnect for events between workers (%s); retrying", exc)
            self.reconnects += 1
            log.info("Reconnected for events between workers; looking again at what changed")
            self._hub.receive(Event(RESYNC, 0, remote=True))

    async def _serve(self) -> None:
        """Send what waits and ping now and then, until the connection is lost (raises)."""
        loop = asyncio.get_running_loop()
        next_ping = loop.time() + self._ping
        while True:
            self._wakeup.clear()
            if self._lost:
                raise ConnectionError("the server closed it")
            if self._waiting:
                gathering = self._waiting[0][0] + self._gather - time.monotonic()
                if gathering > 0 and len(self._waiting) < MAX_BATCH:
                    await asyncio.sleep(gathering)  # the events of the next moment come along
                await self._send_batch()
                continue
            left = next_ping - loop.time()
            if left <= 0:
                async with asyncio.timeout(self._ping):
                    await self._conn.fetchval("SELECT 1")
                next_ping = loop.time() + self._ping
            else:
                await self._wakeup.sleep(left)

    async def _send_batch(self) -> None:
        batch = [self._waiting[i] for i in range(min(MAX_BATCH, len(self._waiting)))]
        await self._conn.execute(NOTIFY, CHANNEL, [self._payload(e) for _, e in batch])
        for _ in batch:  # sent: forget them (new ones were appended at the right meanwhile)
            self._waiting.popleft()
        late = time.monotonic() - batch[0][0]
        if late > LATE:
            log.info(
                "Sent %d event(s) to the other workers, the oldest %.1f s after it happened "
                "(this worker is behind: the other workers' inbox views show it late)",
                len(batch),
                late,
            )

    def _payload(self, event: Event) -> str:
        data = {"o": self.origin, "k": event.kind, "c": event.conversation_id}
        if event.agent:
            data["a"] = event.agent[:MAX_AGENT_CHARS]
        if event.ref:
            data["r"] = event.ref
        return json.dumps(data, separators=(",", ":"))

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            data = json.loads(payload)
            if data["o"] == self.origin:
                return  # our own, already handed to our subscribers
            event = Event(
                str(data["k"]),
                int(data["c"]),
                agent=str(data.get("a", "")),
                ref=int(data.get("r", 0)),
                remote=True,
            )
        except (ValueError, KeyError, TypeError):
            log.warning("Ignoring a malformed event from another worker: %.200r", payload)
            return
        self.received += 1
        self._hub.receive(event)

    def _on_terminated(self, _conn: object) -> None:
        self._lost = True
        self._wakeup.set()

    async def _connect(self) -> None:
        conn = await self._connect_to(self._dsn)
        try:
            conn.add_termination_listener(self._on_terminated)
            await conn.add_listener(CHANNEL, self._on_notify)
        except BaseException:
            await conn.close()
            raise
        self._conn, self._lost = conn, False

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(*LOST):
                await asyncio.wait_for(conn.close(), timeout=5)
            if not conn.is_closed():
                conn.terminate()
