"""Public conversations (comments and mentions) in the built-in inbox, through the real aiohttp
service: the queue row and the visibility filter, the public panel (the post, each comment with
its classification, reach, edits, removal, hiding, the bot's plan), replying publicly or
privately, the personal-data guard's refusal (the real guard, the runtime's default) and the
platforms' rules shown to the agent with their text kept, hiding and unhiding, and one agent at
a time."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from html import escape, unescape
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from carebot.desk.auth import hash_password
from carebot.models import InboundMessage, PublicCategory, PublicChange, PublicContext
from carebot.runtime import build_runtime
from carebot.server import Service, build_app
from tests.conftest import EXACT_BACKOFF, Clock
from tests.fakes import FakeEncoder, FixedClassifier, PublicRecordingChannel
from tests.migrated import migrate
from tests.service import AGENT_PASSWORD, service_settings
from tests.test_public_pipeline import CHANNEL, COMPLAINT, SPAM, intents  # noqa: F401

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
RETURNS = "how do I return an item"
POST_URL = "https://www.facebook.com/shop/posts/p1"
HASH = hash_password(AGENT_PASSWORD)
AGENTS = [
    {"name": "ann", "display_name": "Ann", "password_hash": HASH},
    {"name": "bob", "display_name": "Bob", "password_hash": HASH},
]


@asynccontextmanager
async def public_service(
    tmp_path: Path,
    database_url: str,
    clock: Clock,
    channel: PublicRecordingChannel,
    intents_dir: Path,
    *,
    live: Sequence[str] = (CHANNEL,),
) -> AsyncIterator[tuple[Service, TestServer]]:
    """The service with a public channel (Facebook Page comments on ``messenger``), the
    classifier's stand-in and the real personal-data guard; ``live``: not in shadow mode."""
    settings = service_settings(
        tmp_path,
        inbox={"agents": AGENTS},
        matcher={"intents_dir": str(intents_dir)},
        public={"live": list(live)},
    )
    await migrate(database_url)
    categories = {SPAM: PublicCategory.SPAM, COMPLAINT: PublicCategory.COMPLAINT}
    runtime = await build_runtime(
        settings,
        encoder=FakeEncoder(),
        channels={CHANNEL: channel},
        clock=clock,
        database_url=database_url,
        backoff=EXACT_BACKOFF,
        post_classifier=FixedClassifier(categories),
    )
    service = build_app(settings, runtime, env={})
    server = TestServer(service.app)
    await server.start_server()
    try:
        yield service, server
    finally:
        await server.close()


@pytest.fixture
def channel() -> PublicRecordingChannel:
    return PublicRecordingChannel(CHANNEL)


@pytest.fixture
def live() -> tuple[str, ...]:
    return (CHANNEL,)


@pytest.fixture
async def service(
    tmp_path: Path,
    database_url: str,
    clock: Clock,
    channel: PublicRecordingChannel,
    intents: Path,  # noqa: F811
    live: tuple[str, ...],
) -> AsyncIterator[tuple[Service, TestServer]]:
    async with public_service(
        tmp_path, database_url, clock, channel, intents, live=live
    ) as running:
        yield running


@pytest.fixture
async def browser() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


def comment(
    text: str, *, cid: str = "c1", user: str = "u1", reach: int | None = None, clock: Clock
) -> InboundMessage:
    """A Facebook comment under the post p1."""
    return InboundMessage(
        channel=CHANNEL,
        external_user_id=user,
        external_message_id=cid,
        text=text,
        sent_at=clock.now,
        profile={"name": "Lea Park"},
        public=PublicContext(
            thread="p1",
            post_text="Autumn boots are here",
            post_url=POST_URL,
            reach=reach,
        ),
    )


async def received(service: Service, message: InboundMessage) -> tuple[int, int]:
    """(conversation id, message id) of a message carebot took in."""
    outcome = await service.runtime.inbox.receive(message)
    return outcome.received.conversation_id, outcome.received.message_id


async def page(browser: aiohttp.ClientSession, server: TestServer, path: str) -> tuple[str, str]:
    async with browser.get(server.make_url(path)) as response:
        assert response.status == 200, path
        html = await response.text()
    match = CSRF.search(html)
    return html, match.group(1) if match else ""


async def post(
    browser: aiohttp.ClientSession, server: TestServer, path: str, data: dict[str, Any]
) -> tuple[int, str]:
    async with browser.post(server.make_url(path), data=data, allow_redirects=False) as response:
        return response.status, await response.text()


async def log_in(browser: aiohttp.ClientSession, server: TestServer, name: str = "ann") -> None:
    _, csrf = await page(browser, server, "/inbox/login")
    status, _ = await post(
        browser,
        server,
        "/inbox/login",
        {"name": name, "password": AGENT_PASSWORD, "csrf": csrf, "next": "/inbox"},
    )
    assert status == 303


def words(html: str) -> str:
    """The page's text, tags dropped and spaces squeezed, for phrases that span elements."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def panel(html: str) -> str:
    found = re.search(r'<section id="public-panel".*?</section>', html, re.S)
    assert found is not None, "no public panel"
    return found.group(0)


def public_item(html: str, message_id: int) -> str:
    """The words of one public message's entry in the panel."""
    for part in panel(html).split('<li class="public-item"')[1:]:
        if part.startswith(f' id="p{message_id}"'):
            return words(part)
    raise AssertionError(f"message {message_id} is not in the public panel")


def reply_box(html: str) -> str:
    found = re.search(r'<textarea name="text" id="reply-text"[^>]*>(.*?)</textarea>', html, re.S)
    assert found is not None, "no reply box"
    return unescape(found.group(1))


@pytest.mark.parametrize("live", [()])  # shadow mode: carebot shows what it would have done
async def test_the_public_panel_shows_the_post_the_comments_and_the_bots_plan(
    service: tuple[Service, TestServer],
    browser: aiohttp.ClientSession,
    channel: PublicRecordingChannel,
    clock: Clock,
) -> None:
    running, server = service
    cid, first = await received(running, comment(RETURNS, reach=1204, clock=clock))
    spam_cid, spam = await received(running, comment(SPAM, cid="c2", user="u2", clock=clock))
    await running.runtime.deliver(
        PublicChange(CHANNEL, "c1", "edited", clock.now, text="how do I return these boots")
    )
    await log_in(browser, server)

    html, _ = await page(browser, server, f"/inbox/c/{cid}")
    shown = words(panel(html))
    assert "Public Facebook comment" in shown
    assert "Autumn boots are here" in shown
    link = re.search(r'<a id="public-post-link"[^>]*>', html)
    assert link is not None
    assert f'href="{POST_URL}"' in link.group(0)
    assert 'target="_blank"' in link.group(0) and 'rel="noopener noreferrer"' in link.group(0)
    first_item = public_item(html, first)
    assert "Classified as care request" in first_item
    assert "1,204 followers" in first_item
    assert "how do I return these boots" in first_item
    assert f"Edited — earlier version: {RETURNS}" in first_item
    assert (
        "Shadow mode: carebot would have replied publicly: "
        "«Returns are free within 30 days. (automated reply)»"
    ) in first_item
    assert "Public replies go under this one" in first_item  # the latest comment
    assert channel.actions == []  # shadow mode posted nothing
    # the reply box: two choices, no reply window (public replies have none), no one-click draft
    assert 'id="reply-public-button"' in html and 'id="reply-private-button"' in html
    assert 'id="reply-window' not in html and 'id="send-draft-button"' not in html
    assert "signed “- Ann”" in words(html)

    spam_page, _ = await page(browser, server, f"/inbox/c/{spam_cid}")
    spam_item = public_item(spam_page, spam)
    assert "Classified as spam" in spam_item
    assert "Shadow mode: carebot would have hidden it (spam or abuse)" in spam_item
    assert "Hidden" not in spam_item  # it was not


async def test_the_queue_marks_public_rows_and_filters_by_visibility(
    service: tuple[Service, TestServer], browser: aiohttp.ClientSession, clock: Clock
) -> None:
    running, server = service
    public_id, _ = await received(running, comment(COMPLAINT, clock=clock))
    private = InboundMessage(CHANNEL, "u9", "m9", "speak to staff member", clock.now)
    private_id, _ = await received(running, private)
    await log_in(browser, server)

    html, _ = await page(browser, server, "/inbox?view=all")
    row = re.search(rf'data-conversation-id="{public_id}".*?</a>', html, re.S)
    assert row is not None
    assert "Public · Facebook comment" in words(row.group(0))
    assert "Classified as complaint" in words(row.group(0))
    assert f'data-conversation-id="{private_id}"' in html

    def ids(html: str) -> set[int]:
        return {
            int(i)
            for i in re.findall(r'class="queue-row[^"]*"[^>]*data-conversation-id="(\d+)"', html)
        }

    assert ids((await page(browser, server, "/inbox?view=all&visibility=public"))[0]) == {public_id}
    assert ids((await page(browser, server, "/inbox?view=all&visibility=private"))[0]) == {
        private_id
    }
    async with browser.get(server.make_url("/inbox?visibility=secret")) as response:
        assert response.status == 400
        assert "visibility must be public or private" in await response.text()


async def test_an_agent_replies_publicly_then_privately_and_a_second_private_reply_is_refused(
    service: tuple[Service, TestServer],
    browser: aiohttp.ClientSession,
    channel: PublicRecordingChannel,
    clock: Clock,
) -> None:
    running, server = service
    cid, _ = await received(running, comment(COMPLAINT, clock=clock))
    await log_in(browser, server)
    _, csrf = await page(browser, server, f"/inbox/c/{cid}")
    reply = f"/inbox/c/{cid}/reply"

    status, _ = await post(
        browser, server, reply, {"csrf": csrf, "text": "So sorry, we are on it", "private": "0"}
    )
    assert status == 303
    assert channel.actions == [("reply", "c1", "So sorry, we are on it - Ann")]
    status, _ = await post(
        browser, server, reply, {"csrf": csrf, "text": "Could you send your order?", "private": "1"}
    )
    assert status == 303
    assert channel.actions[-1] == ("private_reply", "c1", "Could you send your order?")

    html, _ = await page(browser, server, f"/inbox/c/{cid}")
    lines = re.findall(r'data-public-action="(\w+)"', html)
    assert lines == ["reply", "private_reply"]
    assert "Replied in public Ann" in words(html) and "Replied privately Ann" in words(html)
    assert "Answered privately by Ann at" in words(panel(html))

    status, html = await post(
        browser, server, reply, {"csrf": csrf, "text": "One more thing", "private": "1"}
    )
    assert status == 409
    error = re.search(r'<p class="action-error reply-error" id="reply-error"[^>]*>(.*?)</p>', html)
    assert error is not None
    assert unescape(error.group(1)).startswith(
        "Not sent privately: this comment was already answered privately on "
    )
    assert "allows one private reply per comment" in unescape(error.group(1))
    assert reply_box(html) == "One more thing"
    assert len(channel.actions) == 2

    # the customer answers the private reply: that conversation links back to the thread
    dm = InboundMessage(CHANNEL, "u1", "m-1", "order 48213", clock.now)
    private, _ = await received(running, dm)
    html, _ = await page(browser, server, f"/inbox/c/{private}")
    assert f'<a href="/inbox/c/{cid}">the public thread #{cid}</a>' in html


async def test_an_email_address_in_a_public_reply_is_refused_and_the_text_is_kept(
    service: tuple[Service, TestServer],
    browser: aiohttp.ClientSession,
    channel: PublicRecordingChannel,
    clock: Clock,
) -> None:
    running, server = service
    cid, _ = await received(running, comment(COMPLAINT, clock=clock))
    await log_in(browser, server)
    _, csrf = await page(browser, server, f"/inbox/c/{cid}")
    text = "Write to ann@shop.example and we sort it out"

    status, html = await post(
        browser, server, f"/inbox/c/{cid}/reply", {"csrf": csrf, "text": text, "private": "0"}
    )

    assert status == 409
    assert (
        escape(
            "Not posted in public. The reply contains an e-mail address (an…@…example). "
            "Reply privately instead, or remove it.",
            quote=False,
        )
        in html
    )
    assert html.index('id="reply-error"') < html.index('id="reply-text"')  # above the box
    assert reply_box(html) == text
    assert channel.actions == []


async def test_an_agent_unhides_and_hides_a_comment(
    service: tuple[Service, TestServer],
    browser: aiohttp.ClientSession,
    channel: PublicRecordingChannel,
    clock: Clock,
) -> None:
    running, server = service
    cid, message_id = await received(running, comment(SPAM, clock=clock))
    assert channel.actions == [("hide", "c1", "")]  # hide_spam: carebot hid it
    await log_in(browser, server)
    html, csrf = await page(browser, server, f"/inbox/c/{cid}")
    assert "Hidden by carebot: spam or abuse" in words(panel(html))
    assert f'id="unhide-{message_id}"' in html
    hide = f"/inbox/c/{cid}/hide"

    status, _ = await post(
        browser, server, hide, {"csrf": csrf, "message_id": str(message_id), "hidden": "0"}
    )
    assert status == 303
    assert channel.actions[-1] == ("unhide", "c1", "")
    html, _ = await page(browser, server, f"/inbox/c/{cid}")
    assert "Hidden" not in words(panel(html)) and f'id="hide-{message_id}"' in html
    assert "Unhid the comment Ann" in words(html)

    status, _ = await post(
        browser, server, hide, {"csrf": csrf, "message_id": str(message_id), "hidden": "1"}
    )
    assert status == 303
    assert channel.actions[-1] == ("hide", "c1", "")
    html, _ = await page(browser, server, f"/inbox/c/{cid}")
    assert "Hidden by Ann" in words(panel(html))
    assert re.findall(r'data-public-action="(\w+)"', html) == ["hide", "unhide", "hide"]

    # refused by the platform's rules, with the reason; a wrong value is a bad request
    status, html = await post(
        browser, server, hide, {"csrf": csrf, "message_id": str(message_id), "hidden": "1"}
    )
    assert status == 409 and "Not hidden: the comment is hidden already." in html
    status, html = await post(
        browser, server, hide, {"csrf": csrf, "message_id": str(message_id), "hidden": "yes"}
    )
    assert status == 400 and "hidden must be 1 (hide) or 0 (unhide)" in html
    assert len(channel.actions) == 3


async def test_one_agent_answers_a_comment_at_a_time(
    service: tuple[Service, TestServer], channel: PublicRecordingChannel, clock: Clock
) -> None:
    running, server = service
    cid, _ = await received(running, comment(COMPLAINT, clock=clock))
    async with (
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as ann,
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as bob,
    ):
        await log_in(ann, server, "ann")
        await log_in(bob, server, "bob")
        _, ann_csrf = await page(ann, server, f"/inbox/c/{cid}")
        _, bob_csrf = await page(bob, server, f"/inbox/c/{cid}")
        reply = f"/inbox/c/{cid}/reply"
        await post(ann, server, reply, {"csrf": ann_csrf, "text": "On it", "private": "0"})

        status, html = await post(
            bob, server, reply, {"csrf": bob_csrf, "text": "Sent you a note", "private": "1"}
        )
        assert status == 409
        assert (
            "Ann is answering this comment. Take it over? Your reply is sent privately once "
            "you have it."
        ) in words(html)
        assert '<input type="hidden" name="private" value="1">' in html
        status, _ = await post(
            bob,
            server,
            reply,
            {"csrf": bob_csrf, "text": "Sent you a note", "private": "1", "from_colleague": "1"},
        )
        assert status == 303
    assert channel.actions == [
        ("reply", "c1", "On it - Ann"),
        ("private_reply", "c1", "Sent you a note"),
    ]
