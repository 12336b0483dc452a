"""Public messages through the pipeline, on a recording channel that takes public actions:
classified (a fixed classifier), planned (carebot/public/decide.py), recorded with what they
queue, and carried out by the outbox; agents' public and private replies, hiding and unhiding;
shadow mode; the platforms' rules. The adapters' own tests drive real platform stand-ins."""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from carebot.exceptions import DeliveryError, PublicRefused
from carebot.inbox import Status
from carebot.models import (
    ConversationState,
    DecisionKind,
    InboundMessage,
    PublicCategory,
    PublicChange,
    PublicContext,
    Reason,
    Visibility,
)
from carebot.public.handling import matching_text
from carebot.runtime import Runtime, build_runtime
from carebot.store.tables import (
    Conversation,
    ConversationEvent,
    DecisionRow,
    Message,
    OutboxRow,
    PublicItem,
)
from tests.conftest import TEST_INTENTS, Clock, make_settings
from tests.fakes import FakeEncoder, FixedClassifier, PublicRecordingChannel
from tests.migrated import migrate

CHANNEL = "messenger"
SPAM = "WIN a free iphone, DM me now"
PRAISE = "love these boots, best purchase ever"
CHATTER = "tagging my sister here"
COMPLAINT = "worst service, my refund never came"


def guard(text: str) -> str | None:
    """The guard's stand-in: an e-mail-like word (an @ inside it) or "order 4" is personal."""
    if re.search(r"\w@\w", text):
        return "an e-mail address"
    return "an order number" if "order 4" in text else None


@pytest.fixture
def intents(tmp_path: Path) -> Path:
    """The test intents, with returns public and order status needing the customer's data."""
    folder = tmp_path / "intents"
    shutil.copytree(TEST_INTENTS, folder)
    shop = folder / "shop.yaml"
    text = shop.read_text()
    text = text.replace(
        "    answer: Returns are free within 30 days.",
        "    answer: Returns are free within 30 days.\n    public: true",
    )
    text = text.replace(
        "    answer: Track it at {tracking_url}.",
        "    answer: Send us your order number and we track it.\n    personal_data: true",
    )
    shop.write_text(text)
    return folder


def public_settings(tmp_path: Path, intents: Path, **public: object):  # type: ignore[no-untyped-def]
    return make_settings(
        tmp_path,
        matcher={"intents_dir": str(intents)},
        public={"thanks": "Thank you!", **public},
    )


@pytest.fixture
def live() -> tuple[str, ...]:
    return (CHANNEL,)


@pytest.fixture
def public_channel() -> PublicRecordingChannel:
    return PublicRecordingChannel(CHANNEL)


@pytest.fixture
async def runtime(  # type: ignore[override]
    tmp_path: Path,
    intents: Path,
    live: tuple[str, ...],
    database_url: str,
    encoder: FakeEncoder,
    clock: Clock,
    public_channel: PublicRecordingChannel,
) -> AsyncIterator[Runtime]:
    await migrate(database_url)
    categories = {
        SPAM: PublicCategory.SPAM,
        PRAISE: PublicCategory.PRAISE,
        CHATTER: PublicCategory.CHATTER,
        COMPLAINT: PublicCategory.COMPLAINT,
    }
    rt = await build_runtime(
        public_settings(tmp_path, intents, live=list(live)),
        encoder=encoder,
        channels={CHANNEL: public_channel},
        clock=clock,
        database_url=database_url,
        post_classifier=FixedClassifier(categories),
        public_guard=guard,
    )
    yield rt
    await rt.db.close()


def comment(
    text: str,
    *,
    cid: str = "c1",
    user: str = "u1",
    post: str = "p1",
    parent: str | None = None,
    clock: Clock | None = None,
) -> InboundMessage:
    return InboundMessage(
        channel=CHANNEL,
        external_user_id=user,
        external_message_id=cid,
        text=text,
        sent_at=(clock or Clock()).now,
        profile={"name": "Ann Lee"},
        public=PublicContext(
            thread=post,
            parent_id=parent,
            post_text="Autumn boots are here",
            post_url="https://fb/p1",
        ),
    )


async def item(runtime: Runtime, cid: str) -> PublicItem:
    async with runtime.db.session() as session:
        found = await session.scalar(
            select(PublicItem)
            .join(Message, Message.id == PublicItem.message_id)
            .where(Message.external_id == cid)
        )
        assert found is not None
        return found


async def decision_of(runtime: Runtime, message_id: int) -> DecisionRow:
    async with runtime.db.session() as session:
        row = await session.scalar(
            select(DecisionRow).where(DecisionRow.inbound_message_id == message_id)
        )
        assert row is not None
        return row


async def test_a_confident_public_intent_is_answered_under_the_comment_with_the_bot_tag(
    runtime: Runtime, public_channel: PublicRecordingChannel
) -> None:
    outcome = await runtime.inbox.receive(comment("how do I return an item"))

    assert outcome.decision is not None and outcome.decision.kind is DecisionKind.ANSWER
    assert public_channel.actions == [
        ("reply", "c1", "Returns are free within 30 days. (automated reply)")
    ]
    assert public_channel.sent == []  # nothing went to private messages
    assert (await item(runtime, "c1")).category == "care_request"
    conversation = await runtime.conversations.conversation(outcome.received.conversation_id)
    assert (conversation.visibility, conversation.thread) == ("public", "p1")
    assert conversation.context == {
        "thread": "p1",
        "post_text": "Autumn boots are here",
        "post_url": "https://fb/p1",
    }


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("when is my refund coming", Reason.NOT_PUBLIC),  # the intent is not marked public
        (COMPLAINT, Reason.PUBLIC_COMPLAINT),
        ("speak to staff member", Reason.ASKED_FOR_HUMAN),
    ],
)
async def test_what_may_not_be_answered_in_public_goes_to_an_agent_and_nothing_is_posted(
    runtime: Runtime, public_channel: PublicRecordingChannel, text: str, reason: Reason
) -> None:
    outcome = await runtime.inbox.receive(comment(text))

    assert outcome.decision is not None and outcome.decision.kind is DecisionKind.HANDOFF
    assert reason in outcome.decision.reasons
    assert public_channel.actions == [] and public_channel.sent == []
    conversation = await runtime.conversations.conversation(outcome.received.conversation_id)
    assert conversation.state == ConversationState.WAITING_FOR_AGENT.value


@pytest.mark.parametrize(
    ("text", "private_text"),
    [
        # the intent needs the customer's details: its own answer goes privately
        ("where is my order", "Send us your order number and we track it."),
        # the customer posted personal data: moved to private with [public] private_reply
        ("my email is ann@example.com, how do I return an item", None),
    ],
)
async def test_personal_data_moves_the_conversation_to_private(
    runtime: Runtime, public_channel: PublicRecordingChannel, text: str, private_text: str | None
) -> None:
    outcome = await runtime.inbox.receive(comment(text))
    await runtime.outbox.deliver_due()  # the second of two replies goes out in turn

    assert outcome.decision is not None and outcome.decision.reason is Reason.MOVED_PRIVATE
    expected = private_text or runtime.settings.public.private_reply
    assert public_channel.actions == [
        ("private_reply", "c1", expected),
        ("reply", "c1", f"{runtime.settings.public.moved_private} (automated reply)"),
    ]
    assert (await item(runtime, "c1")).private_reply_at is not None
    # one private reply per comment: an agent's second one is refused, nothing queued
    with pytest.raises(PublicRefused, match="one private reply per comment"):
        await runtime.desk.reply(outcome.received.conversation_id, "Ann", "hi", private=True)
    assert len(public_channel.actions) == 2


async def test_spam_is_hidden_with_who_and_why_and_an_agent_can_unhide_it(
    runtime: Runtime, public_channel: PublicRecordingChannel
) -> None:
    outcome = await runtime.inbox.receive(comment(SPAM))

    assert outcome.decision is not None and outcome.decision.kind is DecisionKind.LEAVE
    assert public_channel.actions == [("hide", "c1", "")]
    hidden = await item(runtime, "c1")
    assert (hidden.hidden, hidden.hidden_by, hidden.hidden_reason) == (
        True,
        "carebot",
        "spam or abuse",
    )
    cid = outcome.received.conversation_id
    await runtime.desk.set_hidden(cid, "Ann", message_id=hidden.message_id, hidden=False)
    assert public_channel.actions[-1] == ("unhide", "c1", "")
    assert not (await item(runtime, "c1")).hidden
    async with runtime.db.session() as session:
        events = (
            await session.execute(
                select(ConversationEvent.kind, ConversationEvent.actor)
                .where(ConversationEvent.conversation_id == cid)
                .order_by(ConversationEvent.id)
            )
        ).all()
    assert [tuple(e) for e in events] == [("hidden", "carebot"), ("unhidden", "Ann")]


@pytest.mark.parametrize(
    ("text", "actions"),
    [(CHATTER, []), (PRAISE, [("reply", "c1", "Thank you! (automated reply)")])],
)
async def test_chatter_is_left_and_praise_is_thanked(
    runtime: Runtime,
    public_channel: PublicRecordingChannel,
    text: str,
    actions: list[tuple[str, str, str]],
) -> None:
    outcome = await runtime.inbox.receive(comment(text))

    assert outcome.decision is not None
    assert public_channel.actions == actions
    conversation = await runtime.conversations.conversation(outcome.received.conversation_id)
    assert conversation.state == ConversationState.BOT.value  # nobody waits


@pytest.mark.parametrize("live", [()])
async def test_shadow_mode_posts_nothing_and_gives_the_agent_the_draft(
    runtime: Runtime, public_channel: PublicRecordingChannel
) -> None:
    answered = await runtime.inbox.receive(comment("how do I return an item", cid="c1"))
    spam = await runtime.inbox.receive(comment(SPAM, cid="c2", user="u2"))

    assert public_channel.actions == [] and public_channel.sent == []
    assert answered.decision is not None and answered.decision.reason is Reason.SHADOW
    assert answered.decision.draft == "Returns are free within 30 days."  # untagged
    row = await decision_of(runtime, answered.received.message_id)
    assert row.details["public"]["shadowed"] == [
        {"kind": "reply", "text": "Returns are free within 30 days. (automated reply)", "why": ""}
    ]
    assert not (await item(runtime, "c2")).hidden  # would have been hidden: recorded only
    spam_row = await decision_of(runtime, spam.received.message_id)
    assert spam_row.details["public"]["shadowed"][0]["kind"] == "hide"


async def test_an_agents_public_reply_is_signed_guarded_and_no_notice_is_posted(
    runtime: Runtime, public_channel: PublicRecordingChannel
) -> None:
    outcome = await runtime.inbox.receive(comment(COMPLAINT))
    cid = outcome.received.conversation_id

    with pytest.raises(PublicRefused, match="e-mail"):
        await runtime.desk.reply(cid, "Ann Smith", "write to ann@shop.example")
    assert public_channel.actions == []
    await runtime.desk.reply(cid, "Ann Smith", "So sorry, we're on it")

    # no "Ann joined" notice under the comment: only the reply, signed
    assert public_channel.actions == [("reply", "c1", "So sorry, we're on it - Ann Smith")]
    await runtime.desk.reply(cid, "Ann Smith", "Let us talk privately", private=True)
    assert public_channel.actions[-1] == ("private_reply", "c1", "Let us talk privately")
    await runtime.desk.resolve(cid, "Ann Smith")
    assert len(public_channel.actions) == 2  # no resolved notice, no rating question


async def test_a_comment_removed_before_its_reply_went_out_is_not_answered(
    runtime: Runtime, public_channel: PublicRecordingChannel, clock: Clock
) -> None:
    outcome = await runtime.inbox.receive(comment(COMPLAINT))
    cid = outcome.received.conversation_id
    public_channel.failures.append(DeliveryError("the platform is down"))
    await runtime.desk.reply(cid, "Ann", "Sorry to hear that")  # fails once: stays pending
    await runtime.deliver(PublicChange(CHANNEL, "c1", "removed", clock.now))
    clock.advance(600)
    await runtime.outbox.deliver_due()

    assert public_channel.actions == []
    async with runtime.db.session() as session:
        error = await session.scalar(
            select(OutboxRow.last_error).where(OutboxRow.conversation_id == cid)
        )
    assert error is not None and "removed" in error
    assert (await item(runtime, "c1")).removed_at is not None


async def test_an_edit_keeps_the_earlier_text_for_agents(runtime: Runtime, clock: Clock) -> None:
    await runtime.inbox.receive(comment(CHATTER))
    await runtime.deliver(PublicChange(CHANNEL, "c1", "edited", clock.now, text="edited words"))

    edited = await item(runtime, "c1")
    assert [e["text"] for e in edited.edits] == [CHATTER]
    async with runtime.db.session() as session:
        text = await session.scalar(select(Message.text).where(Message.external_id == "c1"))
    assert text == "edited words"


async def test_threads_comments_and_private_messages_of_one_customer(runtime: Runtime) -> None:
    first = await runtime.inbox.receive(comment(CHATTER, cid="c1", post="p1"))
    same_post = await runtime.inbox.receive(comment(CHATTER, cid="c2", post="p1"))
    other_post = await runtime.inbox.receive(comment(CHATTER, cid="c3", post="p2"))
    direct = await runtime.inbox.receive(
        InboundMessage(CHANNEL, "u1", "m1", "hello there", Clock().now)
    )
    again = await runtime.inbox.receive(comment(CHATTER, cid="c1", post="p1"))

    ids = [o.received.conversation_id for o in (first, same_post, other_post, direct)]
    assert ids[0] == ids[1] and len(set(ids)) == 3
    assert len({o.received.customer_id for o in (first, other_post, direct)}) == 1
    assert again.status is Status.DUPLICATE
    async with runtime.db.session() as session:
        kinds = dict(
            (await session.execute(select(Conversation.id, Conversation.visibility))).all()
        )
    assert kinds[ids[3]] == Visibility.PRIVATE.value and kinds[ids[2]] == "public"


async def test_a_reply_to_our_answer_joins_the_conversation_it_answers(
    runtime: Runtime, public_channel: PublicRecordingChannel
) -> None:
    """On X a reply's thread is the post it answers: answering carebot's own reply (whose id
    the outbox keeps) stays in the customer's conversation."""
    first = await runtime.inbox.receive(comment("how do I return an item", cid="t1", post="t1"))
    ours = "messenger-reply-1"  # the id the recording channel gave carebot's reply
    follow = await runtime.inbox.receive(comment(CHATTER, cid="t2", post=ours, parent=ours))
    assert follow.received.conversation_id == first.received.conversation_id


async def test_a_private_reply_after_seven_days_is_refused(
    runtime: Runtime, public_channel: PublicRecordingChannel, clock: Clock
) -> None:
    outcome = await runtime.inbox.receive(comment(COMPLAINT, clock=clock))
    clock.advance(timedelta(days=8).total_seconds())
    with pytest.raises(PublicRefused, match="7 days"):
        await runtime.desk.reply(outcome.received.conversation_id, "Ann", "hi", private=True)
    assert public_channel.actions == []


async def test_the_desks_view_of_a_public_conversation(runtime: Runtime, clock: Clock) -> None:
    outcome = await runtime.inbox.receive(comment(SPAM))
    await runtime.deliver(PublicChange(CHANNEL, "c1", "edited", clock.now, text="edited spam"))
    view = await runtime.public_items.view(outcome.received.conversation_id)

    assert view is not None
    assert (view.platform, view.post_url, view.post_text) == (
        "Facebook",
        "https://fb/p1",
        "Autumn boots are here",
    )
    [seen] = view.items
    assert (seen.text, seen.category, seen.hidden, seen.hidden_by) == (
        "edited spam",
        "spam",
        True,
        "carebot",
    )
    assert [e["text"] for e in seen.edits] == [SPAM]
    assert seen.plan is not None and seen.plan["category"] == "spam"
    assert view.latest == seen
    private = await runtime.inbox.receive(InboundMessage(CHANNEL, "u9", "m9", "hi", clock.now))
    assert await runtime.public_items.view(private.received.conversation_id) is None


async def test_no_rating_request_is_posted_under_a_comment_the_bot_answered(
    tmp_path: Path,
    intents: Path,
    database_url: str,
    encoder: FakeEncoder,
    clock: Clock,
    public_channel: PublicRecordingChannel,
) -> None:
    """The rating sweep asks bot-resolved conversations; a public one is never asked."""
    settings = make_settings(
        tmp_path,
        matcher={"intents_dir": str(intents)},
        public={"live": [CHANNEL]},
        survey={"rating": True},
    )
    await migrate(database_url)
    rt = await build_runtime(
        settings,
        encoder=encoder,
        channels={CHANNEL: public_channel},
        clock=clock,
        database_url=database_url,
        post_classifier=FixedClassifier(),
        public_guard=guard,
    )
    try:
        await rt.inbox.receive(comment("how do I return an item"))
        clock.advance(timedelta(hours=settings.insight.assume_resolved_hours + 1).total_seconds())
        assert await rt.ratings.sweep() == []
        assert [a[0] for a in public_channel.actions] == ["reply"] and public_channel.sent == []
    finally:
        await rt.db.close()


@pytest.mark.parametrize("live", [()])
async def test_in_shadow_mode_a_draft_meant_as_a_private_reply_is_sent_privately(
    runtime: Runtime, public_channel: PublicRecordingChannel
) -> None:
    """carebot would have moved the question to private: its draft is the private reply's
    text, and sending the draft sends it privately, never under the comment."""
    outcome = await runtime.inbox.receive(comment("where is my order"))
    assert outcome.decision is not None and outcome.decision.reason is Reason.SHADOW

    await runtime.desk.send_draft(outcome.received.conversation_id, "Ann")
    assert public_channel.actions == [
        ("private_reply", "c1", "Send us your order number and we track it.")
    ]


async def test_a_comment_while_an_agent_has_the_thread_is_classified_for_them_only(
    runtime: Runtime, public_channel: PublicRecordingChannel
) -> None:
    first = await runtime.inbox.receive(comment(COMPLAINT, cid="c1"))
    later = await runtime.inbox.receive(comment(SPAM, cid="c2"))

    assert later.status is Status.RECORDED
    assert first.received.conversation_id == later.received.conversation_id
    assert (await item(runtime, "c2")).category == "spam"
    assert public_channel.actions == []  # not hidden: a person has the thread


async def test_a_private_reply_may_carry_personal_data(
    runtime: Runtime, public_channel: PublicRecordingChannel
) -> None:
    outcome = await runtime.inbox.receive(comment(COMPLAINT))
    await runtime.desk.reply(
        outcome.received.conversation_id, "Ann", "Is ann@example.com your address?", private=True
    )
    assert public_channel.actions == [("private_reply", "c1", "Is ann@example.com your address?")]


@pytest.mark.parametrize(
    ("posted", "read"),
    [
        ("@northwind how do I return an item", "how do I return an item"),
        ("@northwind @bob_k, how do I return an item", "how do I return an item"),
        ("@northwind", "@northwind"),  # nothing but handles: read whole
        ("how do I return an item @northwind", "how do I return an item @northwind"),
    ],
)
def test_the_matcher_reads_a_public_message_without_its_leading_handles(
    posted: str, read: str
) -> None:
    assert matching_text(posted) == read


async def test_a_mention_is_matched_on_its_words_and_answered(
    runtime: Runtime, public_channel: PublicRecordingChannel
) -> None:
    """The fake encoder scores by shared words: with the handle the match would fall short."""
    handles = "@northwind @ann_k @bo_b @carla @dan @eve_x"  # six more words than the question
    outcome = await runtime.inbox.receive(comment(f"{handles} how do I return an item"))
    assert outcome.decision is not None and outcome.decision.kind is DecisionKind.ANSWER
    assert [a[0] for a in public_channel.actions] == ["reply"]


async def test_the_view_says_when_the_platform_will_not_hide_a_message(
    runtime: Runtime, clock: Clock
) -> None:
    """An Instagram mention on another account's post cannot be hidden: the desks say so
    instead of offering the button."""
    mention = InboundMessage(
        channel="instagram",
        external_user_id="ig-u1",
        external_message_id="ig-m1",
        text=CHATTER,
        sent_at=clock.now,
        public=PublicContext(thread="their-media", kind="mention"),
    )
    outcome = await runtime.inbox.receive(mention)
    view = await runtime.public_items.view(outcome.received.conversation_id)
    assert view is not None and view.items[0].hide_refusal is not None
    assert "another account's post" in view.items[0].hide_refusal
    [ours] = (
        await runtime.public_items.view(
            (
                await runtime.inbox.receive(comment(CHATTER, cid="c9", user="u9"))
            ).received.conversation_id
        )
    ).items  # type: ignore[union-attr]
    assert ours.hide_refusal is None
