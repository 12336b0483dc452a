"""The service's lifecycle (carebot/lifecycle.py): set up backwards, torn down in one order
(stop inbound, finish in-flight work, flush the outbox, close platform clients, close the
database), on its own and through aiohttp's cleanup contexts; a failing step skips nothing and
is reported with its name; the workers finish their pass and stop together."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import pytest
from aiohttp import web

from carebot.exceptions import ShutdownError
from carebot.lifecycle import Lifecycle, Stage, Workers, clean_up

TEARDOWN = ["inbound", "in_flight", "flush", "clients", "database"]


class Part:
    """One part of each stage, recording what is done to it; it fails when told."""

    def __init__(self, name: str, events: list[str], *, fail: str = "") -> None:
        self.name, self.events, self.fail = name, events, fail
        self.stopped = asyncio.Event()

    async def start(self) -> None:
        self.events.append(f"start {self.name}")
        if self.fail == "start":
            raise RuntimeError(f"{self.name} cannot start")

    async def stop(self) -> None:
        self.events.append(f"stop {self.name}")
        self.stopped.set()
        if self.fail == "stop":
            raise RuntimeError(f"{self.name} broke")


def life_of(events: list[str], **failing: str) -> tuple[Lifecycle, dict[str, Part]]:
    """A lifecycle with one part per stage, named after the stage; ``failing`` maps a part's
    name to what fails ("start" or "stop")."""
    life, parts = Lifecycle(), {}
    for stage in Stage:
        part = Part(stage.name.lower(), events, fail=failing.get(stage.name.lower(), ""))
        life.add(stage, part.name, start=part.start, stop=part.stop)
        parts[part.name] = part
    return life, parts


async def test_set_up_runs_backwards_and_teardown_in_the_order() -> None:
    events: list[str] = []
    life, _ = life_of(events)
    await life.start()
    await life.stop()
    assert events == [f"start {name}" for name in reversed(TEARDOWN)] + [
        f"stop {name}" for name in TEARDOWN
    ]


@pytest.mark.parametrize("failing", ["inbound", "flush", "database"])
async def test_a_failing_step_skips_nothing_and_is_reported_by_name(
    failing: str, caplog: pytest.LogCaptureFixture
) -> None:
    events: list[str] = []
    life, _ = life_of(events, **{failing: "stop"})
    await life.start()
    events.clear()
    stage = Stage[failing.upper()]

    with pytest.raises(ShutdownError) as raised:
        await life.stop()

    assert events == [f"stop {name}" for name in TEARDOWN]  # every step ran
    step = f"{stage.value}: {failing}"
    assert raised.value.steps == [step]
    assert step in str(raised.value)
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.getMessage() == f"Shutdown step {step!r} failed" and record.exc_info


async def test_a_failing_set_up_tears_down_what_was_set_up_and_raises() -> None:
    events: list[str] = []
    life, _ = life_of(events, in_flight="start")
    with pytest.raises(RuntimeError, match="in_flight cannot start"):
        await life.start()
    assert events == [
        "start database",
        "start clients",
        "start flush",
        "start in_flight",
        "stop in_flight",  # its own stage too: a part of it may have started
        "stop flush",
        "stop clients",
        "stop database",
    ]  # inbound never started, and is not stopped


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, shutdown_timeout=10)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


async def test_through_aiohttp_every_failed_step_is_named_in_one_error() -> None:
    events: list[str] = []
    life, _ = life_of(events, inbound="stop", clients="stop")
    app = web.Application()
    life.mount(app)
    runner, _url = await serve(app)
    assert events == [f"start {name}" for name in reversed(TEARDOWN)]
    events.clear()

    with pytest.raises(ShutdownError) as raised:
        await clean_up(runner)

    # inbound stops twice: as aiohttp's shutdown begins, and again in its cleanup context
    assert events == ["stop inbound"] + [f"stop {name}" for name in TEARDOWN]
    assert raised.value.steps == ["stop inbound: inbound", "close platform clients: clients"]


async def test_inbound_stops_before_aiohttp_waits_for_the_requests_in_flight() -> None:
    """A request in flight (a webhook call being stored) finishes after inbound has stopped
    and before the workers stop, the outbox is flushed and the clients close."""
    events: list[str] = []
    life, parts = life_of(events)
    entered, gate = asyncio.Event(), asyncio.Event()

    async def slow(_request: web.Request) -> web.Response:
        entered.set()
        await gate.wait()
        events.append("request done")
        return web.Response(text="stored")

    app = web.Application()
    app.router.add_post("/webhook", slow)
    life.mount(app)
    runner, url = await serve(app)
    events.clear()
    async with aiohttp.ClientSession() as http:
        request = asyncio.create_task(http.post(f"{url}/webhook"))
        await entered.wait()
        closing = asyncio.create_task(clean_up(runner))
        await parts["inbound"].stopped.wait()
        assert events == ["stop inbound"]  # the request is still in hand
        gate.set()
        async with await request as response:
            assert (response.status, await response.text()) == (200, "stored")
        await closing
    assert events == ["stop inbound", "request done"] + [f"stop {name}" for name in TEARDOWN]


class Worker:
    """A periodic worker with ``passes`` passes to make, each waiting for the test's go; then
    it rests until told to stop."""

    def __init__(self, passes: int) -> None:
        self.to_do, self.done = passes, 0
        self.in_pass, self.finish, self.told = asyncio.Event(), asyncio.Event(), asyncio.Event()
        self._stopping = False

    async def run(self) -> None:
        while not self._stopping:
            if not self.to_do:
                await self.told.wait()
                continue
            self.in_pass.set()
            await self.finish.wait()
            self.to_do, self.done = self.to_do - 1, self.done + 1

    def stop(self) -> None:
        self._stopping = True
        self.told.set()


class Broken:
    async def run(self) -> None:
        raise ConnectionError("the database is gone")

    async def stop(self) -> None:  # an awaitable stop is awaited
        return None


class Deaf:
    """Never looks at its stop: it is cancelled after the grace."""

    def __init__(self) -> None:
        self.cancelled = False

    async def run(self) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise

    def stop(self) -> None:
        return None


async def test_workers_finish_their_pass_and_stop_together() -> None:
    busy, resting = Worker(passes=1), Worker(passes=0)
    workers = Workers([busy, resting])
    await workers.start()
    await busy.in_pass.wait()
    stopping = asyncio.create_task(workers.stop())
    await busy.told.wait()
    assert resting.told.is_set() and not stopping.done()  # both told; busy is in its pass
    busy.finish.set()
    await stopping
    assert (busy.done, resting.done) == (1, 0)  # the pass finished, not cut


async def test_a_worker_that_failed_or_would_not_stop_is_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broken, deaf = Broken(), Deaf()
    workers = Workers([broken, deaf], grace=0.05)
    await workers.start()
    with pytest.raises(ShutdownError) as raised:
        await workers.stop()
    assert sorted(raised.value.steps) == ["worker Broken", "worker Deaf"]
    assert deaf.cancelled
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert "The Broken worker had failed" in messages
    assert "The Deaf worker did not finish within 0.05s; cancelled" in messages


async def test_stopping_a_lifecycle_that_never_started_stops_every_part() -> None:
    events: list[str] = []
    life, _ = life_of(events)
    await life.stop()
    assert events == [f"stop {name}" for name in TEARDOWN]
