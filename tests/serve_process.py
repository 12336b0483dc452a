"""Real ``carebot serve`` processes for the tests that run several workers on one database.

Each process runs the command line's ``serve`` with the fake encoder (no model to load), on its
own free port; its output is read all the time (a full pipe would stall it) and kept, so a test
can wait for a line and a failure shows what the worker said. Use :func:`serving` to start
several and stop them all (SIGTERM, then a wait) however the test ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path

from tests.conftest import ROOT

SERVE = (
    "import sys; from carebot.cli import main; from tests.fakes import FakeEncoder; "
    "sys.exit(main(sys.argv[1:], encoder=FakeEncoder()))"
)
# The command line's own model (the configured backend; benchmarks), instead of the fake one.
SERVE_REAL_MODEL = "import sys; from carebot.cli import main; sys.exit(main(sys.argv[1:]))"
READY = "carebot is serving on"
START_TIMEOUT = 90.0  # seconds: several workers start at once on two busy cores


def write_config(path: Path, sections: Mapping[str, Mapping[str, object]]) -> Path:
    """``sections`` as a config.toml at ``path``."""
    lines = []
    for name, values in sections.items():
        lines += [f"[{name}]", *(f"{key} = {toml_value(value)}" for key, value in values.items())]
    path.write_text("\n".join(lines) + "\n")
    return path


def toml_value(value: object) -> str:
    """A TOML value: strings, numbers and booleans as JSON writes them (valid TOML), lists as
    arrays and mappings as inline tables."""
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(value)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ServeProcess:
    """One ``carebot serve`` process; its output lines are in :attr:`lines`."""

    def __init__(self, process: asyncio.subprocess.Process, port: int, name: str) -> None:
        self.process = process
        self.port = port
        self.name = name
        self.lines: list[str] = []
        self._changed = asyncio.Condition()
        self._reader = asyncio.create_task(self._read(), name=f"{name}-output")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _read(self) -> None:
        assert self.process.stdout is not None
        while raw := await self.process.stdout.readline():
            async with self._changed:
                self.lines.append(raw.decode(errors="replace").rstrip("\n"))
                self._changed.notify_all()
        async with self._changed:
            self._changed.notify_all()

    def said(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    async def wait_for_line(self, text: str, *, timeout: float = 60.0) -> str:
        """The first output line holding ``text``, waiting for it; fails with the output."""
        return (await self.wait_for_lines(text, 1, timeout=timeout))[0]

    async def wait_for_lines(self, text: str, count: int, *, timeout: float = 60.0) -> list[str]:
        """The output lines holding ``text``, once there are ``count`` of them."""
        try:
            async with asyncio.timeout(timeout), self._changed:
                while True:
                    found = [line for line in self.lines if text in line]
                    if len(found) >= count:
                        return found
                    if self._reader.done():
                        break
                    await self._changed.wait()
        except TimeoutError:
            pass
        raise AssertionError(f"{self.name}: {count} x {text!r} never came:\n" + self.output())

    def output(self) -> str:
        return "\n".join(self.lines)

    async def stop(self, *, timeout: float = 60.0) -> int:
        """SIGTERM (if still running) and the exit code."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            self.process.kill()
            code = await self.process.wait()
        await self._reader
        return code

    def kill(self) -> None:
        """SIGKILL: the process dies at once, as in a crash."""
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()


async def start_serve(
    config: Path,
    *,
    env: Mapping[str, str] = {},
    args: Sequence[str] = (),
    name: str = "worker",
    ready: str | None = READY,
    port: int | None = None,
    real_model: bool = False,
) -> ServeProcess:
    """Start ``carebot serve`` on ``config`` on ``port`` (default: a free one); by default
    wait until it serves. ``real_model``: the configured model rather than the fake encoder.

    A port this function chose may be taken by another process between the probe and the
    worker's bind (tests run in parallel): a worker that exits on "address already in use"
    before serving is started again on another free port, at most twice."""
    attempts = 3 if port is None else 1
    for attempt in range(1, attempts + 1):
        chosen = port or free_port()
        process = await asyncio.create_subprocess_exec(
            *(sys.executable, "-c", SERVE_REAL_MODEL if real_model else SERVE, "-v"),
            *("-c", str(config), "serve"),
            *("--host", "127.0.0.1", "--port", str(chosen), *args),
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        worker = ServeProcess(process, chosen, name)
        if ready is None:
            return worker
        try:
            await worker.wait_for_line(ready, timeout=START_TIMEOUT)
            return worker
        except AssertionError:  # it did not start: stop it; start it again if its port was taken
            await worker.stop()
            if attempt < attempts and worker.said("address already in use"):
                continue
            raise
        except BaseException:  # the caller gave up waiting: stop it
            await worker.stop()
            raise
    raise AssertionError("unreachable: the last attempt returns or raises")


@contextlib.asynccontextmanager
async def serving(
    config: Path,
    count: int,
    *,
    env: Mapping[str, str] = {},
    args: Sequence[str] = (),
    envs: Sequence[Mapping[str, str]] = (),
) -> AsyncIterator[list[ServeProcess]]:
    """``count`` workers of ``config``, started together, all stopped at the end; worker i
    gets ``env`` and ``envs[i]`` (when given) added to the environment."""
    started = await asyncio.gather(
        *(
            start_serve(
                config,
                env={**env, **(envs[i] if i < len(envs) else {})},
                args=args,
                name=f"worker{i + 1}",
            )
            for i in range(count)
        ),
        return_exceptions=True,
    )
    workers = [w for w in started if isinstance(w, ServeProcess)]
    try:
        for outcome in started:
            if isinstance(outcome, BaseException):
                raise outcome
        yield workers
    finally:
        await asyncio.gather(*(w.stop() for w in workers))
