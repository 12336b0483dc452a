"""A test that runs far past any test's time is stopped, with what every thread and every
asyncio task was doing.

Without it a test that hangs holds its process until CI's own limit, and the log says only
where the dots stopped (one CI run did that at 96%). A timer per test, on a thread: when a
test (set-up, call and teardown) has run :data:`LIMIT` seconds, every thread's stack and every
running event loop's tasks' stacks are written to stderr, then the process ends
(``os._exit``; under xdist the worker is reported as crashed while running that test, a fresh
one takes the rest of its tests, and the run fails naming it). The slowest test takes under a
minute; ``CAREBOT_TEST_LIMIT`` (seconds) changes the limit, 0 turns it off.

Modelled on pytest-timeout's thread method, with the asyncio tasks added: most of these tests
wait in an event loop, whose thread's stack only shows the loop's ``select``.
"""

from __future__ import annotations

import asyncio
import gc
import io
import os
import sys
import threading
import traceback
from collections.abc import Iterator

import pytest

LIMIT = float(os.environ.get("CAREBOT_TEST_LIMIT", "600"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    if LIMIT <= 0:
        yield
        return
    timer = threading.Timer(LIMIT, _stop, args=(item,))
    timer.daemon = True
    timer.name = "test-watchdog"
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def _stop(item: pytest.Item) -> None:
    """Write what the process is doing, then end it (from the timer's thread)."""
    try:
        capture = item.config.pluginmanager.getplugin("capturemanager")
        if capture is not None:
            capture.suspend_global_capture(item)
        report = what_runs(f"{item.nodeid} has run for more than {LIMIT:g} s; stopping its process")
        sys.stderr.write(report)  # an xdist worker's stderr is the run's
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)


def what_runs(title: str) -> str:
    """Every thread's stack, then every running event loop's tasks' stacks."""
    out = io.StringIO()
    out.write(f"\n{'+' * 30} {title} {'+' * 30}\n")
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    for ident, frame in sys._current_frames().items():
        if ident == threading.get_ident():
            continue
        out.write(f"\n--- thread {names.get(ident, ident)} ---\n")
        out.write("".join(traceback.format_stack(frame)))
    loops = [
        o for o in gc.get_objects() if isinstance(o, asyncio.AbstractEventLoop) and o.is_running()
    ]
    for loop in loops:
        for task in asyncio.all_tasks(loop):
            out.write(f"\n--- task {task.get_name()} ({task.get_coro()!r}) ---\n")
            stack = io.StringIO()
            task.print_stack(file=stack)
            out.write(stack.getvalue())
    out.write(f"\n{'+' * 30} end of what runs {'+' * 30}\n")
    return out.getvalue()
