"""The service's life in stages: set up in one order at start, torn down in the reverse at stop.

The teardown, each stage a step (DESIGN.md §8):

1. **stop inbound**: the channels stop receiving, each finishing the message in hand (a
   Telegram update being stored, a web chat frame); the Slack desk disconnects Socket Mode;
2. **finish in-flight work**: the periodic workers (the outbox worker, the Slack thread sync,
   the intent reloader...) finish their current pass and stop, and replies still being sent in
   the background are awaited; the leader's singletons stop and it gives up its lead
   (:mod:`carebot.cluster.leader`: the receiving ones, polling and Socket Mode, stopped with
   inbound);
3. **flush the outbox**: every reply that is due is delivered (and Slack's due posts posted),
   while the platform clients are still open;
4. **close platform clients**: the channels and the Slack web client release their
   connections (a channel refuses to send from here on);
5. **close the database**.

Set-up runs the stages the other way round: the database (opened when the runtime was built),
then the platform clients (a channel's ``start`` opens its clients and begins receiving, so the
channels start here, before any worker sends), the outbox (nothing to set up), recovery of what
the last run left undecided and the workers, and last Slack's Socket Mode.

The server runs the stages as aiohttp cleanup contexts (:meth:`Lifecycle.mount`): aiohttp sets
them up in order and tears them down in reverse, running every one even when an earlier one
failed; it also stops inbound as soon as shutdown begins, before it waits for the requests in
flight. ``carebot chat`` and the tests use :meth:`Lifecycle.start` and :meth:`Lifecycle.stop`,
which follow the same order. Within a stage every part is torn down, concurrently: a failing
one is logged with the stage's and its own name, and the stage raises :class:`ShutdownError`
once the others are done.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from aiohttp import web
from aiohttp.web_app import CleanupError

from carebot.exceptions import ShutdownError

log = logging.getLogger(__name__)
Step = Callable[[], Awaitable[object]]
WORKER_GRACE = 30.0  # seconds a worker may take to finish its pass before it is cancelled


class Stage(Enum):
    """The stages in teardown order; set-up runs them backwards."""

    INBOUND = "stop inbound"
    IN_FLIGHT = "finish in-flight work"
    FLUSH = "flush the outbox"
    CLIENTS = "close platform clients"
    DATABASE = "close the database"


SET_UP_ORDER = tuple(reversed(Stage))


class Worker(Protocol):
    """A periodic worker: :meth:`run` works until :meth:`stop`, which takes no new pass and
    lets the pass in progress finish (``run`` returns then)."""

    async def run(self) -> None: ...

    def stop(self) -> Awaitable[None] | None: ...


class Workers:
    """Periodic workers run as tasks, stopped together (each finishing its current pass)."""

    def __init__(self, workers: Iterable[Worker], *, grace: float = WORKER_GRACE) -> None:
        self._workers = list(workers)
        self._grace = grace
        self._tasks: dict[asyncio.Task[None], str] = {}

    async def start(self) -> None:
        for worker in self._workers:
            name = type(worker).__name__
            self._tasks[asyncio.create_task(worker.run(), name=name)] = name

    async def stop(self) -> None:
        """Tell every worker to stop, then wait for their passes (``grace`` seconds at most,
        then they are cancelled). Raises ShutdownError naming the workers that failed."""
        failed: list[str] = []
        for worker in self._workers:
            try:
                stopping = worker.stop()
                if inspect.isawaitable(stopping):
                    await stopping
            except Exception:
                log.error("Could not stop the %s worker", type(worker).__name__, exc_info=True)
                failed.append(type(worker).__name__)
        tasks, self._tasks = self._tasks, {}
        if tasks:
            failed += await self._finish(tasks)
        if failed:
            raise ShutdownError([f"worker {name}" for name in failed])

    async def _finish(self, tasks: dict[asyncio.Task[None], str]) -> list[str]:
        """Wait for the tasks; the names of those that failed or had to be cancelled."""
        _done, late = await asyncio.wait(list(tasks), timeout=self._grace)
        for task in late:
            name = tasks[task]
            log.error("The %s worker did not finish within %gs; cancelled", name, self._grace)
            task.cancel()
        if late:
            await asyncio.wait(late)
        failed = [tasks[task] for task in late]
        for task, name in tasks.items():
            if task in late or task.cancelled() or task.exception() is None:
                continue
            log.error("The %s worker had failed", name, exc_info=task.exception())
            failed.append(name)
        return failed


@dataclass(frozen=True, slots=True)
class _Part:
    name: str
    start: Step | None
    stop: Step | None


class Lifecycle:
    """The parts of a running service, each set up and torn down in its stage."""

    def __init__(self) -> None:
        self._parts: dict[Stage, list[_Part]] = {stage: [] for stage in Stage}
        self._torn_down: set[Stage] = set()  # said once at INFO; a repeat (inbound) at DEBUG

    def add(
        self, stage: Stage, name: str, *, start: Step | None = None, stop: Step | None = None
    ) -> None:
        """A part of ``stage``: ``start`` when the stage is set up (parts in the order added),
        ``stop`` when it is torn down. ``stop`` must be harmless for a part that never
        started, or that was stopped already."""
        self._parts[stage].append(_Part(name, start, stop))

    async def start(self) -> None:
        """Set every stage up, the database's first. If one fails, the stages already set up
        are torn down (in order) and the error is raised."""
        done: list[Stage] = []
        try:
            for stage in SET_UP_ORDER:
                await self._set_up(stage)
                done.append(stage)
        except BaseException:
            for stage in reversed(done):
                with contextlib.suppress(ShutdownError):  # logged; the start's error goes on
                    await self._tear_down(stage)
            raise

    async def stop(self) -> None:
        """Tear every stage down, in order; a failing step skips nothing. Raises
        ShutdownError naming the steps that failed (each was logged)."""
        failed: list[str] = []
        for stage in Stage:
            try:
                await self._tear_down(stage)
            except ShutdownError as exc:
                failed.extend(exc.steps)
        if failed:
            raise ShutdownError(failed)

    def mount(self, app: web.Application) -> None:
        """Run the stages with ``app``: set up at its start-up, torn down at its cleanup
        (aiohttp's cleanup contexts, in reverse order of set-up); inbound also stops as soon
        as its shutdown begins, before aiohttp waits for the requests in flight."""
        for stage in SET_UP_ORDER:
            app.cleanup_ctx.append(self._context(stage))
        app.on_shutdown.append(self._stop_inbound_early)

    def _context(self, stage: Stage) -> Callable[[web.Application], AsyncIterator[None]]:
        async def context(_app: web.Application) -> AsyncIterator[None]:
            await self._set_up(stage)
            yield
            await self._tear_down(stage)

        return context

    async def _stop_inbound_early(self, _app: web.Application) -> None:
        # aiohttp skips the rest of its shutdown when an on_shutdown handler raises, so a
        # failure here is only logged (by _tear_down); the inbound cleanup context stops the
        # same parts again (harmless) and reports it with the other steps.
        with contextlib.suppress(ShutdownError):
            await self._tear_down(Stage.INBOUND)

    async def _set_up(self, stage: Stage) -> None:
        """Start the stage's parts in order; if one fails, tear the stage down and raise."""
        try:
            for part in self._parts[stage]:
                if part.start is not None:
                    await part.start()
        except BaseException:
            with contextlib.suppress(ShutdownError):  # logged; the start's error goes on
                await self._tear_down(stage)
            raise

    async def _tear_down(self, stage: Stage) -> None:
        parts = [part for part in self._parts[stage] if part.stop is not None]
        level = logging.DEBUG if stage in self._torn_down else logging.INFO
        self._torn_down.add(stage)
        names = ", ".join(p.name for p in parts) or "nothing"
        log.log(level, "Shutdown: %s (%s)", stage.value, names)
        results = await asyncio.gather(
            *(self._stop(stage, part) for part in parts), return_exceptions=True
        )
        failed: list[str] = []
        for result in results:
            if isinstance(result, ShutdownError):
                failed.extend(result.steps)
            elif isinstance(result, BaseException):  # a cancellation: the shutdown was cut
                raise result
        if failed:
            raise ShutdownError(failed)

    async def _stop(self, stage: Stage, part: _Part) -> None:
        assert part.stop is not None
        step = f"{stage.value}: {part.name}"
        try:
            await part.stop()
        except ShutdownError as exc:  # its own parts failed, and were logged
            raise ShutdownError([f"{step} ({', '.join(exc.steps)})"]) from exc
        except Exception as exc:
            log.error("Shutdown step %r failed", step, exc_info=True)
            raise ShutdownError([step]) from exc
        log.debug("Shutdown step %r done", step)


async def clean_up(runner: web.AppRunner) -> None:
    """aiohttp's shutdown and cleanup of ``runner`` (the stages' teardown among them), their
    errors raised as one ShutdownError naming every failed step."""
    try:
        await runner.cleanup()
    except CleanupError as exc:
        steps = [
            step
            for error in exc.exceptions
            for step in (error.steps if isinstance(error, ShutdownError) else [repr(error)])
        ]
        raise ShutdownError(steps) from exc
