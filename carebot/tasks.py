"""The service's background work, kept until stopped or done:

- :class:`Periodic`, a pass that runs now and then every ``interval`` seconds until stopped (the
  idle-conversation sweep, the rating requests after assumed resolutions). A failed pass is
  logged and the next one tries again (:func:`carebot.retry.repeat`); :meth:`Periodic.stop`
  wakes a sleeping worker at once.
- :class:`Background`, work its caller waits for only so long: a customer's request or a
  platform's webhook call waits a few seconds for a send or a decision, then is answered while
  the work goes on here, kept until it is done, and waited for at stop
  (:meth:`Background.drain`).
- :class:`OnePerKey`, work asked for per key and run in the background (a web chat visitor's
  look at the store when another worker has news for them): one run at a time per key, one
  more after it when asked again meanwhile (however often), and several keys at once, so that
  one slow run holds up no other key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Hashable
from typing import Any, Generic, TypeVar

from carebot.retry import Backoff, repeat
from carebot.wakeup import Wakeup

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


class Periodic:
    def __init__(
        self,
        work: Callable[[], Awaitable[object]],
        *,
        interval: float,
        what: str,
        log: logging.Logger,
    ) -> None:
        self._work = work
        self._interval = interval
        self._what = what
        self._log = log
        self._wake = Wakeup()
        self.stopping = False

    async def run(self) -> None:
        # A database hiccup must not end the work for good: log, back off, go on.
        await repeat(
            self._pass,
            until=lambda: self.stopping,
            what=self._what,
            backoff=Backoff(base=self._interval, cap=self._interval),
            log=self._log,
            sleep=self._wake.sleep,
        )

    async def _pass(self) -> None:
        await self._work()
        await self._wake.sleep(self._interval)

    def stop(self) -> None:
        self.stopping = True
        self._wake.set()

    def resume(self) -> None:
        """Be ready to :meth:`run` again after a stop (a worker that runs while it leads)."""
        self.stopping = False
        self._wake.clear()


class Background:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    async def within(
        self,
        work: Coroutine[Any, Any, T],
        seconds: float,
        *,
        finished: Callable[[asyncio.Task[Any]], None] | None = None,
    ) -> tuple[bool, T | None]:
        """Run ``work``, waiting ``seconds`` at most: (True, its result), or (False, None) when
        it goes on in the background (``finished`` is called with its task once it is done).
        Its errors within the wait are raised; a cancelled caller is re-raised, the work goes
        on."""
        task = asyncio.create_task(work)
        try:
            return True, await asyncio.wait_for(asyncio.shield(task), seconds)
        except (TimeoutError, asyncio.CancelledError):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            if finished is not None:
                task.add_done_callback(finished)
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
            return False, None

    async def drain(self, timeout: float) -> None:
        """Wait for the work still going on (at stop), ``timeout`` seconds at most."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)


class OnePerKey(Generic[K]):
    def __init__(
        self,
        work: Callable[[K], Awaitable[object]],
        *,
        limit: int,
        what: str,
        log: logging.Logger,
        late: float = 1.0,
    ) -> None:
        """``work(key)`` runs for at most ``limit`` keys at once (the web chat's looks: each
        holds a connection of the pool); a run that ends over ``late`` seconds after it was
        asked for is logged (INFO) as ``what`` of the key, late (the service is falling
        behind)."""
        self._work = work
        self._slots = asyncio.Semaphore(limit)
        self._what = what
        self._log = log
        self._late = late
        self._running: dict[K, asyncio.Task[None]] = {}
        self._again: dict[K, float] = {}  # asked again while running: since when
        self._stopped = False

    def ask(self, key: K) -> None:
        """Run the work for ``key`` soon (once more after the run in hand, if one is); nothing
        after :meth:`stop`."""
        if self._stopped:
            return
        now = time.monotonic()
        if key in self._running:
            self._again.setdefault(key, now)
        else:
            self._running[key] = asyncio.create_task(self._runs(key, now))

    async def _runs(self, key: K, asked: float) -> None:
        try:
            while True:
                async with self._slots:
                    try:
                        await self._work(key)
                    except Exception:  # the next ask retries; the other keys go on
                        self._log.exception("Could not finish %s %s", self._what, key)
                took = time.monotonic() - asked
                if took > self._late:
                    self._log.info(
                        "Finished %s %s %.1f s after it was asked for (this worker is busy)",
                        self._what,
                        key,
                        took,
                    )
                if key not in self._again:
                    return
                asked = self._again.pop(key)
        finally:
            # Here, not in a done callback: an ask between the check above and the task's end
            # would find the key still running and be lost.
            self._running.pop(key, None)

    async def stop(self) -> None:
        """Take no more asks; cancel the runs in hand (also those not started yet) and wait for
        them to end."""
        self._stopped = True
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._running.clear()
        self._again.clear()
