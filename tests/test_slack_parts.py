"""The Slack desk's parts one by one: pacing, mrkdwn, credentials, the Web API client (against
the local stand-in), who may act, and the card."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML
from slack_sdk.http_retry.builtin_interval_calculators import FixedValueRetryIntervalCalculator

from carebot.config import load_settings
from carebot.desk.slack import card as cards
from carebot.desk.slack.api import SlackApi, make_client
from carebot.desk.slack.credentials import SlackCredentials
from carebot.desk.slack.mrkdwn import LIMIT, escape, plain, quote, shorten
from carebot.desk.slack.people import REFRESH_UNKNOWN_AFTER, RETRY_SECONDS, People
from carebot.exceptions import ConfigError, SlackError
from carebot.pacing import Pacer
from carebot.store.emotion_labels import EmotionLabel, LabelView
from carebot.store.queue import Case, MessageView
from carebot.store.slack_threads import Mirrored
from carebot.store.tables import Handoff
from tests.conftest import ROOT, make_settings
from tests.slack_standin import SlackStandIn


class FakeTime:
    """A monotonic clock the test moves by hand, and a sleep that records instead of waiting."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


# Pacing


@pytest.fixture
def time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def pacer(time: FakeTime) -> Pacer:
    return Pacer(1, burst=3, clock=time, sleep=time.sleep)


async def test_the_pacer_lets_a_burst_through_then_spaces_posts_a_second_apart(
    time: FakeTime, pacer: Pacer
) -> None:
    for _ in range(3):
        await pacer.wait("C0CARE")
    assert time.slept == []
    await pacer.wait("C0CARE")
    await pacer.wait("C0CARE")
    assert time.slept == [pytest.approx(1.0), pytest.approx(2.0)]


@pytest.mark.parametrize(("channel", "later"), [("C0OTHER", 0), ("C0CARE", 10)])
async def test_a_busy_channel_holds_up_neither_another_nor_itself_later_on(
    time: FakeTime, pacer: Pacer, channel: str, later: float
) -> None:
    for _ in range(5):
        await pacer.wait("C0CARE")
    time.now += later
    for _ in range(3):
        await pacer.wait(channel)
    assert len(time.slept) == 2  # only the 4th and 5th post to C0CARE waited


async def test_an_overall_rate_spaces_sends_to_many_chats(time: FakeTime) -> None:
    """Telegram: about one message a second per chat, and 30 a second in all."""
    pacer = Pacer(1, burst=1, overall_per_second=30, clock=time, sleep=time.sleep)
    for chat in range(60):
        await pacer.wait(f"chat-{chat}")
    assert len(time.slept) == 59  # each chat is new; only the overall rate spaces them
    assert time.slept[-1] == pytest.approx(59 / 30)
    await pacer.wait("chat-0")  # its own next slot is 1 s away, the overall queue 2 s
    assert time.slept[-1] == pytest.approx(60 / 30)


# mrkdwn


@pytest.mark.parametrize(
    ("slack", "customer"),
    [
        ("see <https://x.example|label>", "see label (https://x.example)"),
        ("<https://x.example>", "https://x.example"),
        ("write to <mailto:a@b.c|a@b.c>", "write to a@b.c"),
        ("<@U123> your parcel left today", "your parcel left today"),
        ("fish &amp; chips &lt;3 &gt;_&gt;", "fish & chips <3 >_>"),
        ("&amp;lt; was typed as is", "&lt; was typed as is"),
        ("  \n thanks! \n", "thanks!"),
    ],
)
def test_plain_turns_an_agents_slack_markup_into_customer_text(slack: str, customer: str) -> None:
    assert plain(slack) == customer


@pytest.mark.parametrize("text", ["a < b & c > d", "&amp; already", "<@U123> not a mention"])
def test_escaped_text_reads_the_same_after_plain(text: str) -> None:
    assert "<" not in escape(text) and ">" not in escape(text)
    assert plain(escape(text)) == text


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("one\ntwo <b> & c", 600, "&gt; one\n&gt; two &lt;b&gt; &amp; c"),
        ("", 600, "&gt; "),
        ("x" * 50, 10, "&gt; " + "x" * 9 + "…"),
    ],
)
def test_a_quote_marks_every_line_escapes_it_and_is_cut_at_the_limit(
    text: str, limit: int, expected: str
) -> None:
    assert quote(text, limit) == expected


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [("short", 10, "short"), ("exactly 10", 10, "exactly 10"), ("a long sentence", 8, "a long…")],
)
def test_shorten_cuts_only_what_is_too_long(text: str, limit: int, expected: str) -> None:
    assert shorten(text, limit) == expected
    assert len(shorten(text, limit)) <= limit


# Credentials and the [slack] section

SECRETS = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s3cret"}


def credentials(tmp_path: Path, env: dict[str, str], **slack: Any) -> SlackCredentials | None:
    settings = make_settings(tmp_path, slack={"channel": "C0CARE", **slack})
    return SlackCredentials.from_env(settings, env)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"CARE_BOT": "xoxp-user-token", "SLACK_SIGNING_SECRET": "s"}, "CARE_BOT must hold"),
        ({"CARE_BOT": "xoxb-1", "SLACK_APP_TOKEN": "xoxb-2"}, "SLACK_APP_TOKEN must hold"),
        ({"CARE_BOT": "xoxb-1"}, "neither SLACK_SIGNING_SECRET (events"),
        ({"CARE_BOT": "xoxb-1"}, "nor SLACK_APP_TOKEN (Socket Mode)"),
    ],
)
def test_a_wrong_or_missing_secret_names_its_variable(
    tmp_path: Path, env: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigError) as error:
        credentials(tmp_path, env, bot_token_env="CARE_BOT")
    assert named in str(error.value)


def test_an_empty_channel_names_the_key_and_the_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^config\.toml: \[slack\] 'channel' is empty"):
        credentials(tmp_path, SECRETS, channel="")
    path = tmp_path / "config.toml"
    path.write_text("[slack]\nchannel = ''\n")
    with pytest.raises(ConfigError) as error:
        SlackCredentials.from_env(load_settings(path), SECRETS)
    assert str(error.value).startswith(f"{path}: [slack] 'channel' is empty")


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({**SECRETS, "SLACK_BOT_TOKEN": "  "}, None),
        (SECRETS, ("s3cret", None)),
        ({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1"}, (None, "xapp-1")),
        ({**SECRETS, "SLACK_APP_TOKEN": " xapp-1 "}, ("s3cret", "xapp-1")),
    ],
)
def test_the_credentials_come_from_the_named_variables_and_need_a_bot_token(
    tmp_path: Path, env: dict[str, str], expected: tuple[str | None, str | None] | None
) -> None:
    """Without a bot token (unset or blank) Slack is simply not configured: None."""
    wanted = None if expected is None else SlackCredentials("xoxb-1", *expected)
    assert credentials(tmp_path, env) == wanted


@pytest.mark.parametrize(
    ("text", "located", "detail"),
    [
        ("[slack]\ncolour = 'blue'\n", ":2: unknown key [slack] 'colour'", "channel, api_url"),
        ("[slack]\nchannel = 'general'\n", ":2: [slack] 'channel'", "(got 'general')"),
        ("[slack]\nagents = ['UANN', 'ann']\n", ":2: [slack] 'agents'", "(got 'ann')"),
    ],
)
def test_a_wrong_slack_setting_names_the_key_the_file_and_the_line(
    tmp_path: Path, text: str, located: str, detail: str
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_settings(path)
    assert f"{path}{located}" in str(error.value)
    assert detail in str(error.value)


# The Web API client, against the stand-in


class Slack(SlackStandIn):
    """The stand-in, plus a SlackApi on its C0CARE (real retry handlers, no backoff waits)."""

    def connect(self, token: str = "xoxb-test") -> SlackApi:
        client = make_client(token, self.base_url)
        for handler in client.retry_handlers:
            handler.interval_calculator = FixedValueRetryIntervalCalculator(0.0)
        return SlackApi(client, channel="C0CARE", pacer=Pacer(1000))

    @cached_property
    def api(self) -> SlackApi:
        return self.connect()

    def statuses(self, method: str) -> list[int]:
        return [call.status for call in self.calls if call.method == method]


@pytest.fixture
async def slack() -> AsyncIterator[Slack]:
    async with Slack() as standin:
        yield standin


async def test_a_post_returns_its_ts_and_an_update_changes_the_message(slack: Slack) -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}}]
    ts = await slack.api.post("hi", blocks)
    assert [slack.message("C0CARE", ts)[key] for key in ("text", "blocks")] == ["hi", blocks]
    await slack.api.update(ts, "bye", [])
    assert [slack.message("C0CARE", ts)[key] for key in ("text", "blocks")] == ["bye", []]


@pytest.mark.parametrize("broadcast", [False, True])
async def test_a_thread_post_carries_thread_ts_and_broadcasts_only_when_asked(
    slack: Slack, broadcast: bool
) -> None:
    parent = await slack.api.post("card")
    ts = await slack.api.post("reply", thread_ts=parent, broadcast=broadcast)
    assert [m["ts"] for m in slack.thread("C0CARE", parent)] == [ts]
    assert slack.calls[-1].params.get("reply_broadcast", False) is broadcast


@pytest.mark.parametrize("failures", [[429, 500], [502], [504]])
async def test_rate_limits_and_server_errors_are_retried_until_the_post_lands(
    slack: Slack, failures: list[int]
) -> None:
    for status in failures:
        slack.fail_next("chat.postMessage", status, retry_after=0)
    await slack.api.post("hello")
    assert len(slack.messages["C0CARE"]) == 1
    assert slack.statuses("chat.postMessage") == [*failures, 200]


@pytest.mark.parametrize(
    ("method", "channels", "token", "error", "hint"),
    [
        ("chat.update", None, "xoxb-test", "message_not_found", ""),
        ("chat.postMessage", {"C0OTHER"}, "xoxb-test", "channel_not_found", "invite the app"),
        ("chat.postMessage", None, "xoxb-revoked", "invalid_auth", "check SLACK_BOT_TOKEN"),
    ],
)
async def test_slack_refusing_a_call_is_a_final_error_with_its_code_and_a_hint(
    slack: Slack, method: str, channels: set[str] | None, token: str, error: str, hint: str
) -> None:
    slack.channels, api = channels, slack.connect(token)
    with pytest.raises(SlackError) as raised:
        await (api.update("1.000001", "x", []) if method == "chat.update" else api.post("x"))
    assert (raised.value.error, raised.value.retryable) == (error, False)
    assert f"Slack {method} failed: HTTP 200, {error}" in str(raised.value)
    assert hint in str(raised.value)
    assert slack.statuses(method) == [200]  # a refusal is not retried


async def test_a_proxy_error_page_is_a_retryable_error_too(slack: Slack) -> None:
    slack.fail_next("chat.postMessage", 503, body="upstream connect error", times=3)
    with pytest.raises(SlackError) as raised:
        await slack.api.post("hello")
    assert (raised.value.retryable, raised.value.error) == (True, None)
    assert "HTTP 503" in str(raised.value)


async def test_slack_unreachable_is_a_retryable_error_naming_the_url(slack: Slack) -> None:
    await slack.stop()
    with pytest.raises(SlackError) as raised:
        await slack.api.post("hello")
    assert raised.value.retryable is True
    assert f"cannot reach {slack.base_url}" in str(raised.value)


async def test_members_are_read_from_every_page(slack: Slack) -> None:
    slack.members = {f"U{n:04d}" for n in range(450)}
    assert await slack.api.members() == slack.members
    assert slack.statuses("conversations.members") == [200, 200, 200]  # 200 a page


async def test_user_returns_slacks_user_record(slack: Slack) -> None:
    slack.add_user("UANN", name="ann", real_name="Ann Lee")
    user = await slack.api.user("UANN")
    assert (user["id"], user["name"], user["profile"]["real_name"]) == ("UANN", "ann", "Ann Lee")


# People: who may act, and agents' names


def people(slack: Slack, time: FakeTime, agents: tuple[str, ...] = ()) -> People:
    return People(slack.api, agents=agents, cache_seconds=300, clock=time)


@pytest.mark.parametrize(("user", "allowed"), [("UANN", True), ("UBOB", False)])
async def test_listed_agents_alone_may_act_and_the_channel_is_not_asked(
    slack: Slack, time: FakeTime, user: str, allowed: bool
) -> None:
    slack.members = {"UANN", "UBOB"}
    assert await people(slack, time, agents=("UANN",)).may_act(user) is allowed
    assert slack.statuses("conversations.members") == []


async def test_without_listed_agents_members_may_act(slack: Slack, time: FakeTime) -> None:
    slack.members = {"UANN"}
    desk = people(slack, time)
    assert [await desk.may_act("UANN"), await desk.may_act("UBOB")] == [True, False]


async def test_the_member_list_is_cached_until_it_is_old(slack: Slack, time: FakeTime) -> None:
    slack.members = {"UANN"}
    desk = people(slack, time)
    assert await desk.may_act("UANN") is True
    slack.members = {"UBOB"}  # Ann left the channel
    time.now += 299
    assert await desk.may_act("UANN") is True
    assert len(slack.statuses("conversations.members")) == 1
    time.now += 1
    assert await desk.may_act("UANN") is False
    assert len(slack.statuses("conversations.members")) == 2


async def test_an_unknown_user_refreshes_the_members_early_but_not_too_often(
    slack: Slack, time: FakeTime
) -> None:
    slack.members = {"UANN"}
    desk = people(slack, time)
    await desk.may_act("UANN")
    slack.members.add("UNEW")  # a colleague just joined
    time.now += REFRESH_UNKNOWN_AFTER - 1
    assert await desk.may_act("UNEW") is False
    time.now += 1
    assert await desk.may_act("UNEW") is True
    assert len(slack.statuses("conversations.members")) == 2


async def test_the_last_known_members_still_count_while_the_list_cannot_be_fetched(
    slack: Slack, time: FakeTime
) -> None:
    slack.members = {"UANN"}
    desk = people(slack, time)
    assert await desk.may_act("UANN") is True
    time.now += 300  # the list is old: fetched again, and Slack fails
    slack.fail_next("conversations.members", 500, times=3)
    assert await desk.may_act("UANN") is True  # a stale list beats none
    assert slack.statuses("conversations.members") == [200, 500, 500, 500]
    time.now += RETRY_SECONDS - 1
    assert await desk.may_act("UANN") is True  # not asked again before RETRY_SECONDS
    assert len(slack.statuses("conversations.members")) == 4
    slack.members = {"UBOB"}  # Ann left meanwhile
    time.now += 1
    assert await desk.may_act("UANN") is False  # asked again, and the new list counts
    assert slack.statuses("conversations.members")[-1] == 200


@pytest.mark.parametrize("known", [False, True], ids=["never-fetched", "not-on-the-old-list"])
async def test_whether_anyone_else_may_act_cannot_be_told_while_the_list_cannot_be_fetched(
    slack: Slack, time: FakeTime, known: bool
) -> None:
    slack.members = {"UANN", "UNEW"}
    desk = people(slack, time)
    if known:
        slack.members = {"UANN"}
        assert await desk.may_act("UANN") is True
        slack.members.add("UNEW")  # joined since
        time.now += REFRESH_UNKNOWN_AFTER
    slack.fail_next("conversations.members", 200, body={"ok": False, "error": "missing_scope"})
    with pytest.raises(SlackError) as raised:
        await desk.may_act("UNEW")  # not "no": a colleague may have just joined
    assert raised.value.error == "missing_scope"
    with pytest.raises(SlackError):
        await desk.may_act("UNEW")  # Slack is not asked again at once...
    assert len(slack.statuses("conversations.members")) == known + 1
    desk.retry_now()  # ...unless told to
    assert await desk.may_act("UNEW") is True


async def test_callers_waiting_for_the_member_list_share_one_fetch(
    slack: Slack, time: FakeTime
) -> None:
    slack.members = {"UANN"}
    desk = people(slack, time)
    answer = slack.hold("conversations.members")
    asking = [asyncio.create_task(desk.may_act(user)) for user in ("UANN", "UANN", "UBOB")]
    await slack.wait_for("conversations.members")
    answer.set()
    assert await asyncio.gather(*asking) == [True, True, False]
    assert len(slack.statuses("conversations.members")) == 1


async def test_a_waiter_for_the_next_try_is_woken_by_a_fetch_or_a_retry_asked_for(
    slack: Slack, time: FakeTime
) -> None:
    slack.members = {"UANN"}
    desk = People(slack.api, agents=(), cache_seconds=300, clock=time, retry_seconds=3600)
    woken = desk.wakes
    waiting = asyncio.create_task(desk.next_try(woken=woken))
    assert await desk.may_act("UANN") is True  # the fetch wakes it
    await asyncio.wait_for(waiting, 5)
    await asyncio.wait_for(desk.next_try(woken=woken), 5)  # woken since: returns at once
    waiting = asyncio.create_task(desk.next_try(woken=desk.wakes))
    desk.retry_now()
    await asyncio.wait_for(waiting, 5)


@pytest.mark.parametrize(
    ("display", "real", "expected"),
    [("annie", "Ann Lee", "annie"), ("", "Ann Lee", "Ann Lee"), ("", "", "ann")],
)
async def test_an_agents_name_is_the_first_of_display_real_and_user_name(
    slack: Slack, time: FakeTime, display: str, real: str, expected: str
) -> None:
    slack.add_user("UANN", name="ann", real_name=real, display_name=display)
    desk = people(slack, time)
    assert [await desk.name("UANN"), await desk.name("UANN")] == [expected, expected]
    assert len(slack.statuses("users.info")) == 1


async def test_an_agents_name_is_the_id_while_slack_fails(slack: Slack, time: FakeTime) -> None:
    desk = people(slack, time)
    assert await desk.name("UGHOST") == "UGHOST"  # users.info: user_not_found
    slack.add_user("UGHOST", name="ghost")
    assert await desk.name("UGHOST") == "ghost"  # the failure was not cached


async def test_an_agent_is_mentioned_by_their_slack_id_when_it_is_known(
    slack: Slack, time: FakeTime
) -> None:
    """Configured (slack_user_id), seen acting, or unknown (the name, escaped)."""
    desk = People(slack.api, agents=(), cache_seconds=300, clock=time, slack_ids={"Bo": "UBO"})
    slack.add_user("UANN", name="ann", display_name="Ann")
    assert desk.mention("Ann") == "Ann"  # not seen yet
    await desk.name("UANN")
    assert [desk.mention("Ann"), desk.mention("Bo"), desk.mention("<Eve>")] == [
        "<@UANN>",
        "<@UBO>",
        "&lt;Eve&gt;",
    ]


# The card

AT = datetime(2026, 11, 18, 10, 0, tzinfo=UTC)
WAITING, WITH_AGENT, BOT, CLOSED = "waiting_for_agent", "with_agent", "bot", "closed"
BY_ANN = {"reason": "closed_by_agent", "by": "Ann", "at": AT.isoformat(), "words": "Closed by Ann"}
IDLE = {
    "reason": "idle",
    "by": None,
    "at": AT.isoformat(),
    "words": "Closed automatically after 24 h without a message",
}


def message(n: int, text: str | None = None) -> MessageView:
    at = (AT + timedelta(minutes=n)).isoformat()
    return MessageView(n, "customer", None, text or f"message {n}", at, "telegram", 7)


def card_data(
    state: str = WAITING,
    *,
    draft: str | None = "Your parcel ships tomorrow.",
    history: list[MessageView] | None = None,
    closed_note: str | None = None,
    closed: dict[str, Any] | None = None,
) -> cards.CardData:
    """Conversation 7 of Jo Doe on Telegram; Ann has it when it is with an agent or resolved.
    ``closed`` is how a closed conversation ended."""
    open_handoff = (
        {"draft": draft, "draft_sent": False, "reasons": ["emotional"]} if state != BOT else None
    )
    customer = {"id": 3, "name": "Jo Doe", "since": AT.isoformat(), "conversations": 2}
    customer["identities"] = [
        {"channel": "telegram", "external_user_id": "42", "profile": {"username": "jodoe"}}
    ]
    agent = "Ann" if state == WITH_AGENT else None
    top = [{"intent": "shipping", "score": 0.61}]
    case = Case(
        7, state, agent, "telegram", customer, open_handoff, top, messages=[], closed=closed
    )
    handoff = Handoff(
        id=5, conversation_id=7, reason="emotional", reasons="emotional,asked_for_human",
        draft=draft, created_at=AT, resolved_by="Ann" if state == BOT else None,
    )  # fmt: skip
    return cards.CardData(case, handoff, 0.62, history or [message(1)], closed_note, top)


def dumped(data: cards.CardData) -> str:
    return json.dumps(cards.card(data)[1], ensure_ascii=False)


def history_section(data: cards.CardData) -> str:
    sections = [b["text"]["text"] for b in cards.card(data)[1] if "text" in b]
    return next(text for text in sections if "History*" in text or "*Last " in text)


@pytest.mark.parametrize(
    ("languages", "fact"),
    [
        ([None], "*Channel*\ntelegram"),
        (["de", None], "*Channel, language*\ntelegram\nGerman (de)"),  # "ok" keeps German
        (["de", "fr"], "*Channel, language*\ntelegram\nFrench (fr)"),
    ],
)
def test_the_card_says_the_language_the_customer_writes_in(
    languages: list[str | None], fact: str
) -> None:
    data = card_data()
    said = [dataclasses.replace(message(n), language=lang) for n, lang in enumerate(languages)]
    data = dataclasses.replace(data, case=dataclasses.replace(data.case, messages=said))
    fields = [f["text"] for f in cards.card(data)[1][1]["fields"]]
    assert fields[1] == fact and len(fields) <= 10


STATUS = [
    (WAITING, None, "waiting for an agent"),
    (WITH_AGENT, None, "with Ann"),
    (BOT, None, "resolved by Ann, back with the bot"),
    (CLOSED, BY_ANN, "closed by Ann"),
    (CLOSED, IDLE, "closed automatically after 24 h without a message"),
]


@pytest.mark.parametrize(("state", "closed", "status"), STATUS)
def test_the_card_header_names_the_customer_and_the_state(
    state: str, closed: dict[str, Any] | None, status: str
) -> None:
    text, blocks = cards.card(card_data(state, closed=closed))
    assert blocks[0]["text"]["text"] == f"Jo Doe: {status}"
    assert text == f"Jo Doe (telegram): {status}"


@pytest.mark.parametrize(
    ("state", "draft", "labels"),
    [
        (WAITING, "Hi!", ["Send draft", "Edit and send", "Take over", "Resolve", "Close"]),
        (WAITING, None, ["Take over", "Resolve", "Close"]),
        (WITH_AGENT, "Hi!", ["Send draft", "Edit and send", "Resolve", "Close"]),
        (BOT, "Hi!", ["Take over", "Close"]),  # resolved: an agent may still step in again
        (CLOSED, "Hi!", []),  # read only
    ],
)
def test_the_card_offers_the_buttons_the_state_allows(
    state: str, draft: str | None, labels: list[str]
) -> None:
    closed = BY_ANN if state == CLOSED else None
    data = card_data(state, draft=draft, closed=closed)
    actions = [b for b in cards.card(data)[1] if b["type"] == "actions"]
    buttons = actions[0]["elements"] if actions else []
    assert [b["text"]["text"] for b in buttons] == labels
    assert all(b["value"] == "7" for b in buttons)
    assert len(actions) == (1 if labels else 0)
    confirmations = [b["confirm"]["confirm"]["text"] for b in buttons if "confirm" in b]
    assert confirmations == (["Close"] if labels else [])  # closing asks first


def test_the_card_shows_the_emotion_labels_with_buttons_to_give_one() -> None:
    marks = [
        LabelView(3, EmotionLabel.UPSET, "Ann", AT.isoformat()),
        LabelView(3, EmotionLabel.NOT_UPSET, "<!here> Ben & co", AT.isoformat()),
    ]
    for state, closed in ((WAITING, None), (CLOSED, BY_ANN)):  # closed: still labelled
        data = dataclasses.replace(card_data(state, closed=closed), labelled=(3, marks))
        blocks = cards.card(data)[1]
        [label] = [b for b in blocks if b.get("block_id") == cards.CARD_LABEL_BLOCK]
        assert [(e["text"]["text"], e["action_id"], e["value"]) for e in label["elements"]] == [
            ("Upset", cards.LABEL_UPSET, "3"),
            ("Not upset", cards.LABEL_NOT_UPSET, "3"),
        ]
        words = blocks[blocks.index(label) - 1]["elements"][0]["text"]
        assert words == (
            "Marked upset by Ann · marked not upset by &lt;!here&gt; Ben &amp; co "
            "(kept for retraining the emotion signal)"
        )
    unlabelled = dataclasses.replace(card_data(), labelled=(3, []))
    assert "Does the customer sound upset?" in dumped(unlabelled)
    assert cards.CARD_LABEL_BLOCK not in dumped(card_data())  # no message: an agent's own


@pytest.mark.parametrize(
    ("author", "buttons"), [("customer", True), ("bot", False), ("agent", False)]
)
def test_only_a_customer_message_in_the_thread_gets_the_label_buttons(
    author: str, buttons: bool
) -> None:
    mirrored = Mirrored(9, author, None, "hello?", "telegram", AT, None)
    blocks = cards.mirror_blocks(mirrored)
    assert (blocks is not None) is buttons
    if blocks is not None:
        assert blocks[0]["text"]["text"] == cards.mirror_text(mirrored)
        assert [e["value"] for e in blocks[1]["elements"]] == ["9", "9"]
        assert blocks[1]["block_id"] == cards.THREAD_LABEL_BLOCK


def test_a_closed_card_says_when_it_closed() -> None:
    shown = dumped(card_data(CLOSED, closed=IDLE))
    assert f"*Closed*\\n<!date^{int(AT.timestamp())}^" in shown


def test_the_card_shows_the_draft_the_reason_and_the_emotion() -> None:
    shown = dumped(card_data())
    assert "*The bot's draft*\\n&gt; Your parcel ships tomorrow." in shown
    assert "the customer sounds upset" in shown
    assert "0.62 (upset)" in shown
    assert "`shipping` 0.61" in shown


@pytest.mark.parametrize("note", [None, "Handed over outside business hours."])
def test_the_closed_hours_note_appears_only_when_set(note: str | None) -> None:
    assert ("outside business hours" in dumped(card_data(closed_note=note))) is (note is not None)


def test_the_notification_text_escapes_the_customer_name() -> None:
    data = card_data()
    data.case.customer["name"] = "<!channel> Tom & Jerry"
    text, blocks = cards.card(data)
    assert text == "&lt;!channel&gt; Tom &amp; Jerry (telegram): waiting for an agent"
    assert blocks[0]["text"]["text"].startswith("<!channel> Tom & Jerry: ")  # plain_text


def test_customer_text_is_escaped_on_the_card() -> None:
    history = [message(1, "<script>alert(1)</script> R&D")]
    shown = dumped(card_data(draft="Tom & Jerry <3", history=history))
    assert "&lt;script&gt;alert(1)&lt;/script&gt; R&amp;D" in shown
    assert "Tom &amp; Jerry &lt;3" in shown
    assert "<script>" not in shown and "R&D" not in shown


def test_the_card_shows_the_last_ten_messages_and_counts_them_all() -> None:
    text = history_section(card_data(history=[message(n) for n in range(1, 26)]))
    assert text.startswith("*Last 10 of 25 messages*")
    assert [n for n in range(1, 26) if f"&gt; message {n}\n" in text + "\n"] == [*range(16, 26)]
    assert history_section(card_data(history=[message(1)])).startswith("*History*")


def test_the_history_stays_within_a_section_even_with_very_long_messages() -> None:
    text = history_section(card_data(history=[message(n, f"{n} " + "x" * 2000) for n in range(10)]))
    assert len(text) <= LIMIT
    assert "&gt; 9 xxx" in text  # the newest message is shown; older ones make room


def test_the_history_heading_counts_the_messages_it_shows() -> None:
    text = history_section(card_data(history=[message(n, f"{n} " + "x" * 400) for n in range(12)]))
    shown = text.count("&gt; ")
    assert text.startswith(f"*Last {shown} of 12 messages*")


@pytest.mark.parametrize(
    "filler",
    [
        "words " * 160,
        "x\n" * 500,
    ],
)
def test_the_full_history_is_split_into_posts_within_the_limit_in_order(filler: str) -> None:
    history = [message(n, f"#{n:03d} {filler}") for n in range(40)]
    posts = cards.full_history(history)
    assert len(posts) > 1
    assert all(len(post) <= LIMIT for post in posts)
    whole = "\n".join(posts)
    places = [whole.find(f"&gt; #{n:03d} ") for n in range(40)]
    assert -1 not in places and places == sorted(places)


def test_the_card_hash_is_stable_and_follows_the_state() -> None:
    waiting = cards.card_hash(*cards.card(card_data(WAITING)))
    assert cards.card_hash(*cards.card(card_data(WAITING))) == waiting
    assert cards.card_hash(*cards.card(card_data(WITH_AGENT))) != waiting


def test_the_edit_modal_carries_the_conversation_and_the_draft() -> None:
    modal = cards.edit_modal(7, "Jo Doe", "Your parcel ships tomorrow.")
    (block,) = modal["blocks"]
    assert (modal["callback_id"], modal["private_metadata"]) == (cards.EDIT_VIEW, "7")
    assert [block["block_id"], block["element"]["action_id"]] == [cards.REPLY_BLOCK, "text"]
    assert block["element"]["initial_value"] == "Your parcel ships tomorrow."
    assert block["label"]["text"] == "Reply to Jo Doe"


# Each Web API method the desk calls, and the bot scopes that allow it (any one will do).
SCOPES = {
    "chat_postMessage": {"chat:write"},
    "chat_update": {"chat:write"},
    "chat_postEphemeral": {"chat:write"},
    "reactions_add": {"reactions:write"},
    "views_open": set(),
    "users_info": {"users:read"},
    "conversations_members": {"channels:read", "groups:read"},
}


def test_the_manifest_grants_every_scope_and_event_the_desk_uses() -> None:
    manifest = YAML(typ="safe").load((ROOT / "slack-manifest.yml").read_text())
    granted = set(manifest["oauth_config"]["scopes"]["bot"])
    called = set(re.findall(r'_call\(\s*"(\w+)"', (ROOT / "carebot/desk/slack/api.py").read_text()))
    assert called == set(SCOPES)  # a new call: add it here, and its scope to the manifest
    assert [m for m in sorted(called) if SCOPES[m] and not SCOPES[m] & granted] == []
    settings = manifest["settings"]
    assert {"message.channels", "message.groups"} <= set(
        settings["event_subscriptions"]["bot_events"]
    )
    assert settings["interactivity"]["is_enabled"] is True
    urls = [
        settings["event_subscriptions"]["request_url"],
        settings["interactivity"]["request_url"],
    ]
    assert all(url.endswith("/slack/events") for url in urls)


@pytest.mark.parametrize(
    ("text", "do", "says"),
    [
        ("Ben here, I know this order.", "reply", "Taking it over sends it."),
        ("x" * 2100, "take_over", "send your reply again"),  # too long for a button's value
    ],
    ids=["kept", "too-long"],
)
def test_the_question_before_taking_over_keeps_the_reply_when_it_fits(
    text: str, do: str, says: str
) -> None:
    asked = {"conversation": 7, "do": "reply", "text": text}
    words, blocks = cards.ask_to_take_over("Ann <lead>", asked)
    assert words.startswith("Ann &lt;lead&gt; has this conversation.") and says in words
    [button] = blocks[-1]["elements"]
    assert button["text"]["text"] == "Take it over from Ann <lead>"
    value = json.loads(button["value"])
    assert len(button["value"]) <= cards.BUTTON_VALUE_LIMIT
    assert (value["conversation"], value["do"], value.get("text")) == (
        7,
        do,
        text if do == "reply" else None,
    )
