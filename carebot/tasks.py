"""The service's background work, kept until stopped or done:

- :class:`Periodic`, a pass that runs now and then every ``interval`` seconds until stopped (the
  idle-conversation sweep, the rating requests after assumed resolutions). A failed pass is
  logged and the next one tries again (:func:`carebot.retry.repeat`); :meth:`Periodic.stop`
  wakes a sleeping worker at once.
- :class:`Background`, work its caller waits for only so long: a customer's request or a
  platform's webhook call waits a few seconds for a send or a decision, then is answered while
  the work goes on here, kept until it is done, and waited for at stop
  (:meth:`Background.drain`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from carebot.retry import Backoff, repeat
from carebot.wakeup import Wakeup

T = TypeVar("T")


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
