"""One retry policy: exponential backoff with jitter, and the two loops that use it.

After its n-th failure in a row, a retry waits ``Backoff.delay(n)``: ``base * 2**(n-1)``, at
most ``cap``, shortened by a random share of up to ``jitter`` (by default up to half), so that
workers and processes that failed together (a database or platform outage) do not all come back
in the same instant. The random source is injectable, so tests can fix it.

* :func:`retry` awaits one action until it works (connecting, storing one update);
* :func:`repeat` runs a worker's step again and again until it is told to stop, backing off
  after failures and starting afresh after a success.

Both log every failure under the caller's logger: the failures the caller expects (a platform
that is unreachable) in one line at WARNING, anything else with its traceback at ERROR.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[object]]
Hint = Callable[[Exception], float | None]


def _no_hint(_exc: Exception) -> float | None:
    return None


@dataclass(frozen=True, slots=True)
class Backoff:
    """Seconds to wait after ``failures`` failures in a row: doubling from ``base`` up to
    ``cap``, then shortened by up to ``jitter`` of it at random (``rng`` returns [0, 1))."""

    base: float = 1.0
    cap: float = 300.0
    jitter: float = 0.5
    rng: Callable[[], float] = field(default=random.random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not 0 < self.base <= self.cap:
            raise ValueError(f"Backoff needs 0 < base <= cap (got {self.base}, {self.cap})")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"Backoff jitter must be in [0, 1) (got {self.jitter})")

    def ceiling(self, failures: int) -> float:
        """The wait before jitter: base * 2**(failures-1), capped (0 failures: base)."""
        return min(self.cap, self.base * 2 ** min(max(0, failures - 1), 62))

    def delay(self, failures: int) -> float:
        """The wait after ``failures`` failures in a row, jitter applied."""
        return self.ceiling(failures) * (1 - self.jitter * self.rng())


async def retry(
    action: Callable[[], Awaitable[T]],
    *,
    what: str,
    backoff: Backoff,
    log: logging.Logger,
    expected: tuple[type[Exception], ...] = (),
    hint: Hint = _no_hint,
    sleep: Sleep = asyncio.sleep,
) -> T:
    """Await ``action()`` until it returns, and return its result. After each failure: log it
    (``what`` names the action), then wait ``hint(error)`` seconds when the error says how
    long (a platform's retry-after), else the backoff."""
    failures = 0
    while True:
        try:
            return await action()
        except Exception as exc:
            failures += 1
            await _back_off(exc, failures, what, backoff, log, expected, hint, sleep)


async def repeat(
    step: Callable[[], Awaitable[object]],
    *,
    until: Callable[[], bool],
    what: str,
    backoff: Backoff,
    log: logging.Logger,
    expected: tuple[type[Exception], ...] = (),
    hint: Hint = _no_hint,
    sleep: Sleep = asyncio.sleep,
) -> None:
    """Await ``step()`` over and over until ``until()`` is true (checked before each step).
    A failing step is logged and followed by the backoff, longer with each failure in a row;
    a step that succeeds starts the count afresh. ``sleep`` may return early (a worker's
    wake-up call) to try again at once."""
    failures = 0
    while not until():
        try:
            await step()
        except Exception as exc:
            failures += 1
            await _back_off(exc, failures, what, backoff, log, expected, hint, sleep)
        else:
            failures = 0


async def _back_off(
    exc: Exception,
    failures: int,
    what: str,
    backoff: Backoff,
    log: logging.Logger,
    expected: tuple[type[Exception], ...],
    hint: Hint,
    sleep: Sleep,
) -> None:
    given = hint(exc)
    wait = backoff.delay(failures) if given is None else given
    if isinstance(exc, expected):
        log.warning("%s failed (%d in a row): %s; again in %.1fs", what, failures, exc, wait)
    else:
        log.error("%s failed (%d in a row); again in %.1fs", what, failures, wait, exc_info=exc)
    await sleep(wait)
