"""OnePerKey (carebot/tasks.py): work per key in the background, one run at a time per key."""

from __future__ import annotations

import asyncio
import logging

import pytest

from carebot.tasks import OnePerKey

log = logging.getLogger(__name__)


async def test_a_failed_run_is_logged_and_the_next_ask_runs_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runs: list[str] = []
    failing, done = asyncio.Event(), asyncio.Event()

    async def work(key: str) -> None:
        runs.append(key)
        if len(runs) == 1:
            failing.set()
            raise ConnectionError("the database went away")
        done.set()

    looks = OnePerKey(work, limit=2, what="the look for", log=log)
    looks.ask("ann")
    await failing.wait()
    looks.ask("ann")  # a new run (the failed one ended)
    await done.wait()
    await looks.stop()
    assert runs == ["ann", "ann"]
    assert "Could not finish the look for ann" in caplog.text


async def test_no_more_keys_run_at_once_than_the_limit_and_stop_cancels_them() -> None:
    running: set[str] = set()
    most = 0
    both_in = asyncio.Event()

    async def work(key: str) -> None:
        nonlocal most
        running.add(key)
        most = max(most, len(running))
        if len(running) == 2:
            both_in.set()
        try:
            await asyncio.Event().wait()  # until cancelled
        finally:
            running.discard(key)

    looks = OnePerKey(work, limit=2, what="the look for", log=log)
    for key in ("ann", "bob", "cem"):
        looks.ask(key)
    await both_in.wait()
    await asyncio.sleep(0)  # the third would start here if the limit let it
    assert most == 2
    await looks.stop()
    assert running == set()


async def test_asks_while_a_run_is_in_hand_make_one_more_run_and_a_late_one_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runs: list[str] = []
    running, go_on, second = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def work(key: str) -> None:
        runs.append(key)
        if len(runs) == 1:
            running.set()
            await go_on.wait()
        else:
            second.set()

    caplog.set_level(logging.INFO)
    looks = OnePerKey(work, limit=2, what="the look for", log=log, late=0.0)
    looks.ask("ann")
    await running.wait()
    for _ in range(3):
        looks.ask("ann")  # news meanwhile, however many: one more run
    go_on.set()
    await second.wait()
    await looks.stop()
    assert runs == ["ann", "ann"]
    assert "Finished the look for ann" in caplog.text


async def test_after_stop_nothing_runs_even_a_run_asked_for_just_before() -> None:
    runs: list[str] = []

    async def work(key: str) -> None:
        runs.append(key)

    looks = OnePerKey(work, limit=2, what="the look for", log=log)
    looks.ask("ann")  # its task has not started yet
    await looks.stop()
    looks.ask("ann")
    looks.ask("bob")  # the channel is closing: no run nobody would wait for
    await asyncio.sleep(0)  # a task created by those asks would run here
    assert runs == []
