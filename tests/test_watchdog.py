"""The watchdog (tests/watchdog.py) stops a test that hangs and says where it waits."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

HANGS = """
import asyncio


async def waits_forever():
    await asyncio.Event().wait()


async def main():
    await asyncio.create_task(waits_forever(), name="the-waiter")


def test_hangs():
    asyncio.run(main())
"""


def test_a_test_that_hangs_is_stopped_with_its_tasks_stacks(tmp_path: Path) -> None:
    (tmp_path / "test_hanging.py").write_text(HANGS)
    plugins = ["-p", "tests.watchdog", "-p", "no:cacheprovider"]
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            *plugins,
            "--rootdir",
            str(tmp_path),
            str(tmp_path / "test_hanging.py"),
        ],
        cwd=ROOT,
        env={**os.environ, "CAREBOT_TEST_LIMIT": "1", "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode != 0
    said = run.stdout + run.stderr
    assert "test_hanging.py::test_hangs has run for more than 1 s" in said, said
    assert "--- task the-waiter" in said and "await asyncio.Event().wait()" in said, said
    assert "--- thread MainThread ---" in said, said
