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
    looks.ask("ann")  # in the same task once more, or in a new one: either way, it runs
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
