"""``carebot serve``: one aiohttp process hosting the web chat, the social channels' webhooks, the
agent inbox and health checks.

``/healthz`` answers while the process is up (with its pid: which worker answered);
``/readyz`` when the model is loaded, the database is reachable and migrated, and the outbox is
being delivered, and 503 from the moment the shutdown begins (the worker is draining; with
``[server] drain_seconds`` it keeps serving that long first, so a load balancer sees it).

SIGTERM (or Ctrl-C) shuts down in one order (:mod:`carebot.lifecycle`): no new connections;
the channels and Slack stop receiving, each finishing what it has in hand; the requests in
flight finish (``[server] shutdown_timeout``); the workers finish their pass and the replies
being sent finish; what is due in the outbox (and Slack's due posts) is delivered; the platform
clients close; the database closes. Every step runs even if one before it failed; each failure
is logged with the step's name and the process exits with an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

import numpy as np
from aiohttp import web

from carebot import library_logs
from carebot.adapters.webchat import WebChatChannel
from carebot.cluster.leader import Duty, LeadWorker, Part
from carebot.cluster.safety import check_several_workers
from carebot.config import Settings
from carebot.console.answer_search import AnswerSearch
from carebot.console.proposals import ProposalMaker
from carebot.desk.auth import Agents, Sessions
from carebot.desk.console import ConsolePages, build_console
from carebot.desk.forms import Handler
from carebot.desk.insights import InsightPages, InsightSources
from carebot.desk.roster import Roster
from carebot.desk.slack.credentials import SlackCredentials
from carebot.desk.throttle import LoginThrottle, Sleep
from carebot.desk.web import AgentInbox
from carebot.exceptions import ShutdownError, StoreError
from carebot.hours import BusinessHours
from carebot.insight.metrics import Insight
from carebot.insight.prometheus import mount_metrics
from carebot.insight.report import Period, Topic
from carebot.insight.unanswered import unanswered_topics
from carebot.lifecycle import clean_up
from carebot.models import TranscriptLine
from carebot.nlu.encoder import Encoder
from carebot.platforms import build_platforms
from carebot.runtime import Runtime, build_runtime, load_encoder
from carebot.signing import Signer, load_secret
from carebot.store.logins import SessionRecords
from carebot.teams.targets import FirstResponseTargets

if TYPE_CHECKING:
    from carebot.cluster.supervisor import Slot
    from carebot.desk.slack.desk import SlackDesk

log = logging.getLogger(__name__)
RUNTIME = web.AppKey("runtime", Runtime)


class Draining:
    """Set once the shutdown begins: ``/readyz`` answers 503 from then on."""

    def __init__(self) -> None:
        self.since = False

    async def begin(self, _app: web.Application | None = None) -> None:
        if not self.since:
            log.info("Draining: /readyz answers 503 while the requests in flight finish")
        self.since = True


DRAINING = web.AppKey("draining", Draining)
CLIENT_GONE = 499  # nginx's "client closed request": the status logged for a request let go


@web.middleware
async def unless_gone(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A request whose client closed the connection before it was handled is let go: the
    client saw a failure and sends it again (a platform redelivers a webhook call, a tab
    connects again), so handling it would only be work no one waits for, and a second copy.
    That happens when a worker comes back from a stop (SIGSTOP, a frozen VM): the requests
    queued while it stood still arrive with their clients' closes behind them; handling them
    all first kept everything that was still waiting waiting behind them for seconds."""
    transport = request.transport
    if transport is None or transport.is_closing():
        log.info(
            "Not handling %s %s: its client closed the connection before it was handled",
            request.method,
            request.path,
        )
        return web.Response(status=CLIENT_GONE)
    return await handler(request)


@dataclass(frozen=True, slots=True)
class Service:
    app: web.Application
    runtime: Runtime
    demo_password: str | None  # set when no agents are configured
    slack: SlackDesk | None = None  # set when Slack is configured


def build_app(
    settings: Settings,
    runtime: Runtime,
    *,
    env: Mapping[str, str] | None = None,
    insight: InsightSources | None = None,
    login_sleep: Sleep = asyncio.sleep,
) -> Service:
    """The web application around a built runtime, which starts and stops with it (its
    stages run as the app's cleanup contexts).

    ``env`` holds the Slack tokens and the channels' secrets (default: the process
    environment); ``insight``, where the numbers of ``/insights`` and ``/metrics`` come from
    (default: :func:`live_insight`); ``login_sleep``, how the inbox waits out its growing
    delay after a failed login (tests record it instead)."""
    library_logs.protect()  # aiohttp, Telegram, httpx: no customer data above DEBUG
    secret = load_secret(settings.server.secret_env, settings.path(settings.server.secret_file))
    app = web.Application(client_max_size=1024 * 1024, middlewares=[unless_gone])
    app[RUNTIME] = runtime
    app[DRAINING] = Draining()
    app.on_shutdown.append(app[DRAINING].begin)
    if settings.webchat.enabled:
        _mount_webchat(app, settings, runtime, secret)
    platforms = build_platforms(settings, secret, env)
    for channel in platforms.channels:
        runtime.add_channel(channel)
    platforms.mount(app, runtime.deliver)
    insight = insight or live_insight(settings, runtime)
    answers = AnswerSearch(
        lambda: runtime.triage.matcher, settings, in_model_thread=runtime.matches.in_model_thread
    )
    demo_password, console = _mount_inbox(
        app, settings, runtime, secret, insight, answers, login_sleep
    )
    slack = _slack_desk(settings, runtime, env, answers, console.maker)
    if slack is not None:
        slack.mount(app)
        runtime.singletons.append(Duty("the Slack thread sync", LeadWorker(slack.sync)))
        if slack.uses_socket_mode:
            socket = Part(slack.connect_socket, slack.disconnect_socket)
            runtime.singletons.append(Duty("Slack Socket Mode", socket, inbound=True))
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    mount_metrics(app, settings, db=runtime.db, clock=runtime.clock, env=env, insight=insight)
    life = runtime.lifecycle()
    if slack is not None:
        slack.join(life)
    life.mount(app)
    return Service(app, runtime, demo_password, slack)


def live_insight(settings: Settings, runtime: Runtime) -> InsightSources:
    """The care lead's numbers from the store (one :class:`Insight` for the dashboard and
    ``/metrics``), and the unanswered topics, re-encoding in the model's thread what has no
    embedding of the live model."""
    insight = Insight(db=runtime.db, settings=settings, clock=runtime.clock)

    async def encode(texts: Sequence[str]) -> np.ndarray:
        encoder = runtime.triage.matcher.encoder
        return await runtime.matches.in_model_thread(lambda: encoder.encode(list(texts)))

    async def topics(period: Period) -> list[Topic]:
        return await unanswered_topics(
            db=runtime.db,
            matcher=runtime.triage.matcher,
            period=period,
            now=runtime.clock(),
            encode=encode,
        )

    return InsightSources(report=insight.report, conversations=insight.conversations, topics=topics)


def _mount_webchat(
    app: web.Application, settings: Settings, runtime: Runtime, secret: bytes
) -> None:
    limit = settings.webchat.history_limit

    async def transcript(visitor: str) -> list[TranscriptLine]:
        return await runtime.conversations.transcript("webchat", visitor, limit=limit)

    async def history(visitor: str) -> list[TranscriptLine]:
        async with runtime.history_reads.turn():  # a storm of hellos leaves stores a connection
            return await transcript(visitor)

    async def latest_replies(visitors: list[str]) -> dict[str, int]:
        return await runtime.outbox_store.latest_replies(WebChatChannel.name, visitors)

    async def visitor_of(conversation_id: int) -> str | None:
        channel, user = await runtime.conversations.party(conversation_id)
        return user if channel == WebChatChannel.name else None

    webchat = WebChatChannel(
        settings=settings.webchat,
        signer=Signer(secret, "webchat-visitor"),
        transcript=transcript,
        hours=BusinessHours(settings.business_hours),
        events=runtime.events,  # agents typing in the inbox (this process's only)
        visitor_of=visitor_of,
        reply_before=runtime.outbox_store.reply_before,
        latest_replies=latest_replies,
        history=history,
        # The looks at other workers' news: a share of the pool of their own, as large as the
        # hellos' (they must not wait behind a storm of hellos: chaos run sixteen).
        looks_at_once=runtime.history_reads.size,
        default_language=settings.languages.default,
        messages=settings.messages,
        clock=runtime.clock,
    )
    webchat.mount(app)
    app.router.add_get("/", webchat.demo_page())
    runtime.add_channel(webchat)


def _mount_inbox(
    app: web.Application,
    settings: Settings,
    runtime: Runtime,
    secret: bytes,
    insight: InsightSources,
    answers: AnswerSearch,
    login_sleep: Sleep,
) -> tuple[str | None, ConsolePages]:
    """The built-in agent inbox at /inbox, the leads' /insights and the ops console beside it;
    returns the demo agent's password if one was made, and the console."""
    demo_password = None
    agents = Agents.from_settings(settings.inbox)
    if not len(agents):
        agents, demo_password = Agents.demo()
    sessions = Sessions(
        Signer(secret, "inbox-session"),
        agents,
        SessionRecords(runtime.db, runtime.clock),
        hours=settings.inbox.session_hours,
        secure_cookies=settings.server.secure_cookies,
    )

    async def end_removed_agents(_app: web.Application) -> None:
        await sessions.end_removed_agents()

    app.on_startup.append(end_removed_agents)
    console = build_console(settings, runtime, sessions, insight)
    AgentInbox(
        agents=agents,
        sessions=sessions,
        throttle=LoginThrottle(
            runtime.db,
            runtime.clock,
            settings.inbox,
            sleep=login_sleep,
            forwarded_for=settings.server.forwarded_for,
        ),
        desk=runtime.desk,
        queue=runtime.queue,
        labels=runtime.labels,
        events=runtime.events,
        intent_title=console.editor.title,
        answers=answers,
        public_url=settings.server.public_url,
        roster=Roster.from_settings(settings, agents),
        targets=FirstResponseTargets(settings),
        teamwork=runtime.teamwork,
        public=settings.public,
    ).mount(app)
    console.mount(app)
    InsightPages(
        sessions=sessions,
        sources=insight,
        zone=settings.business_hours.zone(),
        clock=runtime.clock,
        channels=lambda: runtime.channels,
        intent_title=console.editor.title,
        teams=lambda: [(team.name, team.label) for team in settings.teams_in_effect()],
    ).mount(app)
    return demo_password, console


def _slack_desk(
    settings: Settings,
    runtime: Runtime,
    env: Mapping[str, str] | None,
    answers: AnswerSearch,
    proposals: ProposalMaker,
) -> SlackDesk | None:
    credentials = SlackCredentials.from_env(settings, env)
    if credentials is None:
        return None
    from carebot.desk.slack.desk import SlackDesk

    return SlackDesk(
        settings,
        credentials,
        db=runtime.db,
        desk=runtime.desk,
        queue=runtime.queue,
        events=runtime.events,
        clock=runtime.clock,
        windows=runtime.windows,
        answers=answers,
        proposals=proposals,
    )


async def _healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "up", "pid": os.getpid()})


async def _readyz(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    if request.app[DRAINING].since:
        return _draining()
    checks = {"model": len(runtime.triage.matcher.intents) > 0, "outbox": runtime.outbox.running}
    try:
        await runtime.db.ping()
        await runtime.db.check_migrated()
        checks["database"] = checks["migrations"] = True
    except StoreError as exc:
        log.warning("Not ready: %s", exc)
        checks["database"] = checks["migrations"] = False
    if request.app[DRAINING].since:  # it began while the checks ran
        return _draining()
    ready = all(checks.values())
    return web.json_response({"ready": ready, "checks": checks}, status=200 if ready else 503)


def _draining() -> web.Response:
    body = {"ready": False, "draining": True, "status": "draining: shutting down"}
    return web.json_response(body, status=503)


async def serve(
    settings: Settings,
    *,
    host: str | None = None,
    port: int | None = None,
    out: TextIO = sys.stdout,
    encoder: Encoder | None = None,
    slot: Slot | None = None,
) -> None:
    """Load the model, serve until SIGTERM or SIGINT, then shut down cleanly. ``encoder``
    replaces the configured model (tests); ``slot``: this process is one of ``serve --workers``
    (it shares the port with the others)."""
    check_several_workers(settings)
    SlackCredentials.from_env(settings)  # a Slack setting that is wrong stops us before the model
    build_platforms(settings, b"check only")  # and so does a channel's
    say = lambda text: _say(out, text)  # noqa: E731
    say("Loading the model and intents...")
    encoder = encoder or load_encoder(settings, export_if_missing=True, say=say)
    runtime = await build_runtime(settings, encoder=encoder)
    service = build_app(settings, runtime)
    # The model and its libraries leave ~500,000 long-lived objects; a full garbage collection
    # walking them all takes ~300 ms, a pause every customer in flight would wait out. Freezing
    # them after start-up moves them out of the collector's way (measured: 305 ms -> 0 ms).
    gc.collect()
    gc.freeze()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await run_service(
            service,
            host=host or settings.server.host,
            port=port or settings.server.port,
            stop=stop,
            shutdown_timeout=settings.server.shutdown_timeout,
            drain_seconds=settings.server.drain_seconds,
            out=out,
            slot=slot,
        )
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


async def run_service(
    service: Service,
    *,
    host: str,
    port: int,
    stop: asyncio.Event,
    shutdown_timeout: float,
    drain_seconds: float = 0.0,
    out: TextIO = sys.stdout,
    slot: Slot | None = None,
) -> None:
    """Serve until ``stop`` is set (``serve`` sets it on SIGTERM and SIGINT), then shut down
    in the lifecycle's order. Raises ShutdownError when a step of the shutdown failed.
    ``drain_seconds``: first keep serving that long with /readyz unready (``stop`` set again
    cuts it short). ``slot``: one of ``serve --workers``, listening with SO_REUSEPORT."""
    runner = web.AppRunner(service.app, handle_signals=False, shutdown_timeout=shutdown_timeout)
    try:
        await runner.setup()
        await web.TCPSite(runner, host, port, reuse_port=slot is not None).start()
        metrics = service.runtime.settings.metrics.enabled
        base = f"http://{host}:{port}"
        _announce(out, base, service.demo_password, service.slack, metrics, _worker(slot))
        await stop.wait()
        await service.app[DRAINING].begin()
        if drain_seconds > 0:
            _say(out, f"Draining: /readyz is unready; serving {drain_seconds:g} s more...")
            stop.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(drain_seconds):
                    await stop.wait()  # a second signal: no more waiting
    except BaseException:
        # What was set up is torn down; a failure of that is logged, and the error that
        # stopped the start (a wrong token, a port in use) is the one reported.
        with contextlib.suppress(ShutdownError):
            await clean_up(runner)
        raise
    _say(out, "Stopping: finishing in-flight work and flushing the outbox...")
    await clean_up(runner)
    _say(out, "Stopped.")


def _worker(slot: Slot | None) -> str:
    return "" if slot is None else f" (worker {slot}, pid {os.getpid()})"


def _announce(
    out: TextIO,
    base: str,
    demo_password: str | None,
    slack: SlackDesk | None,
    metrics: bool,
    worker: str = "",
) -> None:
    lines = [
        f"carebot is serving on {base}{worker}",
        f"  web chat demo:  {base}/",
        f"  agent inbox:    {base}/inbox",
        f"  insights:       {base}/insights   (for agents with the lead role)",
        f"  ops console:    {base}/console    (for agents with the ops role)",
        f"  health:         {base}/healthz   {base}/readyz",
    ]
    if metrics:
        lines.append(f"  metrics:        {base}/metrics   (Prometheus)")
    if demo_password:
        lines.append(
            f"  inbox login:    agent / {demo_password}   (a one-time demo agent: "
            "configure [inbox] agents in config.toml for real use)"
        )
    if slack is not None:
        lines.append(f"  Slack desk:     channel {slack.api.channel}, {slack.describe(base)}")
    _say(out, "\n".join(lines))


def _say(out: TextIO, text: str) -> None:
    """``text`` and its newline in one write: the workers of ``serve --workers`` share one
    output, and an unbuffered one (PYTHONUNBUFFERED) would get print's two writes apart."""
    out.write(text + "\n")
    out.flush()
