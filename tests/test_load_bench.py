"""bench/load.py, the measuring parts of bench/workers.py and bench/webchat_load.py: the config
it writes for a run, how it adds up CPU time and whose PostgreSQL processes it counts, and its
loops against the real service (fake encoder) on both channels: every question answered and
counted once, nothing lost or matched to the wrong customer. The benches themselves (the real
model, ``carebot serve`` processes, PostgreSQL) are run by hand."""

from __future__ import annotations

import importlib.util
import os
import sys
import time
import tomllib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from carebot.config import load_settings
from carebot.desk.auth import hash_password
from tests.service import running_service, service_settings

ROOT = Path(__file__).resolve().parent.parent
ORDER = "where is my order"  # the test intents answer it outright


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_load", ROOT / "bench" / "load.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


load = _bench()


def test_the_shipped_config_is_written_back_as_it_reads() -> None:
    shipped = tomllib.loads((ROOT / "config.toml").read_text())

    assert tomllib.loads(load.toml_text(shipped)) == shipped


def test_a_run_config_changes_only_what_the_run_needs(tmp_path: Path) -> None:
    path = load.service_config(
        ROOT / "config.toml",
        tmp_path,
        database_url="postgresql+asyncpg://postgres@127.0.0.1:5432/bench",
        threads=1,
        reply_url="http://127.0.0.1:9/replies",
        agent_hash=hash_password("bench-agent-password"),
    )

    settings = load_settings(path)
    shipped = load_settings(ROOT / "config.toml")
    assert settings.database_url({}) == "postgresql+asyncpg://postgres@127.0.0.1:5432/bench"
    assert settings.database_url({"CAREBOT_DATABASE_URL": "sqlite://"}).startswith("postgresql")
    assert settings.matcher.threads == 1
    assert settings.path(settings.matcher.intents_dir) == shipped.path(shipped.matcher.intents_dir)
    assert settings.webhook.enabled and settings.webhook.reply_url == "http://127.0.0.1:9/replies"
    assert [agent.name for agent in settings.inbox.agents] == ["bench"]
    assert settings.matcher.answer_threshold == shipped.matcher.answer_threshold
    assert settings.survey == shipped.survey and settings.messages == shipped.messages


def test_without_a_reply_url_or_agent_the_shipped_sections_stay(tmp_path: Path) -> None:
    path = load.service_config(
        ROOT / "config.toml", tmp_path, database_url="sqlite+aiosqlite:///x.db", threads=0
    )

    settings, shipped = load_settings(path), load_settings(ROOT / "config.toml")
    assert settings.webhook == shipped.webhook and settings.inbox == shipped.inbox


@pytest.mark.parametrize(
    ("title", "counted"),
    [
        ("/usr/lib/postgresql/15/bin/postgres -D /var/lib/postgresql/15/main", True),
        ("postgres: 15/main: checkpointer ", True),
        ("postgres: 15/main: walwriter ", True),
        ("postgres: 15/main: postgres bench_1 127.0.0.1(45888) idle", True),
        ("postgres: 15/main: postgres bench_1 127.0.0.1(45890) idle in transaction", True),
        ("postgres: postgres bench_1 [local] SELECT", True),
        ("postgres: 15/main: postgres carebot_test_e1 127.0.0.1(45894) idle", False),
        ("postgres: postgres bench_10 127.0.0.1(5000) idle", False),
    ],
)
def test_postgresql_processes_of_other_databases_are_not_counted(title: str, counted: bool) -> None:
    assert load.works_for(title, "bench_1") is counted


def cpu(pid: int, ppid: int, own: float = 0.0) -> Any:
    return load.ProcessCpu(pid, ppid, "python", own, 0.0)


def test_the_process_tree_is_the_root_and_all_its_descendants() -> None:
    table = {p.pid: p for p in (cpu(1, 0), cpu(10, 1), cpu(11, 10), cpu(12, 10), cpu(20, 1))}

    assert load.process_tree(10, table) == {10, 11, 12}
    assert load.process_tree(99, table) == set()


def snapshot(at: float, service: dict[int, float], postgres: dict[int, float]) -> Any:
    return load.CpuSnapshot(at, service, dict(service), postgres, load=1.0, machine=at)


def test_cpu_used_counts_processes_born_in_the_window_and_names_those_that_ended() -> None:
    before = snapshot(100.0, {1: 5.0, 2: 3.0}, {50: 1.0, 51: 2.0})
    after = snapshot(110.0, {1: 6.5, 3: 0.5}, {50: 1.25, 52: 0.25})

    used = load.CpuMeter.used(before, after)

    assert used.service == pytest.approx(1.5 + 0.5)  # pid 3 was born: all of it counts
    assert used.loops == pytest.approx(2.0)
    assert used.postgres == pytest.approx(0.25 + 0.25)
    assert used.ended == 2  # pids 2 and 51: their CPU in the window is lost, and said so
    assert used.load == 0.0
    assert used.others == pytest.approx(10.0 - 2.0 - 0.5)


def test_a_real_process_tree_is_read_from_proc() -> None:
    meter = load.CpuMeter(os.getpid(), None)
    before = meter.snapshot()
    started = time.process_time()
    while time.process_time() - started < 0.1:  # 100 ms of CPU for this process
        sum(i * i for i in range(10_000))
    after = meter.snapshot()

    used = load.CpuMeter.used(before, after)
    assert os.getpid() in after.service and used.postgres == 0.0
    assert used.service >= 0.08 and used.load >= 0.08  # /proc counts in ticks (10 ms)
    assert used.loops >= 0.08  # this test runs on the main thread


@pytest.fixture
async def receiver() -> AsyncIterator[Any]:
    receiver = load.ReplyReceiver()
    await receiver.start()
    yield receiver
    await receiver.stop()


@pytest.fixture
async def server(tmp_path: Path, sqlite_url: str, receiver: Any) -> AsyncIterator[TestServer]:
    settings = service_settings(tmp_path, webhook={"enabled": True, "reply_url": receiver.url})
    env = {load.WEBHOOK_ENV: load.WEBHOOK_SECRET}
    async with running_service(settings, sqlite_url, env=env) as (_service, server):
        yield server


def customers(
    channel: str, http: aiohttp.ClientSession, server: TestServer, receiver: Any
) -> Callable[[], load.Customer]:
    """A new customer of ``channel`` each call, on the service at ``server``."""
    base = str(server.make_url("")).rstrip("/")
    if channel == "webhook":
        return lambda: load.WebhookCustomer(http, base, receiver)
    return lambda: load.WebChatCustomer(http, base)


@pytest.mark.parametrize("channel", ["webhook", "webchat"])
async def test_a_closed_loop_counts_each_reply_once(
    channel: str, server: TestServer, receiver: Any
) -> None:
    async with aiohttp.ClientSession() as http:
        make = customers(channel, http, server, receiver)
        meter = load.CpuMeter(os.getpid(), None)
        window = await load.closed_loop(
            make, customers=3, warmup=0.2, seconds=1.0, questions=[ORDER], meter=meter
        )

    assert not window.errors and receiver.unexpected == 0
    assert window.replies > 0 and len(window.latencies) == window.replies
    assert min(window.latencies) > 0
    assert 1 <= window.peak <= 3 and window.in_flight == 0  # never more than the customers
    assert window.cpu is not None and window.cpu.service > 0


@pytest.mark.parametrize("channel", ["webhook", "webchat"])
async def test_an_open_loop_asks_at_its_rate_and_waits_for_every_reply(
    channel: str, server: TestServer, receiver: Any
) -> None:
    async with aiohttp.ClientSession() as http:
        make = customers(channel, http, server, receiver)
        meter = load.CpuMeter(os.getpid(), None)
        window = await load.open_loop(
            make, rate=20.0, warmup=0.2, seconds=1.0, questions=[ORDER], meter=meter
        )

    assert not window.errors and receiver.unexpected == 0
    assert window.asked in (19, 20, 21)  # 20 due in the window, give or take its rounding
    assert len(window.latencies) == window.asked  # each one's reply, late or not


async def test_a_customer_leaves_after_its_questions_and_a_new_one_comes(
    server: TestServer, receiver: Any
) -> None:
    async with aiohttp.ClientSession() as http:
        base = str(server.make_url("")).rstrip("/")
        made: list[Any] = []

        def make() -> Any:
            made.append(load.WebhookCustomer(http, base, receiver))
            return made[-1]

        errors: dict[str, int] = {}
        pool = load.Pool(make, errors)
        for _ in range(load.QUESTIONS_PER_CUSTOMER + 1):
            customer, asked = await pool.take()
            reply = await customer.ask(ORDER)
            assert not reply.handoff
            pool.give_back(customer, asked + 1)
        await pool.close()

    assert len(made) == 2 and not errors
