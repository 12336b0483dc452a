"""The 24-hour customer-service window of Meta's channels: agents are warned (inbox and Slack)
before it closes, and a reply after it closed is refused with the reason."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from carebot.exceptions import ReplyWindowClosed
from carebot.reply_window import ReplyWindows
from carebot.server import Service
from tests.conftest import Clock
from tests.graph_standin import GraphStandIn, post_webhook, whatsapp_text
from tests.service import UPSET, running_service, service_settings
from tests.slack_standin import SlackStandIn
from tests.test_inbox_web import log_in, page, post
from tests.test_slack import AGENT, CHANNEL, HTTP_ENV, card_text, card_ts, reply_in_thread

NUMBER, CUSTOMER = "1111", "4917000000001"
META_ENV = {"WHATSAPP_TOKEN": "EAAtest", "META_APP_SECRET": "app-secret", "META_VERIFY_TOKEN": "v"}
WROTE = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("hours_later", "is_open", "closing", "words"),
    [
        (1, True, False, "possible until 2026-11-21 10:00 UTC (in 23 h 0 min)"),
        (23.5, True, True, "(in 30 min)"),
        (25, False, False, "closed at 2026-11-21 10:00 UTC"),
    ],
)
def test_a_window_says_how_long_replies_are_possible(
    hours_later: float, is_open: bool, closing: bool, words: str
) -> None:
    window = ReplyWindows({"whatsapp": 24}, warning_minutes=60).window("whatsapp", WROTE)
    assert window is not None
    now = WROTE + timedelta(hours=hours_later)
    assert window.is_open(now) is is_open and window.closing(now) is closing
    assert words in window.describe(now)


def test_only_channels_with_a_window_have_one() -> None:
    windows = ReplyWindows({"whatsapp": 24})
    assert windows.window("telegram", WROTE) is None
    assert windows.window("whatsapp", None) is None


def test_a_reply_after_the_window_is_refused_with_the_reason() -> None:
    window = ReplyWindows({"whatsapp": 24}).window("whatsapp", WROTE)
    assert window is not None
    window.check(WROTE + timedelta(hours=23))
    with pytest.raises(ReplyWindowClosed, match=r"within 24 h .* last wrote 1 days? ago|26 h"):
        window.check(WROTE + timedelta(hours=26))


@pytest.fixture
async def graph() -> AsyncIterator[GraphStandIn]:
    async with GraphStandIn() as standin:
        standin.whatsapp_number(NUMBER)
        yield standin


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn() as standin:
        standin.add_user(AGENT, name="ann", real_name="Ann Agent", display_name="Ann")
        standin.members = {AGENT, "UBOT"}
        yield standin


@pytest.fixture
async def service(
    tmp_path: Path, database_url: str, clock: Clock, graph: GraphStandIn, slack: SlackStandIn
) -> AsyncIterator[tuple[Service, TestServer]]:
    settings = service_settings(
        tmp_path,
        whatsapp={"enabled": True, "account_id": NUMBER},
        meta={"graph_url": graph.url, "window_warning_minutes": 60},
        slack={"channel": CHANNEL, "api_url": slack.base_url, "posts_per_second": 1000.0},
    )
    env = META_ENV | HTTP_ENV
    async with running_service(settings, database_url, clock, env=env) as running:
        yield running


async def upset_on_whatsapp(server: TestServer, graph: GraphStandIn) -> None:
    payload = whatsapp_text(NUMBER, CUSTOMER, UPSET)
    status, _ = await post_webhook(
        str(server.make_url("/meta/webhook")), payload, app_secret=META_ENV["META_APP_SECRET"]
    )
    assert status == 200
    await graph.next_sent(1)  # the handoff message


async def test_slack_shows_the_window_and_warns_once_before_it_closes(
    service: tuple[Service, TestServer], graph: GraphStandIn, slack: SlackStandIn, clock: Clock
) -> None:
    running, server = service
    await upset_on_whatsapp(server, graph)
    ts = await card_ts(slack)
    assert "Reply window" in card_text(slack.message(CHANNEL, ts))
    assert running.slack is not None
    sync = running.slack.sync

    def warnings() -> list[str]:
        return [m["text"] for m in slack.thread(CHANNEL, ts) if "replies cannot reach" in m["text"]]

    clock.advance(22 * 3600)
    sync.mark(1)
    await sync.flush()
    assert warnings() == []
    clock.advance(3600 + 30 * 60)  # 30 minutes left
    for _ in range(2):
        sync.mark(1)
        await sync.flush()
    [warning] = warnings()
    assert "possible until" in warning and "(in 30 min)" in warning
    clock.advance(3600)  # closed: an agent's reply in the thread is refused, with the reason
    response = await reply_in_thread(server, ts, "Sorry for the wait!")
    assert response.status == 200
    await slack.wait_for("chat.postEphemeral", lambda c: "Not sent" in c.params["text"])
    assert "within 24 h" in slack.ephemeral[-1]["text"]
    assert len(graph.sent) == 1  # nothing more went to WhatsApp


async def test_the_inbox_warns_and_refuses_a_reply_after_the_window(
    service: tuple[Service, TestServer], graph: GraphStandIn, clock: Clock
) -> None:
    _running, server = service
    await upset_on_whatsapp(server, graph)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as agent:
        await log_in(agent, server)
        _, html, _ = await page(agent, server, "/inbox/c/1")
        assert 'id="reply-window-open"' in html and "possible until" in html
        clock.advance(23.5 * 3600)
        await log_in(agent, server)  # the 12 h session ended on the service's clock
        _, html, _ = await page(agent, server, "/inbox/c/1")
        assert 'class="window-note is-closing"' in html and "(in 30 min)" in html
        clock.advance(3600)
        _, html, csrf = await page(agent, server, "/inbox/c/1")
        assert 'class="window-note is-closed"' in html
        response = await post(
            agent, server, "/inbox/c/1/reply", {"text": "Sorry for the wait!", "csrf": csrf}
        )
        assert response.status == 409
        async with agent.post(
            server.make_url("/inbox/c/1/reply"),
            data={"text": "Sorry for the wait!", "csrf": csrf},
            allow_redirects=False,
        ) as answer:
            html = await answer.text()
        assert "Not sent: whatsapp accepts replies only within 24 h" in html
        assert "Sorry for the wait!" in html  # the agent's text is kept
    assert len(graph.sent) == 1
