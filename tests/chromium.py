"""Debian's Chromium for the browser tests, driven by Playwright (never ``playwright install``,
which downloads a browser: .ci/run installs Debian's package).

One headless Chromium per test process: Playwright launches it once (with its own flags and
ours) on a thread of its own, with a DevTools port on loopback; each test connects to it from
its own event loop (:func:`launched`) and makes its own contexts, which close when the test
disconnects, so no cookie, storage or page outlives the test. That spares each test a browser
launch and close (about a second on a busy machine). :func:`close_shared` ends it with the
session.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import threading
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
LAUNCH_TIMEOUT = 120.0  # seconds: a launch on two busy cores
PORT_TRIES = 3  # a free port taken by another process between the probe and the launch

needs_chromium = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None,
    reason="Debian's chromium is not installed (.ci/run installs it)",
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _answers(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint}/json/version", timeout=10) as response:
            return bool(response.status == 200)
    except OSError:
        return False


class SharedChromium:
    """A Chromium that Playwright launched on this object's thread, kept until :meth:`close`."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._endpoint: str | None = None
        self._error: BaseException | None = None

    def endpoint(self) -> str:
        """The DevTools address (``http://127.0.0.1:PORT``), launching the browser first (and
        again if an earlier test left it dead: that test failed, the next ones need not)."""
        if self._endpoint is not None and not _answers(self._endpoint):
            self.close()
        with self._guard:
            if self._thread is None:
                self._ready.clear()
                self._stop.clear()
                self._endpoint, self._error = None, None
                self._thread = threading.Thread(target=self._run, name="chromium", daemon=True)
                self._thread.start()
        if not self._ready.wait(LAUNCH_TIMEOUT):
            raise RuntimeError(f"Chromium did not start within {LAUNCH_TIMEOUT:g} s")
        if self._endpoint is None:
            raise RuntimeError(f"Chromium did not start: {self._error!r}") from self._error
        return self._endpoint

    def _run(self) -> None:
        from playwright.sync_api import sync_playwright

        try:
            with sync_playwright() as p:
                for _ in range(PORT_TRIES):
                    port = _free_port()
                    instance = p.chromium.launch(
                        executable_path=CHROMIUM, args=[*ARGS, f"--remote-debugging-port={port}"]
                    )
                    endpoint = f"http://127.0.0.1:{port}"
                    if _answers(endpoint):
                        break
                    instance.close()
                else:
                    raise RuntimeError(
                        f"Chromium's DevTools port never answered ({PORT_TRIES} tries)"
                    )
                self._endpoint = endpoint
                self._ready.set()
                self._stop.wait()
                instance.close()
        except BaseException as exc:
            self._error = exc
        finally:
            self._ready.set()

    def close(self) -> None:
        with self._guard:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            thread.join(LAUNCH_TIMEOUT)


SHARED = SharedChromium()


@contextlib.asynccontextmanager
async def launched() -> AsyncIterator[Any]:
    """A headless Chromium of the test's own: this process's shared browser, connected from
    the test's event loop. The contexts the test makes are closed when it ends."""
    api = pytest.importorskip("playwright.async_api")
    endpoint = await asyncio.to_thread(SHARED.endpoint)
    async with api.async_playwright() as p:
        instance = await p.chromium.connect_over_cdp(endpoint)
        try:
            yield instance
        finally:
            await instance.close()


def close_shared() -> None:
    """Close this process's browser (at the end of the session)."""
    SHARED.close()
