"""The base of the platform stand-ins: an aiohttp application on 127.0.0.1 that tests start,
stop, restart (an outage) and wait on without sleeping."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Self, TypeVar

from aiohttp import web

T = TypeVar("T")
Json = dict[str, Any]


class LoopbackServer:
    """An aiohttp application on 127.0.0.1 (port 0: a free one), usable as `async with`.

    Subclasses add their routes in `_routes` and call `_notify()` after each change of state,
    so that tests can wait on it (`_until`) instead of sleeping.
    """

    def __init__(self) -> None:
        self._cond = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    def _routes(self, app: web.Application) -> None:
        raise NotImplementedError

    async def start(self, port: int = 0) -> None:
        """Listen on 127.0.0.1:`port` (0 picks a free port, kept by a later restart)."""
        app = web.Application()
        self._routes(app)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self._port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        """Close the listening socket: connections are refused afterwards."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def restart(self) -> None:
        """Come back on the same port after `stop()` (an outage of the platform)."""
        assert self._port is not None, "start() the stand-in first"
        await self.start(self._port)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def root(self) -> str:
        """`http://127.0.0.1:PORT`."""
        assert self._port is not None, "start() the stand-in first"
        return f"http://127.0.0.1:{self._port}"

    async def _notify(self) -> None:
        """Something changed: wake the tests waiting on the stand-in."""
        async with self._cond:
            self._cond.notify_all()

    async def _until(
        self, check: Callable[[], T | None], timeout: float, what: Callable[[], str]
    ) -> T:
        """`check()` once it is not None; AssertionError saying `what()` after `timeout` s."""
        try:
            async with asyncio.timeout(timeout), self._cond:
                await self._cond.wait_for(lambda: check() is not None)
        except TimeoutError:
            raise AssertionError(f"waited {timeout}s in vain; {what()}") from None
        result = check()
        assert result is not None
        return result


class StandIn(LoopbackServer):
    """A platform stand-in that tests wait on with a predicate over the whole stand-in."""

    async def wait_for(self, predicate: Callable[[Self], bool], timeout: float = 10.0) -> None:
        """Return as soon as `predicate(self)` holds; AssertionError after `timeout` seconds."""
        await self._until(lambda: predicate(self) or None, timeout, self._describe)

    async def _wait_count(self, items: list[Json], count: int, timeout: float) -> list[Json]:
        await self.wait_for(lambda _: len(items) >= count, timeout)
        return items[:count]

    def _describe(self) -> str:
        """What the server has seen, for timeout messages."""
        return f"{type(self).__name__} on {self._port}"
