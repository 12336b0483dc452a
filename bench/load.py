"""What the load benchmarks share: ``carebot serve`` in its own processes on a config made for
the run, customers on the web chat and on the signed webhook, closed and open loops, and the
CPU time of every process involved read from ``/proc``.

* :func:`service_config` writes the shipped ``config.toml`` with only what a load run needs
  changed (the store, the webhook's reply address, the model threads, no rate limit per web chat
  visitor, one configured agent so that several workers may start), and :class:`Service` runs
  ``carebot serve [--workers N]`` on it as a command, the way it is deployed.
* A customer (:class:`WebChatCustomer`, :class:`WebhookCustomer`) asks one question at a time
  and returns when the bot's reply has arrived: on its WebSocket, or at the webhook receiver
  (:class:`ReplyReceiver`) this process runs for ``[webhook] reply_url``. Each customer asks
  :data:`QUESTIONS_PER_CUSTOMER` questions, then leaves and a new customer takes its place, so
  conversations keep the length they have in real life.
* :func:`closed_loop`: N customers, each asking the next question as soon as the reply came
  (the ceiling). :func:`open_loop`: questions offered at a fixed rate whatever the replies do
  (latency at a given load; each latency counts from the moment the question was due, so a
  slow service cannot slow the offered load down and hide its own queueing).
* :class:`CpuMeter`: utime + stime of the ``carebot serve`` process tree, of PostgreSQL's
  server processes (its shared background processes and the backends of the run's database;
  backends of other databases are other people's work on this machine), and of this process
  (the load generator), before and after a window.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import time
import tomllib
import uuid
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from measure import percentile  # noqa: E402  (bench/measure.py)

# FAQ questions the shipped intents answer outright (matcher_cost keeps the ones that still do).
QUESTIONS = [
    "where is my order?",
    "do you take Apple Pay",
    "what's your phone number",
    "how much is shipping",
    "I forgot my password",
    "what is your return policy",
    "can I pay with PayPal",
    "do you ship to Austria",
    "how long does delivery take",
    "my discount code doesn't work",
    "do you sell gift cards",
    "how do I cancel my order",
]
QUESTIONS_PER_CUSTOMER = 5  # then the customer leaves and a new one arrives
REPLY_TIMEOUT = 30.0  # seconds: a reply later than this counts as lost
READY = "carebot is serving on"
WEBHOOK_SECRET = "bench-webhook-secret"  # the run's own, for a service on loopback
WEBHOOK_ENV = "CAREBOT_WEBHOOK_SECRET"
SECRET_KEY = "bench-secret-key-of-the-load-run-0123456789"  # >= 32 characters
UNSET_ENV = "CAREBOT_BENCH_NO_SUCH_VARIABLE"  # url_env: no variable of the shell redirects a run


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- the model's own cost: the baseline printed beside the service -------------------------------


@dataclass(frozen=True, slots=True)
class MatcherCost:
    """Triage alone (encode, match, emotion, rules), one message at a time in this process."""

    p50_ms: float  # wall time
    cpu_ms: float  # this process's CPU time per message
    answered: list[str]  # the questions it answers outright


def matcher_cost(
    config: Path,
    questions: Sequence[str] = QUESTIONS,
    *,
    threads: int | None = None,
    rounds: int = 10,
) -> MatcherCost:
    """The matcher's own cost per message (``threads`` model threads; None: the config's), and
    the ``questions`` it answers outright: the ones a load asks, so that every message gets an
    answer. Exports the ONNX model first when it is missing, as serve does."""
    from carebot.clock import utcnow
    from carebot.config import load_settings
    from carebot.models import DecisionKind
    from carebot.runtime import build_triage, load_encoder
    from carebot.triage import TriageContext

    settings = load_settings(config)
    if threads is not None:
        matcher = settings.matcher.model_copy(update={"threads": threads})
        settings = settings.model_copy(update={"matcher": matcher})
    triage = build_triage(settings, load_encoder(settings, export_if_missing=True))
    context = TriageContext(now=utcnow())
    answered = [q for q in questions if triage.decide(q, context).kind is DecisionKind.ANSWER]
    if not answered:
        raise SystemExit(f"the intents of {config} answer none of the load's questions")
    for question in questions:  # warm up every path once
        triage.decide(question, context)
    times = []
    cpu = time.process_time()
    for _ in range(rounds):
        for question in questions:
            start = time.perf_counter()
            triage.decide(question, context)
            times.append((time.perf_counter() - start) * 1000)
    cpu_ms = (time.process_time() - cpu) * 1000 / len(times)
    return MatcherCost(statistics.median(times), cpu_ms, answered)


# -- the service ----------------------------------------------------------------------------------


def toml_text(data: Mapping[str, Any]) -> str:
    """``data`` (as tomllib reads a config: tables, arrays of tables, scalars) as TOML text."""
    return "\n".join(_toml_table(data, ())) + "\n"


def _toml_table(data: Mapping[str, Any], prefix: tuple[str, ...]) -> list[str]:
    def is_table_array(value: object) -> bool:
        return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)

    lines = [
        f"{_toml_key(k)} = {_toml_value(v)}"
        for k, v in data.items()
        if not isinstance(v, dict) and not is_table_array(v)
    ]
    if prefix and lines:
        lines.insert(0, f"[{'.'.join(map(_toml_key, prefix))}]")
    for key, value in data.items():
        if isinstance(value, dict):
            lines += _toml_table(value, (*prefix, key))
        elif is_table_array(value):
            for item in value:
                lines.append(f"[[{'.'.join(map(_toml_key, (*prefix, key)))}]]")
                lines += _toml_table(item, ())
    return lines


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key, ensure_ascii=False)


def _toml_value(value: object) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, bool | int | float | str):
        return json.dumps(value, ensure_ascii=False)  # JSON's forms are TOML's for these
    raise TypeError(f"cannot write {value!r} as TOML")


def service_config(
    shipped: Path,
    folder: Path,
    *,
    database_url: str,
    threads: int,
    reply_url: str | None = None,
    agent_hash: str | None = None,
) -> Path:
    """``shipped`` (a config.toml) as ``folder/config.toml`` for a load run: the store at
    ``database_url``, ``threads`` model threads, no per-visitor rate limit on the web chat (the
    load's customers are fast), the shipped model, intents and caches; with ``reply_url`` the
    webhook channel on, its replies going there; with ``agent_hash`` one configured agent (as
    several workers need)."""
    from carebot.config import load_settings
    from carebot.runtime import onnx_folder

    settings = load_settings(shipped)
    data = tomllib.loads(shipped.read_text())
    changes: dict[str, dict[str, Any]] = {
        "store": {"url": database_url, "url_env": UNSET_ENV},
        "matcher": {
            "threads": threads,
            "intents_dir": str(settings.path(settings.matcher.intents_dir)),
            "cache_dir": str(settings.path(settings.matcher.cache_dir)),
            "onnx_dir": str(onnx_folder(settings)),
        },
        "server": {"secret_file": str(folder / "secret_key")},
        "webchat": {"messages_per_minute": 10_000},
    }
    if reply_url is not None:
        changes["webhook"] = {"enabled": True, "reply_url": reply_url, "secret_env": WEBHOOK_ENV}
    if agent_hash is not None:
        changes["inbox"] = {"agents": [{"name": "bench", "password_hash": agent_hash}]}
    for section, values in changes.items():
        data.setdefault(section, {}).update(values)
    text = toml_text(data)
    if tomllib.loads(text) != data:  # the writer is this file's own: check it
        raise SystemExit(
            f"the config written for the run does not read back as {shipped} + changes"
        )
    path = folder / "config.toml"
    path.write_text(text)
    return path


def service_env() -> dict[str, str]:
    """The environment of a load run's ``carebot`` commands: the run's secrets."""
    return {
        **os.environ,
        WEBHOOK_ENV: WEBHOOK_SECRET,
        "CAREBOT_SECRET_KEY": SECRET_KEY,
    }


def carebot_command(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "carebot.cli", "-c", str(config), *args]


class Service:
    """``carebot serve --workers N`` on ``config`` as its own process (tree), output to ``log``."""

    def __init__(self, config: Path, *, workers: int, log: Path) -> None:
        self.config = config
        self.workers = workers
        self.log = log
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None, "the service was not started"
        return self.process.pid

    async def start(self, timeout: float = 180.0) -> None:
        """Start it and wait until every worker serves and /readyz answers 200."""
        command = carebot_command(
            self.config, "serve", "--host", "127.0.0.1", "--port", str(self.port)
        )
        command += ["--workers", str(self.workers)]
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, env=service_env(), cwd=ROOT
            )
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise SystemExit(
                        f"carebot serve exited ({self.process.returncode}):\n{self.tail()}"
                    )
                if self.log.read_text(errors="replace").count(READY) >= self.workers:
                    with contextlib.suppress(aiohttp.ClientError):
                        async with http.get(f"{self.url}/readyz") as answer:
                            if answer.status == 200:
                                return
                await asyncio.sleep(0.2)
        await self.stop()
        raise SystemExit(f"carebot serve was not ready after {timeout:.0f} s:\n{self.tail()}")

    async def stop(self, timeout: float = 60.0) -> int | None:
        """SIGTERM (a clean shutdown), then SIGKILL after ``timeout``; the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.to_thread(self.process.wait, timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return await asyncio.to_thread(self.process.wait)

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def problems(self) -> list[str]:
        """The output lines that are warnings, errors or tracebacks (but the supervisor's
        warning that our SIGTERM stops the workers), and the exit code of an unclean stop."""
        found = [
            line
            for line in self.log.read_text(errors="replace").splitlines()
            if re.search(r"\b(WARNING|ERROR|CRITICAL|Traceback)\b", line)
            and "SIGTERM: stopping the" not in line
        ]
        code = None if self.process is None else self.process.poll()
        if code not in (0, None):
            found.append(f"carebot serve exited with {code}: {self.tail(5)}")
        return found


# -- CPU time from /proc --------------------------------------------------------------------------

TICK = os.sysconf("SC_CLK_TCK")
PG_BACKGROUND = (
    "checkpointer",
    "background writer",
    "walwriter",
    "autovacuum",
    "logical replication",
    "stats collector",
    "archiver",
    "wal ",
)


@dataclass(frozen=True, slots=True)
class ProcessCpu:
    pid: int
    ppid: int
    comm: str
    own: float  # utime + stime, seconds
    reaped: float  # cutime + cstime: its children that ended and were waited for


def read_processes() -> dict[int, ProcessCpu]:
    """Every process's CPU seconds, from /proc/<pid>/stat."""
    table = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(entry.path, "stat").read_text()
        except OSError:  # ended meanwhile
            continue
        comm = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2 :].split()
        # after the name: state ppid ... utime(12th field overall 14) stime cutime cstime
        utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
        table[int(entry.name)] = ProcessCpu(
            int(entry.name), int(fields[1]), comm, (utime + stime) / TICK, (cutime + cstime) / TICK
        )
    return table


def process_tree(root: int, table: Mapping[int, ProcessCpu]) -> set[int]:
    """``root`` and all its descendants."""
    children: dict[int, list[int]] = {}
    for process in table.values():
        children.setdefault(process.ppid, []).append(process.pid)
    tree, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid in table and pid not in tree:
            tree.add(pid)
            todo += children.get(pid, [])
    return tree


def postgres_processes(database: str, table: Mapping[int, ProcessCpu]) -> set[int]:
    """PostgreSQL's server processes that work for ``database`` (see :func:`works_for`)."""
    mine = set()
    for process in table.values():
        if process.comm != "postgres":
            continue
        try:
            title = Path(f"/proc/{process.pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if works_for(title.decode(errors="replace"), database):
            mine.add(process.pid)
    return mine


def works_for(title: str, database: str) -> bool:
    """Whether the PostgreSQL server process with this command line (its process title) works
    for ``database``: the postmaster (its command line is the binary's), a shared background
    process (checkpointer, WAL writer...), or a backend connected to ``database`` (titled
    ``postgres: [cluster: ]user database host(port) state``); not a backend of another
    database."""
    text = title.strip()
    if not text.startswith("postgres:"):
        return True
    what = text.removeprefix("postgres:").strip()
    what = re.sub(r"^\S+/\S+: ", "", what)  # Debian's cluster prefix, "15/main: "
    words = what.split()
    return what.startswith(PG_BACKGROUND) or (len(words) >= 2 and words[1] == database)


def main_thread(pid: int) -> float | None:
    """The CPU seconds of ``pid``'s main thread (where a worker's asyncio loop runs; the model
    and SQLite have threads of their own); None when it ended."""
    try:
        raw = Path(f"/proc/{pid}/task/{pid}/stat").read_text()
    except OSError:
        return None
    utime, stime = (int(v) for v in raw[raw.rindex(")") + 2 :].split()[11:13])
    return (utime + stime) / TICK


def machine_busy() -> float:
    """The seconds all CPUs spent on anything but idling and waiting for I/O (/proc/stat)."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal (guest time is already in user)
    return (sum(fields[:8]) - fields[3] - fields[4]) / TICK


@dataclass(frozen=True, slots=True)
class CpuSnapshot:
    at: float  # time.perf_counter()
    service: dict[int, float]  # pid -> own + reaped seconds of the carebot serve tree
    loops: dict[int, float]  # pid -> seconds of its main thread (a worker's event loop)
    postgres: dict[int, float]
    load: float  # this process
    machine: float  # every CPU's busy seconds, whoever used them (/proc/stat)


@dataclass(frozen=True, slots=True)
class CpuUsed:
    service: float  # seconds over the window
    loops: float  # the part of ``service`` on the processes' main threads
    postgres: float
    load: float
    others: float  # the rest of the machine (other people's work): what makes a run noisy
    ended: int  # processes of the service or PostgreSQL that ended in the window (not counted)


class CpuMeter:
    """The CPU seconds of the service's process tree, of PostgreSQL's processes for
    ``database`` (None: not counted, SQLite), and of this process."""

    def __init__(self, service_pid: int, database: str | None) -> None:
        self._service_pid = service_pid
        self._database = database

    def snapshot(self) -> CpuSnapshot:
        table = read_processes()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        tree = process_tree(self._service_pid, table)
        pg = postgres_processes(self._database, table) if self._database else set()
        return CpuSnapshot(
            at=time.perf_counter(),
            service={pid: table[pid].own + table[pid].reaped for pid in tree},
            loops={pid: seconds for pid in tree if (seconds := main_thread(pid)) is not None},
            postgres={pid: table[pid].own for pid in pg},
            load=usage.ru_utime + usage.ru_stime,
            machine=machine_busy(),
        )

    @staticmethod
    def used(before: CpuSnapshot, after: CpuSnapshot) -> CpuUsed:
        def delta(old: dict[int, float], new: dict[int, float]) -> float:
            return sum(seconds - old.get(pid, 0.0) for pid, seconds in new.items())

        ended = len(set(before.service) - set(after.service))
        ended += len(set(before.postgres) - set(after.postgres))
        service = delta(before.service, after.service)
        loops = delta(before.loops, after.loops)
        postgres = delta(before.postgres, after.postgres)
        load = after.load - before.load
        others = after.machine - before.machine - service - postgres - load
        return CpuUsed(service, loops, postgres, load, max(0.0, others), ended)


# -- customers ------------------------------------------------------------------------------------


class LoadError(Exception):
    """A question that got no reply: ``kind`` names what happened."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


@dataclass(frozen=True, slots=True)
class Reply:
    arrived: float  # time.perf_counter() when it arrived
    handoff: bool  # the bot handed the customer to a person instead of answering


class Customer(Protocol):
    async def open(self) -> None: ...

    async def ask(self, text: str) -> Reply:
        """Ask ``text``; the bot's reply."""
        ...

    async def close(self) -> None: ...


class WebChatCustomer:
    """A visitor on ``/chat/ws``: hello, then one question at a time."""

    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self._http = http
        self._base = base
        self._ws: aiohttp.ClientWebSocketResponse | None = None

    async def open(self) -> None:
        try:
            self._ws = await self._http.ws_connect(f"{self._base}/chat/ws")
            await self._ws.send_json({"type": "hello", "token": None})
            welcome = await self._ws.receive_json(timeout=REPLY_TIMEOUT)
        except (aiohttp.ClientError, TimeoutError, TypeError, ValueError) as exc:
            raise LoadError(f"web chat connect: {type(exc).__name__}") from exc
        if welcome.get("type") != "welcome":
            raise LoadError(f"web chat hello answered {welcome.get('type')!r}")

    async def ask(self, text: str) -> Reply:
        assert self._ws is not None, "open() first"
        message_id = str(uuid.uuid4())
        try:
            await self._ws.send_json({"type": "message", "id": message_id, "text": text})
            deadline = time.monotonic() + REPLY_TIMEOUT
            while True:
                frame = await self._ws.receive_json(timeout=max(0.01, deadline - time.monotonic()))
                if frame.get("type") == "error":
                    raise LoadError(f"web chat error {frame.get('code')!r}")
                if frame.get("type") == "message" and frame.get("author") == "bot":
                    return Reply(time.perf_counter(), bool(frame.get("handoff")))
        except TimeoutError as exc:
            raise LoadError("no reply in time") from exc
        except (aiohttp.ClientError, TypeError, ValueError) as exc:
            raise LoadError(f"web chat socket: {type(exc).__name__}") from exc

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()


class ReplyReceiver:
    """``[webhook] reply_url`` for a load run: checks each reply's signature and hands it to the
    customer waiting for it (by ``user.id``), with its arrival time."""

    def __init__(self, secret: str = WEBHOOK_SECRET) -> None:
        self._secret = secret
        self._waiting: dict[str, deque[asyncio.Future[Reply]]] = {}
        self.port = free_port()
        self.received = 0
        self.unexpected = 0  # replies nobody waited for (a duplicate, or one after its timeout)
        self.bad_signatures = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/replies"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/replies", self._on_reply)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def expect(self, user: str) -> asyncio.Future[Reply]:
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(user, deque()).append(future)
        return future

    def forget(self, user: str, future: asyncio.Future[Reply]) -> None:
        queue = self._waiting.get(user)
        if queue is not None and future in queue:
            queue.remove(future)
        if queue is not None and not queue:
            del self._waiting[user]

    async def _on_reply(self, request: web.Request) -> web.Response:
        from carebot.adapters.webhook import HEADER, verify

        arrived = time.perf_counter()
        raw = await request.read()
        if verify(self._secret, raw, request.headers.get(HEADER), tolerance=300, now=time.time()):
            self.bad_signatures += 1
            return web.json_response({"ok": False}, status=401)
        body = json.loads(raw)
        self.received += 1
        user = str(body["user"]["id"])
        queue = self._waiting.get(user)
        while queue:
            future = queue.popleft()
            if not future.done():
                future.set_result(Reply(arrived, bool(body.get("handoff"))))
                break
        else:
            self.unexpected += 1
        if queue is not None and not queue:
            del self._waiting[user]
        return web.json_response({"ok": True})


class WebhookCustomer:
    """A customer of a platform bridged by the signed webhook: each question a signed POST to
    ``/webhook``; the reply is the next one for this user at the :class:`ReplyReceiver`."""

    def __init__(self, http: aiohttp.ClientSession, base: str, receiver: ReplyReceiver) -> None:
        self._http = http
        self._url = f"{base}/webhook"
        self._receiver = receiver
        self._user = f"bench-{uuid.uuid4().hex[:12]}"

    async def open(self) -> None:
        return None

    async def ask(self, text: str) -> Reply:
        from carebot.adapters.webhook import HEADER, signature

        body = {"id": uuid.uuid4().hex, "user": {"id": self._user}, "text": text}
        raw = json.dumps(body).encode()
        headers = {
            "Content-Type": "application/json",
            HEADER: signature(WEBHOOK_SECRET, raw, int(time.time())),
        }
        reply = self._receiver.expect(self._user)
        try:
            async with self._http.post(self._url, data=raw, headers=headers) as answer:
                await answer.read()
                if answer.status != 200:
                    raise LoadError(f"webhook POST answered {answer.status}")
            return await asyncio.wait_for(asyncio.shield(reply), REPLY_TIMEOUT)
        except TimeoutError as exc:
            raise LoadError("no reply in time") from exc
        except aiohttp.ClientError as exc:
            raise LoadError(f"webhook POST: {type(exc).__name__}") from exc
        finally:
            if not reply.done():
                self._receiver.forget(self._user, reply)

    async def close(self) -> None:
        return None


# -- loops ----------------------------------------------------------------------------------------


@dataclass
class Window:
    """What one measured window saw."""

    seconds: float = 0.0
    replies: int = 0  # replies that arrived in it
    latencies: list[float] = field(default_factory=list)  # ms (which ones: see the loops)
    errors: Counter[str] = field(default_factory=Counter)  # of the questions due in it
    asked: int = 0  # questions due in it
    first: int = 0  # of those, a new customer's first question (a new conversation)
    in_flight: int = 0  # questions asked and not yet answered, now
    peak: int = 0  # the most in flight at once during the window
    cpu: CpuUsed | None = None

    @property
    def first_share(self) -> float:
        """The share of the window's questions that started a conversation."""
        return self.first / self.asked if self.asked else 0.0

    @property
    def rate(self) -> float:
        """Replies per second."""
        return self.replies / self.seconds if self.seconds else 0.0

    @property
    def others(self) -> float:
        """Cores busy with other work on the machine during the window (the noise)."""
        return self.cpu.others / self.seconds if self.cpu is not None and self.seconds else 0.0

    def p(self, q: float) -> float:
        return percentile(self.latencies, q)


class Pool:
    """Customers ready to ask, each asking at most :data:`QUESTIONS_PER_CUSTOMER` questions;
    a customer who asked them all leaves (closed in the background) and a new one is opened."""

    def __init__(self, make: Callable[[], Customer], errors: Counter[str]) -> None:
        self._make = make
        self._errors = errors
        self._idle: deque[tuple[Customer, int]] = deque()
        self._background: set[asyncio.Task[None]] = set()

    async def take(self) -> tuple[Customer, int]:
        """An idle customer and how many questions it asked, or a new one (opened now)."""
        if self._idle:
            return self._idle.popleft()
        customer = self._make()
        await customer.open()
        return customer, 0

    def give_back(self, customer: Customer, asked: int) -> None:
        if asked < QUESTIONS_PER_CUSTOMER:
            self._idle.append((customer, asked))
        else:
            self._in_background(customer.close())

    def drop(self, customer: Customer) -> None:
        """A customer whose socket failed: closed, never used again."""
        self._in_background(customer.close())

    async def fill(self, count: int) -> None:
        """Open customers until ``count`` are idle."""
        missing = count - len(self._idle)
        opened = await asyncio.gather(*(self._open() for _ in range(missing)))
        self._idle.extend((c, 0) for c in opened if c is not None)

    async def _open(self) -> Customer | None:
        customer = self._make()
        try:
            await customer.open()
        except LoadError as exc:
            self._errors[exc.kind] += 1
            return None
        return customer

    def _in_background(self, work: Awaitable[None]) -> None:
        async def quietly() -> None:
            with contextlib.suppress(Exception):
                await work

        task = asyncio.create_task(quietly())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def close(self) -> None:
        while self._idle:
            self._in_background(self._idle.popleft()[0].close())
        await asyncio.gather(*list(self._background))


async def _ask_once(
    pool: Pool,
    text: str,
    due: float,
    window: tuple[float, float],
    result: Window,
    *,
    latency_of_due: bool,
) -> None:
    """Ask ``text`` with a customer from ``pool``. A reply that arrives inside ``window``
    counts in ``result.replies``; its latency (from ``due``) is kept when it arrived inside the
    window, or (``latency_of_due``) when the question was due inside it, whenever it arrived.
    Errors count for the questions due inside the window."""
    in_window = window[0] <= due < window[1]
    result.asked += in_window
    result.in_flight += 1
    if window[0] <= time.perf_counter() < window[1]:
        result.peak = max(result.peak, result.in_flight)
    try:
        customer, asked = await pool.take()
    except LoadError as exc:
        result.errors[exc.kind] += in_window
        result.in_flight -= 1
        return
    result.first += in_window and asked == 0
    try:
        reply = await customer.ask(text)
    except LoadError as exc:
        result.errors[exc.kind] += in_window
        pool.drop(customer)
        return
    finally:
        result.in_flight -= 1
    pool.give_back(customer, asked + 1)
    if reply.handoff:  # the questions are ones the bot answers: a handoff is a failure
        result.errors["handed off instead of answered"] += in_window
    arrived_in_window = window[0] <= reply.arrived < window[1]
    result.replies += arrived_in_window
    if in_window if latency_of_due else arrived_in_window:
        result.latencies.append((reply.arrived - due) * 1000)


async def closed_loop(
    make: Callable[[], Customer],
    *,
    customers: int,
    warmup: float,
    seconds: float,
    questions: Sequence[str],
    meter: CpuMeter,
    seed: int = 7,
) -> Window:
    """``customers`` at once, each asking again as soon as its reply came, for ``warmup``
    seconds (not measured) then a window of ``seconds``; CPU read at the window's edges."""
    result = Window()
    pool = Pool(make, result.errors)
    rng = random.Random(seed)
    await pool.fill(customers)
    start = time.perf_counter()
    window = (start + warmup, start + warmup + seconds)
    snapshots: list[CpuSnapshot] = []

    async def measure() -> None:
        await asyncio.sleep(window[0] - time.perf_counter())
        snapshots.append(meter.snapshot())
        await asyncio.sleep(window[1] - time.perf_counter())
        snapshots.append(meter.snapshot())

    async def one_customer() -> None:
        while (now := time.perf_counter()) < window[1]:
            await _ask_once(pool, rng.choice(questions), now, window, result, latency_of_due=False)

    await asyncio.gather(measure(), *(one_customer() for _ in range(customers)))
    await pool.close()
    result.seconds = snapshots[1].at - snapshots[0].at
    result.cpu = CpuMeter.used(*snapshots)
    return result


async def open_loop(
    make: Callable[[], Customer],
    *,
    rate: float,
    warmup: float,
    seconds: float,
    questions: Sequence[str],
    meter: CpuMeter,
    seed: int = 11,
) -> Window:
    """Questions due at a fixed ``rate`` per second (evenly spaced), each asked by an idle
    customer (a new one when none is idle), for ``warmup`` then ``seconds``; waits for the
    replies of the window's questions (up to the reply timeout)."""
    result = Window()
    pool = Pool(make, result.errors)
    rng = random.Random(seed)
    await pool.fill(max(8, round(rate * 0.25)))  # enough for a quarter second of questions
    start = time.perf_counter()
    window = (start + warmup, start + warmup + seconds)
    snapshots: list[CpuSnapshot] = []
    asks: list[asyncio.Task[None]] = []
    due = start
    index = 0
    while due < window[1]:
        if not snapshots and due >= window[0]:
            await asyncio.sleep(max(0.0, window[0] - time.perf_counter()))
            snapshots.append(meter.snapshot())
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        ask = _ask_once(pool, rng.choice(questions), due, window, result, latency_of_due=True)
        asks.append(asyncio.create_task(ask))
        index += 1
        due = start + index / rate
    await asyncio.sleep(max(0.0, window[1] - time.perf_counter()))
    snapshots.append(meter.snapshot())
    await asyncio.gather(*asks)  # the window's last questions: their replies still count
    await pool.close()
    result.seconds = snapshots[1].at - snapshots[0].at
    result.cpu = CpuMeter.used(*snapshots)
    return result
