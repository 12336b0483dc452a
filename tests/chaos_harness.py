"""Chaos on several real workers: the harness of ``bench/chaos.py`` and ``tests/test_chaos.py``.

N ``carebot serve`` processes on one PostgreSQL database, each on a port of its own and started
as one of N workers (``CAREBOT_WORKER``: this process plays their supervisor, so that it can
kill one with SIGKILL and start it again itself). In front of them:

* the Telegram stand-in in webhook mode: carebot's leader registers the webhook at
  ``[server] public_url``, which is a round-robin proxy in front of the workers (no health
  checks: a dead worker's turn is answered 502, and the stand-in delivers the update again,
  one update at a time per chat, as Telegram does);
* web chat customers on WebSocket, each with tabs on two different workers (connected to the
  workers' own ports); a tab whose worker dies or stops acknowledging reconnects to another
  and sends again what was not acknowledged, as the widget does;
* an agent's live inbox view (``/inbox/events``) on every worker.

Customers write at a fixed rate (an open loop: each customer's messages are distinct FAQ
questions, so every reply names the message it answers) while :class:`Faults` strike: a random
worker killed (SIGKILL) every ``kill_every`` seconds and started again ``restart_after`` seconds
later, one worker stopped (SIGSTOP) for ``stop_seconds``, the workers' LISTEN/NOTIFY connections
ended with ``pg_terminate_backend`` every ``terminate_every`` seconds. Then the harness waits
until the work is done (quiescence), stops the workers and reads the tables and the records of
the stand-in and the customers into a :class:`Report`: what was lost, decided twice, left
pending, delivered twice or out of order, and the timings.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import random
import re
import signal
import time
import tomllib
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web
from sqlalchemy.engine import make_url

from carebot.adapters.webchat import BACKSTOP_SECONDS
from carebot.clock import utcnow
from carebot.cluster.supervisor import WORKER_ENV
from carebot.config import Settings, load_settings
from carebot.desk.auth import hash_password
from carebot.models import DecisionKind
from carebot.nlu.intents import load_intents
from carebot.runtime import build_triage, onnx_folder
from carebot.store.database import Database
from carebot.triage import TriageContext
from tests.conftest import ROOT
from tests.loopback import LoopbackServer
from tests.serve_process import ServeProcess, free_port, start_serve, write_config
from tests.telegram_standin import TelegramStandIn, text_update

SHIPPED_CONFIG = ROOT / "config.toml"
SECRET_KEY = "chaos-workers-share-this-secret-key-0123456789"
WEBHOOK_SECRET = "chaos-webhook-secret"
AGENT, PASSWORD = "ann", "chaos agent password"
# What the tests' fake encoder (bag of words) needs: cosine similarity to the nearest example
# (the classifier and the emotion head read the real model's embeddings).
FAKE_MATCHING = {
    "method": "nearest",
    "answer_threshold": 0.7,
    "draft_threshold": 0.45,
    "clarify_margin": 0.03,
}
ACK_TIMEOUT = 15.0  # seconds a web chat customer waits for an ack before trying another worker
CONNECT_TIMEOUT = 5.0  # seconds for a web chat tab to connect and be welcomed
# A tab waits before it connects again as the widget does (adapters/static/widget.js): 0.5 s,
# doubled after each failed try up to 10 s, +-10%, back to 0.5 s once welcomed. Tabs that came
# back at once (0.25 s apart, none after a close) kept a worker whose pool was exhausted busy
# with the history reads of tabs that had already given up.
RECONNECT_FIRST, RECONNECT_MOST = 0.5, 10.0
UPSTREAM_TIMEOUT = 120.0  # the proxy's wait for a worker (the stand-in gives up far sooner)
OPEN_AFTER = 2.0  # a tab counts as open for a reply when it stays connected this long after it
LIVE_WINDOW = 10.0  # seconds an inbox event may take and still be matched to its message
# A send the stand-in took up to this long after its sender was killed or stopped was in flight
# then (a dead process sends nothing new): the stand-in stamps a request when it handles it.
IN_FLIGHT = 1.0
SLOW_MS = 1000.0  # a push or live event slower than this is listed in the report
WORKER_LOG_LINES = (  # counted in every worker's output, killed ones included
    "This worker leads",
    "Lost the connection for events between workers",
    "Reconnected for events between workers",
    "Recovered",
    "lease on it was lost",
    "Traceback",
)
LISTENERS = """
SELECT pid FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()
  AND backend_type = 'client backend'
  AND (query LIKE 'LISTEN %' OR query LIKE '%pg_notify(%'
       OR (query = 'SELECT 1'
           AND pid NOT IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted)))
"""


@contextlib.asynccontextmanager
async def fresh_database(admin_url: str) -> AsyncIterator[str]:
    """A new PostgreSQL database next to ``admin_url``'s, migrated; dropped afterwards."""
    url = make_url(admin_url)
    name = f"carebot_chaos_{uuid.uuid4().hex[:12]}"
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    database_url = url.set(database=name).render_as_string(hide_password=False)
    try:
        db = Database(database_url)
        try:
            await db.upgrade()
        finally:
            await db.close()
        yield database_url
    finally:
        admin = await asyncpg.connect(dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


# --- the configuration and the questions ------------------------------------------------------


def chaos_sections(
    *,
    workers: int,
    database_url: str,
    proxy_url: str,
    telegram_url: str,
    cache_dir: Path,
    fake_encoder: bool,
) -> dict[str, dict[str, Any]]:
    """The shipped ``config.toml`` with what a chaos run changes: PostgreSQL, ``[server]
    workers`` (the platforms' rates are shared by them), one model thread per worker, the
    public URL (the proxy, where Telegram's webhook points), Telegram in webhook mode on the
    stand-in (its overall rate raised: the stand-in has no limit, and the Bot API's 30
    messages/s in all would be the bottleneck, not carebot), and a configured agent. With the
    fake encoder, the matching it needs."""
    sections: dict[str, dict[str, Any]] = tomllib.loads(SHIPPED_CONFIG.read_text())
    shipped = load_settings(SHIPPED_CONFIG)
    matcher = sections["matcher"]
    matcher.update(
        intents_dir=str(shipped.path(shipped.matcher.intents_dir)),
        cache_dir=str(cache_dir),
        onnx_dir=str(onnx_folder(shipped)),
        threads=1,
    )
    if fake_encoder:
        matcher.update(FAKE_MATCHING)
        sections["emotion"]["head"] = False
    sections["store"].update(url=database_url, url_env="CAREBOT_CHAOS_NO_URL", max_connections=12)
    sections["server"].update(
        workers=workers, public_url=proxy_url, secret_env="CAREBOT_SECRET_KEY"
    )
    sections["telegram"].update(
        enabled=True,
        mode="webhook",
        api_url=f"{telegram_url}/bot",
        file_url=f"{telegram_url}/file/bot",
        overall_per_second=1000.0,
    )
    agent = {"name": AGENT, "display_name": "Ann", "password_hash": hash_password(PASSWORD)}
    sections["inbox"]["agents"] = [agent]
    return sections


def matching_settings(*, cache_dir: Path, fake_encoder: bool) -> Settings:
    """The settings the workers match and decide with (for :func:`faq_questions`)."""
    sections = chaos_sections(
        workers=1,
        database_url="postgresql+asyncpg://unused@127.0.0.1/unused",
        proxy_url="http://127.0.0.1:1",
        telegram_url="http://127.0.0.1:1",
        cache_dir=cache_dir,
        fake_encoder=fake_encoder,
    )
    return Settings.model_validate(sections)


@dataclass(frozen=True)
class Question:
    """An FAQ question the bot answers outright; every reply to it holds ``reply``."""

    text: str
    reply: str


def faq_questions(settings: Settings, encoder: Any) -> list[Question]:
    """One question per FAQ intent that the bot answers outright with that intent (an example
    of it, decided as the workers decide it), small talk and handoffs left out; their answers
    are distinct, and none holds another, so a reply names its question."""
    triage = build_triage(settings, encoder)
    intents = load_intents(settings.path(settings.matcher.intents_dir), settings.placeholders)
    context = TriageContext(now=utcnow())
    found: list[Question] = []
    for intent in intents.intents:
        if intent.handoff:
            continue
        for example in intent.examples:
            decision = triage.decide(example, context)
            if (
                decision.kind is DecisionKind.ANSWER
                and decision.intent == intent.id
                and not decision.small_talk
                and decision.reply
            ):
                found.append(Question(example, decision.reply))
                break
    return [
        q
        for q in found
        if not any(o is not q and (o.reply in q.reply or q.reply in o.reply) for o in found)
    ]


# --- the workers ---------------------------------------------------------------------------------


class Worker:
    """One ``carebot serve`` process of the cluster on its own port, started again on the same
    port after a kill. ``state``: starting, up, killed, stopped (SIGSTOP) or down."""

    def __init__(
        self,
        index: int,
        count: int,
        *,
        config: Path,
        env: dict[str, str],
        port: int,
        real_model: bool,
    ) -> None:
        self.index, self.count, self.port = index, count, port
        self._config, self._env, self._real_model = config, env, real_model
        self.process: ServeProcess | None = None
        self.earlier: list[ServeProcess] = []  # the processes killed before this one
        self.state = "down"
        self.exit_codes: list[int] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.process.pid if self.process else None

    async def start(self) -> None:
        """Start the process and wait until it serves."""
        self.state = "starting"
        env = dict(self._env)
        if self.count > 1:  # one of N workers, supervised by this process
            env[WORKER_ENV] = f"{self.index}/{self.count}:{os.getpid()}"
        self.process = await start_serve(
            self._config,
            env=env,
            port=self.port,
            name=f"worker{self.index}",
            real_model=self._real_model,
        )
        self.state = "up"

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.earlier.append(self.process)
        self.process = None
        self.state = "killed"

    def freeze(self) -> None:
        assert self.pid is not None
        os.kill(self.pid, signal.SIGSTOP)
        self.state = "stopped"

    def thaw(self) -> None:
        assert self.pid is not None
        os.kill(self.pid, signal.SIGCONT)
        self.state = "up"

    async def stop(self) -> None:
        """SIGTERM (a clean shutdown), and collect every process's exit code."""
        if self.state == "stopped":
            self.thaw()
        if self.process is not None:
            self.exit_codes.append(await self.process.stop())
        for process in self.earlier:
            await process.stop()  # killed: it has exited, its output is read to the end
        self.state = "down"

    def output_lines(self) -> list[str]:
        return [line for p in [*self.earlier, self.process] if p for line in p.lines]


class RoundRobinProxy(LoopbackServer):
    """A load balancer without health checks, as nginx's round robin behaves by default
    (``proxy_next_upstream error timeout``, minus the timeout: a POST that reached a worker is
    never sent twice): each request goes to the next worker in turn; a worker that refuses the
    connection (dead, restarting) is skipped for the next one, and when none takes it the
    caller is answered 502 and tries again. A worker that took the request and does not answer
    (stopped) keeps it until the caller gives up."""

    FORWARDED = ("content-type", "x-telegram-bot-api-secret-token")

    def __init__(self, upstreams: Sequence[str]) -> None:
        super().__init__()
        self._upstreams = list(upstreams)
        self._turn = itertools.count()
        self._http: aiohttp.ClientSession | None = None
        self.answered: Counter[int] = Counter()  # status -> how many
        self.skipped = 0  # workers that refused a connection, passed over for the next one

    def _routes(self, app: web.Application) -> None:
        app.router.add_post("/{path:.*}", self._forward)

    async def start(self, port: int = 0) -> None:
        # A connection per request, as nginx's default to upstreams: a killed worker's kept
        # connections would fail requests that a fresh connection passes to the next worker.
        connector = aiohttp.TCPConnector(limit=0, force_close=True)
        self._http = aiohttp.ClientSession(connector=connector)
        await super().start(port)

    async def stop(self) -> None:
        await super().stop()
        if self._http is not None:
            await self._http.close()

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._http is not None
        first = next(self._turn)
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() in self.FORWARDED}
        for turn in range(first, first + len(self._upstreams)):
            target = self._upstreams[turn % len(self._upstreams)]
            try:
                async with self._http.post(
                    target + request.path_qs,
                    data=body,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=UPSTREAM_TIMEOUT),
                ) as response:
                    payload, status = await response.read(), response.status
            except aiohttp.ClientConnectorError:
                self.skipped += 1
                continue  # refused: it never had the request; the next worker takes it
            except (aiohttp.ClientError, TimeoutError) as exc:
                self.answered[502] += 1
                return web.Response(status=502, text=f"{target}: {type(exc).__name__}")
            self.answered[status] += 1
            return web.Response(status=status, body=payload)
        self.answered[502] += 1
        return web.Response(status=502, text="no worker took the connection")


# --- the plan, the customers and their messages -----------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What one run does. ``rate``: messages per second offered over all customers, each
    customer's messages spread evenly over the run (an open loop). Faults strike from the first
    message until the last is offered (the SIGSTOP may last beyond)."""

    workers: int = 3
    telegram_customers: int = 500
    webchat_customers: int = 500
    messages: int = 10
    rate: float = 20.0
    kill_every: float | None = 10.0
    restart_after: float = 2.0
    stop_at: float | None = None  # seconds after the first message; None: no SIGSTOP
    stop_seconds: float = 70.0
    terminate_every: float | None = 60.0  # pg_terminate_backend of the listeners
    drain_timeout: float = 240.0
    tabs: int = 2  # web chat tabs per customer, on different workers
    webhook_timeout: float = 10.0  # seconds the stand-in waits for the webhook's answer
    seed: int = 7
    # A closed loop instead (to find the ceiling): each web chat customer sends its next
    # message as soon as the reply to the last one came (``rate`` is not used).
    closed_loop: bool = False

    @property
    def customers(self) -> int:
        return self.telegram_customers + self.webchat_customers

    @property
    def load_seconds(self) -> float:
        return 0.0 if self.closed_loop else self.customers * self.messages / self.rate

    @property
    def faults(self) -> bool:
        return bool(self.kill_every or self.stop_at is not None or self.terminate_every)


@dataclass
class Message:
    """One customer message, as the customer's end saw it (times are ``time.time()``)."""

    customer: Customer
    number: int  # its place among the customer's messages
    question: Question
    due: float = 0.0  # when it is offered
    client_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    sent: float | None = None  # first attempt (Telegram: queued at the stand-in)
    acked: float | None = None  # web chat: acknowledged (stored; handled, or being handled)
    stored: float | None = None  # web chat: when the service stored it (its row's created_at)
    taken: float | None = None  # web chat: when the attempt that was acknowledged was sent
    slot: int | None = None  # web chat: the worker that acknowledged it
    attempts: int = 0
    update_id: int | None = None  # Telegram
    external_id: str = ""  # as carebot stores it (web chat: known once the visitor is)


@dataclass(frozen=True)
class Seen:
    """A reply frame at a web chat tab: ``via`` live (pushed) or history (at a reconnect)."""

    at: float
    tab: int
    slot: int
    frame_id: str
    text: str
    via: str


class Customer:
    def __init__(self, kind: str, number: int) -> None:
        self.kind, self.number = kind, number
        self.messages: list[Message] = []

    @property
    def name(self) -> str:
        return f"{self.kind} customer {self.number}"

    def question_of(self, text: str) -> Message | None:
        """The message of this customer that ``text`` answers."""
        return next((m for m in self.messages if m.question.reply in text), None)


class TelegramCustomer(Customer):
    def __init__(self, number: int, chat: int) -> None:
        super().__init__("telegram", number)
        self.chat = chat


class Tab:
    """One browser tab of a web chat customer: connected to a worker, reconnected to another
    when that one goes away. ``intervals``: [slot, connected at, disconnected at or None]."""

    def __init__(self, customer: WebCustomer, number: int, slot: int) -> None:
        self.customer, self.number, self.slot = customer, number, slot
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.ready = asyncio.Event()
        self.intervals: list[list[Any]] = []
        self._wait = RECONNECT_FIRST  # before the next try to connect (see RECONNECT_FIRST)

    async def run(self) -> None:
        customer = self.customer
        if self.number > 0:
            await customer.has_token.wait()
        while not customer.closing:
            ws = await self._connect()
            if ws is None:
                return
            interval: list[Any] = [self.slot, time.time(), None]
            self.intervals.append(interval)
            self.ws = ws
            self.ready.set()
            try:
                async for frame in ws:
                    if frame.type is aiohttp.WSMsgType.TEXT:
                        customer.on_frame(self, json.loads(frame.data), "live")
            except (aiohttp.ClientError, ConnectionError, ValueError):
                pass
            finally:
                self.ready.clear()
                self.ws = None
                interval[2] = time.time()
                customer.on_close(self)
                with contextlib.suppress(Exception):
                    await ws.close()

    async def _connect(self) -> aiohttp.ClientWebSocketResponse | None:
        """Connect and say hello, to this tab's worker first, then to the next ones in turn."""
        customer, first, refused = self.customer, not self.intervals, 0
        while not customer.closing:
            # A worker that refuses the connection (dead) is passed over at once, as a load
            # balancer in front of the workers would; when every one refused, the tab waits.
            if not first and not 0 < refused < len(customer.urls):
                await asyncio.sleep(self._wait * random.uniform(0.9, 1.1))
                self._wait = min(2 * self._wait, RECONNECT_MOST)
                refused = 0
            first = False
            ws = None
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    ws = await customer.http.ws_connect(
                        f"{customer.urls[self.slot]}/chat/ws",
                        timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=1.0),
                    )
                    await ws.send_json({"type": "hello", "token": customer.token})
                    welcome = await ws.receive_json()
                if welcome.get("type") != "welcome":
                    raise ValueError(f"not welcomed: {welcome}")
            except (aiohttp.ClientError, TimeoutError, OSError, ValueError, TypeError) as exc:
                refused = refused + 1 if isinstance(exc, aiohttp.ClientConnectorError) else 0
                if ws is not None:
                    with contextlib.suppress(Exception):
                        await ws.close()
                self.slot = (self.slot + 1) % len(customer.urls)  # the next worker, next time
                continue
            self._wait = RECONNECT_FIRST
            customer.token = welcome["token"]
            customer.has_token.set()
            for frame in welcome.get("history", []):
                customer.on_frame(self, frame, "history")
            return ws
        return None

    async def drop(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Give up on a worker that stopped answering: close, and :meth:`run` reconnects."""
        if self.ws is ws:
            with contextlib.suppress(Exception):
                await ws.close()


class WebCustomer(Customer):
    """A web chat customer: sends from its first tab, sees replies in all of them."""

    def __init__(self, number: int, urls: list[str], tabs: int, http: aiohttp.ClientSession):
        super().__init__("webchat", number)
        self.urls, self.http = urls, http
        self.token: str | None = None
        self.has_token = asyncio.Event()
        self.closing = False
        self.tabs = [Tab(self, i, (number + i) % len(urls)) for i in range(tabs)]
        self.seen: list[Seen] = []
        self.errors: Counter[str] = Counter()
        self._answers: dict[str, asyncio.Future[str]] = {}
        self._replied: dict[int, asyncio.Event] = defaultdict(asyncio.Event)

    def on_frame(self, tab: Tab, frame: dict[str, Any], via: str) -> None:
        kind, now = frame.get("type"), time.time()
        if kind == "ack" or (kind == "error" and frame.get("id")):
            answer = self._answers.get(str(frame.get("id")))
            if answer is not None and not answer.done():
                answer.set_result("ack" if kind == "ack" else str(frame.get("code")))
            if kind == "ack":
                message = next(m for m in self.messages if m.client_id == frame["id"])
                if message.acked is None:
                    message.acked, message.slot = now, tab.slot
            else:
                self.errors[str(frame.get("code"))] += 1
        elif kind == "message" and frame.get("author") != "customer":
            seen = Seen(now, tab.number, tab.slot, str(frame["id"]), str(frame["text"]), via)
            self.seen.append(seen)
            answered = self.question_of(seen.text)
            if answered is not None:
                self._replied[answered.number].set()

    def on_close(self, tab: Tab) -> None:
        """``tab``'s socket closed (its worker died or stopped serving): a message sent on it
        and not acknowledged is sent again once the tab has reconnected, as the widget does
        after its next welcome (not after the ack's timeout: the resend told the other workers
        of a message its dead worker had stored 15 s late)."""
        if tab.number != 0:
            return  # messages are sent from the first tab only
        for answer in self._answers.values():
            if not answer.done():
                answer.set_result("closed")

    async def send_all(self, closed_loop: bool = False) -> None:
        for message in self.messages:
            await _until(message.due)
            await self._send(message)
            if closed_loop:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(LIVE_WINDOW * 3):
                        await self._replied[message.number].wait()

    async def _send(self, message: Message) -> None:
        """Send until acknowledged: after a reconnect, or a refusal, the same id again (the
        service takes it once)."""
        frame = {"type": "message", "id": message.client_id, "text": message.question.text}
        tab = self.tabs[0]
        loop = asyncio.get_running_loop()
        while True:
            await tab.ready.wait()
            ws = tab.ws
            if ws is None:
                continue
            answer = self._answers[message.client_id] = loop.create_future()
            message.attempts += 1
            attempt = time.time()
            message.sent = message.sent or attempt
            try:
                await ws.send_json(frame)
                async with asyncio.timeout(ACK_TIMEOUT):
                    outcome = await answer
            except TimeoutError:
                await tab.drop(ws)  # a worker that stopped answering: go to another
                continue
            except (aiohttp.ClientError, ConnectionError, RuntimeError):
                await asyncio.sleep(0.1)
                continue
            if outcome == "ack":
                message.taken = attempt
                return
            if outcome == "closed":
                continue  # sent again once the tab has reconnected
            await asyncio.sleep(1.0)  # refused (unavailable, rate limited): send it again

    async def close(self) -> None:
        self.closing = True
        for tab in self.tabs:
            if tab.ws is not None:
                with contextlib.suppress(Exception):
                    await tab.ws.close()


def make_customers(
    plan: Plan, questions: Sequence[Question], urls: list[str], http: aiohttp.ClientSession
) -> list[Customer]:
    """The customers, each with ``plan.messages`` distinct questions in a random order."""
    if len(questions) < plan.messages:
        raise ValueError(
            f"{plan.messages} messages per customer need as many distinct FAQ questions the "
            f"bot answers outright; the intents give {len(questions)}"
        )
    rng = random.Random(plan.seed)
    customers: list[Customer] = [
        TelegramCustomer(i, 5_000_000 + i) for i in range(plan.telegram_customers)
    ]
    customers += [WebCustomer(i, urls, plan.tabs, http) for i in range(plan.webchat_customers)]
    rng.shuffle(customers)
    for customer in customers:
        chosen = rng.sample(list(questions), plan.messages)
        customer.messages = [Message(customer, n, q) for n, q in enumerate(chosen)]
    return customers


def schedule(customers: Sequence[Customer], plan: Plan, start: float) -> None:
    """Each message's due time: round k has every customer's k-th message, in the customers'
    order, ``1 / rate`` seconds apart (with a little jitter)."""
    rng = random.Random(plan.seed + 1)
    count = len(customers)
    for position, customer in enumerate(customers):
        for message in customer.messages:
            if plan.closed_loop:  # each customer starts at once, then goes on at its pace
                message.due = start + position * 0.01 if message.number == 0 else 0.0
                continue
            slot = message.number * count + position
            message.due = start + (slot + rng.random()) / plan.rate


async def _until(when: float) -> None:
    delay = when - time.time()
    if delay > 0:
        await asyncio.sleep(delay)


async def push_telegram(tg: TelegramStandIn, customers: Sequence[TelegramCustomer]) -> None:
    """Queue each Telegram message at the stand-in when it is due (it delivers them)."""
    messages = sorted((m for c in customers for m in c.messages), key=lambda m: m.due)
    for message in messages:
        await _until(message.due)
        customer = message.customer
        assert isinstance(customer, TelegramCustomer)
        update = text_update(customer.chat, message.question.text, first_name="Chaos")
        message.update_id = tg.push(update)
        message.external_id = f"{customer.chat}:{update['message']['message_id']}"
        message.sent = time.time()


# --- the agent's live view -----------------------------------------------------------------------


class LiveView:
    """An agent's live inbox view (``/inbox/events``) on one worker, reconnected when it drops:
    what it was told (time, kind, conversation id) and when it was connected."""

    def __init__(self, slot: int, url: str, http: aiohttp.ClientSession) -> None:
        self.slot, self.url, self._http = slot, url, http
        self.events: list[tuple[float, str, int]] = []
        self.intervals: list[list[Any]] = []
        self.closing = False

    async def run(self) -> None:
        while not self.closing:
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    ws = await self._http.ws_connect(
                        f"{self.url}/inbox/events",
                        timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=1.0),
                    )
            except aiohttp.WSServerHandshakeError as exc:
                if exc.status == 401:
                    await log_in(self._http, self.url)
                await asyncio.sleep(0.25)
                continue
            except (aiohttp.ClientError, TimeoutError, OSError):
                await asyncio.sleep(0.25)
                continue
            interval: list[Any] = [time.time(), None]
            self.intervals.append(interval)
            try:
                async for frame in ws:
                    if frame.type is aiohttp.WSMsgType.TEXT:
                        data = json.loads(frame.data)
                        self.events.append(
                            (time.time(), str(data.get("kind")), int(data["conversation_id"]))
                        )
            except (aiohttp.ClientError, ConnectionError, ValueError, KeyError):
                pass
            finally:
                interval[1] = time.time()
                with contextlib.suppress(Exception):
                    await ws.close()


CSRF = re.compile(r'name="csrf" value="([^"]+)"')


async def log_in(http: aiohttp.ClientSession, url: str) -> None:
    """Log the agent in to the inbox (the session is good on every worker)."""
    async with http.get(f"{url}/inbox/login") as response:
        csrf = CSRF.search(await response.text())
    if csrf is None:
        raise AssertionError(f"no login form at {url}/inbox/login")
    form = {"name": AGENT, "password": PASSWORD, "csrf": csrf.group(1), "next": "/inbox"}
    async with http.post(f"{url}/inbox/login", data=form, allow_redirects=False) as sent:
        if sent.status != 303:
            raise AssertionError(f"login at {url} answered {sent.status}: {await sent.text()}")


# --- the faults ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    """Something the harness did to the workers: kill, restart, stop, continue or terminate
    (the listener connections; ``detail`` says how many)."""

    at: float
    kind: str
    slot: int | None = None
    pid: int | None = None
    detail: str = ""


class Faults:
    def __init__(self, workers: list[Worker], plan: Plan, dsn: str) -> None:
        self._workers, self._plan, self._dsn = workers, plan, dsn
        self._rng = random.Random(plan.seed + 2)
        self.log: list[Fault] = []
        self._restarts: list[asyncio.Task[None]] = []

    async def cancel(self) -> None:
        """Stop striking (the run failed): restarts in progress are cancelled."""
        for task in self._restarts:
            task.cancel()
        await asyncio.gather(*self._restarts, return_exceptions=True)

    def _up(self) -> list[Worker]:
        return [w for w in self._workers if w.state == "up"]

    async def run(self, start: float, until: float) -> None:
        """Strike from ``start`` until ``until``; return once every worker is back."""
        plan = self._plan
        jobs = []
        if plan.kill_every:
            jobs.append(self._kills(start, until))
        if plan.stop_at is not None:
            jobs.append(self._stop(start + plan.stop_at))
        if plan.terminate_every:
            jobs.append(self._terminations(start, until))
        await asyncio.gather(*jobs)
        await asyncio.gather(*self._restarts)

    async def _kills(self, start: float, until: float) -> None:
        assert self._plan.kill_every
        at = start + self._plan.kill_every
        while at < until:
            await _until(at)
            at += self._plan.kill_every
            up = self._up()
            if not up:
                continue
            victim = self._rng.choice(up)
            pid = victim.pid
            victim.kill()
            self.log.append(Fault(time.time(), "kill", victim.index, pid))
            self._restarts.append(asyncio.create_task(self._restart(victim)))

    async def _restart(self, worker: Worker) -> None:
        await asyncio.sleep(self._plan.restart_after)
        self.log.append(Fault(time.time(), "restart", worker.index))
        await worker.start()
        self.log.append(Fault(time.time(), "serving", worker.index, worker.pid))

    async def _stop(self, at: float) -> None:
        await _until(at)
        up = self._up()
        if not up:
            return
        victim = self._rng.choice(up)
        victim.freeze()
        self.log.append(Fault(time.time(), "stop", victim.index, victim.pid))
        await asyncio.sleep(self._plan.stop_seconds)
        victim.thaw()
        self.log.append(Fault(time.time(), "continue", victim.index, victim.pid))

    async def _terminations(self, start: float, until: float) -> None:
        assert self._plan.terminate_every
        at = start + self._plan.terminate_every / 2
        while at < until:
            await _until(at)
            at += self._plan.terminate_every
            pids = await terminate_listeners(self._dsn)
            self.log.append(Fault(time.time(), "terminate", detail=f"{len(pids)} listeners"))

    def stopped_during(self, slot: int, start: float, end: float) -> bool:
        """Whether worker ``slot`` was stopped (SIGSTOP) at some time in [start, end]."""
        return any(a <= end and b >= start for a, b in self.windows(slot, "stop", "continue"))

    def near(self, at: float, started: float) -> str:
        """The faults within 15 s of ``at``, for a report line."""
        close = [f for f in self.log if abs(f.at - at) <= 15.0]
        return (
            ", ".join(
                f"{f.kind}{'' if f.slot is None else f' worker {f.slot}'} {f.at - at:+.1f} s"
                for f in close
            )
            or "no fault within 15 s"
        )

    def down_during(self, slot: int, start: float, end: float) -> bool:
        """Whether worker ``slot`` was killed, restarting or stopped in [start, end]."""
        spans = self.windows(slot, "kill", "serving") + self.windows(slot, "stop", "continue")
        return any(a <= end and b >= start for a, b in spans)

    def windows(self, slot: int, begin: str, end: str) -> list[tuple[float, float]]:
        spans, opened = [], None
        for fault in self.log:
            if fault.slot != slot:
                continue
            if fault.kind == begin:
                opened = fault.at
            elif fault.kind == end and opened is not None:
                spans.append((opened, fault.at))
                opened = None
        if opened is not None:
            spans.append((opened, float("inf")))
        return spans


async def terminate_listeners(dsn: str) -> list[int]:
    """``pg_terminate_backend`` of the workers' LISTEN/NOTIFY connections (as an operator or
    a failover would): the pids ended."""
    conn = await asyncpg.connect(dsn)
    try:
        pids = [row["pid"] for row in await conn.fetch(LISTENERS)]
        for pid in pids:
            await conn.fetchval("SELECT pg_terminate_backend($1)", pid)
        return pids
    finally:
        await conn.close()


# --- the report ----------------------------------------------------------------------------------


@dataclass
class Duplicate:
    """A reply that reached a Telegram chat more than once: when, from which worker, and the
    fault that explains it (the first sender killed or stopped before the second send)."""

    chat: int
    question: str
    sends: list[tuple[float, int]]  # (time, worker)
    fault: Fault | None
    near: str = ""  # the faults near the first send, when none explains it


@dataclass
class Report:
    plan: Plan
    started: float = 0.0
    load_ended: float = 0.0
    quiet_at: float = 0.0
    sent: Counter[str] = field(default_factory=Counter)  # channel -> customer messages sent
    stored: Counter[str] = field(default_factory=Counter)
    missing: list[str] = field(default_factory=list)  # sent, never stored
    unexpected: list[str] = field(default_factory=list)  # stored, never sent
    unhandled: int = 0
    decided: int = 0
    recorded: int = 0  # handled without a decision
    not_one_reply: list[str] = field(default_factory=list)  # inbound with 0 or 2+ replies
    outbox: Counter[str] = field(default_factory=Counter)  # status -> rows
    duplicates: list[Duplicate] = field(default_factory=list)
    unanswered: list[str] = field(default_factory=list)  # no reply reached the customer
    wrong: list[str] = field(default_factory=list)  # a reply to none of the customer's messages
    out_of_order: list[str] = field(default_factory=list)
    tab_out_of_order: list[str] = field(default_factory=list)  # tabs showing replies out of order
    replied_at: list[float] = field(default_factory=list)  # each message's first reply
    latency: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    calm_latency: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    # (ms, seconds into the load when sent, channel) of each reply: when the slow ones came
    timeline: list[tuple[float, float, str]] = field(default_factory=list)
    fanout: list[float] = field(default_factory=list)  # ms, reply -> each open tab
    fanout_missed: list[str] = field(default_factory=list)  # reply and open tab it never reached
    fanout_closed: int = 0  # tabs open when a reply was sent that closed before it came
    fanout_excluded: int = 0  # tabs on the stopped worker during its stop
    fanout_slow: list[tuple[float, str]] = field(default_factory=list)  # over 1 s: ms, what
    live: list[float] = field(default_factory=list)  # ms, message -> inbox view on another
    live_missed: list[str] = field(default_factory=list)  # message and view never told
    live_resync: int = 0  # of those seen: by a look at everything (resync), not the event
    live_slow: list[tuple[float, str]] = field(default_factory=list)  # over 1 s: ms, what
    faults: list[Fault] = field(default_factory=list)
    exit_codes: list[int] = field(default_factory=list)
    worker_lines: Counter[str] = field(default_factory=Counter)
    proxy: Counter[int] = field(default_factory=Counter)
    proxy_skipped: int = 0  # connections a worker refused, passed to the next worker
    webhook_attempts: int = 0
    webhook_failures: Counter[str] = field(default_factory=Counter)
    webchat_attempts: int = 0
    webchat_errors: Counter[str] = field(default_factory=Counter)
    stalled: str = ""  # what was still not done when the drain timed out

    @property
    def unexplained_duplicates(self) -> list[Duplicate]:
        return [d for d in self.duplicates if d.fault is None]


# --- one run ---------------------------------------------------------------------------------


class Run:
    """One chaos run (see the module's docstring); :meth:`go` returns its :class:`Report`."""

    def __init__(
        self,
        plan: Plan,
        *,
        database_url: str,
        workdir: Path,
        questions: Sequence[Question],
        fake_encoder: bool,
        cache_dir: Path | None = None,
        say: Callable[[str], None] = lambda _text: None,
    ) -> None:
        self.plan, self._url, self._workdir = plan, database_url, workdir
        self._cache = cache_dir or workdir / "cache"
        self._questions, self._fake, self._say = list(questions), fake_encoder, say
        self._dsn = Database(database_url).asyncpg_dsn()
        self.report = Report(plan)
        self.workers: list[Worker] = []

    async def go(self) -> Report:
        plan = self.plan
        async with contextlib.AsyncExitStack() as stack:
            tg = await stack.enter_async_context(TelegramStandIn())
            tg.webhook_timeout = plan.webhook_timeout
            ports = [free_port() for _ in range(plan.workers)]
            urls = [f"http://127.0.0.1:{port}" for port in ports]
            proxy = RoundRobinProxy(urls)
            await proxy.start()
            stack.push_async_callback(proxy.stop)
            sections = chaos_sections(
                workers=plan.workers,
                database_url=self._url,
                proxy_url=proxy.root,
                telegram_url=tg.url,
                cache_dir=self._cache,
                fake_encoder=self._fake,
            )
            config = write_config(self._workdir / "config.toml", sections)
            for index, port in enumerate(ports, start=1):
                token = f"{tg.token}-worker{index}"
                tg.accept(token)
                env = {
                    "CAREBOT_SECRET_KEY": SECRET_KEY,
                    "TELEGRAM_BOT_TOKEN": token,
                    "TELEGRAM_WEBHOOK_SECRET": WEBHOOK_SECRET,
                }
                self.workers.append(
                    Worker(
                        index,
                        plan.workers,
                        config=config,
                        env=env,
                        port=port,
                        real_model=not self._fake,
                    )
                )
            stack.push_async_callback(self._stop_workers)
            await asyncio.gather(*(w.start() for w in self.workers))
            await tg.wait_for(lambda s: s.webhook is not None, timeout=60)
            self._say(f"{plan.workers} worker(s) serving; the webhook is registered")

            web_http = await stack.enter_async_context(
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
            )
            agent_http = await stack.enter_async_context(
                aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
            )
            await log_in(agent_http, urls[0])
            views = [LiveView(i, url, agent_http) for i, url in enumerate(urls)]
            customers = make_customers(plan, self._questions, urls, web_http)
            start = time.time() + 3.0
            schedule(customers, plan, start)
            report = self.report
            report.started = start
            tasks = [asyncio.create_task(v.run()) for v in views]
            webs = [c for c in customers if isinstance(c, WebCustomer)]
            telegrams = [c for c in customers if isinstance(c, TelegramCustomer)]
            tabs = [asyncio.create_task(t.run()) for c in webs for t in c.tabs]
            faults = Faults(self.workers, plan, self._dsn)
            striking = asyncio.create_task(faults.run(start, start + plan.load_seconds))
            try:
                await asyncio.gather(
                    push_telegram(tg, telegrams), *(c.send_all(plan.closed_loop) for c in webs)
                )
                report.load_ended = time.time()
                self._say(f"load done in {report.load_ended - start:.0f} s; waiting for faults")
                await striking
                self._say("every worker is back; draining")
                await self._drain(tg, webs)
                report.quiet_at = time.time()
            finally:
                report.faults = faults.log
                if not striking.done():
                    striking.cancel()
                    await faults.cancel()
                for customer in webs:
                    await customer.close()
                for view in views:
                    view.closing = True
                for task in [*tasks, *tabs]:
                    task.cancel()
                await asyncio.gather(*tasks, *tabs, return_exceptions=True)
                await self._stop_workers()
            await self._collect(tg, proxy, customers, views, faults)
        return self.report

    async def _stop_workers(self) -> None:
        await asyncio.gather(*(w.stop() for w in self.workers if w.state != "down"))

    async def _drain(self, tg: TelegramStandIn, webs: Sequence[WebCustomer]) -> None:
        """Wait until every update is delivered, every inbound handled and nothing is pending
        in the outbox, then for the web chat replies still on their way to a tab."""
        deadline = time.monotonic() + self.plan.drain_timeout
        conn = await asyncpg.connect(self._dsn)
        try:
            while True:
                unhandled = await conn.fetchval(
                    "SELECT count(*) FROM messages WHERE direction = 'in' AND handled_at IS NULL"
                )
                pending = await conn.fetchval(
                    "SELECT count(*) FROM outbox WHERE status = 'pending'"
                )
                undelivered = len(tg.pending)
                if not (unhandled or pending or undelivered):
                    break
                if time.monotonic() > deadline:
                    self.report.stalled = (
                        f"after {self.plan.drain_timeout:.0f} s: {unhandled} inbound unhandled, "
                        f"{pending} outbox rows pending, {undelivered} updates undelivered"
                    )
                    return
                await asyncio.sleep(0.5)  # polling the tables: nothing else tells
            rows = await conn.fetch(
                "SELECT o.id, o.sent_at, i.external_user_id FROM outbox o "
                "JOIN conversations c ON c.id = o.conversation_id "
                "JOIN identities i ON i.id = c.identity_id "
                "WHERE o.channel = 'webchat' AND o.status = 'sent'"
            )
            stored = await conn.fetch(
                "SELECT external_id FROM messages WHERE channel = 'webchat' AND direction = 'in'"
            )
        finally:
            await conn.close()
        by_client_id = {m.client_id: c for c in webs for m in c.messages}
        customer_of: dict[str, WebCustomer] = {}
        for row in stored:
            visitor, _, client_id = str(row["external_id"]).partition(":")
            if client_id in by_client_id:
                customer_of[visitor] = by_client_id[client_id]
        replies = [
            (customer_of[r["external_user_id"]], f"r{r['id']}", r["sent_at"].timestamp())
            for r in rows
            if r["external_user_id"] in customer_of
        ]
        # Every reply on some tab, and on every tab open since before it was sent (the web chat
        # looks again every 30 s even if an event was lost).
        settle = time.monotonic() + BACKSTOP_SECONDS + 5.0
        while time.monotonic() < settle and _unseen(replies):
            await asyncio.sleep(0.2)

    async def _collect(
        self,
        tg: TelegramStandIn,
        proxy: RoundRobinProxy,
        customers: Sequence[Customer],
        views: Sequence[LiveView],
        faults: Faults,
    ) -> None:
        report = self.report
        conn = await asyncpg.connect(self._dsn)
        try:
            inbound = await conn.fetch(
                "SELECT m.id, m.channel, m.external_id, m.handled_at, m.created_at, "
                "i.external_user_id, "
                "c.id AS conversation_id, "
                "(SELECT count(*) FROM decisions d WHERE d.inbound_message_id = m.id) AS decisions,"
                " (SELECT count(*) FROM outbox o JOIN messages r ON r.id = o.message_id "
                "  JOIN decisions d ON d.id = r.decision_id WHERE d.inbound_message_id = m.id)"
                " AS replies "
                "FROM messages m JOIN conversations c ON c.id = m.conversation_id "
                "JOIN identities i ON i.id = c.identity_id WHERE m.direction = 'in'"
            )
            outbox = await conn.fetch(
                "SELECT o.id, o.status, o.channel, o.sent_at, o.created_at, i.external_user_id "
                "FROM outbox o JOIN conversations c ON c.id = o.conversation_id "
                "JOIN identities i ON i.id = c.identity_id"
            )
        finally:
            await conn.close()
        for worker in self.workers:
            report.exit_codes += worker.exit_codes
            lines = worker.output_lines()
            (self._workdir / f"worker{worker.index}.log").write_text("\n".join(lines) + "\n")
            for line in lines:
                for phrase in WORKER_LOG_LINES:
                    report.worker_lines[phrase] += phrase in line
        report.proxy = proxy.answered
        report.proxy_skipped = proxy.skipped
        report.webhook_attempts = len(tg.deliveries)
        for delivery in tg.deliveries:
            if not delivery.ok:
                report.webhook_failures[str(delivery.status or delivery.error.split(":")[0])] += 1

        webs = [c for c in customers if isinstance(c, WebCustomer)]
        telegrams = [c for c in customers if isinstance(c, TelegramCustomer)]
        visitors: dict[str, WebCustomer] = {}
        for customer in webs:
            report.webchat_attempts += sum(m.attempts for m in customer.messages)
            report.webchat_errors.update(customer.errors)
        by_client_id = {m.client_id: m for c in webs for m in c.messages}

        # Inbound stored = sent; each handled once, with one reply.
        stored: set[str] = set()
        conversation_of: dict[str, int] = {}
        for row in inbound:
            channel, external = row["channel"], str(row["external_id"])
            report.stored[channel] += 1
            if channel == "webchat":
                visitor, _, client_id = external.partition(":")
                message = by_client_id.get(client_id)
                if message is not None:
                    assert isinstance(message.customer, WebCustomer)
                    visitors[visitor] = message.customer
                    message.external_id = external
                    message.stored = row["created_at"].timestamp()
                conversation_of[visitor] = row["conversation_id"]
            stored.add(f"{channel} {external}")
            if row["handled_at"] is None:
                report.unhandled += 1
            elif row["decisions"]:
                report.decided += 1
            else:
                report.recorded += 1
            if row["replies"] != 1:
                report.not_one_reply.append(f"{channel} {external}: {row['replies']} replies")
        sent: set[str] = set()
        for customer in customers:
            for message in customer.messages:
                if message.sent is None:
                    continue
                report.sent[customer.kind] += 1
                key = f"{customer.kind} {message.external_id}"
                if message.external_id and key in stored:
                    sent.add(key)
                else:
                    report.missing.append(
                        f"{customer.name}, message {message.number + 1} "
                        f"({message.question.text!r}, acked on worker "
                        f"{'-' if message.slot is None else message.slot + 1})"
                    )
        report.unexpected = sorted(stored - sent)
        report.outbox = Counter(str(row["status"]) for row in outbox)

        self._telegram_deliveries(tg, telegrams, faults)
        self._webchat_deliveries(webs, visitors, outbox, faults)
        customer_conversation = {
            id(customer): conversation_of[visitor] for visitor, customer in visitors.items()
        }
        self._live_views(webs, views, customer_conversation, faults)

    def _telegram_deliveries(
        self, tg: TelegramStandIn, customers: Sequence[TelegramCustomer], faults: Faults
    ) -> None:
        report = self.report
        slot_of = {f"{tg.token}-worker{w.index}": w.index for w in self.workers}
        by_chat = {c.chat: c for c in customers}
        sends: dict[int, list[tuple[float, int, str]]] = defaultdict(list)
        for call in tg.calls_of("sendMessage"):
            if call.status == 200:
                chat = int(call.params["chat_id"])
                sends[chat].append((call.at, slot_of.get(call.token, 0), str(call.params["text"])))
        for chat, customer in by_chat.items():
            order: list[int] = []
            per_question: dict[int, list[tuple[float, int]]] = defaultdict(list)
            for at, slot, text in sorted(sends.get(chat, [])):
                message = customer.question_of(text)
                if message is None:
                    report.wrong.append(f"{customer.name}: {text[:60]!r}")
                    continue
                per_question[message.number].append((at, slot))
                if message.number not in order:
                    order.append(message.number)
            self._check_order(customer, order)
            for message in customer.messages:
                got = per_question.get(message.number)
                if not got:
                    if message.sent is not None:
                        report.unanswered.append(f"{customer.name}, message {message.number + 1}")
                    continue
                assert message.sent is not None
                self._latency("telegram", message.sent, got[0][0], faults)
                if len(got) > 1:
                    first_at, first_slot = got[0]
                    explained = next(
                        (
                            f
                            for f in faults.log
                            if f.slot == first_slot
                            and f.kind in ("kill", "stop")
                            and first_at - IN_FLIGHT <= f.at <= got[1][0]
                        ),
                        None,
                    )
                    near = "" if explained else faults.near(first_at, report.started)
                    report.duplicates.append(
                        Duplicate(chat, message.question.text, got, explained, near)
                    )

    def _check_order(self, customer: Customer, order: list[int]) -> None:
        sent = [m.number for m in sorted(customer.messages, key=lambda m: m.sent or 0)]
        expected = [n for n in sent if n in order]
        if order != expected:
            self.report.out_of_order.append(
                f"{customer.name}: replies to messages {[n + 1 for n in order]}, "
                f"sent in the order {[n + 1 for n in expected]}"
            )

    def _latency(self, channel: str, sent: float, answered: float, faults: Faults) -> None:
        ms = (answered - sent) * 1000
        self.report.replied_at.append(answered)
        self.report.latency[channel].append(ms)
        self.report.timeline.append((ms, sent - self.report.started, channel))
        if not any(sent - 1.0 <= f.at <= answered for f in faults.log):
            self.report.calm_latency[channel].append(ms)

    def _webchat_deliveries(
        self,
        webs: Sequence[WebCustomer],
        visitors: dict[str, WebCustomer],
        outbox: Sequence[Any],
        faults: Faults,
    ) -> None:
        report = self.report
        sent_at = {
            f"r{row['id']}": row["sent_at"].timestamp()
            for row in outbox
            if row["channel"] == "webchat" and row["sent_at"] is not None
        }
        for customer in webs:
            first: dict[str, Seen] = {}
            for seen in sorted(customer.seen, key=lambda s: s.at):
                first.setdefault(seen.frame_id, seen)
            order: list[int] = []
            answered: dict[int, float] = {}
            for seen in sorted(first.values(), key=lambda s: s.at):
                message = customer.question_of(seen.text)
                if message is None:
                    report.wrong.append(f"{customer.name}: {seen.text[:60]!r}")
                    continue
                answered.setdefault(message.number, seen.at)
                if message.number not in order:
                    order.append(message.number)
            self._check_order(customer, order)
            for message in customer.messages:
                if message.sent is None:
                    continue
                if message.number not in answered:
                    report.unanswered.append(f"{customer.name}, message {message.number + 1}")
                    continue
                self._latency("webchat", message.sent, answered[message.number], faults)
            for tab in customer.tabs:  # the order each tab first showed the replies in
                firsts: dict[str, Seen] = {}
                for seen in customer.seen:
                    if seen.tab == tab.number:
                        firsts.setdefault(seen.frame_id, seen)
                shown_in_turn = [
                    (seen, message)
                    for seen in firsts.values()
                    if (message := customer.question_of(seen.text)) is not None
                ]
                numbers = [message.number for _, message in shown_in_turn]
                if numbers != sorted(numbers, key=lambda n: customer.messages[n].sent or 0):
                    shown = ", ".join(
                        f"{seen.frame_id} (message {message.number + 1}) "
                        f"+{seen.at - report.started:.1f} s {seen.via} on worker {seen.slot + 1}"
                        for seen, message in shown_in_turn
                    )
                    report.tab_out_of_order.append(
                        f"{customer.name}, tab {tab.number + 1}: {shown}"
                    )
            # Each reply reaching each tab that was open when it was sent.
            for frame_id, seen in first.items():
                if frame_id not in sent_at:
                    continue
                ref = min(seen.at, sent_at[frame_id])
                for tab in customer.tabs:
                    for slot, opened, closed in tab.intervals:
                        if opened > ref or (closed is not None and closed < ref + OPEN_AFTER):
                            continue
                        if faults.stopped_during(slot + 1, ref - LIVE_WINDOW, ref + OPEN_AFTER):
                            report.fanout_excluded += 1
                            continue
                        arrival = next(
                            (
                                s.at
                                for s in customer.seen
                                if s.tab == tab.number
                                and s.frame_id == frame_id
                                and opened <= s.at <= (closed or float("inf"))
                            ),
                            None,
                        )
                        if arrival is None and closed is not None and closed < report.quiet_at:
                            report.fanout_closed += 1  # it closed before the reply came
                        elif arrival is None:
                            late = [
                                f"{s.via} {s.at - ref:.1f} s on worker {s.slot + 1}"
                                for s in customer.seen
                                if s.tab == tab.number and s.frame_id == frame_id
                            ]
                            report.fanout_missed.append(
                                f"{customer.name}: reply {frame_id} (sent "
                                f"{ref - report.started:.1f} s in) not pushed to tab "
                                f"{tab.number + 1} on worker {slot + 1}, "
                                f"open {opened - ref:+.1f} s to "
                                f"{'the end' if closed is None else f'{closed - ref:+.1f} s'}; "
                                f"it came: {', '.join(late) or 'never'}"
                            )
                        else:
                            took = max(0.0, arrival - ref) * 1000
                            report.fanout.append(took)
                            if took > SLOW_MS:
                                via = next(
                                    s.via
                                    for s in customer.seen
                                    if s.tab == tab.number and s.at == arrival
                                )
                                report.fanout_slow.append(
                                    (
                                        took,
                                        f"{customer.name}: reply {frame_id} "
                                        f"{ref - report.started:.1f} s in, to tab "
                                        f"{tab.number + 1} on worker {slot + 1} ({via}); "
                                        f"{faults.near(ref, report.started)}",
                                    )
                                )

    def _live_views(
        self,
        webs: Sequence[WebCustomer],
        views: Sequence[LiveView],
        customer_conversation: dict[int, int],
        faults: Faults,
    ) -> None:
        """Messages a worker took, seen by the inbox's live view on every other worker: told of
        the message, or told to look again at everything (``resync``: the view had fallen behind
        or its worker's listener reconnected; the page then reads everything again)."""
        report = self.report
        events: dict[tuple[int, int], list[float]] = defaultdict(list)
        resyncs: dict[int, list[float]] = defaultdict(list)
        for view in views:
            for at, kind, conversation in view.events:
                if kind == "customer_message":
                    events[(view.slot, conversation)].append(at)
                elif kind == "resync":
                    resyncs[view.slot].append(at)
        for customer in webs:
            conversation = customer_conversation.get(id(customer))
            if conversation is None:
                continue
            for message in customer.messages:
                if message.stored is None or message.slot is None:
                    continue
                # The event is published once the message is stored: by the first attempt that
                # reached a worker, maybe not the one acknowledged (a resend after a timeout).
                # When that worker was killed before it could tell anyone, the event comes with
                # the resend, from the worker that acknowledged it (run 27: stored on worker 3 in
                # the instant of its kill, announced by worker 1 15 s later): the window runs to
                # the acknowledgement's, and the views' workers must be up through it.
                taken, at = message.slot, message.stored
                acked = message.acked
                announced = acked if acked is not None and message.attempts > 1 else at
                until = max(at, announced) + LIVE_WINDOW
                if faults.down_during(taken + 1, at - 1.0, until) or any(
                    f.kind == "terminate" and at - 1.0 <= f.at <= until for f in faults.log
                ):  # events sent while a listener reconnects are lost: a resync covers them
                    continue
                for view in views:
                    if view.slot == taken or faults.down_during(view.slot + 1, at - 1.0, until):
                        continue
                    if not any(o <= at and (c is None or c >= until) for o, c in view.intervals):
                        continue
                    told = [t for t in events[(view.slot, conversation)] if at <= t]
                    looked = [t for t in resyncs[view.slot] if at <= t]
                    seen = min(told[:1] + looked[:1], default=None)
                    if seen is not None and seen <= until:
                        # from the store, or from the resend's if it came after that
                        since = at if seen < announced else announced
                        report.live.append((seen - since) * 1000)
                        if (seen - since) * 1000 > SLOW_MS:
                            report.live_slow.append(
                                (
                                    (seen - since) * 1000,
                                    f"conversation {conversation}: stored on worker {taken + 1} "
                                    f"{at - report.started:.1f} s in, seen on worker "
                                    f"{view.slot + 1}; {faults.near(at, report.started)}",
                                )
                            )
                        report.live_resync += bool(looked) and (not told or looked[0] < told[0])
                    else:
                        report.live_missed.append(
                            f"conversation {conversation}: message {message.number + 1} "
                            f"stored {at - report.started:.1f} s in, acknowledged on worker "
                            f"{taken + 1} after {message.attempts} attempt(s), not seen on worker "
                            f"{view.slot + 1} (told {[f'{t - at:+.1f} s' for t in told[:2]]}); "
                            f"{faults.near(at, report.started)}"
                        )


def _unseen(replies: Sequence[tuple[WebCustomer, str, float]]) -> int:
    """How many of ``replies`` (customer, frame id, sent at) no tab has, or an open tab lacks
    though it was connected before the reply was sent."""
    missing = 0
    for customer, frame_id, sent_at in replies:
        tabs = {s.tab for s in customer.seen if s.frame_id == frame_id}
        if not tabs:
            missing += 1
            continue
        for tab in customer.tabs:
            opened = tab.intervals[-1][1] if tab.intervals else None
            if tab.ws is not None and opened is not None and opened < sent_at:
                missing += tab.number not in tabs
    return missing


async def run_chaos(
    plan: Plan,
    *,
    database_url: str,
    workdir: Path,
    questions: Sequence[Question],
    fake_encoder: bool,
    cache_dir: Path | None = None,
    say: Callable[[str], None] = lambda _text: None,
) -> Report:
    """One chaos run on a fresh, migrated ``database_url`` (see the module's docstring);
    the workers' config and logs go to ``workdir``, the example embeddings to ``cache_dir``
    (default: in ``workdir``)."""
    run = Run(
        plan,
        database_url=database_url,
        workdir=workdir,
        questions=questions,
        fake_encoder=fake_encoder,
        cache_dir=cache_dir,
        say=say,
    )
    return await run.go()
