"""The inbox login's throttle: failed logins counted per agent name and per client address in
the database (so they add up across workers), each failure answered after a growing delay, and
a name or address locked for ``[inbox] lockout_minutes`` after ``max_failed_logins`` failures
in a row. While locked, the password is not even checked. A success clears the name's and the
address's count. Each failure is logged (name and address, never the password).

The address is the peer's (``request.remote``). Behind a reverse proxy that is the proxy's,
so every client would share one address count (and a run of failures from anyone would lock
the address for all): with ``[server] forwarded_for`` it is the last ``X-Forwarded-For``
entry instead, the one the proxy added (:func:`client_address`).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from aiohttp import web

from carebot.clock import Clock
from carebot.config import InboxSettings
from carebot.store.database import Database
from carebot.store.logins import LoginFailures, address_key, name_key

log = logging.getLogger(__name__)
FIRST_DELAY = 0.25  # seconds before answering the first failure; doubled for each one after
MAX_DELAY = 2.0  # seconds at most
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Locked:
    """A refused login: the name or the address is locked for ``minutes`` more (rounded up)."""

    minutes: int

    @property
    def message(self) -> str:
        unit = "minute" if self.minutes == 1 else "minutes"
        return (
            f"Too many failed logins for this name or address; try again in {self.minutes} {unit}."
        )


def client_address(request: web.Request, *, forwarded_for: bool) -> str:
    """The client's address: the peer's, or behind one trusted proxy the address it added last
    to ``X-Forwarded-For`` (the entries before it are the client's own to write)."""
    if forwarded_for:
        entries = ",".join(request.headers.getall("X-Forwarded-For", [])).split(",")
        last = entries[-1].strip()
        if last:
            return last[:100]
    return request.remote or "unknown"


def delay_after(failures: int) -> float:
    """Seconds to wait before answering the ``failures``-th failure in a row."""
    return min(MAX_DELAY, FIRST_DELAY * 2 ** max(0, failures - 1))


class LoginThrottle:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        settings: InboxSettings,
        *,
        sleep: Sleep = asyncio.sleep,
        forwarded_for: bool = False,
    ) -> None:
        self._clock = clock
        self.forwarded_for = forwarded_for  # see client_address
        self._failures = LoginFailures(
            db,
            clock,
            max_failures=settings.max_failed_logins,
            lockout=timedelta(minutes=settings.lockout_minutes),
        )
        self._sleep = sleep

    async def check(self, name: str, address: str) -> Locked | None:
        """Whether the name or the address is locked now (then do not check the password)."""
        until = await self._failures.locked_until([name_key(name), address_key(address)])
        return None if until is None else self._locked(until - self._clock())

    async def failed(self, name: str, address: str) -> Locked | None:
        """Count a failure for the name and the address; the lock if this one locked either,
        else None once the growing delay has passed."""
        by_name = await self._failures.failed(name_key(name))
        by_address = await self._failures.failed(address_key(address))
        log.warning(
            "Failed inbox login for name %r from address %s (%d in a row for the name, "
            "%d for the address)",
            name[:100],
            address,
            by_name.count,
            by_address.count,
        )
        ends = [u for u in (by_name.locked_until, by_address.locked_until) if u is not None]
        if ends:
            locked = self._locked(max(ends) - self._clock())
            log.warning(
                "Inbox logins locked for %d minutes for name %r or address %s",
                locked.minutes,
                name[:100],
                address,
            )
            return locked
        await self._sleep(delay_after(max(by_name.count, by_address.count)))
        return None

    async def succeeded(self, name: str, address: str) -> None:
        await self._failures.clear([name_key(name), address_key(address)])
        await self._failures.forget_stale()

    @staticmethod
    def _locked(left: timedelta) -> Locked:
        return Locked(max(1, math.ceil(left.total_seconds() / 60)))
