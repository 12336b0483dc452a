"""The ops console in Debian's Chromium (Playwright), against the real service on loopback (fake
encoder, a copy of the test intents, the live reload on): an ops person edits an intent, tries a
message against the live and the edited intents, checks the preview, publishes; a colleague's
older form is refused with the diff; the change is rolled back. And the learning loop: a
customer asks what no intent covers, an agent answers, "Add to FAQ" proposes it, ops remove the
personal data and publish, and the next customer gets the answer from the bot.

Screenshots go to tests/artifacts/console/. (The README's docs/console*.png are taken from the
service on the real model with the sample intents, not from these fake-encoder runs.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from carebot.models import InboundMessage
from carebot.runtime import Runtime
from carebot.server import Service
from carebot.store.proposals import ProposalStore, Status
from tests.chromium import launched, needs_chromium
from tests.conftest import Clock
from tests.service import AGENT_PASSWORD, running_service, service_settings
from tests.test_console_web import AGENTS, reloaded

ARTIFACTS = Path(__file__).resolve().parent / "artifacts" / "console"
VIEWPORT = {"width": 1400, "height": 900}
GIFT_QUESTION = "do you sell gift vouchers"
EMAIL = "kim.lee@example.com"
REPLY = f"Yes, gift vouchers are sold in every shop. I sent the price list to {EMAIL}."
ANSWER = "Yes, gift vouchers are sold in every shop, from 10 euros."
# What customers asked over the last days: answered, asked again, and not answered.
TRAFFIC = [
    "where is my order",
    "where is my order",
    "where is my order please",
    "track my order status",
    "order tracking number",
    "when is my refund coming",
    "refund not received",
    "refund money back",
    "how do I return an item",
    "return policy item",
    "lost my return label",
    "hello",
    "good morning",
    "parcel whereabouts",
    "parcel whereabouts",
    "parcel never arrived",
    "delete my account",
    "gift wrapping possible",
]

pytestmark = needs_chromium


@pytest.fixture
async def service(
    tmp_path: Path, clock: Clock, intents_dir: Path
) -> AsyncIterator[tuple[Service, TestServer]]:
    settings = service_settings(
        tmp_path,
        matcher={"intents_dir": str(intents_dir), "reload": True},
        inbox={"agents": AGENTS},
    )
    database = f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}"
    async with running_service(settings, database, clock) as running:
        reloader = running[0].runtime.reloader
        assert reloader is not None, "the live reload is on in these tests"
        async with asyncio.timeout(10):
            await reloader.watching.wait()
        await customers_asked(running[0].runtime, clock)
        yield running


async def customers_asked(runtime: Runtime, clock: Clock) -> None:
    """The stored traffic the console's numbers and the preview read: one conversation each,
    closed by the idle sweep a day later (the bot's conversations count as automated then)."""
    for n, text in enumerate(TRAFFIC):
        message = InboundMessage("webchat", f"visitor-{n}", f"m-{n}", text, clock())
        await runtime.inbox.receive(message)
        clock.advance(600)
    clock.advance(25 * 3600)
    closed = await runtime.closer.sweep()
    assert len(closed) == len(TRAFFIC) - 1  # "delete my account" waits for a person


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with launched() as instance:
        yield instance


async def new_page(browser: Any) -> Any:
    context = await browser.new_context(viewport=VIEWPORT)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.errors = errors
    return page


async def ops_page(browser: Any, server: TestServer, path: str) -> Any:
    """Olga (roles agent and ops) on ``path``, logged in through the redirect to the login."""
    page = await new_page(browser)
    await page.goto(str(server.make_url(path)))
    await page.locator("#login-name").fill("olga")
    await page.locator("#login-password").fill(AGENT_PASSWORD)
    await page.locator("#login-button").click()
    return page


async def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(
        path=str(ARTIFACTS / f"{name}.png"), full_page=True, animations="disabled"
    )


async def tried(page: Any, text: str) -> list[str]:
    """The try-it box's decisions for ``text``, as shown."""
    await page.locator("#try-text").fill(text)
    await page.locator("#try-button").click()
    decisions = page.locator("#try-result .try-decision")
    await decisions.first.wait_for()
    return [t.strip() for t in await decisions.locator(".try-kind").all_inner_texts()]


async def test_ops_edit_try_preview_publish_a_stale_save_and_roll_back(
    service: tuple[Service, TestServer], browser: Any, intents_dir: Path
) -> None:
    running, server = service
    runtime, shop = running.runtime, intents_dir / "shop.yaml"
    original = shop.read_text()
    page = await ops_page(browser, server, "/console")
    await page.locator("#intent-list").wait_for()
    row = page.locator('#intent-list tr[data-intent="order_status"]')
    cells = [c.strip() for c in await row.locator("td").all_inner_texts()]
    assert cells[1:3] == ["shop.yaml", "3"] and cells[6:] == ["5", "100%", "0"], cells
    # A colleague opens the same intent now, and saves after the first publish.
    colleague = await ops_page(browser, server, "/console/intents/order_status")
    await colleague.locator("#intent-form").wait_for()

    await row.locator("a.intent-link").click()
    await page.locator("#intent-form").wait_for()
    examples = page.locator("#f-examples")
    assert await examples.input_value() == (
        "where is my order\ntrack my order status\norder tracking number"
    )
    await examples.fill(await examples.input_value() + "\nparcel whereabouts\nparcel never arrived")
    live, edited = await tried(page, "parcel whereabouts")
    assert live.startswith("clarify · ") and "score 0.00" in live, live  # no word in common
    assert edited.startswith("answer · order_status · score 1.00"), edited
    assert await page.locator("#try-result h3").all_text_contents() == [
        "Live intents",
        "With this edit",
    ]

    await page.locator("#check-preview").click()
    await page.locator("#preview").wait_for()
    assert "The checks pass" in await page.locator("#checked-ok").inner_text()
    counts = page.locator('#preview-counts li[data-group="newly_answered"]')
    assert (await counts.inner_text()).startswith("3 ")  # the two alike in one row
    table = page.locator('table.preview-table[data-group="newly_answered"] tbody tr')
    rows = [r.split("\t") for r in await table.all_inner_texts()]
    assert sorted(r[0].strip() for r in rows) == [
        "parcel never arrived",
        "parcel whereabouts \u00d72",
    ]
    assert all("answer Order status (1.00)" in r[2] for r in rows), rows
    assert await examples.input_value() == (  # the edit is kept in the form
        "where is my order\ntrack my order status\norder tracking number\n"
        "parcel whereabouts\nparcel never arrived"
    )
    live, edited = await tried(page, "parcel never arrived")
    assert edited.startswith("answer · order_status")
    assert shop.read_text() == original  # nothing written yet
    await shot(page, "1-editor-try-and-preview")

    await page.locator("#publish").click()
    notice = page.locator("#console-notice")
    await notice.wait_for()
    assert "Published: edited order_status (revision 1)" in await notice.inner_text()
    assert "      - parcel never arrived\n" in shop.read_text()
    await reloaded(runtime, 1)
    assert "parcel whereabouts" in runtime.triage.matcher.intents["order_status"].examples

    # The colleague's form was opened before: their save is refused with what changed.
    await colleague.locator("#f-answer").fill("Track your parcel at {tracking_url}.")
    await colleague.locator("#publish").click()
    stale = colleague.locator("#stale-box")
    await stale.wait_for()
    diff = await stale.locator(".diff-add").all_inner_texts()
    assert "+      - parcel whereabouts" in diff and "+      - parcel never arrived" in diff
    assert "Track your parcel" not in shop.read_text()
    await shot(colleague, "2-stale-save")

    await page.goto(str(server.make_url("/console/history")))
    await page.locator('#revision-list tr[data-revision="1"] a').click()
    await page.locator("#revision-diff").wait_for()
    assert "olga" in await page.locator(".page-summary").inner_text()
    await page.locator("#rollback").click()
    await notice.wait_for()
    assert "Done: rollback of revision 1" in await notice.inner_text()
    assert shop.read_text() == original
    await reloaded(runtime, 2)
    assert "parcel whereabouts" not in runtime.triage.matcher.intents["order_status"].examples
    await page.goto(str(server.make_url("/console/history/1")))
    assert "Rolled back by olga" in await page.locator("#reverted").inner_text()
    assert await page.locator("#rollback").count() == 0
    await shot(page, "3-rolled-back")
    assert page.errors == [] and colleague.errors == []


async def test_an_agents_reply_becomes_the_bots_answer(
    service: tuple[Service, TestServer], browser: Any, intents_dir: Path
) -> None:
    from tests.test_browser import bubbles, open_chat, say

    running, server = service
    runtime, shop = running.runtime, intents_dir / "shop.yaml"
    customer = await open_chat(browser, server)
    await say(customer, GIFT_QUESTION)
    await bubbles(customer, "bot").first.wait_for()
    assert "gift vouchers are sold" not in await customer.locator(".carebot-msg").last.inner_text()
    await say(customer, "staff member please")
    await customer.locator(".carebot-notice").wait_for()

    agent = await ops_page(browser, server, "/inbox")
    await agent.locator(".queue-row").first.click()
    await agent.locator("#reply-text").fill(REPLY)
    await agent.locator("#reply-button").click()
    await bubbles(customer, "agent").filter(has_text="gift vouchers are sold").wait_for()
    reply = agent.locator('.msg[data-author="agent"]').filter(has_text=REPLY)
    await reply.locator(".propose-button").click()
    note = agent.locator("#proposed-note")
    await note.wait_for()
    assert "Proposal 1 is in the ops queue" in await note.inner_text()

    await agent.goto(str(server.make_url("/console")))
    waiting = agent.locator('#proposal-queue tr[data-proposal="1"]')
    await waiting.wait_for()
    text = await waiting.inner_text()
    assert "New intent sell_gift_vouchers" in text and "olga · an agent's reply" in text
    assert "1 to check" in text
    await shot(agent, "4-console-proposal-waiting")

    await waiting.locator("a", has_text="Review").click()
    await agent.locator("#proposal-box").wait_for()
    flags = await agent.locator("#proposal-flags li").all_inner_texts()
    assert any(EMAIL in f and "e-mail" in f for f in flags), flags
    assert await agent.locator("#f-answer").input_value() == REPLY
    assert await agent.locator("#f-examples").input_value() == GIFT_QUESTION
    live, edited = await tried(agent, GIFT_QUESTION)
    assert live.startswith("clarify · ") and edited.startswith("answer · sell_gift_vouchers")
    await shot(agent, "5-proposal-review")

    before = shop.read_text()
    await agent.locator("#publish").click()  # the e-mail address is still in the answer
    blocking = agent.locator("#blocking")
    await blocking.wait_for()
    assert "Remove the personal data above" in await blocking.inner_text()
    answer_error = agent.locator('.field-error[data-field="answer"]')
    assert EMAIL in await answer_error.first.inner_text()
    assert shop.read_text() == before
    await agent.locator("#f-answer").fill(ANSWER)
    await agent.locator("#publish").click()
    notice = agent.locator("#console-notice")
    await notice.wait_for()
    assert "Published: created sell_gift_vouchers" in await notice.inner_text()
    assert f"    answer: {ANSWER}\n" in shop.read_text()
    proposal = await ProposalStore(runtime.db, clock=runtime.clock).get(1)
    assert (proposal.status, proposal.decided_by) == (Status.PUBLISHED, "olga")
    await reloaded(runtime, 1)

    newcomer = await open_chat(browser, server)
    await say(newcomer, GIFT_QUESTION)
    await bubbles(newcomer, "bot").filter(has_text=ANSWER).wait_for()
    await shot(newcomer, "6-the-bot-answers")
    assert agent.errors == []
