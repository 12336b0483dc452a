"""The X channel: its Account Activity webhook (CRC, signature, deliveries translated) on a real
aiohttp server, and its X API calls (reply, DM, hide; errors, rate limits, the per-call hook)
with the real client against the X stand-in."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from carebot.adapters.x import WEBHOOK_PATH, XChannel
from carebot.adapters.x_api import XApi
from carebot.config import Settings
from carebot.exceptions import ConfigError, DeliveryError
from carebot.models import (
    ChannelEvent,
    Choice,
    InboundMessage,
    OutboundReply,
    PublicAction,
    PublicActionKind,
    PublicChange,
)
from carebot.pacing import Pacer
from carebot.platforms import build_platforms
from carebot.public.actions import PrivateReplySent, perform
from tests import x_standin as x
from tests.x_standin import XStandIn

SECRET = "x-consumer-secret"
TOKEN = "x-user-token"
BRAND = "1500000000000000001"
ANN = x.user("2200000000000000002", "ann_k", "Ann K", followers=321)
OTHER = x.user("3300000000000000003", "bob")
BRAND_USER = x.user(BRAND, "acme_care", "Acme Care")
NOW = 1_790_000_000.0  # the API client's clock, epoch seconds


@dataclass
class Rig:
    channel: XChannel
    api: XStandIn
    url: str  # the webhook's
    received: list[ChannelEvent] = field(default_factory=list)

    async def post(self, payload: x.Json | bytes, **kwargs: Any) -> tuple[int, str]:
        kwargs = kwargs or {"secret": SECRET}
        return await x.post_webhook(self.url, payload, **kwargs)

    def only(self) -> ChannelEvent:
        assert len(self.received) == 1, self.received
        return self.received[0]


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    async with XStandIn(TOKEN) as api:
        received: list[ChannelEvent] = []
        client = XApi(base_url=api.url, token=TOKEN, clock=lambda: NOW)
        channel = XChannel(api=client, user_id=BRAND, consumer_secret=SECRET, pacer=Pacer(100.0))
        app = web.Application()
        channel.mount(app)
        server = TestServer(app)
        await server.start_server()
        r = Rig(channel, api, str(server.make_url(WEBHOOK_PATH)), received)

        async def deliver(event: ChannelEvent) -> None:
            received.append(event)

        await channel.start(deliver)
        try:
            yield r
        finally:
            await channel.close()
            await server.close()


# The webhook: CRC and signature


async def test_the_crc_answer_is_the_base64_hmac_of_the_token(rig: Rig) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(rig.url, params={"crc_token": "challenge-1"}) as response:
            assert response.status == 200
            answer = await response.json()
        async with http.get(rig.url) as missing:
            assert missing.status == 400
    # base64(HMAC-SHA256(key=SECRET, msg="challenge-1")), as openssl gives it:
    # printf challenge-1 | openssl dgst -sha256 -hmac x-consumer-secret -binary | base64
    assert answer == {"response_token": x.sign(SECRET, b"challenge-1")}
    assert answer["response_token"] == "sha256=cptw904dfwxziAeU7fBlLV2VwcsPqed52+QnsbeUB3s="


@pytest.mark.parametrize(
    ("signing", "status"),
    [
        ({}, 401),  # no header
        ({"signature_": "sha256=" + "A" * 43 + "="}, 403),
        ({"secret": "someone-else's-secret"}, 403),
        ({"signature_": x.sign(SECRET, b"another body")}, 403),
    ],
)
async def test_an_unsigned_or_forged_delivery_is_refused_and_nothing_taken(
    rig: Rig, signing: dict[str, str], status: int
) -> None:
    payload = x.tweets(BRAND, x.tweet(ANN, "@acme_care help", mentions=(BRAND,)))
    if not signing:
        got, _ = await x.post_webhook(rig.url, payload)
    else:
        got, _ = await rig.post(payload, **signing)
    assert got == status
    assert rig.received == []


# The webhook: deliveries


def quoted_brand() -> x.Json:
    return x.tweet(BRAND_USER, "Our spring sale starts today!", tweet_id="1700000000000000001")


@pytest.mark.parametrize(
    ("post", "kind", "thread", "parent", "addressed", "post_text"),
    [
        (  # a top-level @mention starts its own thread
            x.tweet(ANN, "@acme_care my parcel is late", tweet_id="9001", mentions=(BRAND,)),
            "mention",
            "9001",
            None,
            True,
            "",
        ),
        (  # a reply to the brand's answer joins that thread (the core finds it by parent)
            x.tweet(ANN, "@acme_care still nothing", tweet_id="9002", reply_to=("8000", BRAND)),
            "reply",
            "8000",
            "8000",
            True,
            "",
        ),
        (  # a reply to someone else's post that does not mention the brand
            x.tweet(ANN, "@bob same here", tweet_id="9003", reply_to=("8001", OTHER["id_str"])),
            "reply",
            "8001",
            "8001",
            False,
            "",
        ),
        (  # a quote of the brand's post
            x.tweet(ANN, "Does it include shoes?", tweet_id="9004", quoted=quoted_brand()),
            "quote",
            "9004",
            None,
            True,
            "Our spring sale starts today!",
        ),
        (  # a quote of someone else's post, @mentioning the brand
            x.tweet(
                ANN,
                "@acme_care look at this",
                tweet_id="9005",
                mentions=(BRAND,),
                quoted=x.tweet(OTHER, "my acme kettle broke", tweet_id="7000"),
            ),
            "mention",
            "9005",
            None,
            True,
            "my acme kettle broke",
        ),
    ],
    ids=["mention", "reply-to-brand", "reply-elsewhere", "quote", "quote-of-other"],
)
async def test_a_post_becomes_a_public_message(
    rig: Rig,
    post: x.Json,
    kind: str,
    thread: str,
    parent: str | None,
    addressed: bool,
    post_text: str,
) -> None:
    assert await rig.post(x.tweets(BRAND, post)) == (200, '{"ok": true}')
    message = rig.only()
    assert isinstance(message, InboundMessage)
    assert (message.channel, message.external_user_id) == ("x", ANN["id_str"])
    assert message.external_message_id == post["id_str"]
    assert message.text == post["text"]  # as the customer wrote it, @handles included
    assert message.sent_at.timestamp() == int(post["timestamp_ms"]) / 1000
    assert message.profile == {"name": "Ann K", "username": "ann_k"}
    assert message.raw["id_str"] == post["id_str"]
    public = message.public
    assert public is not None
    assert (public.kind, public.thread, public.parent_id) == (kind, thread, parent)
    assert (public.addressed, public.post_text, public.reach) == (addressed, post_text, 321)
    assert public.post_url == f"https://x.com/ann_k/status/{post['id_str']}"


async def test_a_long_post_is_read_whole_and_unescaped(rig: Rig) -> None:
    post = x.tweet(ANN, "Tom &amp; Jerry mugs: broken handle…", tweet_id="9100")
    post["truncated"] = True
    whole = "Tom &amp; Jerry mugs: broken handle &lt;again&gt; " + "x" * 200 + " @acme_care"
    post["extended_tweet"] = {
        "full_text": whole,
        "entities": {"user_mentions": [{"id_str": BRAND}]},
    }
    post.pop("created_at")
    assert (await rig.post(x.tweets(BRAND, post)))[0] == 200
    message = rig.only()
    assert isinstance(message, InboundMessage) and message.public is not None
    assert message.text.startswith("Tom & Jerry mugs: broken handle <again> xx")
    assert message.public.addressed is True


async def test_a_post_timed_by_created_at_only(rig: Rig) -> None:
    post = x.tweet(ANN, "@acme_care hi", tweet_id="9200", mentions=(BRAND,))
    post.pop("timestamp_ms")
    post["created_at"] = "Wed Oct 10 20:19:24 +0000 2018"
    assert (await rig.post(x.tweets(BRAND, post)))[0] == 200
    message = rig.only()
    assert isinstance(message, InboundMessage)
    assert message.sent_at.isoformat() == "2018-10-10T20:19:24+00:00"


async def test_a_direct_message_becomes_a_private_message(rig: Rig) -> None:
    names = {ANN["id_str"]: "Ann K"}
    dm = x.direct_message(BRAND, ANN["id_str"], "Order 1234?", event_id="1650", names=names)
    assert (await rig.post(dm))[0] == 200
    message = rig.only()
    assert isinstance(message, InboundMessage)
    assert message.public is None
    assert (message.channel, message.external_user_id) == ("x", ANN["id_str"])
    assert (message.external_message_id, message.text) == ("1650", "Order 1234?")
    assert message.profile == {"name": "Ann K", "username": "ann_k"}


@pytest.mark.parametrize(
    "payload",
    [
        x.tweets(
            BRAND, x.tweet(BRAND_USER, "Thanks @ann_k, on its way!", mentions=(ANN["id_str"],))
        ),
        x.tweets(BRAND, x.tweet(ANN, "RT @acme_care: sale!") | {"retweeted_status": {"id": 1}}),
        x.direct_message(BRAND, BRAND, "Sent from the X app", recipient=ANN["id_str"]),
        x.tweets(
            "4400000000000000004", x.tweet(ANN, "@other hi", mentions=("4400000000000000004",))
        ),
        {"for_user_id": BRAND, "favorite_events": [{"id": "1"}]},
        x.direct_message(BRAND, ANN["id_str"], "")
        | {
            "direct_message_events": [{"type": "message_read", "id": "5", "created_timestamp": "1"}]
        },
    ],
    ids=["brand-post", "retweet", "brand-dm", "other-account", "like", "other-dm-event"],
)
async def test_what_is_not_a_customer_message_is_taken_and_left(rig: Rig, payload: x.Json) -> None:
    assert (await rig.post(payload))[0] == 200
    assert rig.received == []


async def test_a_deleted_post_is_a_removal(rig: Rig) -> None:
    assert (await rig.post(x.deleted(BRAND, "9001", ANN["id_str"])))[0] == 200
    change = rig.only()
    assert isinstance(change, PublicChange)
    assert (change.channel, change.external_message_id, change.change) == ("x", "9001", "removed")


async def test_a_repeated_delivery_carries_the_same_ids(rig: Rig) -> None:
    payload = x.tweets(BRAND, x.tweet(ANN, "@acme_care hi", tweet_id="9300", mentions=(BRAND,)))
    for _ in range(2):
        assert (await rig.post(payload))[0] == 200
    ids = [e.external_message_id for e in rig.received if isinstance(e, InboundMessage)]
    assert ids == ["9300", "9300"]  # the same message twice: the core keeps one


def without(payload: x.Json, *path: str | int) -> x.Json:
    copied = json.loads(json.dumps(payload))
    node = copied
    for step in path[:-1]:
        node = node[step]
    del node[path[-1]]
    return copied


MENTION = x.tweets(BRAND, x.tweet(ANN, "@acme_care hi", mentions=(BRAND,)))
DM = x.direct_message(BRAND, ANN["id_str"], "hello")
UNTIMED = without(MENTION, "tweet_create_events", 0, "timestamp_ms")


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (b"{not json", "Invalid JSON"),
        (without(MENTION, "for_user_id"), "for_user_id: Field required"),
        (without(MENTION, "tweet_create_events", 0, "user"), "tweet_create_events.0.user"),
        (without(MENTION, "tweet_create_events", 0, "id_str"), "tweet_create_events.0.id_str"),
        (without(MENTION, "tweet_create_events", 0, "text"), "needs its text"),
        (without(UNTIMED, "tweet_create_events", 0, "created_at"), "needs its time"),
        (without(DM, "direct_message_events", 0, "message_create"), "message_create"),
        (without(DM, "direct_message_events", 0, "message_create", "sender_id"), "sender_id"),
        (x.deleted(BRAND, "", "1"), "tweet_delete_events.0.status.id"),
    ],
    ids=["not-json", "account", "author", "id", "text", "time", "dm-body", "dm-sender", "delete"],
)
async def test_a_malformed_delivery_is_refused_naming_the_problem(
    rig: Rig, body: x.Json | bytes, named: str
) -> None:
    status, text = await rig.post(body)
    assert status == 400
    assert named in text
    assert rig.received == []


async def test_a_batch_with_one_bad_event_is_refused_whole(rig: Rig) -> None:
    good = x.tweet(ANN, "@acme_care hi", mentions=(BRAND,))
    bad = without(x.tweet(ANN, "@acme_care hi again", mentions=(BRAND,)), "user")
    status, text = await rig.post(x.tweets(BRAND, good, bad))
    assert (status, rig.received) == (400, [])
    assert "tweet_create_events.1.user" in text


async def test_after_stop_deliveries_wait_and_the_crc_is_still_answered(rig: Rig) -> None:
    await rig.channel.stop()
    assert (await rig.post(MENTION))[0] == 503
    assert rig.received == []
    async with aiohttp.ClientSession() as http, http.get(rig.url, params={"crc_token": "t"}) as r:
        assert r.status == 200


async def test_a_delivery_the_core_could_not_store_is_answered_500(rig: Rig) -> None:
    async def failing(_event: ChannelEvent) -> None:
        raise RuntimeError("database down")

    await rig.channel.start(failing)
    assert (await rig.post(MENTION))[0] == 500


# The X API: what carebot posts


def action(kind: PublicActionKind, target: str = "9001") -> PublicAction:
    return PublicAction(kind, target, thread="9000")


def reply(text: str, *, public: PublicAction | None = None, **kwargs: Any) -> OutboundReply:
    return OutboundReply(
        outbox_id=7, channel="x", external_user_id=ANN["id_str"], text=text, public=public, **kwargs
    )


@pytest.mark.parametrize(
    ("outbound", "kind", "path_id", "body", "returns"),
    [
        (
            reply("We're on it.", public=action(PublicActionKind.REPLY)),
            "tweet",
            None,
            {"text": "We're on it.", "reply": {"in_reply_to_tweet_id": "9001"}},
            True,
        ),
        (
            reply(
                "Could you send your order number?", public=action(PublicActionKind.PRIVATE_REPLY)
            ),
            "dm",
            ANN["id_str"],
            {"text": "Could you send your order number?"},
            True,
        ),
        (reply("", public=action(PublicActionKind.HIDE)), "hide", "9001", {"hidden": True}, False),
        (
            reply("", public=action(PublicActionKind.UNHIDE)),
            "hide",
            "9001",
            {"hidden": False},
            False,
        ),
    ],
    ids=["reply", "private-reply", "hide", "unhide"],
)
async def test_public_actions_reach_x(
    rig: Rig,
    outbound: OutboundReply,
    kind: str,
    path_id: str | None,
    body: x.Json,
    returns: bool,
) -> None:
    made, recipient = await perform(rig.channel, outbound)
    (call,) = rig.api.calls
    assert (call.kind, call.path_id, call.body) == (kind, path_id, body)
    assert call.status in (200, 201)
    assert made == (call.id if returns else None)
    assert recipient == (ANN["id_str"] if kind == "dm" else None)


async def test_a_private_reply_names_its_recipient(rig: Rig) -> None:
    sent = await rig.channel.reply_private(
        action(PublicActionKind.PRIVATE_REPLY), "Hi", user_id="55"
    )
    assert sent == PrivateReplySent(rig.api.calls[0].id, "55")
    assert rig.api.calls[0].path_id == "55"


async def test_send_is_a_signed_direct_message_with_numbered_choices(rig: Rig) -> None:
    choices = (Choice("order_status", "Order status"), Choice("returns", "Returns"))
    outbound = reply("Which one?", author="agent", agent="Mia", choices=choices)
    dm_event = await rig.channel.send(outbound)
    (call,) = rig.api.calls
    assert (call.kind, call.path_id) == ("dm", ANN["id_str"])
    assert call.body == {"text": "Mia: Which one?\n1) Order status\n2) Returns"}
    assert dm_event == call.id and dm_event


# The X API: refusals


@pytest.mark.parametrize(
    ("status", "reset", "permanent", "retry_after", "words"),
    [
        (429, int(NOW) + 120, False, 120.0, "rate limited"),
        (429, int(NOW) - 5, False, 1.0, "rate limited"),  # a reset already past: a second
        (429, None, False, None, "rate limited"),
        (403, None, True, None, x.NOT_ALLOWED),
        (400, None, True, None, "Invalid Request"),
        (401, None, False, None, "Unauthorized"),
        (500, None, False, None, "X API 500"),
        (503, None, False, None, "X API 503"),
    ],
)
async def test_refusals_become_delivery_errors(
    rig: Rig,
    status: int,
    reset: int | None,
    permanent: bool,
    retry_after: float | None,
    words: str,
) -> None:
    rig.api.fail_next(status, x.NOT_ALLOWED if status == 403 else "", reset=reset)
    with pytest.raises(DeliveryError) as error:
        await rig.channel.reply_public(action(PublicActionKind.REPLY), "We're on it.")
    assert (error.value.permanent, error.value.retry_after) == (permanent, retry_after)
    assert words in str(error.value)
    assert [call.status for call in rig.api.calls] == [status]


async def test_a_wrong_token_is_retried(rig: Rig) -> None:
    rig.api.token = "rotated"
    with pytest.raises(DeliveryError) as error:
        await rig.channel.send(reply("Hello"))
    assert not error.value.permanent


async def test_an_unreachable_api_is_retried(rig: Rig) -> None:
    await rig.api.stop()
    with pytest.raises(DeliveryError) as error:
        await rig.channel.send(reply("Hello"))
    assert not error.value.permanent and "unreachable" in str(error.value)


async def test_a_closed_channel_calls_nothing(rig: Rig) -> None:
    await rig.channel.close()
    with pytest.raises(DeliveryError):
        await rig.channel.reply_public(action(PublicActionKind.REPLY), "Hi")
    assert rig.api.calls == []


# Built from the settings


def x_settings(public_url: str = "https://care.example") -> Settings:
    return Settings.model_validate(
        {
            "server": {"public_url": public_url},
            "x": {"enabled": True, "user_id": BRAND, "api_url": "http://127.0.0.1:9"},
        }
    )


ENV = {"X_CONSUMER_SECRET": SECRET, "X_USER_TOKEN": TOKEN}


async def test_an_enabled_x_is_built_with_its_webhook() -> None:
    async def ignore(_event: ChannelEvent) -> None:
        pass

    platforms = build_platforms(x_settings(), b"secret", ENV)
    (channel,) = platforms.channels
    assert isinstance(channel, XChannel) and channel.user_id == BRAND
    app = web.Application()
    platforms.mount(app, ignore)
    paths = {(r.method, r.resource.canonical) for r in app.router.routes() if r.resource}
    assert {("GET", WEBHOOK_PATH), ("POST", WEBHOOK_PATH)} <= paths
    await channel.start(ignore)
    with pytest.raises(DeliveryError, match="unreachable"):  # [x] api_url: nothing listens
        await channel.send(reply("Hello"))
    await channel.close()


@pytest.mark.parametrize(
    ("public_url", "env", "named"),
    [
        ("", ENV, "public_url"),
        ("https://care.example", {"X_USER_TOKEN": TOKEN}, "X_CONSUMER_SECRET"),
        ("https://care.example", {"X_CONSUMER_SECRET": SECRET}, "X_USER_TOKEN"),
    ],
)
def test_an_enabled_x_without_its_address_or_secrets_is_a_clear_error(
    public_url: str, env: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigError, match=named):
        build_platforms(x_settings(public_url), b"secret", env)
