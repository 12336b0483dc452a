"""A background worker's wake-up call: whoever has work for it sets it; the worker sleeps until
it is set or a timeout passes.

``asyncio.wait_for`` on an event is the obvious way to write that, but on Python 3.11 it can
swallow a cancellation that arrives as the event is set, leaving a worker that never stops.
``asyncio.timeout`` does not.
"""

from __future__ import annotations

import asyncio


class Wakeup:
    def __init__(self) -> None:
        self._event = asyncio.Event()

    def set(self) -> None:
        self._event.set()

    def clear(self) -> None:
        """Forget earlier calls: clear before looking for work, so a call made meanwhile counts."""
        self._event.clear()

    async def sleep(self, timeout: float) -> bool:
        """Sleep until set or ``timeout`` seconds pass; True when woken."""
        try:
            async with asyncio.timeout(timeout):
                await self._event.wait()
        except TimeoutError:
            return False
        return True
