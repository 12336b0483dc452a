"""One customer across channels: identities linked by a shared phone number or e-mail address,
and merged by an agent; the agent then sees one history."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from carebot.exceptions import StoreError
from carebot.models import ContactDetails, InboundMessage
from carebot.runtime import Runtime
from carebot.store.customers import normalise
from carebot.store.tables import Customer
from tests.service import UPSET, Visitor, count_rows, running_service, service_settings
from tests.telegram_standin import TelegramStandIn, contact_update, text_update
from tests.test_inbox_web import log_in, page, post


def said(channel: str, user: str, text: str = "hello", **profile: str) -> InboundMessage:
    return InboundMessage(
        channel=channel,
        external_user_id=user,
        external_message_id=uuid.uuid4().hex,
        text=text,
        sent_at=datetime.now(UTC),
        profile=profile,
    )


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [
        ("phone", "+49 30 1234-567", "+49301234567"),
        ("phone", "0049 (30) 1234567", "+49301234567"),
        ("phone", "12", None),
        ("phone", "call me", None),
        ("email", " Ann@Example.COM ", "ann@example.com"),
        ("email", "ann at example", None),
    ],
)
def test_contact_values_are_normalised_before_they_link(
    kind: str, value: str, expected: str | None
) -> None:
    assert normalise(kind, value) == expected


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"phone": "+49 30 1234567"}, {"phone": "0049301234567"}),
        ({"email": "Ann@Example.com"}, {"email": "ann@example.com"}),
    ],
    ids=["phone", "email"],
)
async def test_identities_sharing_a_phone_or_email_are_one_customer_with_one_history(
    runtime: Runtime, first: dict[str, str], second: dict[str, str]
) -> None:
    a = await runtime.inbox.receive(said("test", "tg-1", "where is my order", **first))
    b = await runtime.inbox.receive(said("webchat", "visitor-1", "hello again", **second))
    assert a.received.customer_id == b.received.customer_id
    assert await count_rows(runtime.db, Customer) == 1
    history = await runtime.queue.history(a.received.customer_id)
    assert {m.channel for m in history} == {"test", "webchat"}
    case = await runtime.queue.case(b.received.conversation_id)
    assert [p["channel"] for p in case.past] == ["test"]
    linked = [i["linked_by"] for i in case.customer["identities"] if i["channel"] == "webchat"]
    assert linked and linked[0].startswith("same ")


async def test_a_later_contact_form_links_an_existing_customer(runtime: Runtime) -> None:
    first = await runtime.inbox.receive(said("test", "tg-1", phone="+49301234567"))
    later = await runtime.inbox.receive(said("webchat", "visitor-2"))
    assert first.received.customer_id != later.received.customer_id
    await runtime.deliver(ContactDetails("webchat", "visitor-2", {"phone": "+49 30 1234567"}))
    case = await runtime.queue.case(later.received.conversation_id)
    assert case.customer["id"] == first.received.customer_id  # the older customer is kept
    assert await count_rows(runtime.db, Customer) == 1


async def test_values_that_are_not_phone_numbers_link_nobody(runtime: Runtime) -> None:
    await runtime.inbox.receive(said("test", "a", phone="unknown"))
    await runtime.inbox.receive(said("webchat", "b", phone="unknown"))
    assert await count_rows(runtime.db, Customer) == 2


@pytest.mark.parametrize("query", ["#1", "1", "test:tg-9", "+49 170 5550000", "ANN@example.com"])
async def test_an_agent_merges_two_customers(runtime: Runtime, query: str) -> None:
    await runtime.inbox.receive(
        said("test", "tg-9", phone="+491705550000", email="ann@example.com")
    )
    other = await runtime.inbox.receive(said("webchat", "visitor-9"))
    customer_id = await runtime.desk.merge(other.received.conversation_id, "Ann", query)
    assert customer_id == 1 and await count_rows(runtime.db, Customer) == 1
    case = await runtime.queue.case(other.received.conversation_id)
    assert {i["channel"] for i in case.customer["identities"]} == {"test", "webchat"}
    assert "merged by Ann" in {i["linked_by"] for i in case.customer["identities"]}


@pytest.mark.parametrize(
    ("query", "words"),
    [("#77", "No customer matches"), ("nobody@example.com", "No customer"), ("#2", "already")],
)
async def test_a_merge_that_cannot_be_done_is_explained(
    runtime: Runtime, query: str, words: str
) -> None:
    await runtime.inbox.receive(said("test", "tg-1"))
    mine = await runtime.inbox.receive(said("webchat", "visitor-1"))
    with pytest.raises(StoreError, match=words):
        await runtime.desk.merge(mine.received.conversation_id, "Ann", query)
    assert await count_rows(runtime.db, Customer) == 2


async def test_a_customer_on_telegram_and_the_web_chat_shows_one_history_to_the_agent(
    tmp_path: Path, database_url: str
) -> None:
    """Telegram shares a verified phone number; the web chat's contact form gives the same one:
    the agent who gets the web chat handoff sees the Telegram conversation too."""
    async with TelegramStandIn() as tg:
        settings = service_settings(
            tmp_path,
            telegram={"enabled": True, "api_url": f"{tg.url}/bot", "poll_timeout": 5},
        )
        env = {"TELEGRAM_BOT_TOKEN": tg.token}
        async with running_service(settings, database_url, env=env) as (service, server):
            tg.push(text_update(4242, "where is my order"))
            await tg.next_sent(1)
            polls = len(tg.calls_of("getUpdates"))
            tg.push(contact_update(4242, "4930 1234567", user_id=4242))
            # Taken once the poller has answered it and waits for more.
            await tg.wait_for(lambda s: len(s.calls_of("getUpdates")) > polls and s.waiting_polls)
            async with aiohttp.ClientSession() as http:
                visitor = Visitor(await http.ws_connect(server.make_url("/chat/ws")))
                await visitor.hello()
                await visitor.ws.send_json({"type": "contact", "phone": "+49 30 1234567"})
                assert (await visitor.next_of("contact_saved"))["type"] == "contact_saved"
                await visitor.say(UPSET)
                await visitor.next_of("message")
            waiting, _ = await service.runtime.queue.rows()
            [row] = waiting
            case = await service.runtime.queue.case(row.id)
            channels = {i["channel"] for i in case.customer["identities"]}
            assert channels == {"telegram", "webchat"}
            [telegram] = case.past
            assert telegram["messages"][0].text == "where is my order"
            async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as agent:
                await log_in(agent, server)
                _, html, _ = await page(agent, server, f"/inbox/c/{row.id}")
            assert "where is my order" in html and "Linked: same phone +49301234567" in html


async def test_an_agent_merges_from_the_inbox(tmp_path: Path, database_url: str) -> None:
    settings = service_settings(tmp_path)
    async with running_service(settings, database_url) as (service, server):
        runtime = service.runtime
        await runtime.inbox.receive(said("webchat", "visitor-old", "where is my order"))
        async with aiohttp.ClientSession() as http:
            visitor = Visitor(await http.ws_connect(server.make_url("/chat/ws")))
            await visitor.hello()
            await visitor.say(UPSET)
            await visitor.next_of("message")
        waiting, _ = await runtime.queue.rows()
        [row] = waiting
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as agent:
            await log_in(agent, server)
            _, _, csrf = await page(agent, server, f"/inbox/c/{row.id}")
            response = await post(
                agent, server, f"/inbox/c/{row.id}/merge", {"other": "nobody", "csrf": csrf}
            )
            assert response.status == 409  # explained on the page, nothing merged
            response = await post(
                agent,
                server,
                f"/inbox/c/{row.id}/merge",
                {"other": "webchat:visitor-old", "csrf": csrf},
            )
            assert response.status == 303
            _, html, _ = await page(agent, server, f"/inbox/c/{row.id}")
        assert "Linked: merged by Ann" in html and "where is my order" in html
        assert await count_rows(runtime.db, Customer) == 1
