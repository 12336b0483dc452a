"""A background pass that runs now and then every ``interval`` seconds until stopped: the
idle-conversation sweep and the rating requests after assumed resolutions. A failed pass is
logged and the next one tries again (:func:`carebot.retry.repeat`); :meth:`Periodic.stop`
wakes a sleeping worker at once."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from carebot.retry import Backoff, repeat
from carebot.wakeup import Wakeup


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
