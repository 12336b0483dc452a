"""``carebot serve --workers N``: N processes of this machine serving one port, supervised.

The supervisor does not serve. It runs its own command line again N times, each child told
by the ``CAREBOT_WORKER`` environment variable (``"index/N:supervisor pid"``) that it is a
worker: a child
serves in process as ``carebot serve`` does, on the same host and port with ``SO_REUSEPORT``
(the kernel spreads new connections over them), with its model threads set so that
N x threads <= the cores. Running the same command line keeps everything the parent was
started with (its config, its options, the encoder a test injected in its ``-c`` script).

A child that dies unexpectedly is started again after a backoff that doubles with each quick
death (1 s up to a minute; a child that served for a minute starts the count over). A child
that exits with code 2 refused to start (a configuration, intents or database problem that a
restart does not fix): the supervisor stops the others and exits with 2. SIGTERM or SIGINT
is passed to every child, each shutting down in the documented order, and the supervisor
exits 0 once they all stopped cleanly (1 if one did not). A supervisor that is killed takes
its children with it: on Linux the kernel sends each SIGTERM (``PR_SET_PDEATHSIG``), so none
is left holding the port.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import re
import signal
import socket
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from carebot.config import Settings
from carebot.exceptions import CarebotError, ConfigError
from carebot.nlu.onnx_encoder import available_cores, export_problem

log = logging.getLogger(__name__)
WORKER_ENV = "CAREBOT_WORKER"
REFUSED = 2  # a child's exit code when carebot refused to start (a CarebotError)
FIRST_BACKOFF = 1.0  # seconds before the first restart of a child that died
MAX_BACKOFF = 60.0
STEADY = 60.0  # seconds of serving after which a child's death is not a quick one
PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when its parent dies


@dataclass(frozen=True, slots=True)
class Slot:
    """Which worker a child process is: ``index`` of ``count`` (from 1), and whose."""

    index: int
    count: int
    supervisor: int  # the supervisor's pid

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def env_value(self) -> str:
        return f"{self.index}/{self.count}:{self.supervisor}"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Slot | None:
        """The slot the supervisor gave this process, or None when it runs on its own."""
        value = (os.environ if env is None else env).get(WORKER_ENV, "")
        found = re.fullmatch(r"(\d+)/(\d+):(\d+)", value)
        return cls(*map(int, found.groups())) if found else None

    def follow_supervisor(self) -> None:
        """End this worker with its supervisor: SIGTERM (a clean shutdown) when it dies, even
        killed (Linux; elsewhere a killed supervisor leaves its workers running)."""
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != self.supervisor:
            raise CarebotError(f"The supervisor (pid {self.supervisor}) is gone: not starting")


def worker_threads(configured: int, workers: int, cores: int) -> tuple[int, str | None]:
    """The model threads of each of ``workers`` processes on ``cores`` cores, so that
    workers x threads <= cores; with a warning when ``[matcher] threads`` had to be lowered."""
    fair = max(1, cores // workers)
    if configured == 0 or configured <= fair:
        return configured or fair, None
    return fair, (
        f"[matcher] threads = {configured} with {workers} workers would need "
        f"{configured * workers} threads on {cores} cores; each worker uses {fair}"
    )


def for_worker(settings: Settings, workers: int, cores: int | None = None) -> Settings:
    """``settings`` as one of ``workers`` processes runs them: its share of the cores."""
    threads, _warning = worker_threads(
        settings.matcher.threads, workers, cores or available_cores()
    )
    matcher = settings.matcher.model_copy(update={"threads": threads})
    return settings.model_copy(update={"matcher": matcher})


def supervise(
    settings: Settings, command: Sequence[str], host: str, port: int, *, export: bool = True
) -> int:
    """Run ``command`` (this ``carebot serve``) as ``[server] workers`` supervised workers
    on ``host:port`` until SIGTERM or SIGINT; the exit code."""

    def say(text: str) -> None:
        sys.stdout.write(text + "\n")  # one write: the workers share this output
        sys.stdout.flush()

    prepare(settings, host, port, say, export=export)
    count = settings.server.workers
    say(f"Starting {count} workers on {host}:{port} (supervisor pid {os.getpid()})")
    return asyncio.run(Supervisor(command, count).run())


def prepare(
    settings: Settings, host: str, port: int, say: Callable[[str], None], *, export: bool = True
) -> None:
    """What the supervisor does once before the children start: check that the port is
    free, warn when the threads are lowered, and (``export``) export the ONNX model if it is
    missing: one export, not N at once."""
    _check_port(host, port)
    workers = settings.server.workers
    _threads, warning = worker_threads(settings.matcher.threads, workers, available_cores())
    if warning:
        log.warning("%s", warning)
    cfg = settings.matcher
    if not export or cfg.backend != "onnx":
        return
    from carebot.runtime import onnx_folder

    folder = onnx_folder(settings)
    if export_problem(folder, cfg.model, settings.base_dir) is not None:
        from carebot.nlu.model_export import export_in_child
        from carebot.runtime import EXPORT_NOTICE

        say(EXPORT_NOTICE)
        export_in_child(cfg.model, folder, base_dir=settings.base_dir)


def _check_port(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigError(
                f"Cannot listen on {host}:{port}: {exc.strerror}. Stop what uses the port, or "
                "choose another with --port or [server] port."
            ) from exc


class Supervisor:
    """Runs ``command`` as ``count`` worker processes until SIGTERM or SIGINT."""

    def __init__(
        self, command: Sequence[str], count: int, *, env: Mapping[str, str] | None = None
    ) -> None:
        self._command = list(command)
        self._count = count
        self._env = dict(os.environ if env is None else env)
        self._children: dict[int, asyncio.subprocess.Process] = {}
        self._stopping = asyncio.Event()
        self._refused: int | None = None

    async def run(self) -> int:
        """Supervise until told to stop; the exit code for the command."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop, sig)
        try:
            codes = await asyncio.gather(*(self._keep(i + 1) for i in range(self._count)))
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
        if self._refused is not None:
            return self._refused
        if all(code == 0 for code in codes):
            log.info("All %d workers stopped cleanly", self._count)
            return 0
        log.error("Not every worker stopped cleanly (exit codes %s)", codes)
        return 1

    def stop(self, sig: signal.Signals | None = None) -> None:
        """Stop supervising (on ``sig``, if a signal): every child gets SIGTERM and shuts
        down in its own order."""
        if sig is not None and not self._stopping.is_set():
            log.warning("%s: stopping the %d workers", sig.name, self._count)
        self._stopping.set()
        for child in self._children.values():
            if child.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    child.send_signal(signal.SIGTERM)

    async def _keep(self, index: int) -> int:
        """Keep worker ``index`` running until the stop; its last exit code."""
        quick_deaths = 0
        while True:
            slot = Slot(index, self._count, os.getpid())
            child = await asyncio.create_subprocess_exec(
                *self._command, env={**self._env, WORKER_ENV: slot.env_value}
            )
            self._children[index] = child
            log.info("Worker %s started (pid %d)", slot, child.pid)
            if self._stopping.is_set():  # the stop came while it was being started
                child.send_signal(signal.SIGTERM)
            began = time.monotonic()
            code = await child.wait()
            if self._stopping.is_set():
                log.info("Worker %s (pid %d) stopped with exit code %d", slot, child.pid, code)
                return code
            if code == REFUSED:
                log.error(
                    "Worker %s (pid %d) refused to start (exit code 2, see its error above); "
                    "stopping the others",
                    slot,
                    child.pid,
                )
                self._refused = REFUSED
                self.stop()
                return code
            quick_deaths = 0 if time.monotonic() - began >= STEADY else quick_deaths + 1
            delay = min(MAX_BACKOFF, FIRST_BACKOFF * 2 ** max(0, quick_deaths - 1))
            log.warning(
                "Worker %s (pid %d) died unexpectedly (%s); restarting it in %g s",
                slot,
                child.pid,
                _describe_exit(code),
                delay,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            if self._stopping.is_set():
                return 0  # it had died; nothing of it is left to stop


def _describe_exit(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    return f"exit code {code}"
