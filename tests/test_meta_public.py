"""Facebook Page and Instagram comments and mentions through the Meta adapter: webhook calls
signed as Meta signs them, posted over HTTP to the shared webhook, the look-ups and public
actions going to the Graph API stand-in. The adapter is tested on its own: what it hands the
core is recorded (the store's side is tested with the core)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from carebot.adapters.graph import GraphApi
from carebot.adapters.meta import MessengerChannel, MetaWebhook
from carebot.exceptions import DeliveryError
from carebot.models import (
    ChannelEvent,
    InboundMessage,
    OutboundReply,
    PublicAction,
    PublicActionKind,
    PublicChange,
    PublicContext,
)
from carebot.pacing import Pacer
from carebot.public.actions import PrivateReplySent, PublicActions, perform
from tests.graph_public_standin import (
    Comment,
    Post,
    fb_comment,
    fb_feed,
    fb_mention,
    ig_comment,
    ig_mention,
    usage,
)
from tests.graph_standin import GraphStandIn, messenger_text, post_webhook
from tests.loopback import Json

APP_SECRET = "meta-app-secret"
TOKEN = "EAApublic"
PAGE, IG = "2222", "3333"
ACCOUNTS = {"messenger": PAGE, "instagram": IG}
PLATFORMS = {"messenger": "facebook", "instagram": "instagram"}
CHANNELS = list(ACCOUNTS)
WHEN = 1_767_225_600  # 2026-01-01T00:00:00Z
AT = datetime.fromtimestamp(WHEN, UTC)
POST_ID = f"{PAGE}_900"
MEDIA = "17900000000000001"


@dataclass
class Rig:
    """The Meta webhook with the page's and the account's channels, on the Graph stand-in."""

    graph: GraphStandIn
    channels: dict[str, MessengerChannel]
    server: TestServer
    now: list[float]  # the Graph clients' clock
    received: list[ChannelEvent] = field(default_factory=list)

    async def deliver(self, event: ChannelEvent) -> None:
        self.received.append(event)

    async def post(self, payload: Json, **how: str) -> tuple[int, str]:
        how = how or {"app_secret": APP_SECRET}
        return await post_webhook(str(self.server.make_url("/meta/webhook")), payload, **how)

    def comment(self, channel: str, comment_id: str, text: str, **facts: object) -> Comment:
        """A customer's comment under the post (Facebook) or media (Instagram)."""
        platform = PLATFORMS[channel]
        post = POST_ID if channel == "messenger" else MEDIA
        known = {"author_id": "61000001", "author_name": "Ann", "post_id": post, "created": WHEN}
        made = Comment(comment_id, platform, ACCOUNTS[channel], text=text, **(known | facts))  # type: ignore[arg-type]
        return self.graph.public.add_comment(made)


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    async with GraphStandIn(access_token=TOKEN, version="v21.0") as graph:
        now = [1000.0]
        channels = {}
        for name, account in ACCOUNTS.items():
            graph.page(account)
            api = GraphApi(base_url=graph.url, version="v21.0", token=TOKEN, clock=lambda: now[0])
            channels[name] = MessengerChannel(
                name=name, api=api, account_id=account, pacer=Pacer(100.0)
            )
        webhook = MetaWebhook(
            app_secret=APP_SECRET, verify_token="verify", channels=list(channels.values())
        )
        app = web.Application()
        server = TestServer(app)
        rig = Rig(graph, channels, server, now)
        webhook.mount(app, rig.deliver)
        await server.start_server()
        for channel in channels.values():
            await channel.start(rig.deliver)
        try:
            yield rig
        finally:
            for channel in channels.values():
                await channel.close()
            await server.close()


def action(kind: PublicActionKind, target: str, thread: str = POST_ID) -> PublicAction:
    return PublicAction(kind, target, thread)


# Facebook comments.


@pytest.mark.parametrize("parent", [None, "c-top"], ids=["top-level", "a-reply"])
async def test_a_facebook_comment_is_a_public_message(rig: Rig, parent: str | None) -> None:
    post = Post(POST_ID, "Our new blender is here!", "https://www.facebook.com/2222/posts/900")
    comment = rig.comment("messenger", "c-1", "Does it come in red?", parent_id=parent)
    assert await rig.post(fb_comment(comment, post=post)) == (200, "EVENT_RECEIVED")
    [message] = rig.received
    assert isinstance(message, InboundMessage)
    assert (message.channel, message.external_user_id, message.external_message_id) == (
        "messenger",
        "61000001",
        "c-1",
    )
    assert (message.text, message.sent_at, dict(message.profile)) == (
        "Does it come in red?",
        AT,
        {"name": "Ann"},
    )
    assert message.public == PublicContext(
        thread=POST_ID,
        kind="comment",
        parent_id=parent or POST_ID,  # Meta gives the post as the parent of a top-level one
        post_text="Our new blender is here!",
        post_url="https://www.facebook.com/2222/posts/900",
    )
    assert message.public.top_level is (parent is None)
    assert message.raw["comment_id"] == "c-1" and rig.graph.calls == []


@pytest.mark.parametrize(
    ("verb", "change", "text"), [("edited", "edited", "Red, please"), ("remove", "removed", "")]
)
async def test_an_edit_or_removal_is_a_public_change(
    rig: Rig, verb: str, change: str, text: str
) -> None:
    comment = rig.comment("messenger", "c-2", "Red, please")
    assert (await rig.post(fb_comment(comment, verb)))[0] == 200
    assert rig.received == [PublicChange("messenger", "c-2", change, AT, text)]


@pytest.mark.parametrize("channel", CHANNELS)
async def test_the_brands_own_comments_are_not_read(rig: Rig, channel: str) -> None:
    own = rig.comment(channel, "c-own", "Thanks!", author_id=ACCOUNTS[channel])
    payload = fb_comment(own) if channel == "messenger" else ig_comment(own)
    assert await rig.post(payload) == (200, "EVENT_RECEIVED")
    assert rig.received == []


@pytest.mark.parametrize(
    ("item", "verb"),
    [("status", "add"), ("photo", "add"), ("reaction", "add"), ("comment", "hide")],
)
async def test_other_feed_changes_are_acknowledged_and_ignored(
    rig: Rig, item: str, verb: str
) -> None:
    payload = fb_feed(PAGE, item, verb, post_id=POST_ID, comment_id="c-9")
    assert await rig.post(payload) == (200, "EVENT_RECEIVED")
    assert rig.received == [] and rig.graph.calls == []


async def test_a_comment_without_what_is_read_is_refused_naming_it(rig: Rig) -> None:
    payload = fb_comment(rig.comment("messenger", "c-3", "hi"))
    del payload["entry"][0]["changes"][0]["value"]["from"]
    status, text = await rig.post(payload)
    assert status == 400 and "entry.0.changes.0.feed" in text and "'from'" in text
    assert rig.received == []


# Mentions.


@pytest.mark.parametrize("item", ["post", "comment"])
async def test_a_facebook_mention_is_looked_up(rig: Rig, item: str) -> None:
    link = "https://www.facebook.com/other/posts/77"
    post = rig.graph.public.add_post(
        Post("77_1", "Loving my @Brand blender", link, "Bo", "61000002", created=WHEN)
    )
    mention: Comment | Post = post
    if item == "comment":
        mention = rig.comment("messenger", "77_1_5", "@Brand it broke", post_id="77_1")
    assert await rig.post(fb_mention(mention, PAGE)) == (200, "EVENT_RECEIVED")
    [message] = rig.received
    assert isinstance(message, InboundMessage) and message.public is not None
    assert (message.external_message_id, message.text) == (
        (post.id, "Loving my @Brand blender") if item == "post" else ("77_1_5", "@Brand it broke")
    )
    assert message.public.kind == "mention" and message.public.thread == "77_1"
    assert message.sent_at == AT and message.public.post_url.startswith("https://www.facebook")
    [lookup] = rig.graph.calls
    assert (lookup.method, lookup.node) == ("GET", message.external_message_id)
    assert lookup.body["fields"] == "message,permalink_url,created_time"


# Instagram.


@pytest.mark.parametrize("parent", [None, "ig-top"], ids=["top-level", "a-reply"])
async def test_an_instagram_comment_is_a_public_message(rig: Rig, parent: str | None) -> None:
    comment = rig.comment("instagram", "ig-1", "Is this vegan?", parent_id=parent)
    payload = ig_comment(comment)
    payload["entry"][0]["time"] = WHEN
    assert await rig.post(payload) == (200, "EVENT_RECEIVED")
    [message] = rig.received
    assert isinstance(message, InboundMessage)
    assert (message.channel, message.external_user_id, message.external_message_id) == (
        "instagram",
        "61000001",
        "ig-1",
    )
    assert (message.text, message.sent_at) == ("Is this vegan?", AT)
    assert message.public == PublicContext(thread=MEDIA, kind="comment", parent_id=parent)


async def test_an_instagram_comment_mention_is_looked_up(rig: Rig) -> None:
    rig.comment("instagram", "ig-m1", "@brand my parcel is late", post_id="other-media")
    assert await rig.post(ig_mention(IG, "other-media", "ig-m1")) == (200, "EVENT_RECEIVED")
    [message] = rig.received
    assert isinstance(message, InboundMessage) and message.public is not None
    assert (message.external_user_id, message.external_message_id, message.text) == (
        "61000001",
        "ig-m1",
        "@brand my parcel is late",
    )
    assert (message.public.kind, message.public.thread, message.sent_at) == (
        "mention",
        "other-media",
        AT,
    )
    [lookup] = rig.graph.calls
    assert (lookup.method, lookup.node) == ("GET", IG)
    assert lookup.body["fields"] == (
        "mentioned_comment.comment_id(ig-m1){id,text,timestamp,from,media}"
    )


async def test_an_instagram_caption_mention_is_looked_up(rig: Rig) -> None:
    link = "https://www.instagram.com/p/XYZ/"
    rig.graph.public.add_post(Post("cap-1", "Unboxing @brand", link, "bo.bakes", created=WHEN))
    assert (await rig.post(ig_mention(IG, "cap-1")))[0] == 200
    [message] = rig.received
    assert isinstance(message, InboundMessage) and message.public is not None
    assert (message.external_user_id, message.external_message_id, message.text) == (
        "@bo.bakes",
        "cap-1",
        "Unboxing @brand",
    )
    assert (message.public.kind, message.public.post_url) == ("mention", link)


async def test_messages_and_changes_in_one_call_are_all_taken(rig: Rig) -> None:
    payload = messenger_text(PAGE, "61000009", "hello in private", mid="m-1")
    comment = rig.comment("messenger", "c-5", "hello in public")
    payload["entry"][0]["changes"] = fb_comment(comment)["entry"][0]["changes"]
    payload["entry"].append(fb_comment(rig.comment("messenger", "c-6", "again"))["entry"][0])
    assert await rig.post(payload) == (200, "EVENT_RECEIVED")
    got = [(e.external_message_id, e.public is not None) for e in rig.received]  # type: ignore[union-attr]
    assert got == [("m-1", False), ("c-5", True), ("c-6", True)]


@pytest.mark.parametrize("channel", CHANNELS)
async def test_a_failed_look_up_takes_nothing_and_meta_sends_again(
    rig: Rig, channel: str, caplog: pytest.LogCaptureFixture
) -> None:
    comment = rig.comment(channel, "c-7", "@brand help", post_id="p-7")
    if channel == "messenger":
        payload = fb_mention(comment, PAGE)
        payload["entry"].insert(0, fb_comment(rig.comment(channel, "c-8", "hi"))["entry"][0])
        rig.graph.fail_next("c-7", 500, 1)
    else:
        payload = ig_mention(IG, "p-7", "c-7")
        payload["entry"].insert(0, ig_comment(rig.comment(channel, "c-8", "hi"))["entry"][0])
        rig.graph.fail_next(IG, 500, 1)
    assert (await rig.post(payload))[0] == 500
    assert rig.received == [] and "Meta will send it again" in caplog.text
    assert await rig.post(payload) == (200, "EVENT_RECEIVED")  # Meta's second delivery
    assert [e.external_message_id for e in rig.received] == ["c-8", "c-7"]  # type: ignore[union-attr]


async def test_a_wrong_signature_takes_nothing_and_looks_nothing_up(rig: Rig) -> None:
    payload = fb_mention(rig.comment("messenger", "c-9", "@brand"), PAGE)
    assert (await rig.post(payload, app_secret="wrong"))[0] == 403
    assert rig.received == [] and rig.graph.calls == []


# Public actions.


@pytest.mark.parametrize(("channel", "edge"), [("messenger", "comments"), ("instagram", "replies")])
async def test_a_public_reply_goes_under_the_comment(rig: Rig, channel: str, edge: str) -> None:
    rig.comment(channel, "c-10", "Does it come in red?")
    reply_id = await rig.channels[channel].reply_public(
        action(PublicActionKind.REPLY, "c-10"), "It does! (automated reply)"
    )
    [call] = rig.graph.calls
    assert (call.node, call.edge, call.body) == (
        "c-10",
        edge,
        {"message": "It does! (automated reply)"},
    )
    [reply] = rig.graph.public.replies
    assert reply_id == reply.id and reply.target == "c-10"


@pytest.mark.parametrize(
    ("target", "body"),
    [
        ("ig-m2", {"media_id": "other-media", "comment_id": "ig-m2"}),  # in a comment
        ("other-media", {"media_id": "other-media"}),  # in the caption
    ],
    ids=["comment", "caption"],
)
async def test_an_instagram_mention_is_answered_through_the_accounts_mentions_edge(
    rig: Rig, target: str, body: dict[str, str]
) -> None:
    """A mention sits on another account's media: the reply goes to /{ig-user-id}/mentions."""
    rig.comment("instagram", "ig-m2", "@brand love it", post_id="other-media")
    rig.graph.public.add_post(Post("other-media", "Unboxing @brand", "https://ig/p/1", "bo"))
    mention = PublicAction(PublicActionKind.REPLY, target, "other-media", "mention")
    reply_id = await rig.channels["instagram"].reply_public(mention, "Thanks!")
    [call] = rig.graph.calls
    assert (call.node, call.edge, call.body) == (IG, "mentions", {**body, "message": "Thanks!"})
    assert reply_id == rig.graph.public.replies[-1].id


@pytest.mark.parametrize("channel", CHANNELS)
async def test_a_private_reply_reaches_the_commenter_once(rig: Rig, channel: str) -> None:
    rig.comment(channel, "c-11", "My order never came", created=int(time.time()))
    rig.graph.public.psids["61000001"] = "psid-ann"
    sent = await perform(
        rig.channels[channel],
        OutboundReply(
            1,
            channel,
            "61000001",
            "Sorry! Could you send us your order number?",
            public=action(PublicActionKind.PRIVATE_REPLY, "c-11"),
        ),
    )
    [call] = rig.graph.calls
    assert (call.node, call.edge) == (ACCOUNTS[channel], "messages")
    assert call.body == {
        "recipient": {"comment_id": "c-11"},
        "message": {"text": "Sorry! Could you send us your order number?"},
    }
    assert sent[1] == "psid-ann" and sent[0] is not None and sent[0].startswith("m_")
    with pytest.raises(DeliveryError) as refused:  # one private reply per comment
        await rig.channels[channel].reply_private(
            action(PublicActionKind.PRIVATE_REPLY, "c-11"), "again", user_id="61000001"
        )
    assert refused.value.permanent and "one private reply" in str(refused.value)


async def test_reply_private_answers_the_message_and_recipient_ids(rig: Rig) -> None:
    rig.comment("messenger", "c-12", "hi", created=int(time.time()))
    sent = await rig.channels["messenger"].reply_private(
        action(PublicActionKind.PRIVATE_REPLY, "c-12"), "Hello", user_id="61000001"
    )
    assert isinstance(sent, PrivateReplySent) and sent.recipient_id == "61000001"


@pytest.mark.parametrize("channel", CHANNELS)
@pytest.mark.parametrize("hidden", [True, False])
async def test_hide_and_unhide(rig: Rig, channel: str, hidden: bool) -> None:
    comment = rig.comment(channel, "c-13", "spam spam", hidden=not hidden)
    await rig.channels[channel].set_hidden(action(PublicActionKind.HIDE, "c-13"), hidden)
    key = "is_hidden" if channel == "messenger" else "hide"
    [call] = rig.graph.calls
    assert (call.node, call.edge, call.body) == ("c-13", "", {key: hidden})
    assert comment.hidden is hidden


async def test_the_meta_channels_take_public_actions(rig: Rig) -> None:
    assert all(isinstance(c, PublicActions) for c in rig.channels.values())


# Limits and errors.


@pytest.mark.parametrize(
    ("percent", "regain", "wait"), [(100, 0, 60.0), (40, 5, 300.0)], ids=["at-100%", "regain"]
)
async def test_a_reached_usage_limit_pauses_calls_without_calling_meta(
    rig: Rig, percent: float, regain: float, wait: float
) -> None:
    channel = rig.channels["messenger"]
    rig.comment("messenger", "c-14", "hi")
    hide = action(PublicActionKind.HIDE, "c-14")
    rig.graph.usage_header = usage(percent, regain)
    await channel.set_hidden(hide, True)  # Meta answers, and says the limit is reached
    usage_seen = channel._api.usage
    assert usage_seen is not None and usage_seen.limited and usage_seen.percent == percent
    with pytest.raises(DeliveryError) as paused:
        await channel.reply_public(action(PublicActionKind.REPLY, "c-14"), "Hello")
    assert paused.value.retry_after == wait and not paused.value.permanent
    assert len(rig.graph.calls) == 1  # the stand-in saw no second call
    rig.graph.usage_header = usage(10)
    rig.now[0] += wait  # the time has passed
    await channel.reply_public(action(PublicActionKind.REPLY, "c-14"), "Hello")
    assert len(rig.graph.calls) == 2


@pytest.mark.parametrize(
    ("code", "permanent"),
    [(10900, True), (551, True), (80001, False), (80006, False), (32, False), (613, False)],
)
async def test_graph_errors_of_public_actions(rig: Rig, code: int, permanent: bool) -> None:
    rig.comment("messenger", "c-15", "hi")
    rig.graph.fail_next("c-15", 400, code)
    with pytest.raises(DeliveryError) as failed:
        await rig.channels["messenger"].reply_public(action(PublicActionKind.REPLY, "c-15"), "x")
    assert failed.value.permanent is permanent
    assert ("rate limited" in str(failed.value)) is (not permanent)


async def test_instagram_refuses_a_reply_to_a_reply(rig: Rig) -> None:
    rig.comment("instagram", "c-16", "me too", parent_id="c-top")
    with pytest.raises(DeliveryError) as refused:
        await rig.channels["instagram"].reply_public(action(PublicActionKind.REPLY, "c-16"), "x")
    assert refused.value.permanent and "top-level" in str(refused.value)
