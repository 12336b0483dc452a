"""Facebook and Instagram comments end to end: the service with the page's and the account's
channels against the Graph stand-in, signed webhook calls in. A comment answered in public; a
comment that needs an order number moved to private (and a second private reply refused); an
abusive comment hidden and unhidden; an agent's public reply with an e-mail address refused;
duplicates, edits and removals (a comment removed after carebot replied, other people replying
in the same thread); shadow mode posting nothing. The classifier is a fixed stand-in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from carebot.exceptions import PublicRefused
from carebot.models import PublicCategory
from carebot.server import Service
from carebot.store.tables import Conversation, Message, PublicItem
from tests.fakes import FixedClassifier
from tests.graph_public_standin import Comment, Post, fb_comment, ig_comment
from tests.graph_standin import GraphStandIn, messenger_text, post_webhook
from tests.service import count_rows, running_service, service_settings
from tests.test_public_x import public_intents

APP_SECRET = "meta-app-secret"
TOKEN = "EAAtest-token"
ENV = {
    "MESSENGER_PAGE_TOKEN": TOKEN,
    "INSTAGRAM_TOKEN": TOKEN,
    "META_APP_SECRET": APP_SECRET,
    "META_VERIFY_TOKEN": "verify",
}
ACCOUNTS = {"messenger": "2222", "instagram": "3333"}
POSTS = {"messenger": "2222_900", "instagram": "ig-media-1"}
PLATFORMS = {"messenger": "facebook", "instagram": "instagram"}
CHANNELS = list(ACCOUNTS)
ABUSE = "you are all clowns, go to hell"


@pytest.fixture
def live() -> list[str]:
    return CHANNELS


@pytest.fixture
async def graph() -> AsyncIterator[GraphStandIn]:
    async with GraphStandIn(access_token=TOKEN, version="v21.0") as standin:
        for account in ACCOUNTS.values():
            standin.page(account)
        standin.public.add_post(
            Post(POSTS["messenger"], "Autumn boots are here", "https://fb/p/900")
        )
        yield standin


@pytest.fixture
async def service(
    tmp_path: Path, database_url: str, graph: GraphStandIn, live: list[str]
) -> AsyncIterator[tuple[Service, TestServer]]:
    settings = service_settings(
        tmp_path,
        matcher={"intents_dir": str(public_intents(tmp_path))},
        messenger={"enabled": True, "account_id": ACCOUNTS["messenger"]},
        instagram={"enabled": True, "account_id": ACCOUNTS["instagram"]},
        meta={"graph_url": graph.url, "api_version": "v21.0"},
        public={"live": live},
    )
    classifier = FixedClassifier({ABUSE: PublicCategory.SPAM})
    async with running_service(
        settings, database_url, env=ENV, runtime_options={"post_classifier": classifier}
    ) as running:
        yield running


def comment(
    graph: GraphStandIn,
    channel: str,
    cid: str,
    text: str,
    *,
    author: str = "61000001",
    **facts: object,
) -> Comment:
    made = Comment(
        cid,
        PLATFORMS[channel],  # type: ignore[arg-type]
        ACCOUNTS[channel],
        POSTS[channel],
        author,
        "Ann Lee",
        text,
        **facts,  # type: ignore[arg-type]
    )
    return graph.public.add_comment(made)


def change(channel: str, made: Comment, verb: str = "add") -> dict[str, object]:
    return fb_comment(made, verb) if channel == "messenger" else ig_comment(made)


async def send(server: TestServer, payload: dict[str, object], secret: str = APP_SECRET) -> int:
    status, _ = await post_webhook(
        str(server.make_url("/meta/webhook")), payload, app_secret=secret
    )
    return status


def public_calls(graph: GraphStandIn) -> list[tuple[str, str, object]]:
    """What carebot did in public or privately about comments: (node, edge, body)."""
    return [(c.node, c.edge, c.body) for c in graph.calls if c.method == "POST"]


async def conversation_of(service: Service, cid: str) -> int:
    async with service.runtime.db.session() as session:
        found = await session.scalar(
            select(Message.conversation_id).where(Message.external_id == cid)
        )
    assert found is not None
    return found


@pytest.mark.parametrize("channel", CHANNELS)
async def test_a_comment_is_answered_in_public_once(
    service: tuple[Service, TestServer], graph: GraphStandIn, channel: str
) -> None:
    running, server = service
    made = comment(graph, channel, "c1", "how do I return an item")
    assert await send(server, change(channel, made)) == 200
    assert await send(server, change(channel, made)) == 200  # delivered twice: one reply

    edge = "comments" if channel == "messenger" else "replies"
    assert public_calls(graph) == [
        ("c1", edge, {"message": "Returns are free within 30 days. (automated reply)"})
    ]
    assert await count_rows(running.runtime.db, PublicItem) == 1


@pytest.mark.parametrize("channel", CHANNELS)
async def test_a_comment_that_needs_the_order_number_moves_to_private_once(
    service: tuple[Service, TestServer], graph: GraphStandIn, channel: str
) -> None:
    running, server = service
    await send(server, change(channel, comment(graph, channel, "c2", "where is my order")))
    await graph.wait_for(lambda g: len(public_calls(g)) == 2)

    private, note = public_calls(graph)
    assert private == (
        ACCOUNTS[channel],
        "messages",
        {
            "recipient": {"comment_id": "c2"},
            "message": {"text": "Send us your order number here and we track it."},
        },
    )
    assert note[0] == "c2" and str(note[2]).startswith("{'message': \"We've sent you a private")
    conversation = await conversation_of(running, "c2")
    with pytest.raises(PublicRefused, match="one private reply per comment"):
        await running.runtime.desk.reply(conversation, "Ann", "Hi again", private=True)
    assert len(public_calls(graph)) == 2


@pytest.mark.parametrize("channel", CHANNELS)
async def test_an_abusive_comment_is_hidden_and_an_agent_unhides_it(
    service: tuple[Service, TestServer], graph: GraphStandIn, channel: str
) -> None:
    running, server = service
    made = comment(graph, channel, "c3", ABUSE)
    await send(server, change(channel, made))
    assert made.hidden

    conversation = await conversation_of(running, "c3")
    async with running.runtime.db.session() as session:
        item = await session.scalar(
            select(PublicItem).where(PublicItem.conversation_id == conversation)
        )
    assert item is not None and item.hidden_by == "carebot"
    await running.runtime.desk.set_hidden(
        conversation, "Ann", message_id=item.message_id, hidden=False
    )
    assert not made.hidden


@pytest.mark.parametrize("channel", CHANNELS)
async def test_an_agents_public_reply_with_an_email_address_is_refused(
    service: tuple[Service, TestServer], graph: GraphStandIn, channel: str
) -> None:
    running, server = service
    await send(server, change(channel, comment(graph, channel, "c4", "when is my refund coming")))
    conversation = await conversation_of(running, "c4")

    with pytest.raises(PublicRefused, match="e-mail address"):
        await running.runtime.desk.reply(conversation, "Ann", "Write to ann.b@gmail.com")
    assert public_calls(graph) == []
    await running.runtime.desk.reply(conversation, "Ann", "Refunds take 5 days")
    [(node, _, body)] = public_calls(graph)
    assert (node, body) == ("c4", {"message": "Refunds take 5 days - Ann"})


async def test_edits_removals_and_other_peoples_replies_in_the_thread(
    service: tuple[Service, TestServer], graph: GraphStandIn
) -> None:
    running, server = service
    mine = comment(graph, "messenger", "c5", "how do I return an item")
    await send(server, fb_comment(mine))
    other = comment(
        graph, "messenger", "c6", "same question here", author="61000002", parent_id="c5"
    )
    await send(server, fb_comment(other))
    mine.text = "how do I return an item? (edited)"
    await send(server, fb_comment(mine, "edited"))
    await send(server, fb_comment(mine, "remove"))

    first, second = await conversation_of(running, "c5"), await conversation_of(running, "c6")
    assert first != second  # another person in the same thread: their own conversation
    async with running.runtime.db.session() as session:
        item = await session.scalar(select(PublicItem).where(PublicItem.conversation_id == first))
        customers = set(
            (
                await session.scalars(
                    select(Conversation.customer_id).where(Conversation.id.in_([first, second]))
                )
            ).all()
        )
    assert item is not None and item.removed_at is not None
    assert [e["text"] for e in item.edits] == ["how do I return an item"]
    assert len(customers) == 2
    # carebot had answered the comment before it was removed, nothing more is posted under
    # it; the other person's "same question here" matched no answer: it waits for an agent
    assert [(node, edge) for node, edge, _ in public_calls(graph)] == [("c5", "comments")]
    assert await running.runtime.handoffs.open_handoff(second) is not None


async def test_a_forged_call_is_refused_and_nothing_is_stored(
    service: tuple[Service, TestServer], graph: GraphStandIn
) -> None:
    running, server = service
    assert await send(server, fb_comment(comment(graph, "messenger", "c7", "hi")), "forged") == 403
    assert await count_rows(running.runtime.db, Message) == 0


@pytest.mark.parametrize("live", [[]])
@pytest.mark.parametrize("channel", CHANNELS)
async def test_shadow_mode_posts_nothing(
    service: tuple[Service, TestServer], graph: GraphStandIn, channel: str
) -> None:
    running, server = service
    for cid, text in (
        ("s1", "how do I return an item"),
        ("s2", "where is my order"),
        ("s3", ABUSE),
    ):
        await send(server, change(channel, comment(graph, channel, cid, text, author=f"6100{cid}")))
    assert public_calls(graph) == []
    handoff = await running.runtime.handoffs.open_handoff(await conversation_of(running, "s2"))
    assert (
        handoff is not None and handoff.draft == "Send us your order number here and we track it."
    )


async def test_the_private_replys_recipient_is_the_same_customer_in_messenger(
    service: tuple[Service, TestServer], graph: GraphStandIn
) -> None:
    """Messenger answers a private reply with the person's Page-scoped id, which may differ
    from the commenter's id: their answer in private messages joins the same customer."""
    running, server = service
    graph.public.psids["61000001"] = "psid-777"
    await send(server, fb_comment(comment(graph, "messenger", "c8", "where is my order")))
    await graph.wait_for(lambda g: len(public_calls(g)) == 2)
    await send(server, messenger_text(ACCOUNTS["messenger"], "psid-777", "it's order 48213"))

    public, private = await conversation_of(running, "c8"), None
    async with running.runtime.db.session() as session:
        private = await session.scalar(
            select(Message.conversation_id).where(Message.text == "it's order 48213")
        )
        customers = (
            await session.scalars(
                select(Conversation.customer_id).where(Conversation.id.in_([public, private]))
            )
        ).all()
    assert private is not None and private != public
    assert len(set(customers)) == 1
    # the private conversation is linked to the public thread for the agent
    case = await running.runtime.queue.case(private)
    assert case.from_public == public
