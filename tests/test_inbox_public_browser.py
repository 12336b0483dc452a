"""A public comment in the inbox, in Debian's Chromium (Playwright), against the real service on
loopback (fake encoder, the real personal-data guard): the agent narrows the queue to public
conversations, opens a Facebook comment, reads the public panel (kept current live when the
customer edits the comment), is refused an e-mail address in public with the text kept, and
replies publicly.

Screenshots go to tests/artifacts/inbox-public/."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from carebot.models import PublicChange
from carebot.server import Service
from tests.chromium import launched, needs_chromium
from tests.conftest import Clock
from tests.fakes import PublicRecordingChannel
from tests.service import AGENT_PASSWORD
from tests.test_inbox_public import comment, public_service, received
from tests.test_public_pipeline import CHANNEL, COMPLAINT, intents  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts" / "inbox-public"

pytestmark = needs_chromium


@pytest.fixture
def channel() -> PublicRecordingChannel:
    return PublicRecordingChannel(CHANNEL)


@pytest.fixture
async def service(
    tmp_path: Path,
    clock: Clock,
    channel: PublicRecordingChannel,
    intents: Path,  # noqa: F811
) -> AsyncIterator[tuple[Service, TestServer]]:
    database = f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}"
    async with public_service(tmp_path, database, clock, channel, intents) as running:
        yield running


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with launched() as instance:
        yield instance


async def text(locator: Any) -> str:
    """What the element says, screen readers' words included, spaces squeezed."""
    return " ".join((await locator.inner_text()).split())


async def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), animations="disabled")


async def test_an_agent_reads_the_public_panel_and_replies_publicly(
    service: tuple[Service, TestServer],
    browser: Any,
    channel: PublicRecordingChannel,
    clock: Clock,
) -> None:
    running, server = service
    cid, message_id = await received(running, comment(COMPLAINT, reach=1204, clock=clock))

    context = await browser.new_context(viewport={"width": 1280, "height": 860})
    page = await context.new_page()
    await page.clock.install(time=clock.now)
    await page.goto(str(server.make_url("/inbox?view=all")))
    await page.locator("#login-name").fill("ann")
    await page.locator("#login-password").fill(AGENT_PASSWORD)
    await page.locator("#login-button").click()
    await page.locator("#queue").wait_for()

    # The queue, narrowed to public conversations by the filter (it applies when chosen).
    await page.locator("#visibility-filter").select_option("public")
    await page.locator("#search-note").wait_for()
    row = page.locator(f'.queue-row[data-conversation-id="{cid}"]')
    assert await text(row.locator(".public-badge")) == "Public · Facebook comment"
    assert await text(row.locator(".tag.category")) == "Classified as complaint"
    await shot(page, "queue")
    await row.click()

    # The public panel: the post, its link, the comment with its classification and reach.
    panel = page.locator("#public-panel")
    await panel.wait_for()
    assert "Autumn boots are here" in await panel.locator("#public-post").inner_text()
    link = panel.locator("#public-post-link")
    assert (await link.get_attribute("target"), await link.get_attribute("rel")) == (
        "_blank",
        "noopener noreferrer",
    )
    item = panel.locator(f"#p{message_id}")
    assert await text(item.locator(".tag.category")) == "Classified as complaint"
    assert await item.locator(".public-reach").inner_text() == "1,204 followers"

    # The customer edits the comment: the panel follows live, the earlier text kept.
    await running.runtime.deliver(
        PublicChange(CHANNEL, "c1", "edited", clock.now, text="worst service ever, no refund")
    )
    await item.locator(".public-edits").wait_for()
    assert await item.locator(".public-text").inner_text() == "worst service ever, no refund"
    assert await item.locator(".public-old").inner_text() == COMPLAINT

    # An e-mail address in public is refused above the box, the text kept; nothing posted.
    box = page.locator("#reply-text")
    await box.fill("Sorry! Write to care@shop.example and we refund you")
    await box.press("Control+Enter")  # in public no shortcut posts: the agent chooses
    await page.locator("#reply-public-button").click()
    error = page.locator("#reply-error")
    await error.wait_for()
    assert (await error.inner_text()).startswith(
        "Not posted in public. The reply contains an e-mail address"
    )
    assert await box.input_value() == "Sorry! Write to care@shop.example and we refund you"
    assert channel.actions == []
    await shot(page, "refused")

    # A public reply, signed: it goes under the comment and reads so in the transcript.
    await box.fill("Sorry to hear this, we are looking into your refund now")
    await page.locator("#reply-public-button").click()
    line = page.locator('.msg[data-public-action="reply"]')
    await line.wait_for()
    assert await line.locator(".public-action-label").inner_text() == "Replied in public"
    assert channel.actions == [
        ("reply", "c1", "Sorry to hear this, we are looking into your refund now - Ann")
    ]
    await shot(page, "replied")
    await context.close()
