"""The inbox for a working day in Debian's Chromium (Playwright), against the real service on
loopback (fake encoder, two teams): the views and their tabs, search, notifications of a new
handoff, internal notes, labels and the label filter, assigning to a colleague who then finds it
in "Mine", and resolved conversations that stay listed.

Screenshots go to tests/artifacts/inbox-day/; with CAREBOT_DOCS_SCREENSHOT=1 the queue and the
conversation page also go to docs/ (the README's inbox-queue.png and inbox-conversation.png)."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from carebot.models import InboundMessage
from carebot.server import Service
from carebot.store.tables import OutboxRow
from tests.chromium import launched, needs_chromium
from tests.conftest import Clock
from tests.service import AGENT_PASSWORD, running_service
from tests.test_inbox_day import route, team_settings

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts" / "inbox-day"
UPSET = "I will call my lawyer, the parcel from the Berlin warehouse never arrived"
SENSITIVE = "delete my account"

pytestmark = needs_chromium

# The browser's permission prompt cannot be clicked in a headless browser: this stand-in for the
# Notification API grants what is asked and records what the page shows.
FAKE_NOTIFICATIONS = """
(() => {
  const shown = [];
  let permission = "default";
  class StandInNotification {
    constructor(title, options) { shown.push({ title, body: (options || {}).body }); }
    addEventListener() {}
    static get permission() { return permission; }
    static requestPermission() { permission = "granted"; return Promise.resolve(permission); }
  }
  window.Notification = StandInNotification;
  window.shownNotifications = shown;
})();
"""


@pytest.fixture
async def service(tmp_path: Path, clock: Clock) -> AsyncIterator[tuple[Service, TestServer]]:
    database = f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}"
    async with running_service(team_settings(tmp_path), database, clock) as running:
        yield running


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with launched() as instance:
        yield instance


async def shot(page: Any, name: str, *, docs: str | None = None) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    target = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(target), animations="disabled", full_page=docs is not None)
    if docs and os.environ.get("CAREBOT_DOCS_SCREENSHOT"):
        shutil.copyfile(target, ROOT / "docs" / docs)
        print(f"README screenshot: docs/{docs}")


async def log_in(browser: Any, server: TestServer, name: str, clock: Clock) -> Any:
    context = await browser.new_context(viewport={"width": 1280, "height": 860})
    await context.add_init_script(FAKE_NOTIFICATIONS)
    page = await context.new_page()
    await page.clock.install(time=clock.now)  # the service's time (it flows from there)
    await page.goto(str(server.make_url("/inbox")))
    await page.locator("#login-name").fill(name)
    await page.locator("#login-password").fill(AGENT_PASSWORD)
    await page.locator("#login-button").click()
    await page.locator("#queue").wait_for()
    return page


async def say(service: Service, text: str, visitor: str, **profile: str) -> int:
    runtime = service.runtime
    message = InboundMessage(
        "webchat", visitor, f"{visitor}-{text[:12]}", text, runtime.clock(), profile=profile
    )
    return (await runtime.inbox.receive(message)).received.conversation_id


def rows(page: Any) -> Any:
    return page.locator("#view-list .queue-row")


async def row_ids(page: Any) -> list[int]:
    found = await rows(page).evaluate_all("(rows) => rows.map((r) => r.dataset.conversationId)")
    return [int(i) for i in found]


async def search(page: Any, words: str) -> list[int]:
    await page.locator("#search-words").fill(words)
    await page.locator("#search-button").click()
    await page.locator("#search-note").wait_for()
    return await row_ids(page)


async def test_a_working_day_in_the_inbox(
    service: tuple[Service, TestServer], browser: Any, clock: Clock
) -> None:
    running, server = service
    kim = await say(
        running,
        UPSET,
        "v-kim",
        name="Kim Lee",
        phone="+49 30 123456",
        page_url="https://shop.example/orders/1042",
        page_title="Order 1042 · Example shop",
        browser="Firefox 133 on Linux",
    )
    await route(running.runtime, kim, "billing", "rule 1: billing words")
    clock.advance(120)
    olga = await say(running, SENSITIVE, "v-olga", name="Olga Berg")
    clock.advance(60)
    asked = await say(running, "where is my order", "v-uma", name="Uma")  # the bot answers
    clock.advance(9 * 60)  # billing's 10 minutes for Kim have run out; care has 30 for Olga

    # Ann is in care: her teams' view comes first, with the handoff from before routing.
    ann = await log_in(browser, server, "ann", clock)
    assert await ann.locator(".view-tab[aria-current='page']").get_attribute("data-view") == "teams"
    assert await row_ids(ann) == [olga]
    await ann.locator("#view-all").click()
    await ann.locator("#view-all[aria-current='page']").wait_for()
    assert await row_ids(ann) == [asked, olga, kim]
    billing = ann.locator(f'.queue-row[data-conversation-id="{kim}"]')
    assert await billing.locator(".team-badge").inner_text() == "Billing"
    assert await billing.locator(".row-route").inner_text() == "via rule 1: billing words"
    target = " ".join((await billing.locator(".row-target").text_content() or "").split())
    assert target == "! First reply: breached 2 min ago"
    assert "is-breached" in (await billing.get_attribute("class") or "")
    olga_row = ann.locator(f'.queue-row[data-conversation-id="{olga}"]')
    waiting = " ".join((await olga_row.locator(".row-target").text_content() or "").split())
    assert waiting == "First reply: 20 min left"

    # Search by a contact detail as typed differently, by number, by words in the messages.
    assert await search(ann, "0049 30 123456") == [kim]
    assert await search(ann, f"#{olga}") == [olga]
    assert await search(ann, "warehouse berlin") == [kim]
    await ann.locator("#search-clear").click()
    await ann.locator("#search-note").wait_for(state="detached")

    # Notifications: on by a click; then a new handoff in care chimes and pops up once.
    await ann.locator("#notify-button").click()
    await ann.locator("#notify-button[aria-pressed='true']").wait_for()
    assert await ann.locator("#notify-button").inner_text() == "Notifications on"
    new = await say(running, UPSET, "v-max", name="Max")
    await ann.locator("#notify-button[data-alerts='1']").wait_for()
    assert (await ann.locator("#notify-button").get_attribute("data-last-alert")).endswith("+popup")
    shown = await ann.evaluate("window.shownNotifications")
    assert shown == [
        {
            "title": "New conversation waiting for Customer care",
            "body": f"Conversation #{new}: click to open it.",
        }
    ]
    await ann.locator(f'.queue-row[data-conversation-id="{new}"]').wait_for()  # live

    # Kim's conversation: a note, labels, an assignment to Bob, all in the timeline.
    await ann.locator(f'.queue-row[data-conversation-id="{kim}"]').click()
    await ann.locator("#note-text").fill("Finance approved a refund; Bob sends it.")
    await ann.locator("#note-button").click()
    note = ann.locator(".note")
    await note.wait_for()
    assert "Internal note — the customer does not see this" in await note.inner_text()
    for label in ("Refund ", "VIP"):
        await ann.locator("#label-text").fill(label)
        await ann.locator("#label-button").click()
        kept = label.strip().lower()
        await ann.locator(f'#conv-labels .conv-label[data-label="{kept}"]').wait_for()
    await ann.locator("#assign-to").select_option("bob")
    await ann.locator("#assign-button").click()
    await ann.locator('#assigned-to[data-assigned-to="bob"]').wait_for()
    trail = await ann.locator(".trail-line:not([data-kind='routed'])").all_inner_texts()
    assert [line.split("\n")[0].strip() for line in trail] == [
        "Ann added the label “refund”",
        "Ann added the label “vip”",
        "Ann assigned this to Bob",
    ]
    await ann.locator('.conv-label[data-label="vip"] .label-x').click()
    await ann.locator('#conv-labels .conv-label[data-label="vip"]').wait_for(state="detached")
    assert await ann.locator("#first-response").inner_text() == "! breached 2 min ago"
    page_link = ann.locator("#visitor-page a")
    assert await page_link.inner_text() == "Order 1042 · Example shop"
    assert await page_link.get_attribute("rel") == "noopener noreferrer"
    await ann.locator("#case").evaluate("(el) => { el.scrollTop = 0; }")
    await shot(ann, "conversation", docs="inbox-conversation.png")
    async with running.runtime.db.session() as session:  # nothing of it went to Kim
        sent = list(await session.scalars(select(OutboxRow.text)))
    assert not any("Finance" in text or "Bob" in text for text in sent)

    # The queue row shows the label and the assignee; the label filter narrows to it.
    await ann.goto(str(server.make_url("/inbox?view=all")))
    row = ann.locator(f'.queue-row[data-conversation-id="{kim}"]')
    assert await row.locator(".conv-label").all_inner_texts() == ["refund"]
    assert await row.locator(".row-assignee").inner_text() == "for Bob"
    await ann.locator("#label-filter").select_option("refund")
    await ann.locator("#search-note").wait_for()
    assert await row_ids(ann) == [kim]
    await ann.goto(str(server.make_url("/inbox?view=all")))
    await shot(ann, "queue", docs="inbox-queue.png")

    # Bob (billing) finds it in his teams' view and in "Mine"; the alert was not his.
    bob = await log_in(browser, server, "bob", clock)
    assert await row_ids(bob) == [kim]
    assert await bob.locator("#view-mine .count").inner_text() == "1"
    await bob.locator("#view-mine").click()
    await bob.locator("#view-mine[aria-current='page']").wait_for()
    assert await row_ids(bob) == [kim]

    # Resolved conversations no longer vanish.
    await ann.goto(str(server.make_url(f"/inbox/c/{olga}")))
    await ann.locator("#take-over-button").click()
    await ann.locator("#resolve-button").click()
    await ann.locator("#queue").wait_for()
    await ann.locator("#view-resolved").click()
    await ann.locator("#view-resolved[aria-current='page']").wait_for()
    assert await row_ids(ann) == [olga]

    # Max's conversation goes to the press team, with a note; then Ann steps away.
    await ann.goto(str(server.make_url(f"/inbox/c/{new}")))
    await ann.locator("#transfer-team").select_option("press")
    await ann.locator("#transfer-note").fill("A journalist, not a customer")
    await ann.locator("#transfer-button").click()
    await ann.locator("#transferred-note").wait_for()
    assert await ann.locator("#team").get_attribute("data-team") == "press"
    moved = ann.locator(".trail-line[data-kind='transferred'] .trail-words")
    assert (await moved.inner_text()).strip() == (
        "Ann transferred this from Customer care to Press: “A journalist, not a customer”"
    )
    await ann.locator("#presence-button").click()
    await ann.locator("#presence-form[data-available='false']").wait_for()
    assert await ann.locator("#presence-state").inner_text() == "Away"
    assert ann.url.endswith(f"/inbox/c/{new}")
    assert not await running.runtime.teamwork.available("ann")
