"""Debian's Chromium for the browser tests, driven by Playwright (never ``playwright install``,
which downloads a browser: .ci/run installs Debian's package)."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import AsyncIterator
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"

needs_chromium = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None,
    reason="Debian's chromium is not installed (.ci/run installs it)",
)


@contextlib.asynccontextmanager
async def launched() -> AsyncIterator[Any]:
    """A headless Chromium, closed at the end."""
    api = pytest.importorskip("playwright.async_api")
    async with api.async_playwright() as p:
        instance = await p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield instance
        finally:
            await instance.close()
