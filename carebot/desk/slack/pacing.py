"""Pacing posts per Slack channel: Slack allows about one ``chat.postMessage`` per second per
channel, with short bursts. Each post reserves the next free slot before it waits, so concurrent
posters queue fairly instead of all retrying on 429."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class Pacer:
    def __init__(
        self,
        per_second: float,
        *,
        burst: int = 3,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._interval = 1.0 / per_second
        self._slack = (burst - 1) * self._interval
        self._clock = clock
        self._sleep = sleep
        self._next: dict[str, float] = {}  # per channel: when the next post's slot starts

    async def wait(self, channel: str) -> None:
        """Return when a post to ``channel`` keeps within the rate."""
        now = self._clock()
        slot = max(self._next.get(channel, now), now)
        self._next[channel] = slot + self._interval
        delay = slot - now - self._slack
        if delay > 0:
            await self._sleep(delay)
