"""Several workers: unsafe set-ups refused, ``carebot serve --workers N`` supervised for real,
migrations that never run twice, the connection budget, and /readyz while a worker drains."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from alembic.script import ScriptDirectory
from sqlalchemy import exc as sa_exc
from sqlalchemy import text

from carebot.cli import main
from carebot.cluster.safety import check_several_workers
from carebot.cluster.supervisor import worker_threads
from carebot.config import Settings
from carebot.exceptions import ConfigError
from carebot.store.database import MIGRATION_LOCK, MIGRATIONS, Database
from tests.conftest import ROOT, Clock, settings_data
from tests.fakes import GatedEncoder
from tests.serve_process import START_TIMEOUT, ServeProcess, start_serve, write_config
from tests.service import _HASH, Visitor, logged, running_service, service_settings
from tests.test_shutdown import ORDER

ON_POSTGRESQL = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
SECRET = {"CAREBOT_SECRET_KEY": "several-workers-share-this-secret-key-0123456789"}
SERVING = "carebot is serving on"
AGENTS = f'[[inbox.agents]]\nname = "ann"\npassword_hash = "{_HASH}"\n'


def config_file(tmp_path: Path, url: str, *, agents: bool = True, **sections: Any) -> Path:
    path = write_config(tmp_path / "config.toml", settings_data(tmp_path, store={"url": url}))
    extra = "".join(
        f"[{name}]\n" + "".join(f'{key} = "{value}"\n' for key, value in values.items())
        for name, values in sections.items()
    )
    path.write_text(path.read_text() + extra + (AGENTS if agents else ""))
    return path


POSTGRES = "postgresql+asyncpg://carebot@127.0.0.1:1/never_opened"
UNSAFE: dict[str, tuple[dict[str, Any], str]] = {
    "sqlite": (
        {"url": "sqlite+aiosqlite:///carebot.db"},
        "several workers need PostgreSQL: set [store] url",
    ),
    "generated secret": (
        {"env": {}},
        "CAREBOT_SECRET_KEY is not set in the environment, so the secret key would be the file",
    ),
    "demo agent": (
        {"agents": False},
        "no [[inbox.agents]] are configured, so each worker would make up its own demo agent",
    ),
}


@pytest.mark.parametrize("case", list(UNSAFE))
def test_several_workers_refuse_an_unsafe_setup_with_the_fix(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    change, problem = UNSAFE[case]
    env = change.get("env", SECRET)
    monkeypatch.delenv("CAREBOT_SECRET_KEY", raising=False)
    monkeypatch.delenv("CAREBOT_DATABASE_URL", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config = config_file(tmp_path, change.get("url", POSTGRES), agents=change.get("agents", True))

    code = main(["-c", str(config), "serve", "--workers", "2"])

    err = capsys.readouterr().err
    assert code == 2
    assert "carebot: 2 workers ([server] workers = 2 x machines = 1)" in err
    assert str(config) in err
    others = [text for name, (_change, text) in UNSAFE.items() if name != case]
    assert problem in err and not any(text in err for text in others), err


@pytest.mark.parametrize(
    ("workers", "refusal"),
    [
        ("0", "--workers 0: input should be greater than or equal to 1"),
        ("65", "--workers 65: input should be less than or equal to 64"),
        # main() called with other arguments than the process's: nothing to run again
        ("2", "serve --workers runs its own command line once per worker"),
    ],
)
def test_serve_refuses_workers_it_cannot_start(
    workers: str,
    refusal: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in SECRET.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("CAREBOT_DATABASE_URL", raising=False)
    config = config_file(tmp_path, POSTGRES)
    assert main(["-c", str(config), "serve", "--workers", workers]) == 2
    assert refusal in capsys.readouterr().err


@pytest.mark.parametrize(("workers", "machines"), [(1, 1), (1, 3), (4, 1)])
def test_the_check_counts_the_workers_of_every_machine(
    tmp_path: Path, workers: int, machines: int
) -> None:
    sections = settings_data(tmp_path, server={"workers": workers, "machines": machines})
    sqlite = Settings.model_validate(sections)
    if workers * machines == 1:
        check_several_workers(sqlite, env={})  # one worker may keep everything to itself
    else:
        with pytest.raises(ConfigError, match=f"{workers * machines} workers"):
            check_several_workers(sqlite, env={})


@pytest.mark.parametrize(
    ("configured", "workers", "cores", "threads", "lowered"),
    [(0, 2, 8, 4, False), (0, 3, 2, 1, False), (2, 2, 8, 2, False), (8, 2, 8, 4, True)],
)
def test_each_worker_gets_its_share_of_the_cores(
    configured: int, workers: int, cores: int, threads: int, lowered: bool
) -> None:
    got, warning = worker_threads(configured, workers, cores)
    assert got == threads
    assert (warning is not None) == lowered
    assert got * workers <= max(cores, workers)


async def worker_pids(supervisor: ServeProcess, started: int) -> dict[str, int]:
    """Each worker's pid by its slot ("1/2"), once ``started`` workers said they serve, from
    their announce lines (the latest of a slot wins)."""
    lines = await supervisor.wait_for_lines(SERVING, started, timeout=START_TIMEOUT)
    found = (re.search(r"\(worker (\d+/\d+), pid (\d+)\)", line) for line in lines)
    return {m[1]: int(m[2]) for m in found if m}


def parent_of(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^PPid:\s+(\d+)", status, re.M)[1])  # type: ignore[index]


async def answering_pids(url: str, wanted: set[int]) -> set[int]:
    """The pids that answered /healthz on new connections, until every wanted one did (the
    kernel spreads new connections over the workers; 200 tries bound it)."""
    seen: set[int] = set()
    for _ in range(200):
        connector = aiohttp.TCPConnector(force_close=True)
        async with (
            aiohttp.ClientSession(connector=connector) as http,
            http.get(f"{url}/healthz") as response,
        ):
            seen.add((await response.json())["pid"])
        if wanted <= seen:
            break
    return seen


@ON_POSTGRESQL
async def test_serve_with_two_workers_shares_the_port_restarts_a_dead_one_and_stops_cleanly(
    tmp_path: Path, database: Database, database_url: str
) -> None:
    config = config_file(tmp_path, database_url)
    supervisor = await start_serve(config, args=["--workers", "2"], env=SECRET, name="supervisor")
    try:
        first = await worker_pids(supervisor, 2)
        assert sorted(first) == ["1/2", "2/2"]
        assert {parent_of(pid) for pid in first.values()} == {supervisor.process.pid}
        assert await answering_pids(supervisor.url, set(first.values())) == set(first.values())

        os.kill(first["1/2"], signal.SIGKILL)
        await supervisor.wait_for_line(
            f"Worker 1/2 (pid {first['1/2']}) died unexpectedly (killed by SIGKILL); restarting"
        )
        now = await worker_pids(supervisor, 3)
        assert now["2/2"] == first["2/2"] and now["1/2"] not in first.values()
        assert parent_of(now["1/2"]) == supervisor.process.pid
        assert now["1/2"] in await answering_pids(supervisor.url, {now["1/2"]})
    finally:
        code = await supervisor.stop()
    assert code == 0, supervisor.output()
    assert supervisor.said("All 2 workers stopped cleanly")
    stopped = [line for line in supervisor.lines if line == "Stopped."]  # each worker's own order
    assert len(stopped) == 2, supervisor.output()
    for pid in now.values():
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


@ON_POSTGRESQL
async def test_workers_refusing_an_unmigrated_database_stop_the_supervisor(
    tmp_path: Path, database_url: str
) -> None:
    """A refusal is not restarted (it would refuse again): the supervisor exits with 2."""
    config = config_file(tmp_path, database_url)
    supervisor = await start_serve(
        config, args=["--workers", "2"], env=SECRET, name="supervisor", ready=None
    )
    async with asyncio.timeout(START_TIMEOUT):
        code = await supervisor.process.wait()
    await supervisor.stop()
    assert code == 2, supervisor.output()
    assert supervisor.said("Run 'carebot db upgrade'")
    assert supervisor.said("refused to start (exit code 2, see its error above)")
    assert not supervisor.said(SERVING) and not supervisor.said("restarting")


@ON_POSTGRESQL
async def test_a_killed_supervisor_takes_its_workers_down_cleanly(
    tmp_path: Path, database: Database, database_url: str
) -> None:
    """No worker is left holding the port: each gets SIGTERM and shuts down in order."""
    config = config_file(tmp_path, database_url)
    supervisor = await start_serve(config, args=["--workers", "2"], env=SECRET, name="supervisor")
    try:
        await supervisor.wait_for_lines(SERVING, 2, timeout=START_TIMEOUT)
        supervisor.kill()
        stopped = await supervisor.wait_for_lines("Stopped.", 2)
    finally:
        await supervisor.stop()  # its output ends once no worker holds it open
    assert stopped == ["Stopped.", "Stopped."]
    assert not supervisor.said("died unexpectedly")


async def waiting_for_the_migration_lock(admin: Any) -> int:
    row = await admin.execute(
        text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
    )
    return int(row.scalar_one())


@ON_POSTGRESQL
async def test_two_db_upgrades_at_once_migrate_the_database_once(
    tmp_path: Path, database_url: str
) -> None:
    """Both wait on the lock the test holds, then go at once: both succeed, at head."""
    config = config_file(tmp_path, database_url)
    holder = Database(database_url)
    upgrades: list[asyncio.subprocess.Process] = []
    try:
        async with holder.engine.connect() as lock, holder.engine.connect() as watch:
            await lock.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK})
            for _ in range(2):
                upgrades.append(
                    await asyncio.create_subprocess_exec(
                        *(sys.executable, "-m", "carebot.cli", "-c", str(config), "db", "upgrade"),
                        cwd=ROOT,
                        stdout=asyncio.subprocess.PIPE,
                        stderr=asyncio.subprocess.STDOUT,
                    )
                )
            async with asyncio.timeout(START_TIMEOUT):
                while await waiting_for_the_migration_lock(watch) < 2:
                    await asyncio.sleep(0.05)  # polling pg_locks: nothing tells us
                    await watch.rollback()
            await lock.rollback()  # the lock goes with the transaction
        outputs = [(await p.communicate())[0].decode() for p in upgrades]
        head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
        assert [p.returncode for p in upgrades] == [0, 0], outputs
        assert outputs == [f"database at revision {head}\n"] * 2
        async with holder.engine.connect() as conn:
            versions = (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
        assert versions == [(head,)]
    finally:
        for process in upgrades:
            if process.returncode is None:
                process.kill()
                await process.wait()
        await holder.close()


@ON_POSTGRESQL
async def test_an_exhausted_pool_names_the_connection_budget(database_url: str) -> None:
    db = Database(database_url, max_connections=4, pool_timeout=0.2)  # a pool of one
    try:
        async with db.engine.connect() as held:
            await held.execute(text("SELECT 1"))
            with pytest.raises(sa_exc.TimeoutError, match=r"\[store\] max_connections = 4"):
                async with db.engine.connect() as second:
                    await second.execute(text("SELECT 1"))
        assert db.engine.pool.size() == 1  # type: ignore[attr-defined]
    finally:
        await db.close()


async def test_readyz_answers_draining_once_the_shutdown_begins(
    tmp_path: Path, database_url: str, clock: Clock
) -> None:
    """While a customer's message is still in hand (the shutdown waits for it), /readyz says
    the worker is draining; a load balancer checking it stops sending work."""
    encoder = GatedEncoder()
    settings = service_settings(tmp_path)
    async with (
        running_service(settings, database_url, clock, encoder=encoder) as (service, server),
        aiohttp.ClientSession() as http,
    ):
        async with http.get(server.make_url("/readyz")) as response:
            assert response.status == 200
        visitor = Visitor(await http.ws_connect(server.make_url("/chat/ws")))
        await visitor.hello()
        encoder.hold(ORDER)
        await visitor.say(ORDER)
        assert await asyncio.to_thread(encoder.holding.wait, 10)
        async with logged("carebot.server", "Draining") as draining:
            closing = asyncio.create_task(server.close())
            await draining.wait()
        readyz = make_mocked_request("GET", "/readyz", app=service.app)
        match = await service.app.router.resolve(readyz)
        answer = await match.handler(readyz)
        assert not closing.done()  # the message in hand holds the shutdown
        encoder.gate.set()
        await closing
    assert isinstance(answer, web.Response) and answer.status == 503
    assert answer.text is not None and '"draining": true' in answer.text


async def test_with_a_drain_period_the_worker_keeps_serving_unready_until_a_second_signal(
    tmp_path: Path, sqlite_url: str
) -> None:
    """``[server] drain_seconds``: after SIGTERM the worker still serves, with /readyz at 503,
    so a load balancer's health check sees it go unready before the port closes; a second
    SIGTERM ends the wait."""
    sections = settings_data(
        tmp_path,
        store={"url": sqlite_url},
        server={"secret_file": str(tmp_path / "secret_key"), "drain_seconds": 300},
    )
    worker = await start_serve(write_config(tmp_path / "config.toml", sections))
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{worker.url}/readyz") as response:
                assert response.status == 200
            worker.process.send_signal(signal.SIGTERM)
            await worker.wait_for_line("Draining: /readyz is unready")
            async with http.get(f"{worker.url}/readyz") as response:
                assert response.status == 503 and (await response.json())["draining"] is True
            async with http.get(f"{worker.url}/healthz") as response:
                assert response.status == 200  # still serving
        worker.process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(worker.process.wait(), START_TIMEOUT) == 0, worker.output()
        await worker.wait_for_line("Stopped.")
    finally:
        await worker.stop()
