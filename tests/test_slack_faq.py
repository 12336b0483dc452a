"""``/care faq <words>`` in Slack end to end: the real service (fake encoder, test intents),
slack-bolt answering the Slack stand-in's slash commands over HTTP and Socket Mode."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp.test_utils import TestServer
from ruamel.yaml import YAML

from carebot.console.answer_search import Hit
from carebot.desk.slack import faq
from carebot.desk.slack.mrkdwn import LIMIT
from carebot.server import Service
from tests.conftest import ROOT, Clock
from tests.service import running_service
from tests.slack_standin import SlackStandIn, private_answer, slash_command
from tests.test_slack import AGENT, CHANNEL, HTTP_ENV, SECRET, STRANGER, slack_settings


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn() as standin:
        standin.add_user(AGENT, name="ann", real_name="Ann Agent", display_name="Ann")
        standin.add_user(STRANGER, name="eve", real_name="Eve Outsider")
        standin.members = {AGENT, "UBOT"}
        yield standin


@pytest.fixture
async def service(
    tmp_path: Path, sqlite_url: str, clock: Clock, slack: SlackStandIn
) -> AsyncIterator[tuple[Service, TestServer]]:
    settings = slack_settings(tmp_path, slack)
    async with running_service(settings, sqlite_url, clock, env=HTTP_ENV) as running:
        yield running


async def care(
    server: TestServer, slack: SlackStandIn, text: str, *, user: str = AGENT
) -> dict[str, Any]:
    """Send ``/care <text>`` as ``user`` (signed, over HTTP); return carebot's private answer."""
    command = slash_command(user=user, text=text, response_url=slack.response_url)
    raw = urlencode(command).encode()
    return await private_answer(server.make_url("/slack/events"), slack, raw, SECRET)


def sections(answer: dict[str, Any]) -> list[str]:
    return [b["text"]["text"] for b in answer["blocks"] if b["type"] == "section"]


async def test_an_agent_gets_the_answers_only_they_see(
    service: tuple[Service, TestServer], slack: SlackStandIn
) -> None:
    _, server = service
    answer = await care(server, slack, "faq  where is my order")
    assert answer["response_type"] == "ephemeral"
    assert sections(answer) == [
        "FAQ answers for “where is my order”:",
        "*Order status*  `order_status`\nTrack it at https://track.example.",
    ]
    assert answer["blocks"][-1] == {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": faq.HINT}],
    }
    assert "Track it at https://track.example." in answer["text"]
    assert slack.messages.get(CHANNEL, []) == [] and slack.ephemeral == []  # nothing in public

    answer = await care(server, slack, "FAQ days")  # two answers hold the word
    assert sorted(sections(answer)[1:]) == [
        "*Refunds*  `refunds`\nRefunds take 5 days.",
        "*Returns*  `returns`\nReturns are free within 30 days.",
    ]


@pytest.mark.parametrize("words", ["staff member please", "no such thing"])
async def test_nothing_found_is_said(
    service: tuple[Service, TestServer], slack: SlackStandIn, words: str
) -> None:
    """The human-handoff intent is never offered: its words find nothing."""
    _, server = service
    answer = await care(server, slack, f"faq {words}")
    assert sections(answer) == [f"No FAQ answer matches “{words}”. Try other words, or fewer."]


@pytest.mark.parametrize(
    ("text", "said"),
    [("", faq.USAGE), ("help", faq.USAGE), ("faqs refund", faq.USAGE), ("faq", faq.NO_WORDS)],
)
@pytest.mark.parametrize("user", [AGENT, STRANGER])
async def test_the_usage_line(
    service: tuple[Service, TestServer], slack: SlackStandIn, text: str, said: str, user: str
) -> None:
    _, server = service
    answer = await care(server, slack, text, user=user)
    assert (answer["response_type"], answer["text"]) == ("ephemeral", said)
    assert "blocks" not in answer or not answer["blocks"]


async def test_someone_not_an_agent_is_refused(
    service: tuple[Service, TestServer], slack: SlackStandIn
) -> None:
    _, server = service
    answer = await care(server, slack, "faq refund", user=STRANGER)
    assert (answer["response_type"], answer["text"]) == ("ephemeral", faq.NOT_ALLOWED)
    assert "Refunds take" not in str(answer)


async def test_when_slack_cannot_say_who_is_an_agent_nothing_is_shown(
    service: tuple[Service, TestServer], slack: SlackStandIn
) -> None:
    _, server = service
    slack.fail_next("conversations.members", 200, body={"ok": False, "error": "missing_scope"})
    answer = await care(server, slack, "faq refund")
    assert answer["text"].startswith("Slack did not let carebot check that you are a care agent")
    assert "missing_scope" in answer["text"] and "Refunds take" not in str(answer)


async def test_configured_agents_only(
    tmp_path: Path, sqlite_url: str, clock: Clock, slack: SlackStandIn
) -> None:
    """With [slack] agents, a member of the care channel who is not listed is refused."""
    settings = slack_settings(tmp_path, slack, agents=[STRANGER])
    async with running_service(settings, sqlite_url, clock, env=HTTP_ENV) as (_, server):
        assert (await care(server, slack, "faq refund"))["text"] == faq.NOT_ALLOWED
        answer = await care(server, slack, "faq refund", user=STRANGER)
        assert sections(answer)[1] == "*Refunds*  `refunds`\nRefunds take 5 days."


async def test_over_socket_mode(
    tmp_path: Path, sqlite_url: str, clock: Clock, slack: SlackStandIn
) -> None:
    env = {"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_APP_TOKEN": "xapp-test"}
    settings = slack_settings(tmp_path, slack)
    async with running_service(settings, sqlite_url, clock, env=env):
        command = slash_command(user=AGENT, text="faq refund", response_url=slack.response_url)
        ack = await slack.push("slash_commands", command)
        assert "envelope_id" in ack
        await slack.wait_for("response_url")
        assert sections(slack.responses[0])[1] == "*Refunds*  `refunds`\nRefunds take 5 days."


def test_answers_are_escaped_and_cut_to_a_block() -> None:
    long = "Write to <help@shop.example> & quote your order. " * 100  # 4,900 escaped: 7,900
    hits = [Hit("contact", "Q&A <team>", long, 0.9, ("meaning",))]
    blocks = faq.answer_blocks("mail <support> & co", hits)
    texts = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    assert texts[0] == "FAQ answers for “mail &lt;support&gt; &amp; co”:"
    assert texts[1].startswith(
        "*Q&amp;A &lt;team&gt;*  `contact`\nWrite to &lt;help@shop.example&gt;"
    )
    assert "<" not in texts[1] and len(texts[1]) <= LIMIT and texts[1].endswith("…")


@pytest.mark.parametrize(
    ("limit", "cut"),
    [
        (19, "a &lt;b&gt; &amp; c"),  # fits
        (18, "a &lt;b&gt; &amp;…"),
        (17, "a &lt;b&gt;…"),  # not "&amp"
        (11, "a &lt;b…"),
        (7, "a &lt;…"),
        (6, "a…"),
    ],
)
def test_a_cut_never_splits_an_escape(limit: int, cut: str) -> None:
    assert faq.fit("a <b> & c", limit) == cut


def test_the_manifest_declares_the_command() -> None:
    manifest = YAML(typ="safe").load((ROOT / "slack-manifest.yml").read_text())
    (command,) = manifest["features"]["slash_commands"]
    assert command["command"] == faq.COMMAND
    assert command["url"].endswith("/slack/events") and command["usage_hint"] == "faq <words>"
    assert command["description"]
    assert "commands" in manifest["oauth_config"]["scopes"]["bot"]
