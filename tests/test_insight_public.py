"""Insight split public and private, on a golden store written through the real pipeline (the
public pipeline's recording channels, a fixed classifier, a fake clock): the figures of the
public and of the private conversations, what came in public and what was done with it, the
visibility filter in the report, ``carebot report`` and ``/insights``, exactly.

The period is Tuesday 1 December 2026, 09:00 UTC, to the next day 09:00; NOW is three days
after its start (every bot answer is past [insight] assume_resolved_hours). The story, by
conversation (``messenger`` is live in public, ``instagram`` in shadow mode):

- ``dm_answered`` (private, u10): "how do I return an item", answered by the bot: assumed
  resolved. u10 asks again under a post on 2 December (after the period): a repeat contact,
  in the other visibility.
- ``dm_person`` (private, u11): asks for a person; Ann answers 10 minutes later and resolves
  it 30 minutes after the start.
- ``answered`` (public, u1): the same question under a post, answered in public: assumed
  resolved. u1 comments chatter under another post on 2 December: no contact, no repeat.
- ``complaint`` (public, u2): handed to a person (public_complaint); Ann replies in public 20
  minutes later, then privately, and resolves it at 30 minutes.
- ``moved`` (public, u3): "where is my order" needs the order number: carebot moves it to
  private (not an answer: not involved, not resolved).
- ``praise`` (u4, thanked), ``chatter`` (u5, left), ``spam`` (u6, hidden by carebot, unhidden
  by Ann), ``agent_hid`` (u7, chatter that Ann hides): nothing asked, so no contact; they are
  only public messages.
- ``shadowed`` (public on instagram, u8): the same question as ``answered``: shadow mode hands
  it to a person with the would-have reply.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from carebot.cli.report import add_report, write_report
from carebot.config import Settings
from carebot.desk.auth import hash_password
from carebot.exceptions import ConfigError
from carebot.insight.metrics import Insight
from carebot.insight.prometheus import public_samples
from carebot.insight.report import Period, PublicMessages, Report, Share, Spread
from carebot.models import InboundMessage, PublicCategory, PublicContext
from carebot.runtime import Runtime, build_runtime
from carebot.server import build_app
from tests.conftest import Clock
from tests.fakes import FakeEncoder, FixedClassifier, PublicRecordingChannel
from tests.migrated import migrate
from tests.service import AGENT_PASSWORD, service_settings
from tests.test_public_pipeline import CHATTER, COMPLAINT, PRAISE, SPAM, guard, intents

__all__ = ["intents"]  # the public pipeline's intents fixture (returns public, order personal)

START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
PERIOD = Period(START, START + timedelta(days=1))
NOW = START + timedelta(days=3)
RETURNS = "how do I return an item"
M = timedelta(minutes=1)
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def settings_for(tmp_path: Path, intents: Path) -> Settings:
    digest = hash_password(AGENT_PASSWORD)
    return service_settings(
        tmp_path,
        matcher={"intents_dir": str(intents)},
        public={"thanks": "Thank you!", "live": ["messenger"]},
        inbox={"agents": [{"name": "ann", "password_hash": digest, "roles": ["agent", "lead"]}]},
        insight={"assume_resolved_hours": 24.0},
        metrics={"enabled": True},
    )


@pytest.fixture
async def runtime(
    tmp_path: Path, intents: Path, database_url: str, clock: Clock
) -> AsyncIterator[Runtime]:
    await migrate(database_url)
    categories = {
        SPAM: PublicCategory.SPAM,
        PRAISE: PublicCategory.PRAISE,
        CHATTER: PublicCategory.CHATTER,
        COMPLAINT: PublicCategory.COMPLAINT,
    }
    rt = await build_runtime(
        settings_for(tmp_path, intents),
        encoder=FakeEncoder(),
        channels={
            "messenger": PublicRecordingChannel("messenger"),
            "instagram": PublicRecordingChannel("instagram"),
        },
        clock=clock,
        database_url=database_url,
        post_classifier=FixedClassifier(categories),
        public_guard=guard,
    )
    yield rt
    await rt.db.close()


class Story:
    """Writes the golden story through the runtime, moving the clock to each step."""

    def __init__(self, runtime: Runtime, clock: Clock) -> None:
        self.rt = runtime
        self.clock = clock
        self.ids: dict[str, int] = {}
        self.messages: dict[str, int] = {}

    async def says(
        self,
        name: str,
        when: datetime,
        user: str,
        text: str,
        *,
        post: str | None = None,
        channel: str = "messenger",
    ) -> int:
        """A customer's message (a comment under ``post``, else a direct message)."""
        self.clock.now = when
        public = None
        if post is not None:
            public = PublicContext(thread=post, post_text="Autumn boots", post_url="https://p")
        inbound = InboundMessage(
            channel, user, f"{name}-{when:%d%H%M}", text, when, {"name": user}, public=public
        )
        outcome = await self.rt.inbox.receive(inbound)
        self.ids.setdefault(name, outcome.received.conversation_id)
        self.messages.setdefault(name, outcome.received.message_id)
        return outcome.received.conversation_id

    def at(self, when: datetime) -> None:
        self.clock.now = when


async def write_story(rt: Runtime, clock: Clock) -> dict[str, int]:
    s = Story(rt, clock)
    desk = rt.desk
    await s.says("dm_answered", START, "u10", RETURNS)
    cid = await s.says("dm_person", START + 10 * M, "u11", "speak to staff member")
    s.at(START + 20 * M)
    await desk.reply(cid, "Ann", "Hi, Ann here")
    s.at(START + 40 * M)
    await desk.resolve(cid, "Ann")
    await s.says("answered", START + H1, "u1", RETURNS, post="p1")
    cid = await s.says("complaint", START + 2 * H1, "u2", COMPLAINT, post="p1")
    s.at(START + 2 * H1 + 20 * M)
    await desk.reply(cid, "Ann", "So sorry, we are on it")
    await desk.reply(cid, "Ann", "Let us talk privately", private=True)
    s.at(START + 2 * H1 + 30 * M)
    await desk.resolve(cid, "Ann")
    await s.says("moved", START + 3 * H1, "u3", "where is my order", post="p1")
    await s.says("praise", START + 4 * H1, "u4", PRAISE, post="p1")
    await s.says("chatter", START + 5 * H1, "u5", CHATTER, post="p1")
    cid = await s.says("spam", START + 6 * H1, "u6", SPAM, post="p1")
    s.at(START + 6 * H1 + 5 * M)
    await desk.set_hidden(cid, "Ann", message_id=s.messages["spam"], hidden=False)
    cid = await s.says("agent_hid", START + 7 * H1, "u7", CHATTER, post="p2")
    s.at(START + 7 * H1 + 5 * M)
    await desk.set_hidden(cid, "Ann", message_id=s.messages["agent_hid"], hidden=True)
    await s.says("shadowed", START + 8 * H1, "u8", RETURNS, post="p9", channel="instagram")
    # after the period: u1's chatter is no contact; u10's question is a repeat contact
    await s.says("u1_later", START + 26 * H1, "u1", CHATTER, post="p3")
    await s.says("u10_later", START + 27 * H1, "u10", "how do I return it again", post="p4")
    clock.now = NOW
    return s.ids


H1 = timedelta(hours=1)


@pytest.fixture
async def story(runtime: Runtime, clock: Clock) -> dict[str, int]:
    return await write_story(runtime, clock)


def insight_of(runtime: Runtime, clock: Clock) -> Insight:
    return Insight(db=runtime.db, settings=runtime.settings, clock=clock)


def ids(story: dict[str, int], *names: str) -> tuple[int, ...]:
    return tuple(story[name] for name in names)


def spread(samples: int, p50: timedelta | None, p90: timedelta | None) -> tuple[object, ...]:
    return (samples, p50, p90)


def of(figure: Spread | None) -> tuple[object, ...] | None:
    return None if figure is None else (figure.samples, figure.p50, figure.p90)


# --- the figures -------------------------------------------------------------------------


async def test_chatter_praise_and_spam_threads_are_no_conversations(
    story: dict[str, int], runtime: Runtime, clock: Clock
) -> None:
    report = await insight_of(runtime, clock).report(PERIOD)
    population = ("dm_answered", "dm_person", "answered", "complaint", "moved", "shadowed")
    assert report.conversations == Share(6, 6, ids(story, *population))
    # a public answer and a private one are bot resolutions; the move to private is not
    assert report.automation.ids == ids(story, "dm_answered", "answered")
    assert report.involvement.ids == ids(story, "dm_answered", "answered")
    assert report.handoffs.ids == ids(story, "dm_person", "complaint", "shadowed")
    # the complaint sounds upset: emotional ranks before public_complaint
    assert set(report.handoff_main_reason) == {"asked_for_human", "emotional", "shadow"}
    assert report.handoff_any_reason["public_complaint"].ids == ids(story, "complaint")
    # u10 came back privately; u1's later chatter is not a contact
    assert (report.repeat_contact.count, report.repeat_contact.total) == (1, 4)


async def test_the_headline_figures_of_public_and_of_private_conversations(
    story: dict[str, int], runtime: Runtime, clock: Clock
) -> None:
    report = await insight_of(runtime, clock).report(PERIOD)
    public, private = report.visibilities
    assert (public.visibility, private.visibility) == ("public", "private")
    four = ("answered", "complaint", "moved", "shadowed")
    assert public.conversations == Share(4, 6, ids(story, *four))
    assert public.involvement == Share(1, 4, ids(story, "answered"))
    assert public.automation == Share(1, 4, ids(story, "answered"))
    assert public.handoffs == Share(2, 4, ids(story, "complaint", "shadowed"))
    assert of(public.first_response) == spread(1, 20 * M, 20 * M)
    assert of(public.resolution_time_bot) == spread(1, timedelta(0), timedelta(0))
    assert of(public.resolution_time_human) == spread(1, 30 * M, 30 * M)
    assert public.csat_bot == Share(0, 0) and public.csat_human == Share(0, 0)
    assert private.conversations == Share(2, 6, ids(story, "dm_answered", "dm_person"))
    assert private.involvement == Share(1, 2, ids(story, "dm_answered"))
    assert private.automation == Share(1, 2, ids(story, "dm_answered"))
    assert private.handoffs == Share(1, 2, ids(story, "dm_person"))
    assert of(private.first_response) == spread(1, 10 * M, 10 * M)
    assert of(private.resolution_time_human) == spread(1, 30 * M, 30 * M)
    # each row's counts add up to the whole
    for key in ("conversations", "automation", "handoffs"):
        whole = report.lookup(key)
        assert isinstance(whole, Share)
        parts = [row.figure(key) for row in report.visibilities]
        assert sum(p.count for p in parts if isinstance(p, Share)) == whole.count, key


def counts(public: PublicMessages) -> dict[str, int]:
    found = {key: share.count for key, share in public.categories.items()}
    for part in (
        "messages",
        "answered_public",
        "thanked",
        "left",
        "handed_over",
        "moved_private_bot",
        "moved_private_agents",
        "hidden_by_carebot",
        "hidden_by_agents",
        "unhidden_by_agents",
        "shadowed",
    ):
        figure = public.figure(part)
        assert figure is not None and figure.total == public.messages.total, part
        found[part] = figure.count
    return found


async def test_what_came_in_public_and_what_was_done_with_it(
    story: dict[str, int], runtime: Runtime, clock: Clock
) -> None:
    public = (await insight_of(runtime, clock).report(PERIOD)).public
    assert counts(public) == {
        "care_request": 3,  # answered, moved, shadowed
        "complaint": 1,
        "praise": 1,
        "spam": 1,
        "chatter": 2,  # chatter, agent_hid
        "messages": 8,
        "answered_public": 1,
        "thanked": 1,
        "left": 3,  # chatter, spam, agent_hid
        "handed_over": 2,  # complaint, shadowed
        "moved_private_bot": 1,
        "moved_private_agents": 1,  # Ann's private reply to the complaint
        "hidden_by_carebot": 1,
        "hidden_by_agents": 1,
        "unhidden_by_agents": 1,
        "shadowed": 1,
    }
    assert public.shadowed_actions == {"reply": Share(1, 8, ids(story, "shadowed"))}
    assert public.hidden_by_carebot.ids == ids(story, "spam")
    assert public.moved_private_bot.ids == ids(story, "moved")
    # the conversations behind a public number are listed by the report's keys
    report = await insight_of(runtime, clock).report(PERIOD)
    assert report.lookup("public.category.praise") == Share(1, 8, ids(story, "praise"))
    assert report.lookup("visibility.public.automation") == Share(1, 4, ids(story, "answered"))
    assert report.lookup("visibility.both.automation") is None


@pytest.mark.parametrize(
    ("visibility", "population"),
    [
        ("public", ("answered", "complaint", "moved", "shadowed")),
        ("private", ("dm_answered", "dm_person")),
    ],
)
async def test_one_visibility(
    story: dict[str, int],
    runtime: Runtime,
    clock: Clock,
    visibility: str,
    population: tuple[str, ...],
) -> None:
    insight = insight_of(runtime, clock)
    report = await insight.report(Period(PERIOD.since, PERIOD.until, visibility=visibility))
    assert report.conversations.ids == ids(story, *population)
    assert [row.visibility for row in report.visibilities] == [visibility]
    assert report.visibilities[0].conversations.total == len(population)
    assert report.public.messages.total == (8 if visibility == "public" else 0)
    rows = await insight.conversations(Period(PERIOD.since, PERIOD.until, visibility=visibility))
    assert {row.visibility for row in rows} == {visibility}
    # repeat contact still follows the customers into the other visibility's conversations
    assert report.repeat_contact.total == 2


async def test_an_unknown_visibility_is_refused(runtime: Runtime, clock: Clock) -> None:
    with pytest.raises(ConfigError, match="public or private"):
        await insight_of(runtime, clock).report(Period(START, NOW, visibility="secret"))


# --- carebot report ----------------------------------------------------------------------


async def run_report(runtime: Runtime, clock: Clock, *argv: str) -> str:
    parser = argparse.ArgumentParser(prog="carebot")
    add_report(parser.add_subparsers())
    args = parser.parse_args(
        ["report", "--since", "2026-12-01T09:00", "--until", "2026-12-02T09:00", *argv]
    )
    out = io.StringIO()
    insight = insight_of(runtime, clock)
    await write_report(args, insight=insight, now=NOW, zone=ZoneInfo("UTC"), out=out)
    return out.getvalue()


def squeezed(text: str) -> list[str]:
    return [" ".join(line.split()) for line in text.splitlines()]


async def test_the_report_shows_public_and_private_and_the_public_messages(
    story: dict[str, int], runtime: Runtime, clock: Clock
) -> None:
    lines = squeezed(await run_report(runtime, clock))
    # first response in clock time and in business hours (09:00-17:00 UTC by default), time
    # to resolution by the bot and by a person, CSAT (no ratings are asked in public)
    for line in (
        "public 4/6 66.7% 1/4 25.0% 1/4 25.0% 2/4 50.0% 20m 00s 20m 00s 0s 30m 00s 0/0 - 0/0 -",
        "private 2/6 33.3% 1/2 50.0% 1/2 50.0% 1/2 50.0% 10m 00s 10m 00s 0s 30m 00s 0/0 - 0/0 -",
    ):
        assert line in lines, line
    for line in (
        "public messages 8",
        "chatter 2 25.0%",
        "answered in public by the bot 1 12.5%",
        "moved to private by carebot 1 12.5%",
        "hidden by carebot 1 12.5%",
        "unhidden by agents after carebot hid them 1 12.5%",
        "shadowed (carebot would have acted) 1 12.5%",
        "would have: reply 1 12.5%",
    ):
        assert line in lines, line


async def test_the_report_of_one_visibility_in_table_csv_and_json(
    story: dict[str, int], runtime: Runtime, clock: Clock
) -> None:
    text = await run_report(runtime, clock, "--visibility", "private")
    assert "all channels, private conversations only" in text
    assert "Public messages\n  (none)" in text
    rows = list(csv.reader(io.StringIO(await run_report(runtime, clock, "--format", "csv"))))
    by_key = {row[0]: row[1:] for row in rows[1:]}
    assert by_key["conversations"] == ["6", "6", "1.0"]
    assert by_key["visibility.public.automation"] == ["1", "4", "0.25"]
    assert by_key["visibility.private.first_response.p50_seconds"] == ["1", "", "600.0"]
    assert by_key["public.hidden_by_agents"] == ["1", "8", "0.125"]
    assert by_key["public.category.care_request"] == ["3", "8", "0.375"]
    data = json.loads(
        await run_report(runtime, clock, "--format", "json", "--visibility", "public")
    )
    assert data["period"]["visibility"] == "public"
    assert data["conversations"]["count"] == 4
    assert [row["visibility"] for row in data["visibilities"]] == ["public"]
    assert data["public"]["moved_private_agents"] == {"count": 1, "total": 8, "value": 0.125}
    exported = await run_report(runtime, clock, "conversations", "--format", "csv")
    header, *body = list(csv.reader(io.StringIO(exported)))
    column = header.index("visibility")
    assert sorted(row[column] for row in body) == ["private"] * 2 + ["public"] * 4


# --- /insights and /metrics --------------------------------------------------------------


@pytest.fixture
async def server(story: dict[str, int], runtime: Runtime) -> AsyncIterator[TestServer]:
    service = build_app(runtime.settings, runtime, env={})
    test_server = TestServer(service.app)
    await test_server.start_server()
    try:
        yield test_server
    finally:
        await test_server.close()


async def logged_in(server: TestServer) -> aiohttp.ClientSession:
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with http.get(server.make_url("/inbox/login")) as response:
        match = CSRF.search(await response.text())
    assert match
    form = {"name": "ann", "password": AGENT_PASSWORD, "csrf": match.group(1), "next": "/insights"}
    async with http.post(server.make_url("/inbox/login"), data=form, allow_redirects=False) as r:
        assert r.status == 303
    return http


async def page(server: TestServer, path: str) -> tuple[int, str]:
    async with (
        await logged_in(server) as http,
        http.get(server.make_url(path), allow_redirects=False) as response,
    ):
        return response.status, await response.text()


DAY = "since=2026-12-01&until=2026-12-01"


def cells(html: str, attribute: str, value: str) -> list[str]:
    """The numbers shown in the row ``<tr data-<attribute>="<value>">``."""
    row = re.search(rf'<tr data-{attribute}="{re.escape(value)}"[^>]*>(.*?)</tr>', html, re.S)
    assert row, value
    return re.findall(r'data-metric="[^"]+"[^>]*>([^<]+)<', row.group(1))


async def test_the_page_shows_public_and_private_and_the_public_messages(
    server: TestServer,
) -> None:
    status, html = await page(server, f"/insights?{DAY}")
    assert status == 200
    assert cells(html, "visibility", "public")[:4] == ["4 (66.7%)", "25.0%", "25.0%", "50.0%"]
    assert cells(html, "visibility", "private")[:4] == ["2 (33.3%)", "50.0%", "50.0%", "50.0%"]
    assert cells(html, "public", "public.messages") == ["8 (100.0%)"]
    assert cells(html, "public", "public.category.chatter") == ["2 (25.0%)"]
    assert cells(html, "public", "public.hidden_by_carebot") == ["1 (12.5%)"]
    assert cells(html, "public", "public.shadowed_action.reply") == ["1 (12.5%)"]
    assert "metric=public.moved_private_bot" in html  # each number lists its conversations
    assert '<option value="public">Public only</option>' in html


async def test_the_page_of_one_visibility(server: TestServer, story: dict[str, int]) -> None:
    status, html = await page(server, f"/insights?{DAY}&visibility=public")
    assert status == 200
    assert "(1 day), all channels, public conversations" in html
    assert '<option value="public" selected>Public only</option>' in html
    assert 'data-visibility="private"' not in html
    assert "/insights?since=2026-11-28&amp;until=2026-12-04&amp;visibility=public" in html
    listed = f"/insights/conversations?{DAY}&visibility=public&metric=public.category.praise"
    status, html = await page(server, listed)
    # a thread of praise is no conversation of the period, but its number still links it
    assert status == 200 and f'href="/inbox/c/{story["praise"]}"' in html
    status, html = await page(server, f"/insights?{DAY}&visibility=all")
    assert status == 200 and 'data-visibility="private"' in html


async def test_a_bad_visibility_is_explained(server: TestServer) -> None:
    status, html = await page(server, f"/insights?{DAY}&visibility=secret")
    assert status == 400 and "visibility must be all, public or private" in html


async def test_metrics_carry_the_same_figures_by_visibility(
    server: TestServer, runtime: Runtime, clock: Clock
) -> None:
    report: Report = await insight_of(runtime, clock).report(Period(NOW - timedelta(days=7), NOW))
    async with (
        aiohttp.ClientSession() as http,
        http.get(server.make_url("/metrics")) as response,
    ):
        text = await response.text()
    for sample in public_samples(report):
        labels = ",".join(f'{k}="{v}"' for k, v in sample.labels.items())
        line = f"carebot_insight_{sample.name}{{{labels}}}"
        if sample.value is None:
            assert line not in text
        else:
            assert f"{line} {float(sample.value)}" in text, line
    # the last 7 days: u10's later question under a post is a fifth public conversation
    assert 'carebot_insight_visibility_conversations{visibility="public"} 5.0' in text
    assert 'carebot_insight_public_messages{category="chatter"} 3.0' in text  # with u1's later
