"""The Slack desk put together: slack-bolt's async app with the listeners, mounted at
``/slack/events`` (when a signing secret is set) and/or connected over Socket Mode (when an
app-level token is set), and the thread sync running beside them.

Slack is optional and never in the customers' way: when it is unreachable, customers still get
their replies and handoff notices, the built-in inbox shows every conversation, and the sync
posts what Slack missed as soon as it is back.

Its parts take their places in the service's lifecycle (:meth:`SlackDesk.join`): its web client
opens with the platform clients and closes with them; the thread sync is one of the periodic
workers; Slack's due posts are flushed with the outbox; Socket Mode connects last and
disconnects first. The thread sync and Socket Mode run on one worker, the leader
(:mod:`carebot.cluster.leader`); every worker takes Events API requests.

Stopping finishes the agents' actions in hand (bolt runs them after it has
acknowledged Slack, which will not send them again), and events that come after are answered
503 (Slack retries them).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from typing import Any

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest

from carebot import library_logs
from carebot.agents import AgentDesk
from carebot.clock import Clock
from carebot.config import Settings
from carebot.console.answer_search import AnswerSearch
from carebot.console.proposals import ProposalMaker
from carebot.desk.slack import payloads
from carebot.desk.slack.api import SlackApi, make_client
from carebot.desk.slack.credentials import SlackCredentials
from carebot.desk.slack.faq import FaqCommand
from carebot.desk.slack.faq_proposals import AddToFaq
from carebot.desk.slack.listeners import Listener, Listeners
from carebot.desk.slack.people import People
from carebot.desk.slack.sync import ThreadSync
from carebot.events import EventHub
from carebot.hours import BusinessHours
from carebot.lifecycle import Lifecycle, Stage
from carebot.pacing import Pacer
from carebot.reply_window import NO_WINDOWS, ReplyWindows
from carebot.retry import Backoff, retry
from carebot.store.database import Database
from carebot.store.emotion_labels import EmotionLabelStore
from carebot.store.notes import Notes
from carebot.store.queue import AgentQueue
from carebot.store.slack_threads import SlackThreadStore
from carebot.teams.membership import Membership

log = logging.getLogger(__name__)
EVENTS_PATH = "/slack/events"
BOLT_LOG = logging.getLogger(f"{__name__}.bolt")
CONNECT_BACKOFF = Backoff(base=1.0, cap=60.0)  # Socket Mode, while Slack is unreachable
STOP_GRACE = 10.0  # seconds a stop waits for the agents' actions in hand


def _not_the_token_notice(record: logging.LogRecord) -> bool:
    """Bolt reads SLACK_BOT_TOKEN by itself and then warns that the client's token wins; it is
    the same token (the client is made from it), so the warning would only alarm people."""
    return "`token` will be unused" not in record.getMessage()


if _not_the_token_notice not in BOLT_LOG.filters:
    BOLT_LOG.addFilter(_not_the_token_notice)


class SlackDesk:
    def __init__(
        self,
        settings: Settings,
        credentials: SlackCredentials,
        *,
        db: Database,
        desk: AgentDesk,
        queue: AgentQueue,
        events: EventHub,
        clock: Clock,
        windows: ReplyWindows = NO_WINDOWS,
        answers: AnswerSearch | None = None,
        proposals: ProposalMaker | None = None,
    ) -> None:
        slack = settings.slack
        self._credentials = credentials
        client = make_client(credentials.bot_token, slack.api_url)
        pacer = Pacer(slack.posts_per_second, workers=settings.server.total_workers)
        self.api = SlackApi(client, channel=slack.channel, pacer=pacer)
        teams = settings.teams_in_effect()
        self._channels = ", ".join(sorted({settings.slack_channel(t.name) for t in teams} - {""}))
        threads = SlackThreadStore(db, clock=clock)
        self.people = People(
            self.api,
            agents=slack.agents,
            cache_seconds=slack.members_cache_seconds,
            slack_ids={
                agent.label: agent.slack_user_id
                for agent in settings.inbox.agents
                if agent.slack_user_id
            },
        )
        self.sync = ThreadSync(
            api=self.api,
            threads=threads,
            queue=queue,
            hours=BusinessHours(settings.business_hours),
            settings=slack,
            events=events,
            clock=clock,
            labels=EmotionLabelStore(db, clock=clock),
            windows=windows,
            teams=settings,  # each team's channel and first-response target
            mention=self.people.mention,
        )
        self.app = AsyncApp(
            client=client,
            signing_secret=credentials.signing_secret or "",
            # Checked by the desk first (:meth:`_handle`), which hands bolt the body as read.
            request_verification_enabled=False,
            logger=BOLT_LOG,
        )
        library_logs.protect(BOLT_LOG)  # bolt would log request bodies (customer text) at INFO
        listeners = Listeners(
            desk=desk,
            queue=queue,
            threads=threads,
            people=self.people,
            api=self.api,
            settled=self.sync.settled,
            membership=Membership(settings),
            notes=Notes(db, clock=clock),
            events=events,
        )
        self._in_hand: set[asyncio.Future[None]] = set()
        listeners.register(self.app, track=self._tracked)
        if answers is not None:  # /care faq <words>
            FaqCommand(answers=answers, people=self.people).register(self.app, track=self._tracked)
        if proposals is not None:  # the "Add to FAQ" message shortcut
            AddToFaq(
                maker=proposals,
                threads=threads,
                people=self.people,
                api=self.api,
                public_url=settings.server.public_url,
            ).register(self.app, track=self._tracked)
        self._socket: AsyncSocketModeHandler | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._receiving = False

    def mount(self, app: web.Application) -> None:
        """Events API and interactivity requests at /slack/events (signature checked by bolt)."""
        if self._credentials.signing_secret is not None:
            app.router.add_post(EVENTS_PATH, self._handle)

    def join(self, life: Lifecycle) -> None:
        """Take the desk's places in the service's lifecycle (its thread sync, a periodic
        worker, is added to the runtime's workers by whoever builds the service)."""
        life.add(Stage.CLIENTS, "Slack web client", start=self.open, stop=self.close)
        life.add(Stage.FLUSH, "Slack posts", stop=self.flush)
        life.add(Stage.INBOUND, "Slack", start=self.start, stop=self.stop)

    async def _handle(self, request: web.Request) -> web.Response:
        """Slack's request, its signature and then its shape checked here, its text made
        storable, then handed to bolt (which cannot read every body a signed request may carry:
        see :mod:`carebot.desk.slack.payloads`)."""
        if not self._receiving:
            raise web.HTTPServiceUnavailable(text="not receiving (shutting down); retry")
        raw = await request.read()
        headers = request.headers
        if not payloads.signed(
            self._credentials.signing_secret or "",
            raw,
            headers.get("X-Slack-Request-Timestamp", ""),
            headers.get("X-Slack-Signature", ""),
            now=time.time(),
        ):
            log.warning("Refused a Slack request with a missing, wrong or stale signature")
            return web.json_response({"error": "invalid request"}, status=401)
        try:
            body = payloads.readable(raw, request.content_type)
        except payloads.Malformed as exc:
            log.warning("Refused a malformed Slack request: %s", exc)
            raise web.HTTPBadRequest(text=f"not a request Slack sends: {exc}") from exc
        bolt = AsyncBoltRequest(body=body, query=request.query_string, headers=dict(headers))
        return await to_aiohttp_response(await self.app.async_dispatch(bolt))

    def _tracked(self, handler: Listener) -> Listener:
        """``handler`` as a listener whose runs are awaited by :meth:`stop`."""

        @functools.wraps(handler)
        async def tracked(*args: Any, **kwargs: Any) -> Any:
            running = asyncio.get_running_loop().create_future()
            self._in_hand.add(running)
            try:
                return await handler(*args, **kwargs)
            finally:
                self._in_hand.discard(running)
                running.set_result(None)

        return tracked

    async def open(self) -> None:
        """One HTTP session for the desk's Web API calls (bolt's and the sync's)."""
        client = self.api.client
        if client.session is None or client.session.closed:
            client.session = aiohttp.ClientSession()

    async def close(self) -> None:
        """Close the Web API client's session (after :meth:`stop`)."""
        await self.stop()
        session, self.api.client.session = self.api.client.session, None
        if session is not None:
            await session.close()

    async def start(self) -> None:
        """Take events over HTTP (mounted). Socket Mode is the leader's
        (:meth:`connect_socket`): Slack allows few connections per app."""
        self._receiving = True
        log.info("Slack desk started: channel %s, %s", self._channels, self.describe(""))

    @property
    def uses_socket_mode(self) -> bool:
        return self._credentials.app_token is not None

    async def connect_socket(self) -> None:
        """Connect Socket Mode (in the background, trying again while Slack is unreachable)."""
        if self._credentials.app_token is not None and self._socket is None:
            self._socket = AsyncSocketModeHandler(self.app, self._credentials.app_token)
            self._connecting = asyncio.create_task(self._connect(self._socket), name="slack-socket")

    async def disconnect_socket(self) -> None:
        """Disconnect Socket Mode (harmless when not connected)."""
        connecting, self._connecting = self._connecting, None
        if connecting is not None:
            connecting.cancel()  # it retries until connected: only a cancellation ends it
            await asyncio.wait([connecting])
        socket, self._socket = self._socket, None
        if socket is not None:
            await socket.close_async()

    async def _connect(self, socket: AsyncSocketModeHandler) -> None:
        """Connect Socket Mode, trying again while Slack is unreachable (once connected, the
        client reconnects by itself)."""
        await retry(
            socket.connect_async,
            what="Connecting Slack Socket Mode",
            backoff=CONNECT_BACKOFF,
            log=log,
            expected=(Exception,),  # any failure to connect: logged in a line, tried again
        )
        log.info("Slack Socket Mode connected")

    async def stop(self) -> None:
        """Stop taking events: Socket Mode disconnects, HTTP events are answered 503, and
        the agents' actions in hand are finished."""
        self._receiving = False
        await self.disconnect_socket()
        await self.settle()

    async def settle(self, timeout: float = STOP_GRACE) -> None:
        """Wait for the agents' actions in hand (bolt runs them after it has answered Slack),
        at most ``timeout`` seconds."""
        if self._in_hand:
            _done, late = await asyncio.wait(set(self._in_hand), timeout=timeout)
            if late:
                log.error("%d Slack actions did not finish within %gs", len(late), timeout)

    async def flush(self) -> None:
        """Post what Slack is behind on (at shutdown, once the sync has stopped)."""
        if not await self.sync.flush_due(last=True):
            log.warning("Slack is behind on some threads; they are brought up to date later")

    def describe(self, base: str) -> str:
        """How Slack reaches this desk, for the start-up banner."""
        found = []
        if self._credentials.signing_secret is not None:
            found.append(f"events at {base}{EVENTS_PATH}")
        if self._credentials.app_token is not None:
            found.append("Socket Mode")
        return " and ".join(found)
