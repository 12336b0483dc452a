"""The Slack desk put together: slack-bolt's async app with the listeners, mounted at
``/slack/events`` (when a signing secret is set) and/or connected over Socket Mode (when an
app-level token is set), and the thread sync running beside them.

Slack is optional and never in the customers' way: when it is unreachable, customers still get
their replies and handoff notices, the built-in inbox shows every conversation, and the sync
posts what Slack missed as soon as it is back.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp

from carebot import library_logs
from carebot.agents import AgentDesk
from carebot.clock import Clock
from carebot.config import Settings
from carebot.desk.slack.api import SlackApi, make_client
from carebot.desk.slack.credentials import SlackCredentials
from carebot.desk.slack.listeners import Listeners
from carebot.desk.slack.people import People
from carebot.desk.slack.sync import ThreadSync
from carebot.events import EventHub
from carebot.hours import BusinessHours
from carebot.pacing import Pacer
from carebot.reply_window import NO_WINDOWS, ReplyWindows
from carebot.store.database import Database
from carebot.store.queue import AgentQueue
from carebot.store.slack_threads import SlackThreadStore

log = logging.getLogger(__name__)
EVENTS_PATH = "/slack/events"
BOLT_LOG = logging.getLogger(f"{__name__}.bolt")


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
    ) -> None:
        slack = settings.slack
        self._credentials = credentials
        client = make_client(credentials.bot_token, slack.api_url)
        self.api = SlackApi(client, channel=slack.channel, pacer=Pacer(slack.posts_per_second))
        threads = SlackThreadStore(db, clock=clock)
        self.people = People(
            self.api, agents=slack.agents, cache_seconds=slack.members_cache_seconds
        )
        self.sync = ThreadSync(
            api=self.api,
            threads=threads,
            queue=queue,
            hours=BusinessHours(settings.business_hours),
            settings=slack,
            events=events,
            clock=clock,
            windows=windows,
        )
        self.app = AsyncApp(
            client=client,
            signing_secret=credentials.signing_secret or "",
            request_verification_enabled=credentials.signing_secret is not None,
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
        )
        listeners.register(self.app)
        self._socket: AsyncSocketModeHandler | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def mount(self, app: web.Application) -> None:
        """Events API and interactivity requests at /slack/events (signature checked by bolt)."""
        if self._credentials.signing_secret is not None:
            app.router.add_post(EVENTS_PATH, self._handle)

    async def _handle(self, request: web.Request) -> web.Response:
        answer = await self.app.async_dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(answer)

    async def start(self) -> None:
        self._tasks.append(asyncio.create_task(self.sync.run(), name="slack-sync"))
        if self._credentials.app_token is not None:
            self._socket = AsyncSocketModeHandler(self.app, self._credentials.app_token)
            self._tasks.append(
                asyncio.create_task(self._connect(self._socket), name="slack-socket")
            )
        log.info("Slack desk started: channel %s, %s", self.api.channel, self.describe(""))

    async def _connect(self, socket: AsyncSocketModeHandler) -> None:
        """Connect Socket Mode, trying again while Slack is unreachable (once connected, the
        client reconnects by itself)."""
        delay = 1.0
        while True:
            try:
                await socket.connect_async()
                log.info("Slack Socket Mode connected")
                return
            except Exception as exc:  # any failure to connect: log it and keep trying
                log.warning(
                    "Slack Socket Mode cannot connect (%s); trying again in %gs", exc, delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60.0)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:  # it died earlier: say so, and let the rest of the shutdown run
                log.exception("The Slack desk's %s task had failed", task.get_name())
        if self._socket is not None:
            await self._socket.close_async()

    def describe(self, base: str) -> str:
        """How Slack reaches this desk, for the start-up banner."""
        found = []
        if self._credentials.signing_secret is not None:
            found.append(f"events at {base}{EVENTS_PATH}")
        if self._credentials.app_token is not None:
            found.append("Socket Mode")
        return " and ".join(found)
