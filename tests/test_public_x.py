"""X end to end: the service with the X channel against the X stand-in. Mentions answered in
public, moved to private (a DM), hidden and unhidden, an agent's public reply refused by the
personal-data guard, the CRC check and a forged delivery, duplicates and deletions, and shadow
mode posting nothing. The classifier is a fixed stand-in (its quality is bench/public.py's)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from carebot.adapters.x import WEBHOOK_PATH
from carebot.exceptions import PublicRefused
from carebot.models import PublicCategory
from carebot.server import Service
from carebot.store.tables import Message, OutboxRow, PublicItem
from tests import x_standin as x
from tests.conftest import TEST_INTENTS
from tests.fakes import FixedClassifier
from tests.service import count_rows, running_service, service_settings
from tests.x_standin import XStandIn

SECRET = "x-consumer-secret"
TOKEN = "x-user-token"
BRAND = "1500000000000000001"
ANN = x.user("2200000000000000002", "ann_k", "Ann K", followers=321)
ABUSE = "@acme_care you are all idiots and so is your mum"
ENV = {"X_CONSUMER_SECRET": SECRET, "X_USER_TOKEN": TOKEN}


def public_intents(tmp_path: Path) -> Path:
    folder = tmp_path / "intents"
    shutil.copytree(TEST_INTENTS, folder)
    shop = folder / "shop.yaml"
    text = shop.read_text().replace(
        "    answer: Returns are free within 30 days.",
        "    answer: Returns are free within 30 days.\n    public: true",
    )
    text = text.replace(
        "    answer: Track it at {tracking_url}.",
        "    answer: Send us your order number here and we track it.\n    personal_data: true",
    )
    shop.write_text(text)
    return folder


@pytest.fixture
def live() -> list[str]:
    return ["x"]


@pytest.fixture
def cap() -> int:
    return 0


@pytest.fixture
async def x_api() -> AsyncIterator[XStandIn]:
    async with XStandIn(TOKEN) as api:
        yield api


@pytest.fixture
async def service(
    tmp_path: Path, database_url: str, x_api: XStandIn, live: list[str], cap: int
) -> AsyncIterator[tuple[Service, TestServer]]:
    settings = service_settings(
        tmp_path,
        matcher={"intents_dir": str(public_intents(tmp_path))},
        server={"public_url": "https://care.example", "secret_file": str(tmp_path / "key")},
        x={"enabled": True, "user_id": BRAND, "api_url": x_api.url, "monthly_call_cap": cap},
        public={"live": live},
    )
    classifier = FixedClassifier({ABUSE: PublicCategory.SPAM})
    async with running_service(
        settings, database_url, env=ENV, runtime_options={"post_classifier": classifier}
    ) as running:
        yield running


async def deliver(server: TestServer, payload: x.Json, **signing: Any) -> int:
    status, _ = await x.post_webhook(
        str(server.make_url(WEBHOOK_PATH)), payload, **(signing or {"secret": SECRET})
    )
    return status


def mention(text: str, post: str, **extra: Any) -> x.Json:
    return x.tweets(
        BRAND, x.tweet(ANN, f"@acme_care {text}", tweet_id=post, mentions=(BRAND,), **extra)
    )


async def conversation_of(service: Service, post: str) -> int:
    async with service.runtime.db.session() as session:
        found = await session.scalar(
            select(Message.conversation_id).where(Message.external_id == post)
        )
    assert found is not None
    return found


async def test_a_mention_is_answered_in_public_once_with_the_bot_tag(
    service: tuple[Service, TestServer], x_api: XStandIn
) -> None:
    running, server = service
    payload = mention("how do I return an item", "701")
    assert await deliver(server, payload) == 200
    assert await deliver(server, payload) == 200  # X delivers again: one message, one reply

    [call] = x_api.calls
    assert (call.kind, call.body["reply"]) == ("tweet", {"in_reply_to_tweet_id": "701"})
    assert call.body["text"] == "Returns are free within 30 days. (automated reply)"
    assert await count_rows(running.runtime.db, PublicItem) == 1


async def test_a_mention_that_needs_the_order_number_moves_to_a_direct_message(
    service: tuple[Service, TestServer], x_api: XStandIn
) -> None:
    _, server = service
    await deliver(server, mention("where is my order", "702"))
    await x_api.wait_for(lambda api: len(api.calls) == 2)

    dm, note = x_api.calls
    assert (dm.kind, dm.path_id, dm.body) == (
        "dm",
        ANN["id_str"],
        {"text": "Send us your order number here and we track it."},
    )
    assert note.kind == "tweet" and note.body["reply"] == {"in_reply_to_tweet_id": "702"}
    assert note.body["text"].startswith("We've sent you a private message")


async def test_an_abusive_reply_is_hidden_and_an_agent_unhides_it(
    service: tuple[Service, TestServer], x_api: XStandIn
) -> None:
    running, server = service
    ours = x.tweet(x.user(BRAND, "acme_care"), "Our autumn sale is on", tweet_id="600")
    reply = x.tweet(ANN, ABUSE, tweet_id="703", reply_to=("600", BRAND))
    assert await deliver(server, x.tweets(BRAND, ours, reply)) == 200

    assert [(c.kind, c.path_id, c.body) for c in x_api.calls] == [("hide", "703", {"hidden": True})]
    conversation = await conversation_of(running, "703")
    async with running.runtime.db.session() as session:
        item = await session.scalar(
            select(PublicItem).where(PublicItem.conversation_id == conversation)
        )
    assert item is not None and (item.hidden_by, item.hidden_reason) == ("carebot", "spam or abuse")
    await running.runtime.desk.set_hidden(
        conversation, "Ann", message_id=item.message_id, hidden=False
    )
    assert x_api.calls[-1].body == {"hidden": False}


async def test_an_agents_public_reply_with_an_email_address_is_refused(
    service: tuple[Service, TestServer], x_api: XStandIn
) -> None:
    running, server = service
    await deliver(server, mention("when is my refund coming", "704"))  # not public: an agent
    conversation = await conversation_of(running, "704")

    with pytest.raises(PublicRefused, match="e-mail address"):
        await running.runtime.desk.reply(conversation, "Ann", "mail us at care@acme.example")
    assert x_api.calls == []
    await running.runtime.desk.reply(conversation, "Ann", "Refunds take 5 days, sorry!")
    [call] = x_api.calls
    assert call.body["text"] == "Refunds take 5 days, sorry! - Ann"


async def test_the_crc_check_is_answered_and_a_forged_delivery_is_refused(
    service: tuple[Service, TestServer], x_api: XStandIn
) -> None:
    running, server = service
    async with aiohttp.ClientSession() as session:
        url = server.make_url(WEBHOOK_PATH).with_query(crc_token="abc123")
        async with session.get(url) as response:
            assert response.status == 200
            assert await response.json() == {"response_token": x.sign(SECRET, b"abc123")}
    forged = x.sign("not-the-secret", x.dumps(mention("hi", "705")))
    assert await deliver(server, mention("hi", "705"), signature_=forged) == 403
    assert await count_rows(running.runtime.db, Message) == 0 and x_api.calls == []


async def test_a_deleted_post_is_marked_removed_for_agents(
    service: tuple[Service, TestServer], x_api: XStandIn
) -> None:
    running, server = service
    await deliver(server, mention("how do I return an item", "706"))
    await deliver(server, x.deleted(BRAND, "706", ANN["id_str"]))

    async with running.runtime.db.session() as session:
        removed = await session.scalar(select(PublicItem.removed_at))
    assert removed is not None
    assert len(x_api.calls) == 1  # carebot had replied before; nothing more


@pytest.mark.parametrize("live", [[]])
async def test_shadow_mode_posts_nothing_on_x(
    service: tuple[Service, TestServer], x_api: XStandIn
) -> None:
    running, server = service
    await deliver(server, mention("how do I return an item", "707"))
    ours = x.tweet(x.user(BRAND, "acme_care"), "Sale!", tweet_id="601")
    await deliver(
        server, x.tweets(BRAND, ours, x.tweet(ANN, ABUSE, tweet_id="708", reply_to=("601", BRAND)))
    )
    assert x_api.calls == []
    handoff = await running.runtime.handoffs.open_handoff(await conversation_of(running, "707"))
    assert handoff is not None and handoff.draft == "Returns are free within 30 days."


@pytest.mark.parametrize("cap", [1])
async def test_the_monthly_call_cap_holds_replies_back_until_the_next_month(
    service: tuple[Service, TestServer], x_api: XStandIn
) -> None:
    running, server = service
    await deliver(server, mention("how do I return an item", "709"))
    await deliver(server, mention("how do I return an item again", "710"))

    assert [c.body["reply"]["in_reply_to_tweet_id"] for c in x_api.calls] == ["709"]
    async with running.runtime.db.session() as session:
        waiting = (
            await session.execute(
                select(OutboxRow.status, OutboxRow.last_error, OutboxRow.next_attempt_at).where(
                    OutboxRow.status == "pending"
                )
            )
        ).all()
    [(status, error, retry_at)] = waiting
    assert "monthly call cap (1 calls" in error
    # tried again at the start of the next month (UTC), not before
    assert (status, retry_at.day, retry_at.hour, retry_at.minute) == ("pending", 1, 0, 0)
    assert await running.runtime.public_actions.calls("x") == 1


async def test_a_reply_longer_than_x_takes_is_refused_not_cut(
    service: tuple[Service, TestServer], x_api: XStandIn
) -> None:
    running, server = service
    await deliver(server, mention("when is my refund coming", "711"))
    conversation = await conversation_of(running, "711")
    with pytest.raises(PublicRefused, match="at most 280 characters"):
        await running.runtime.desk.reply(conversation, "Ann", "Sorry! " * 45)
    # a link counts as 23 characters, however long it is
    long_link = "https://northwind.example/help/" + "a" * 300
    await running.runtime.desk.reply(conversation, "Ann", f"See {long_link}")
    [call] = x_api.calls
    assert call.body["text"].startswith("See https://")
