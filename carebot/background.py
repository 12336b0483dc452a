"""Work its caller waits for only so long: a customer's request or a platform's webhook call
waits a few seconds for a send or a decision, then is answered while the work goes on here,
kept until it is done, and waited for at stop (:meth:`Background.drain`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


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
