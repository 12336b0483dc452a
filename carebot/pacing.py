"""Pacing sends to a platform's rate limits: per key (a chat, a recipient, a Slack channel) and,
optionally, overall.

Each send reserves the next free slot before it waits, so concurrent senders queue fairly
instead of all being refused with 429. Telegram allows about one message per second per chat
and 30 per second overall; Slack about one post per second per channel; WhatsApp paces each
recipient.

Several workers send for one bot or app, and the platform counts them together: given
``workers`` (``[server] workers`` x ``machines``), each process keeps to its share, every rate
(and the burst) divided by that number, so that together they stay within the limit.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

OVERALL = "\0overall"


class Pacer:
    def __init__(
        self,
        per_second: float,
        *,
        burst: int = 3,
        overall_per_second: float | None = None,
        workers: int = 1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be 1 or more, not {workers}")
        self._per_key = workers / per_second
        self._overall = workers / overall_per_second if overall_per_second else None
        self._burst = max(1, burst // workers)
        self._clock = clock
        self._sleep = sleep
        self._next: dict[str, float] = {}  # per key: when the next send's slot starts

    async def wait(self, key: str) -> None:
        """Return when a send to ``key`` keeps within the rates."""
        now = self._clock()
        delay = self._reserve(key, self._per_key, now)
        if self._overall is not None:
            delay = max(delay, self._reserve(OVERALL, self._overall, now))
        if delay > 0:
            await self._sleep(delay)

    def _reserve(self, key: str, interval: float, now: float) -> float:
        slot = max(self._next.get(key, now), now)
        self._next[key] = slot + interval
        if len(self._next) > 10_000:  # forget keys whose slots are long past
            self._next = {k: t for k, t in self._next.items() if t > now}
        return slot - now - (self._burst - 1) * interval
