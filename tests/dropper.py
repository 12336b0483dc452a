"""PostgreSQL test databases dropped on a thread of their own.

``DROP DATABASE`` waits for a checkpoint: most of a second on a busy machine, for every one of
the ~800 PostgreSQL tests. Nothing a test checks depends on when its database goes (each test
has its own, under a unique name), so a test's teardown hands the name to this process's
dropper and goes on; the dropper drops the databases one after the other, and the session
waits for the last one at its end (:meth:`Dropper.finish`). A drop that fails is raised by
the next test's teardown, or at the end.
"""

from __future__ import annotations

import asyncio
import queue
import threading

import asyncpg


class DropFailed(Exception):
    """A test database could not be dropped."""


class Dropper:
    """Drops databases of one server, in order, on its own thread (started on first use)."""

    def __init__(self) -> None:
        self._names: queue.Queue[tuple[str, str] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._failures: list[str] = []
        self._guard = threading.Lock()

    def drop(self, dsn: str, name: str) -> None:
        """Drop database ``name`` of the server at ``dsn`` (an admin connection's DSN) soon;
        first raise any earlier drop's failure."""
        self.raise_failures()
        with self._guard:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="drop-test-databases", daemon=True
                )
                self._thread.start()
        self._names.put((dsn, name))

    def finish(self) -> None:
        """Wait for every drop asked for; raise if any failed."""
        with self._guard:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._names.put(None)
            thread.join()
        self.raise_failures()

    def raise_failures(self) -> None:
        if self._failures:
            failures, self._failures = self._failures, []
            raise DropFailed("Could not drop test databases:\n" + "\n".join(failures))

    def _run(self) -> None:
        while (job := self._names.get()) is not None:
            dsn, name = job
            try:
                asyncio.run(_drop(dsn, name))
            except Exception as exc:  # kept for the tests' thread, which raises it
                self._failures.append(f"{name}: {exc!r}")


async def _drop(dsn: str, name: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
