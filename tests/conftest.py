"""Shared fixtures: settings, the fake encoder, a migrated database (SQLite, and PostgreSQL when
CAREBOT_TEST_DATABASE_URL is set: each test creates and drops its own database, a copy of a
template migrated once per test process: tests/migrated.py), a runtime."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from carebot.config import Settings
from carebot.outbox import OUTBOX_BACKOFF
from carebot.runtime import Runtime, build_runtime
from carebot.store.database import Database
from tests.chromium import close_shared
from tests.dropper import Dropper
from tests.fakes import FakeEncoder, RecordingChannel
from tests.migrated import PG_ENV, copy_sqlite, create_postgres, remove_templates, sqlite_template

ROOT = Path(__file__).resolve().parent.parent
TEST_INTENTS = Path(__file__).resolve().parent / "data" / "intents"
# The outbox's backoff without its jitter, so that tests know the exact wait of a retry (the
# jitter itself is tested in test_retry and test_outbox).
EXACT_BACKOFF = dataclasses.replace(OUTBOX_BACKOFF, jitter=0.0)
pytest_plugins = ["tests.watchdog"]  # a test that hangs is stopped, with every stack
DROPPER = Dropper()  # drops the PostgreSQL test databases behind the tests (tests/dropper.py)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """In CI (CAREBOT_REQUIRE_ALL_TESTS=1) a skipped test is a failure: every service is there."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if os.environ.get("CAREBOT_REQUIRE_ALL_TESTS") and report.skipped:
        report.outcome = "failed"
        report.longrepr = f"skipped where every test must run: {report.longrepr}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """What the comparisons of numerical paths measured (tests/decisions.py), for the log."""
    from tests.decisions import REPORTS

    if REPORTS:
        terminalreporter.section("numerical paths compared")
        for line in REPORTS:
            terminalreporter.write_line(line)


class Clock:
    """A clock the test moves by hand. Starts on a Wednesday at 10:00 UTC (business hours)."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 18, 10, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        from datetime import timedelta

        self.now += timedelta(seconds=seconds)


def settings_data(tmp_path: Path, **sections: dict[str, object]) -> dict[str, dict[str, object]]:
    """The test settings as config sections (``sections`` override keys), for a config file."""
    data: dict[str, dict[str, object]] = {
        "matcher": {
            # The pipeline tests reason in cosine similarities of the bag-of-words fake
            # encoder; the classifier is tested on its own (test_matcher, test_real_model).
            "method": "nearest",
            "intents_dir": str(TEST_INTENTS),
            "cache_dir": str(tmp_path / "cache"),
            "answer_threshold": 0.7,
            "draft_threshold": 0.45,
            "clarify_margin": 0.03,
        },
        # The emotion head reads the real model's 384-dim embeddings, not the fake encoder's.
        "emotion": {"head": False},
        "placeholders": {"tracking_url": "https://track.example"},
        "business_hours": {"timezone": "UTC"},
        # The pipeline tests read the bot's answers as the intents give them; the survey's
        # questions are tested with the survey on (test_survey.py, and the channels' tests).
        "survey": {"helpful": "never", "rating": False},
        # ...and without the bot's introduction before its first message of a conversation
        # (test_bot_intro.py tests it, on every channel).
        "messages": {"bot_intro": ""},
    }
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    return data


def make_settings(tmp_path: Path, **sections: dict[str, object]) -> Settings:
    return Settings.model_validate(settings_data(tmp_path, **sections))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def encoder() -> FakeEncoder:
    return FakeEncoder()


@pytest.fixture(scope="session")
def postgres_admin_url() -> str | None:
    return os.environ.get(PG_ENV)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite database, for tests of what does not depend on the database (pages,
    searches); the store's queries under them are tested on both kinds."""
    return f"sqlite+aiosqlite:///{tmp_path / 'carebot.db'}"


@pytest.fixture
def migrated_before_the_test() -> bool:
    """Requested by the fixtures that migrate ``database_url`` before the test begins
    (``database``, ``runtime``): ``database_url`` then starts as a copy of the migrated template
    (tests/migrated.py) instead of an empty database that they would migrate."""
    return True


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh database of each kind, empty (or, for a test that uses
    ``migrated_before_the_test``, already migrated); PostgreSQL ones are dropped afterwards
    (by the dropper, while the next tests run)."""
    migrated = "migrated_before_the_test" in request.fixturenames
    if request.param == "sqlite":
        path = tmp_path / "carebot.db"
        if migrated:
            copy_sqlite(await sqlite_template(), path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    admin = os.environ.get(PG_ENV)
    if not admin:
        pytest.skip(f"{PG_ENV} is not set (CI sets it to the local PostgreSQL)")
    import asyncpg

    url = make_url(admin)
    name = f"carebot_test_{uuid.uuid4().hex[:12]}"
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    if migrated:
        await create_postgres(name)
    else:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
    yield url.set(database=name).render_as_string(hide_password=False)
    DROPPER.drop(dsn, name)  # on the dropper's thread: the next test need not wait for it


def pytest_sessionfinish(session: pytest.Session) -> None:
    """This process's browser, the test databases still being dropped, then its migrated
    templates (tests/migrated.py) go before the session ends."""
    close_shared()  # this process's Chromium (tests/chromium.py), if a browser test started it
    try:
        DROPPER.finish()
    finally:
        asyncio.run(remove_templates())


@pytest.fixture
async def database(database_url: str, migrated_before_the_test: bool) -> AsyncIterator[Database]:
    db = Database(database_url)
    yield db
    await db.close()


@pytest.fixture
def channel() -> RecordingChannel:
    return RecordingChannel("test")


@pytest.fixture
def send_immediately() -> bool:
    """Replies are sent by whoever wrote them, as in production; a test module may override."""
    return True


@pytest.fixture
async def runtime(
    settings: Settings,
    database_url: str,
    migrated_before_the_test: bool,
    encoder: FakeEncoder,
    clock: Clock,
    channel: RecordingChannel,
    send_immediately: bool,
) -> AsyncIterator[Runtime]:
    rt = await build_runtime(
        settings,
        encoder=encoder,
        channels={"test": channel},
        clock=clock,
        database_url=database_url,
        send_immediately=send_immediately,
        backoff=EXACT_BACKOFF,
    )
    yield rt
    await rt.db.close()


@pytest.fixture
def intents_dir(tmp_path: Path) -> Path:
    """A copy of the test intents that a test may edit (a module may define its own)."""
    folder = tmp_path / "intents"
    shutil.copytree(TEST_INTENTS, folder)
    return folder
