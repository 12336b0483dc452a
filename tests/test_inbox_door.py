"""The inbox door: the login throttle (per name and per address, counted in the database), the
server-side sessions (logout and removed agents end them at once), Secure cookies and the live
stream's Origin check. Other client addresses are real: Linux answers all of 127.0.0.0/8 on
the loopback, so a client bound to 127.0.0.2 is another address to the server."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from carebot.desk.auth import hash_password
from carebot.server import Service
from carebot.store.database import Database
from carebot.store.logins import LoginFailures, name_key
from carebot.store.tables import InboxSession, LoginFailure
from tests.conftest import Clock, settings_data
from tests.migrated import migrate
from tests.serve_process import ServeProcess, serving, write_config
from tests.service import AGENT_PASSWORD, running_service, service_settings

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
HASH = hash_password(AGENT_PASSWORD)
AGENTS = [
    {"name": "ann", "display_name": "Ann", "password_hash": HASH},
    {"name": "bob", "display_name": "Bob", "password_hash": HASH},
]
LOCKED = "Too many failed logins for this name or address; try again in"


class Delays(list[float]):
    """The throttle's waits, recorded instead of slept."""

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def delays() -> Delays:
    return Delays()


@pytest.fixture
async def service(
    tmp_path: Path, database_url: str, clock: Clock, delays: Delays
) -> AsyncIterator[tuple[Service, TestServer]]:
    settings = service_settings(tmp_path, inbox={"agents": AGENTS})
    async with running_service(settings, database_url, clock, login_sleep=delays) as running:
        yield running


def browser(address: str = "127.0.0.1") -> aiohttp.ClientSession:
    """An agent's browser at ``address``: keeps cookies, does not follow redirects."""
    return aiohttp.ClientSession(
        cookie_jar=aiohttp.CookieJar(unsafe=True),
        connector=aiohttp.TCPConnector(local_addr=(address, 0)),
    )


async def log_in(
    http: aiohttp.ClientSession, base: str, name: str = "ann", password: str = AGENT_PASSWORD
) -> tuple[int, str, aiohttp.ClientResponse]:
    """The login form's answer: status, page text, response."""
    async with http.get(f"{base}/inbox/login") as form:
        csrf = CSRF.search(await form.text()).group(1)  # type: ignore[union-attr]
    data = {"name": name, "password": password, "csrf": csrf, "next": "/inbox"}
    async with http.post(f"{base}/inbox/login", data=data, allow_redirects=False) as response:
        return response.status, await response.text(), response


async def inbox_status(http: aiohttp.ClientSession, base: str) -> int:
    async with http.get(f"{base}/inbox", allow_redirects=False) as response:
        return response.status


def base_of(server: TestServer) -> str:
    return str(server.make_url("")).rstrip("/")


# --- the throttle --------------------------------------------------------------------------


async def test_failures_grow_the_delay_then_lock(
    service: tuple[Service, TestServer], delays: Delays, clock: Clock
) -> None:
    running, server = service
    async with browser() as http:
        answers = [await log_in(http, base_of(server), password="wrong") for _ in range(5)]
        assert [status for status, _, _ in answers] == [401, 401, 401, 401, 429]
        assert delays == [0.25, 0.5, 1.0, 2.0]  # the lock itself is answered at once
        _, page, response = answers[-1]
        assert f"{LOCKED} 15 minutes" in page and response.headers["Retry-After"] == "900"
        # While locked, even the right password is refused, without a delay.
        status, page, _ = await log_in(http, base_of(server))
        assert status == 429 and f"{LOCKED} 15 minutes" in page and len(delays) == 4
        clock.advance(14 * 60 + 1)
        status, page, _ = await log_in(http, base_of(server))
        assert status == 429 and f"{LOCKED} 1 minute." in page
        clock.advance(60)  # the lockout has passed
        status, _, response = await log_in(http, base_of(server))
        assert status == 303 and response.headers["Location"] == "/inbox"
    async with running.runtime.db.session() as session:
        assert (await session.scalars(select(LoginFailure.key))).all() == []  # success cleared


@pytest.mark.parametrize(
    ("failures", "refused", "accepted"),
    [
        # Five addresses fail for ann: ann is locked from anywhere; bob is not.
        (
            [("ann", f"127.0.0.{i}") for i in range(2, 7)],
            ("ann", "127.0.0.7"),
            ("bob", "127.0.0.7"),
        ),
        # One address fails for five names: it is locked for everyone; ann elsewhere is not.
        (
            [(f"guess{i}", "127.0.0.2") for i in range(5)],
            ("ann", "127.0.0.2"),
            ("ann", "127.0.0.3"),
        ),
    ],
    ids=["by-name", "by-address"],
)
async def test_a_lock_holds_by_name_and_by_address(
    service: tuple[Service, TestServer],
    failures: list[tuple[str, str]],
    refused: tuple[str, str],
    accepted: tuple[str, str],
) -> None:
    _, server = service
    statuses = []
    for name, address in failures:
        async with browser(address) as http:
            statuses.append((await log_in(http, base_of(server), name, "wrong"))[0])
    assert statuses == [401, 401, 401, 401, 429]
    for (name, address), expected in ((refused, 429), (accepted, 303)):
        async with browser(address) as http:
            assert (await log_in(http, base_of(server), name))[0] == expected


async def test_a_success_resets_the_count(
    service: tuple[Service, TestServer], delays: Delays
) -> None:
    _, server = service
    statuses = []
    async with browser() as http:
        for _ in range(2):
            statuses += [(await log_in(http, base_of(server), password="no"))[0] for _ in range(4)]
            statuses.append((await log_in(http, base_of(server)))[0])
    assert statuses == [401, 401, 401, 401, 303] * 2
    assert delays == [0.25, 0.5, 1.0, 2.0] * 2


async def test_failures_are_logged_without_the_password(
    service: tuple[Service, TestServer], caplog: pytest.LogCaptureFixture
) -> None:
    _, server = service
    secret = "hunter2-do-not-log-me"
    with caplog.at_level(logging.DEBUG):
        async with browser("127.0.0.5") as http:
            for _ in range(5):
                await log_in(http, base_of(server), password=secret)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    failed = [text for text in warnings if text.startswith("Failed inbox login")]
    assert len(failed) == 5
    assert all("'ann'" in text and "127.0.0.5" in text for text in failed)
    assert sum("locked for 15 minutes" in text for text in warnings) == 1
    assert not [r for r in caplog.records if secret in r.getMessage() or secret in str(r.args)]


# --- sessions ------------------------------------------------------------------------------


async def test_logging_out_ends_the_session_for_its_cookie(
    service: tuple[Service, TestServer],
) -> None:
    running, server = service
    base = base_of(server)
    async with browser() as http:
        await log_in(http, base)
        cookies = {c.key: c.value for c in http.cookie_jar}
        async with http.get(f"{base}/inbox") as page:
            csrf = CSRF.search(await page.text()).group(1)  # type: ignore[union-attr]
        async with http.post(f"{base}/inbox/logout", data={"csrf": csrf}, allow_redirects=False):
            pass
    async with browser() as stolen:  # the same cookie, kept by someone after the logout
        stolen.cookie_jar.update_cookies(cookies, server.make_url("/"))
        assert await inbox_status(stolen, base) == 303
        async with stolen.post(f"{base}/inbox/c/1/reply", data={"csrf": csrf, "text": "x"}) as r:
            assert r.status == 401
    async with running.runtime.db.session() as session:
        rows = (await session.scalars(select(InboxSession))).all()
    assert [(row.agent, row.ended_at is not None) for row in rows] == [("ann", True)]
    assert all(len(row.id_hash) == 64 and row.id_hash not in str(cookies) for row in rows)


async def test_an_agent_removed_from_the_config_has_no_session(
    tmp_path: Path, database_url: str, clock: Clock, delays: Delays
) -> None:
    both = service_settings(tmp_path, inbox={"agents": AGENTS})
    async with running_service(both, database_url, clock, login_sleep=delays) as (_, server):
        jars = {}
        for name in ("ann", "bob"):
            async with browser() as http:
                await log_in(http, base_of(server), name)
                jars[name] = {c.key: c.value for c in http.cookie_jar}
    ann_only = service_settings(tmp_path, inbox={"agents": AGENTS[:1]})
    async with running_service(ann_only, database_url, clock, login_sleep=delays) as running:
        service, server = running
        statuses = {}
        for name, cookies in jars.items():
            async with browser() as http:
                http.cookie_jar.update_cookies(cookies, server.make_url("/"))
                statuses[name] = await inbox_status(http, base_of(server))
        async with service.runtime.db.session() as session:
            rows = (await session.execute(select(InboxSession.agent, InboxSession.ended_at))).all()
    assert statuses == {"ann": 200, "bob": 303}  # ann's session survived the restart
    assert sorted((agent, ended is not None) for agent, ended in rows) == [
        ("ann", False),
        ("bob", True),  # ended at start
    ]


@pytest.mark.parametrize("secure_cookies", [False, True])
async def test_cookies_are_secure_with_the_setting(
    tmp_path: Path, sqlite_url: str, clock: Clock, delays: Delays, secure_cookies: bool
) -> None:
    settings = service_settings(tmp_path, server={"secure_cookies": secure_cookies})
    # A client keeps Secure cookies for HTTPS: this one is handed back by hand (as the proxy
    # in front would, the browser's side being HTTPS).
    async with (
        running_service(settings, sqlite_url, clock, login_sleep=delays) as (_, server),
        aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http,
    ):
        base = base_of(server)
        async with http.get(f"{base}/inbox/login") as form:
            login_cookie = form.cookies["carebot_login"]
            csrf = CSRF.search(await form.text()).group(1)  # type: ignore[union-attr]
        data = {"name": "ann", "password": AGENT_PASSWORD, "csrf": csrf, "next": "/inbox"}
        headers = {"Cookie": f"carebot_login={login_cookie.value}"}
        async with http.post(
            f"{base}/inbox/login", data=data, headers=headers, allow_redirects=False
        ) as response:
            assert response.status == 303
            session_cookie = response.cookies["carebot_session"]
    assert bool(login_cookie["secure"]) is secure_cookies
    assert bool(session_cookie["secure"]) is secure_cookies


# --- the live stream's Origin ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("origin", "public_url", "status"),
    [
        (None, "", 101),  # no Origin: allowed
        ("own", "", 101),
        ("https://care.example", "https://care.example", 101),  # behind a proxy
        ("https://evil.example", "", 403),
        ("https://evil.example", "https://care.example", 403),
        ("null", "", 403),
    ],
)
async def test_the_live_stream_checks_the_origin(
    tmp_path: Path,
    sqlite_url: str,
    clock: Clock,
    delays: Delays,
    origin: str | None,
    public_url: str,
    status: int,
) -> None:
    settings = service_settings(tmp_path, server={"public_url": public_url})
    async with (
        running_service(settings, sqlite_url, clock, login_sleep=delays) as (_, server),
        browser() as http,
    ):
        await log_in(http, base_of(server))
        headers = {} if origin is None else {"Origin": origin}
        if origin == "own":
            headers["Origin"] = base_of(server)
        try:
            live = await http.ws_connect(server.make_url("/inbox/events"), headers=headers)
        except aiohttp.WSServerHandshakeError as exc:
            answered = exc.status
        else:
            answered = 101
            await live.close()
    assert answered == status


# --- two real workers on one PostgreSQL ------------------------------------------------------


def two_worker_config(tmp_path: Path, database_url: str) -> Path:
    sections: dict[str, Any] = settings_data(tmp_path, store={"url": database_url})
    path = write_config(tmp_path / "config.toml", sections)
    agent = "\n".join(f"{key} = {value!r}".replace("'", '"') for key, value in AGENTS[0].items())
    path.write_text(path.read_text() + f"\n[[inbox.agents]]\n{agent}\n")
    return path


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_the_door_holds_across_two_workers(tmp_path: Path, database_url: str) -> None:
    await migrate(database_url)
    config = two_worker_config(tmp_path, database_url)
    env = {"CAREBOT_SECRET_KEY": "a shared secret of more than thirty-two characters"}
    async with serving(config, 2, env=env) as (one, two), browser() as http:
        await session_crosses_workers(http, one, two)
        # Failures alternate between the workers and add up to one lock, seen by both.
        statuses = []
        for attempt in range(5):
            worker = (one, two)[attempt % 2]
            statuses.append((await log_in(http, worker.url, password="wrong"))[0])
        assert statuses == [401, 401, 401, 401, 429]
        for worker in (one, two):
            status, page, _ = await log_in(http, worker.url)  # the right password
            assert status == 429 and LOCKED in page, worker.output()


async def session_crosses_workers(
    http: aiohttp.ClientSession, one: ServeProcess, two: ServeProcess
) -> None:
    """A session started on one worker works on the other; logging out on the other ends it
    on the first."""
    status, _, _ = await log_in(http, one.url)
    assert status == 303
    cookies = {c.key: c.value for c in http.cookie_jar}
    assert [await inbox_status(http, w.url) for w in (one, two)] == [200, 200]
    async with http.get(f"{two.url}/inbox") as page:
        csrf = CSRF.search(await page.text()).group(1)  # type: ignore[union-attr]
    async with http.post(f"{two.url}/inbox/logout", data={"csrf": csrf}, allow_redirects=False):
        pass
    http.cookie_jar.update_cookies(cookies)  # the old cookie, kept
    assert [await inbox_status(http, w.url) for w in (one, two)] == [303, 303]


async def test_concurrent_failures_each_count_once(database: Database, clock: Clock) -> None:
    """The upsert is atomic: failures at the same moment (as on several workers) all count."""
    failures = LoginFailures(database, clock, max_failures=5, lockout=timedelta(minutes=15))
    counts = await asyncio.gather(*(failures.failed(name_key("ann")) for _ in range(8)))
    assert sorted(f.count for f in counts) == list(range(1, 9))
    assert sum(f.locked_until is not None for f in counts) == 4  # the 5th to the 8th
    assert await failures.locked_until([name_key("ann")]) == clock() + timedelta(minutes=15)
    clock.advance(15 * 60)
    assert await failures.locked_until([name_key("ann")]) is None
    assert (await failures.failed(name_key("ann"))).count == 1  # a new run


@pytest.mark.parametrize(
    ("forwarded_for", "headers", "address"),
    [
        (False, {"X-Forwarded-For": "203.0.113.9"}, "127.0.0.1"),  # not trusted: the peer's
        (True, {"X-Forwarded-For": "198.51.100.7, 203.0.113.9"}, "203.0.113.9"),  # the proxy's
        (True, {}, "127.0.0.1"),  # no header: the peer's
    ],
)
async def test_behind_a_proxy_failures_count_by_the_forwarded_address(
    tmp_path: Path,
    database_url: str,
    clock: Clock,
    delays: Delays,
    forwarded_for: bool,
    headers: dict[str, str],
    address: str,
) -> None:
    settings = service_settings(
        tmp_path, inbox={"agents": AGENTS}, server={"forwarded_for": forwarded_for}
    )
    async with (
        running_service(settings, database_url, clock, login_sleep=delays) as (running, server),
        browser() as http,
    ):
        http.headers.update(headers)
        assert (await log_in(http, base_of(server), "nobody", "wrong"))[0] == 401
        async with running.runtime.db.session() as session:
            keys = set((await session.scalars(select(LoginFailure.key))).all())
    assert f"address:{address}" in keys


async def test_an_unknown_name_is_checked_against_a_hash_as_costly_as_a_real_one() -> None:
    """A login with an unknown name verifies the password against the fixed dummy hash, made
    with the hasher's own parameters, so it takes as long as a known name's; and it fails."""
    from argon2 import extract_parameters

    from carebot.desk import auth

    hasher = auth._hasher
    dummy = extract_parameters(auth._DUMMY)
    assert (dummy.type, dummy.time_cost, dummy.memory_cost, dummy.parallelism) == (
        hasher.type,
        hasher.time_cost,
        hasher.memory_cost,
        hasher.parallelism,
    )
    assert (dummy.hash_len, dummy.salt_len) == (hasher.hash_len, hasher.salt_len)
    agents = auth.Agents({})
    assert await agents.verify("nobody", "") is None
    assert await agents.verify("nobody", "secret") is None
