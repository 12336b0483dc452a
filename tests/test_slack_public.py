"""Public conversations on the Slack desk (issue 18, section 3): the real service with the Slack
stand-in (signed requests through slack-bolt), a public channel that records its actions, a
fixed classifier and the runtime's real personal-data guard.

The card shows where the comment was posted, the post, the classification, and the bot's plan
(in shadow mode, what it would have posted); a thread reply is posted in public, ``private:``
sends the comment's private reply, a reply with an e-mail address is refused and the agent told
why; Hide and Unhide reach the platform; public actions are mirrored into the thread as such."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import func, select

from carebot.desk.slack import public_card
from carebot.desk.slack.card import TAKE_FROM_COLLEAGUE
from carebot.desk.slack.public_actions import not_sent, private_reply
from carebot.exceptions import PublicRefused, StoreError
from carebot.models import InboundMessage, PublicCategory, PublicContext
from carebot.public.guard import check_public_text
from carebot.runtime import build_runtime
from carebot.server import Service, build_app
from carebot.store.public_items import ItemView, PublicView
from carebot.store.queue import Case
from carebot.store.slack_threads import Mirrored
from carebot.store.tables import OutboxRow
from tests.conftest import Clock
from tests.fakes import FakeEncoder, FixedClassifier, PublicRecordingChannel
from tests.migrated import migrate
from tests.service import EXACT_BACKOFF, service_settings
from tests.slack_standin import SlackStandIn
from tests.test_slack import (  # noqa: F401  (fixtures)
    AGENT,
    CHANNEL,
    HTTP_ENV,
    buttons,
    card_text,
    card_ts,
    press,
    reply_in_thread,
    slack,
)
from tests.test_slack_stress import BEN, confirm_value, the_question

PAGE = "messenger"  # a Facebook Page's comments come on its Messenger channel
COMPLAINT = "worst service ever, my boots fell apart"
PRAISE = "love these boots, best purchase ever"
POST = "Autumn boots are here: warm, waterproof, made to last"
POST_URL = "https://www.facebook.com/shop/posts/p1"
E_MAIL_REPLY = "Sorry! Write to <mailto:care@shop.example.com|care@shop.example.com> please"


@pytest.fixture
def live() -> tuple[str, ...]:
    """The channels carebot posts on in public (the rest: shadow mode)."""
    return (PAGE,)


class Page(PublicRecordingChannel):
    """The page's channel, whose actions a test can wait for: the thread's mirror of an
    action may come before the action itself (the sync hears of it first)."""

    def __init__(self) -> None:
        super().__init__(PAGE)
        self._acted = asyncio.Condition()

    async def _act(self, kind: str, target: str, text: str = "") -> str:
        found = await super()._act(kind, target, text)
        async with self._acted:
            self._acted.notify_all()
        return found

    async def acted(self, count: int) -> list[tuple[str, str, str]]:
        """The actions, once there are ``count`` of them."""
        async with self._acted:
            await asyncio.wait_for(self._acted.wait_for(lambda: len(self.actions) >= count), 10)
        return self.actions


@pytest.fixture
def page() -> Page:
    return Page()


@pytest.fixture
async def service(
    tmp_path: Path,
    database_url: str,
    clock: Clock,
    slack: SlackStandIn,  # noqa: F811
    page: Page,
    live: tuple[str, ...],
) -> AsyncIterator[tuple[Service, TestServer]]:
    """The service with the Slack desk, the page's channel and the real personal-data guard."""
    section = {"channel": CHANNEL, "api_url": slack.base_url, "posts_per_second": 1000.0}
    public = {"live": list(live), "thanks": "Thank you!"}
    settings = service_settings(tmp_path, slack=section, public=public)
    await migrate(database_url)
    runtime = await build_runtime(
        settings,
        encoder=FakeEncoder(),
        channels={PAGE: page},
        clock=clock,
        database_url=database_url,
        backoff=EXACT_BACKOFF,
        post_classifier=FixedClassifier(
            {COMPLAINT: PublicCategory.COMPLAINT, PRAISE: PublicCategory.PRAISE}
        ),
    )
    running = build_app(settings, runtime, env=HTTP_ENV)
    server = TestServer(running.app)
    await server.start_server()
    try:
        yield running, server
    finally:
        await server.close()


def comment(text: str, clock: Clock, *, cid: str = "c1", reach: int | None = 1200) -> Any:
    return InboundMessage(
        channel=PAGE,
        external_user_id="psid-ann",
        external_message_id=cid,
        text=text,
        sent_at=clock.now,
        profile={"name": "Ann Lee"},
        public=PublicContext(thread="p1", post_text=POST, post_url=POST_URL, reach=reach),
    )


async def handed_over(running: Service, slack: SlackStandIn, text: str, clock: Clock) -> str:  # noqa: F811
    """A comment handed to an agent; the ts of its card."""
    outcome = await running.runtime.inbox.receive(comment(text, clock))
    assert outcome.decision is not None and outcome.decision.hands_off
    return await card_ts(slack)


def the_card(slack: SlackStandIn) -> dict[str, Any]:  # noqa: F811
    return next(m for m in slack.messages[CHANNEL] if "thread_ts" not in m)


async def told(slack: SlackStandIn, words: str) -> str:  # noqa: F811
    """The text of the ephemeral message to the agent that contains ``words``."""
    [call] = await slack.wait_for(
        "chat.postEphemeral", lambda c: c.params["user"] == AGENT and words in c.params["text"]
    )
    return str(call.params["text"])


async def relayed(slack: SlackStandIn, count: int = 1) -> None:  # noqa: F811
    """The agent's thread reply was queued for the customer (it got its check mark)."""
    await slack.wait_for(
        "reactions.add", lambda c: c.params["name"] == "white_check_mark", count=count
    )


async def outbox_rows(running: Service) -> int:
    async with running.runtime.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(OutboxRow)) or 0)


async def test_the_card_shows_the_public_comment_its_post_and_the_hide_button(
    service: tuple[Service, TestServer],
    slack: SlackStandIn,  # noqa: F811
    clock: Clock,
) -> None:
    running, _ = service
    await handed_over(running, slack, COMPLAINT, clock)
    card = the_card(slack)
    shown = card_text(card)
    assert "(public comment on facebook)" in card["text"]
    assert "Public comment on Facebook" in shown
    assert f"<{POST_URL}|open the post>" in shown
    assert "Autumn boots are here" in shown
    assert "Classified as *complaint*" in shown and "Reach 1,200" in shown
    assert public_card.HIDE in buttons(card)
    assert public_card.UNHIDE not in buttons(card)


async def test_a_thread_reply_is_posted_in_public_signed_and_private_goes_privately(
    service: tuple[Service, TestServer],
    slack: SlackStandIn,  # noqa: F811
    page: Page,
    clock: Clock,
) -> None:
    running, server = service
    ts = await handed_over(running, slack, COMPLAINT, clock)

    await reply_in_thread(server, ts, "So sorry to hear that, we will make it right")
    assert await page.acted(1) == [
        ("reply", "c1", "So sorry to hear that, we will make it right - Ann")
    ]
    await relayed(slack)  # checked in the thread

    await reply_in_thread(server, ts, "*private:* Could you send us your order number?")
    assert (await page.acted(2))[1] == (
        "private_reply",
        "c1",
        "Could you send us your order number?",
    )
    assert page.sent == []  # nothing went as an ordinary message


async def test_a_private_reply_on_a_colleagues_conversation_stays_private_once_confirmed(
    service: tuple[Service, TestServer],
    slack: SlackStandIn,  # noqa: F811
    page: Page,
    clock: Clock,
) -> None:
    running, server = service
    ts = await handed_over(running, slack, COMPLAINT, clock)
    slack.add_user(BEN, name="ben", real_name="Ben Agent", display_name="Ben")
    slack.members.add(BEN)
    await reply_in_thread(server, ts, "Looking into it")  # Ann has it now
    await page.acted(1)

    await reply_in_thread(server, ts, "private: Ben here, send us the order number", user=BEN)
    await slack.wait_for("chat.postEphemeral", lambda c: c.params["user"] == BEN)
    value = confirm_value(the_question(slack, BEN))
    assert json.loads(value)["private"] is True
    await press(
        server, ts, TAKE_FROM_COLLEAGUE, user=BEN, value=value, response_url=slack.response_url
    )
    assert (await page.acted(2))[-1] == (
        "private_reply",
        "c1",
        "Ben here, send us the order number",
    )


async def test_a_public_reply_with_an_e_mail_address_is_refused_and_the_agent_told(
    service: tuple[Service, TestServer],
    slack: SlackStandIn,  # noqa: F811
    page: Page,
    clock: Clock,
) -> None:
    running, server = service
    ts = await handed_over(running, slack, COMPLAINT, clock)
    before = await outbox_rows(running)

    await reply_in_thread(server, ts, E_MAIL_REPLY)
    said = await told(slack, "Not posted in public")
    assert said == (
        "Not posted in public: the reply contains an e-mail address (ca…@…com). Reply "
        "privately instead (start a thread reply with `private:`), or remove it."
    )
    assert page.actions == [] and page.sent == []
    assert await outbox_rows(running) == before  # nothing stored, nothing to send


async def test_hide_then_unhide_reach_the_platform_and_the_thread_says_who(
    service: tuple[Service, TestServer],
    slack: SlackStandIn,  # noqa: F811
    page: Page,
    clock: Clock,
) -> None:
    running, server = service
    ts = await handed_over(running, slack, COMPLAINT, clock)
    [hide] = [b for b in _buttons(the_card(slack)) if b["action_id"] == public_card.HIDE]
    assert "confirm" in hide  # asked first: everyone else stops seeing the comment

    await press(server, ts, public_card.HIDE, value=hide["value"])
    assert await page.acted(1) == [("hide", "c1", "")]
    [said] = await slack.wait_for(
        "chat.postMessage", lambda c: "hid the comment" in str(c.params.get("text"))
    )
    assert said.params["thread_ts"] == ts
    assert "*Ann hid the comment*" in said.params["text"]
    assert "(hidden by an agent in Slack)" in said.params["text"]
    await slack.wait_for("chat.update", lambda c: public_card.UNHIDE in str(c.params["blocks"]))
    card = the_card(slack)
    assert "Hidden on Facebook by Ann" in card_text(card)
    [unhide] = [b for b in _buttons(card) if b["action_id"] == public_card.UNHIDE]

    await press(server, ts, public_card.UNHIDE, value=unhide["value"])
    assert await page.acted(2) == [("hide", "c1", ""), ("unhide", "c1", "")]
    await slack.wait_for(
        "chat.postMessage", lambda c: "unhid the comment" in str(c.params.get("text"))
    )


async def test_a_refused_hide_is_told_and_changes_nothing(
    service: tuple[Service, TestServer],
    slack: SlackStandIn,  # noqa: F811
    page: Page,
    clock: Clock,
) -> None:
    running, server = service
    ts = await handed_over(running, slack, COMPLAINT, clock)
    [hide] = [b for b in _buttons(the_card(slack)) if b["action_id"] == public_card.HIDE]
    conversation, _ = public_card.pressed(hide["value"])
    await running.runtime.desk.set_hidden(
        conversation, "Bob", message_id=json.loads(hide["value"])["message"], hidden=True
    )
    await press(server, ts, public_card.HIDE, value=hide["value"])  # a card not yet updated
    assert await told(slack, "Not hidden") == "Not hidden: the comment is hidden already"
    assert page.actions == [("hide", "c1", "")]  # Bob's, once


async def test_an_inbox_reply_is_mirrored_into_the_thread_as_a_public_reply(
    service: tuple[Service, TestServer],
    slack: SlackStandIn,  # noqa: F811
    page: Page,
    clock: Clock,
) -> None:
    running, _ = service
    ts = await handed_over(running, slack, COMPLAINT, clock)
    conversation = public_card.pressed(
        next(b["value"] for b in _buttons(the_card(slack)) if b["action_id"] == public_card.HIDE)
    )[0]
    await running.runtime.desk.reply(conversation, "Ann", "We have sent new boots")
    [said] = await slack.wait_for(
        "chat.postMessage", lambda c: "replied in public" in str(c.params.get("text"))
    )
    assert said.params["thread_ts"] == ts
    text = said.params["text"]
    assert text.startswith("*Ann replied in public* · messenger · ")
    assert "(from the inbox)\n&gt; We have sent new boots - Ann" in text
    assert page.actions == [("reply", "c1", "We have sent new boots - Ann")]


@pytest.mark.parametrize("live", [()])
async def test_in_shadow_mode_the_card_says_what_carebot_would_have_posted(
    service: tuple[Service, TestServer],
    slack: SlackStandIn,  # noqa: F811
    page: Page,
    clock: Clock,
) -> None:
    running, _ = service
    await handed_over(running, slack, PRAISE, clock)
    shown = card_text(the_card(slack))
    assert "Shadow mode: carebot would have replied publicly:" in shown
    assert "Thank you! (automated reply)" in shown
    assert "Classified as *praise or thanks*" in shown
    assert page.actions == []  # nothing posted in public


def _buttons(card: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for b in card["blocks"] if b["type"] == "actions" for e in b["elements"]]


# The parts, without the service.

AT = datetime(2026, 11, 18, 10, tzinfo=UTC)


def item(**changes: Any) -> ItemView:
    fields: dict[str, Any] = {
        "message_id": 7,
        "external_id": "c1",
        "text": "where is my parcel",
        "kind": "comment",
        "category": "care_request",
        "reach": None,
        "top_level": True,
        "hidden": False,
        "hidden_by": None,
        "hidden_reason": None,
        "removed_at": None,
        "edits": (),
        "private_reply_at": None,
        "private_reply_by": None,
        "plan": None,
    }
    return ItemView(**(fields | changes))


def view(channel: str = PAGE, *items: ItemView) -> PublicView:
    return PublicView(
        conversation_id=3,
        channel=channel,
        platform={"messenger": "Facebook", "instagram": "Instagram", "x": "X"}[channel],
        thread="p1",
        post_text="",
        post_url="",
        items=items or (item(),),
    )


@pytest.mark.parametrize(
    ("channel", "kind", "title"),
    [
        ("messenger", "comment", "Public comment on Facebook"),
        ("instagram", "comment", "Public comment on Instagram"),
        ("x", "mention", "Public mention on X"),
        ("x", "reply", "Public reply on X"),
    ],
)
def test_the_title_names_the_platform_and_the_kind(channel: str, kind: str, title: str) -> None:
    assert public_card.title(view(channel, item(kind=kind))) == title


@pytest.mark.parametrize(
    ("plan", "words"),
    [
        (
            {"shadowed": [{"kind": "hide", "text": "", "why": "spam or abuse"}]},
            "Shadow mode: carebot would have hidden the comment (spam or abuse)",
        ),
        (
            {"blocked": "the intent 'refund' is not marked public: true"},
            "Not answered in public: the intent 'refund' is not marked public: true",
        ),
        (
            {"steps": [{"kind": "private_reply", "text": "Send us your order", "why": ""}]},
            "carebot replied privately:\n&gt; Send us your order",
        ),
    ],
)
def test_the_bots_plan_in_words(plan: dict[str, Any], words: str) -> None:
    assert words in texts(public_card.blocks(_case(view(PAGE, item(plan=plan)))))


def test_a_removed_and_edited_comment_says_so_and_has_no_buttons() -> None:
    gone = item(removed_at=AT, edits=({"text": "first words", "replaced_at": AT.isoformat()},))
    case = _case(view(PAGE, gone))
    shown = texts(public_card.blocks(case))
    assert "Removed on Facebook" in shown
    assert "Edited once; before:\n&gt; first words" in shown
    assert public_card.buttons(case) == []


def test_x_mentions_cannot_be_hidden_so_there_is_no_button() -> None:
    assert public_card.buttons(_case(view("x", item(kind="mention")))) == []
    [hide] = public_card.buttons(_case(view("x", item(kind="reply"))))
    assert hide["action_id"] == public_card.HIDE


@pytest.mark.parametrize(
    ("reason", "private", "words"),
    [
        (
            "X lets a brand reply only to posts that mention or quote it, and this one does "
            "neither; reply privately (a direct message) instead",
            False,
            "Not posted in public: X lets a brand reply only to posts that mention or quote "
            "it, and this one does neither; reply privately (a direct message) instead. To "
            "reply privately, start a thread reply with `private:`.",
        ),
        (
            "the comment is more than 7 days old; Facebook allows a private reply only within "
            "7 days of it",
            True,
            "Not sent privately: the comment is more than 7 days old; Facebook allows a "
            "private reply only within 7 days of it. Nothing reached the customer.",
        ),
    ],
)
def test_a_platform_rules_refusal_in_words(reason: str, private: bool, words: str) -> None:
    assert not_sent(PublicRefused(reason), private=private) == words


def test_the_guards_refusal_is_said_once_with_the_slack_way_to_reply_privately() -> None:
    refusal = check_public_text("call us on 0151 2345 6789")
    assert refusal is not None
    said = not_sent(PublicRefused(refusal.message))
    assert said.startswith("Not posted in public: the reply contains a phone number (015…).")
    assert said.count("Not posted") == 1 and "`private:`" in said
    assert not_sent(StoreError("closed")) == "Not sent to the customer: closed"


@pytest.mark.parametrize(
    ("written", "found"),
    [
        ("private: your order", (True, "your order")),
        ("*Private:* your order", (True, "your order")),
        ("privately speaking", (False, "privately speaking")),
        ("note: private: x", (False, "note: private: x")),
    ],
)
def test_the_private_prefix(written: str, found: tuple[bool, str]) -> None:
    assert private_reply(written) == found


@pytest.mark.parametrize(
    ("author", "agent", "kind", "text", "head"),
    [
        ("bot", None, "reply", "Thank you! (automated reply)", "*carebot replied in public*"),
        ("agent", "Ann", "private_reply", "Send us your order", "*Ann replied privately*"),
        ("bot", None, "hide", "", ":see_no_evil: *carebot hid the comment*"),
    ],
)
def test_a_public_action_is_mirrored_as_what_it_was(
    author: str, agent: str | None, kind: str, text: str, head: str
) -> None:
    message = Mirrored(9, author, agent, text, PAGE, AT, "inbox" if agent else None, kind)
    said = public_card.mirror_text(message)
    assert said.startswith(head) and (not text or said.endswith(f"&gt; {text}"))


def texts(blocks: list[dict[str, Any]]) -> str:
    """The mrkdwn of the blocks, one a line."""
    found = [b["text"]["text"] for b in blocks if "text" in b]
    found += [e["text"] for b in blocks for e in b.get("elements", ())]
    return "\n".join(found)


def _case(public: PublicView) -> Case:
    return Case(
        id=3,
        state="waiting_for_agent",
        agent=None,
        channel=public.channel,
        customer={},
        handoff=None,
        top_intents=[],
        messages=[],
        public=public,
    )
