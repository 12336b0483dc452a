"""The inbox for a working day (issue 17 section 4), below the browser: the queue's views and
their counts, search (PostgreSQL full-text search and SQLite's plain match), assignment, internal
notes, conversation labels, the audit trail, and what the live stream tells an agent about a new
handoff. The store parts run on SQLite and PostgreSQL; the pages through the real service."""

from __future__ import annotations

import itertools
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import func, select, update

from carebot.config import Settings
from carebot.models import InboundMessage
from carebot.runtime import Runtime
from carebot.server import Service
from carebot.store.assignments import Assignments
from carebot.store.inbox_views import InboxViews, Viewer
from carebot.store.labels import ConversationLabels, normalise_label
from carebot.store.notes import Notes
from carebot.store.tables import ConversationEvent, Handoff, Note, OutboxRow
from carebot.teams.targets import FirstResponseTargets
from tests.conftest import Clock, settings_data
from tests.service import _HASH, AGENT_PASSWORD, running_service

_ids = itertools.count(1)
UPSET = "I will call my lawyer"  # emotional: handed over
SENSITIVE = "delete my account"  # sensitive intent: handed over
FAQ = "where is my order"  # answered by the bot
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def team_settings(tmp_path: Path) -> Settings:
    """Three teams: care (the default; Ann; first reply within 30 min), billing (Bob, who lists
    it himself; within 10 min) and press (nobody; no target); Cem is in none."""
    agents = [
        {"name": "ann", "display_name": "Ann", "password_hash": _HASH},
        {"name": "bob", "display_name": "Bob", "password_hash": _HASH, "teams": ["billing"]},
        {"name": "cem", "display_name": "Cem", "password_hash": _HASH},
    ]
    data: dict[str, Any] = settings_data(
        tmp_path,
        inbox={"agents": agents},
        server={"secret_file": str(tmp_path / "secret_key")},
    )
    data["teams"] = [
        {
            "name": "care",
            "display_name": "Customer care",
            "members": ["ann"],
            "first_response_minutes": 30,
        },
        {"name": "billing", "display_name": "Billing", "first_response_minutes": 10},
        {"name": "press", "display_name": "Press"},
    ]
    return Settings.model_validate(data)


async def say(runtime: Runtime, text: str, user: str, **profile: str) -> int:
    message = InboundMessage("test", user, f"m{next(_ids)}", text, runtime.clock(), profile=profile)
    return (await runtime.inbox.receive(message)).received.conversation_id


async def route(runtime: Runtime, conversation_id: int, team: str, rule: str) -> None:
    """What routing (another part of issue 17) writes on the handoff."""
    async with runtime.db.transaction() as session:
        await session.execute(
            update(Handoff)
            .where(Handoff.conversation_id == conversation_id)
            .values(team=team, route=rule)
        )


# --- the store: views, search, assignment, notes, labels ---------------------------------------


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return team_settings(tmp_path)


async def ids(views: InboxViews, view: str, viewer: Viewer, **narrow: Any) -> list[int]:
    return [row.id for row in (await views.page(view, viewer, **narrow)).rows]


ANN = Viewer("ann", "Ann", frozenset({"care", None}))
BOB = Viewer("bob", "Bob", frozenset({"billing"}))


async def test_each_view_lists_the_conversations_it_names(runtime: Runtime, clock: Clock) -> None:
    billing = await say(runtime, UPSET, "u1")  # the most urgent, waiting
    await route(runtime, billing, "billing", "rule 1: billing words")
    clock.advance(60)
    legacy = await say(runtime, SENSITIVE, "u2")  # from before teams: the default team's
    clock.advance(60)
    taken = await say(runtime, SENSITIVE, "u3")
    await route(runtime, taken, "care", "default team")
    await runtime.desk.take_over(taken, "Ann")
    clock.advance(60)
    resolved = await say(runtime, SENSITIVE, "u4")
    await runtime.desk.take_over(resolved, "Ann")
    await runtime.desk.resolve(resolved, "Ann")
    clock.advance(60)
    closed = await say(runtime, UPSET, "u5")
    await runtime.desk.close(closed, "Ann")
    clock.advance(60)
    bot_only = await say(runtime, FAQ, "u6")
    await Assignments(runtime.db, clock=clock).assign(billing, "Ann", "bob")
    views = InboxViews(runtime.db, clock=clock)

    assert await ids(views, "waiting", ANN) == [billing, legacy]  # priority first
    assert await ids(views, "with_agent", ANN) == [taken]
    assert await ids(views, "mine", ANN) == [taken]  # with Ann
    assert await ids(views, "mine", BOB) == [billing]  # assigned to Bob
    assert await ids(views, "teams", ANN) == [legacy, taken]  # waiting first
    assert await ids(views, "teams", BOB) == [billing]
    assert await ids(views, "resolved", ANN) == [closed, resolved]  # newest first
    assert await ids(views, "all", ANN) == [bot_only, closed, resolved, taken, legacy, billing]
    page = await views.page("waiting", ANN)
    assert page.counts == {
        "teams": 2,
        "waiting": 2,
        "mine": 1,
        "with_agent": 1,
        "resolved": 2,
        "all": 6,
    }
    [row, _] = page.rows
    assert (row.team, row.route, row.assigned_to, row.open) == (
        "billing",
        "rule 1: billing words",
        "bob",
        True,
    )

    first = await views.page("all", ANN, size=4)
    second = await views.page("all", ANN, size=4, page=2)
    assert (len(first.rows), first.more, len(second.rows), second.more) == (4, True, 2, False)
    assert [r.id for r in second.rows] == [legacy, billing]


async def test_waiting_handoffs_go_by_their_first_response_target(
    runtime: Runtime, clock: Clock, settings: Settings
) -> None:
    """Breached first, then the soonest due, then those without a target by priority; every
    open handoff says how it stands. The clock starts on a Wednesday at 10:00, in hours."""
    press = await say(runtime, UPSET, "u1")  # the highest priority, but no target
    await route(runtime, press, "press", "rule 2: press words")
    clock.advance(60)
    care = await say(runtime, SENSITIVE, "u2")  # due 10:31
    clock.advance(60)
    billing = await say(runtime, SENSITIVE, "u3")  # due 10:12
    await route(runtime, billing, "billing", "rule 1: billing words")
    clock.advance(60)
    later = await say(runtime, SENSITIVE, "u4")  # due 10:33
    clock.advance(60)
    answered = await say(runtime, SENSITIVE, "u5")  # 10:04, answered at 10:06
    clock.advance(60)
    await runtime.desk.take_over(answered, "Ann")
    clock.advance(60)
    await runtime.desk.reply(answered, "Ann", "Hello, I am looking into it.")
    clock.advance(14 * 60)  # 10:20

    timed = InboxViews(runtime.db, clock=clock, targets=FirstResponseTargets(settings))
    assert await ids(timed, "waiting", ANN) == [billing, care, later, press]
    assert await ids(timed, "teams", ANN) == [care, later, answered]  # waiting first
    untimed = InboxViews(runtime.db, clock=clock)  # the priority order, as before targets
    assert await ids(untimed, "waiting", ANN) == [press, care, billing, later]

    page = await timed.page("all", ANN)
    shown = {row.id: (row.target_state, row.target) for row in page.rows}
    assert shown == {
        billing: ("breached", "breached 8 min ago"),
        care: ("running", "11 min left"),
        later: ("running", "13 min left"),
        answered: ("met", "met in 2 min"),
        press: ("", ""),
    }
    first, second = (
        await timed.page("waiting", ANN, size=3),
        await timed.page("waiting", ANN, size=3, page=2),
    )
    assert ([r.id for r in first.rows], first.more) == ([billing, care, later], True)
    assert ([r.id for r in second.rows], second.more) == ([press], False)

    case = await runtime.queue.case(answered)
    assert case.handoff is not None and case.handoff["first_reply_at"] == clock.now - timedelta(
        minutes=14
    )


async def test_search_finds_by_name_contact_number_and_words(
    runtime: Runtime, clock: Clock
) -> None:
    kim = await say(
        runtime,
        "my parcel from the Berlin warehouse never arrived",
        "kim-1",
        name="Kim Lee",
        phone="+49 30 123456",
        email="Kim.Lee@Example.com",
    )
    other = await say(runtime, "delete my account please", "tg-777", name="Olga")
    views = InboxViews(runtime.db, clock=clock)
    cases = {
        "kim": [kim],  # part of the name, any case
        "0049 30 123456": [kim],  # the phone as typed differently
        "30123456": [kim],  # digits inside the phone number
        "kim.lee@example": [kim],  # the e-mail address
        "tg-77": [other],  # the channel's user id
        f"#{other}": [other],  # the conversation number
        "warehouse berlin": [kim],  # words in the messages, in any order
        "account": [other],
        "50% off_": [],  # LIKE's wildcards are taken literally
        "nothing like this": [],
    }
    for words, expected in cases.items():
        assert await ids(views, "all", ANN, words=words) == expected, words
    counted = await views.page("waiting", ANN, words="account")
    assert (counted.counts["all"], counted.counts["waiting"]) == (1, 1)


async def test_assigning_keeps_the_audit_trail_and_needs_an_open_handoff(
    runtime: Runtime, clock: Clock
) -> None:
    waiting = await say(runtime, UPSET, "u1")
    assignments = Assignments(runtime.db, clock=clock)
    done = await assignments.assign(waiting, "Ann", "bob")
    assert (done.to, done.previous, done.changed) == ("bob", None, True)
    assert not (await assignments.assign(waiting, "Ann", "bob")).changed  # nothing new
    await assignments.assign(waiting, "Bob", None)
    case = await runtime.queue.case(waiting)
    assert case.handoff is not None and case.handoff["assigned_to"] is None
    assert [(e["kind"], e["actor"], e["detail"]) for e in case.trail if e["kind"] != "routed"] == [
        ("assigned", "Ann", {"to": "bob", "from": None}),
        ("assigned", "Bob", {"to": None, "from": "bob"}),
    ]
    bot_only = await say(runtime, FAQ, "u2")
    with pytest.raises(Exception, match="not waiting for or with an agent"):
        await assignments.assign(bot_only, "Ann", "bob")
    with pytest.raises(Exception, match="No conversation with id 999"):
        await assignments.assign(999, "Ann", "bob")


async def test_notes_are_kept_once_per_slack_message(runtime: Runtime, clock: Clock) -> None:
    conversation = await say(runtime, UPSET, "u1")
    notes = Notes(runtime.db, clock=clock)
    first = await notes.add(conversation, "Bob", " refund approved by finance ", "slack", "17.1")
    again = await notes.add(conversation, "Bob", "refund approved by finance", "slack", "17.1")
    inbox = await notes.add(conversation, "Ann", "called the customer", "inbox")
    assert again == first and first.text == "refund approved by finance"
    assert [n.id for n in await notes.of_conversation(conversation)] == [first.id, inbox.id]
    for text, via, error in [
        ("   ", "inbox", "The note is empty"),
        ("x" * 4001, "inbox", "keep it to 4000"),
        ("hi", "email", "A note comes via inbox or slack, not 'email'"),
    ]:
        with pytest.raises(Exception, match=error):
            await notes.add(conversation, "Ann", text, via)
    with pytest.raises(Exception, match="No conversation with id 999"):
        await notes.add(999, "Ann", "hello", "inbox")
    async with runtime.db.session() as session:  # nothing for the customer
        outbox = await session.scalars(select(OutboxRow.text))
        assert not any("finance" in text or "called" in text for text in outbox)


@pytest.mark.parametrize(
    ("typed", "kept"),
    [("Refund", "refund"), ("  VIP   customer ", "vip customer"), ("x" * 64, "x" * 64)],
)
def test_labels_are_kept_lower_case(typed: str, kept: str) -> None:
    assert normalise_label(typed) == kept


@pytest.mark.parametrize(
    ("typed", "error"),
    [("", "The label is empty"), ("   ", "The label is empty"), ("y" * 65, "65 characters")],
)
def test_a_bad_label_is_refused_with_the_reason(typed: str, error: str) -> None:
    with pytest.raises(Exception, match=error):
        normalise_label(typed)


async def test_labels_on_conversations_and_who_has_one(runtime: Runtime, clock: Clock) -> None:
    first = await say(runtime, UPSET, "u1")
    second = await say(runtime, SENSITIVE, "u2")
    labels = ConversationLabels(runtime.db, clock=clock)
    assert await labels.add(first, "Refund", "Ann")
    assert not await labels.add(first, "refund ", "Bob")  # there already
    assert await labels.add(first, "vip", "Ann")
    assert await labels.add(second, "REFUND", "Bob")
    assert await labels.of_conversation(first) == ["refund", "vip"]
    assert await labels.conversations_with_label("Refund") == [first, second]
    assert await labels.in_use() == [("refund", 2), ("vip", 1)]
    views = InboxViews(runtime.db, clock=clock)
    assert await ids(views, "all", ANN, label="vip") == [first]
    assert await labels.remove(first, "VIP", "Bob")
    assert not await labels.remove(first, "vip", "Bob")
    assert await labels.conversations_with_label("vip") == []
    trail = [e for e in (await runtime.queue.case(first)).trail if e["kind"] != "routed"]
    assert [(e["kind"], e["actor"], e["detail"]["label"]) for e in trail] == [
        ("labelled", "Ann", "refund"),
        ("labelled", "Ann", "vip"),
        ("unlabelled", "Bob", "vip"),
    ]


async def test_a_handoff_is_new_until_the_customer_writes_again(
    runtime: Runtime, clock: Clock
) -> None:
    conversation = await say(runtime, UPSET, "u1")
    async with runtime.db.session() as session:
        opened = await session.scalar(
            select(Handoff.id).where(Handoff.conversation_id == conversation)
        )
    found = await runtime.queue.new_handoff(conversation)
    assert found is not None and found["id"] == opened
    await say(runtime, "hello?", "u1")  # the same handoff, changed
    assert await runtime.queue.new_handoff(conversation) is None


# --- the pages ---------------------------------------------------------------------------------


@pytest.fixture
async def service(
    tmp_path: Path, sqlite_url: str, clock: Clock
) -> AsyncIterator[tuple[Service, TestServer]]:
    async with running_service(team_settings(tmp_path), sqlite_url, clock) as running:
        yield running


async def logged_in(server: TestServer, name: str) -> aiohttp.ClientSession:
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with http.get(server.make_url("/inbox/login")) as response:
        csrf = CSRF.search(await response.text()).group(1)  # type: ignore[union-attr]
    form = {"name": name, "password": AGENT_PASSWORD, "csrf": csrf, "next": "/inbox"}
    async with http.post(server.make_url("/inbox/login"), data=form, allow_redirects=False) as r:
        assert r.status == 303
    return http


async def get(http: aiohttp.ClientSession, server: TestServer, path: str) -> tuple[int, str]:
    async with http.get(server.make_url(path)) as response:
        return response.status, await response.text()


async def post(
    http: aiohttp.ClientSession, server: TestServer, path: str, **form: str
) -> tuple[int, str]:
    _, html = await get(http, server, "/inbox")
    form["csrf"] = CSRF.search(html).group(1)  # type: ignore[union-attr]
    async with http.post(server.make_url(path), data=form, allow_redirects=False) as response:
        return response.status, await response.text()


async def test_the_tabs_put_my_teams_first_for_agents_in_a_team(
    service: tuple[Service, TestServer],
) -> None:
    running, server = service
    conversation = await say(running.runtime, UPSET, "u1")
    await route(running.runtime, conversation, "billing", "rule 1: billing words")
    for name, first, has_teams in [("bob", "teams", True), ("cem", "waiting", False)]:
        http = await logged_in(server, name)
        async with http:
            _, html = await get(http, server, "/inbox")
            tabs = re.findall(r'class="view-tab" id="view-(\w+)"', html)
            assert tabs[0] == first and ("teams" in tabs) is has_teams
            assert f'id="view-{first}" data-view="{first}" href' in html
            assert 'data-team="billing"' in html and "rule 1: billing words" in html
            status, refused = await get(http, server, "/inbox?view=teams")
            assert (status == 200) is has_teams
            if not has_teams:
                assert "you are in no team" in refused
    http = await logged_in(server, "ann")
    async with http:
        for query, error in [
            ("view=nope", "Unknown view 'nope'"),
            ("page=0", "page must be a whole number from 1, not '0'"),
        ]:
            status, text = await get(http, server, f"/inbox?{query}")
            assert (status, error in text) == (400, True), query
        status, html = await get(http, server, "/inbox?view=all&label=" + "z" * 65)
        assert status == 200 and "keep it to 64 at most" in html


async def test_assign_note_and_label_from_the_conversation_page(
    service: tuple[Service, TestServer],
) -> None:
    running, server = service
    conversation = await say(running.runtime, UPSET, "u1")
    async with running.runtime.db.session() as session:
        sent_before = await session.scalar(select(func.count()).select_from(OutboxRow))
    ann = await logged_in(server, "ann")
    async with ann, running.runtime.events.subscribe() as events:
        base = f"/inbox/c/{conversation}"
        assert (await post(ann, server, f"{base}/assign", to="bob"))[0] == 303
        assert (await events.get()).kind == "agent_action"
        assert (await post(ann, server, f"{base}/note", text="Bob knows this one"))[0] == 303
        assert (await post(ann, server, f"{base}/labels", label=" Legal "))[0] == 303
        _, html = await get(ann, server, base)
        assert 'id="assigned-to" data-assigned-to="bob">Bob' in html
        assert "Ann assigned this to Bob" in html and "Ann added the label “legal”" in html
        assert "Internal note — the customer does not see this" in html
        assert "Bob knows this one" in html and 'data-label="legal"' in html
        for path, form, error in [
            ("assign", {"to": "zed"}, "No agent called &#39;zed&#39; can be assigned"),
            ("note", {"text": "  "}, "The note is empty"),
            ("labels", {"label": "q" * 70}, "keep it to 64 at most"),
        ]:
            status, html = await post(ann, server, f"{base}/{path}", **form)
            assert (status, error in html) == (409, True), path
        assert (await post(ann, server, f"{base}/labels/remove", label="LEGAL"))[0] == 303
        _, html = await get(ann, server, base)
        assert 'data-label="legal"' not in html and "Ann removed the label “legal”" in html
    bob = await logged_in(server, "bob")
    async with bob:
        _, html = await get(bob, server, "/inbox?view=mine")
        assert f'data-conversation-id="{conversation}"' in html.split('id="view-list"')[1]
        assert 'data-assigned-to="bob"' in html
    async with running.runtime.db.session() as session:  # the customer was told nothing
        assert await session.scalar(select(func.count()).select_from(OutboxRow)) == sent_before
        assert await session.scalar(select(func.count()).select_from(Note)) == 1
        kinds = await session.scalars(
            select(ConversationEvent.kind)
            .where(ConversationEvent.kind != "routed")  # routing's own, where it runs
            .order_by(ConversationEvent.id)
        )
        assert list(kinds) == ["assigned", "labelled", "unlabelled"]


async def test_the_live_stream_says_whose_teams_a_new_handoff_is_for(
    service: tuple[Service, TestServer],
) -> None:
    running, server = service
    frames: dict[str, dict[str, Any]] = {}
    for name in ("ann", "bob", "cem"):
        http = await logged_in(server, name)
        async with http, http.ws_connect(server.make_url("/inbox/events")) as ws:
            conversation = await say(running.runtime, UPSET, f"u-{name}")
            while True:  # the customer's message, the decision... then the handoff
                frame = await ws.receive_json(timeout=10)
                if frame["kind"] == "handoff":
                    break
            frames[name] = frame
            assert frame["conversation_id"] == conversation
    # A handoff not yet routed is the default team's (care): Ann's; Cem is in no team.
    assert {name: f["handoff"]["for_me"] for name, f in frames.items()} == {
        "ann": True,
        "bob": False,
        "cem": True,
    }
    assert frames["ann"]["handoff"]["team_label"] == "Customer care"


async def test_the_audit_trail_reads_as_sentences(service: tuple[Service, TestServer]) -> None:
    """Routing and the rotation write their events (carebot/store/teamwork.py on main): they
    read as plain lines between the messages."""
    running, server = service
    conversation = await say(running.runtime, UPSET, "u1")
    now = running.runtime.clock()
    events = [
        ("routed", "carebot", {"team": "billing", "rule": "rule 1: billing words"}),
        ("assigned", "carebot", {"agent": "bob", "team": "billing", "how": "round robin"}),
        ("transferred", "Bob", {"from": "billing", "to": "care", "note": "not a bill"}),
    ]
    async with running.runtime.db.transaction() as session:
        for kind, actor, detail in events:
            session.add(
                ConversationEvent(
                    conversation_id=conversation,
                    kind=kind,
                    actor=actor,
                    detail=detail,
                    created_at=now,
                )
            )
    http = await logged_in(server, "ann")
    async with http:
        _, html = await get(http, server, f"/inbox/c/{conversation}")
    lines = re.findall(r'<span class="trail-words">\s*(.*?)\s*</span>', html, re.S)
    assert [" ".join(line.split()) for line in lines][-3:] == [
        "Routed to Billing (rule 1: billing words)",
        "Assigned to Bob (round robin)",
        "Bob transferred this from Billing to Customer care: “not a bill”",
    ]


async def test_the_pages_show_the_first_response_target_breached_ones_marked(
    service: tuple[Service, TestServer], clock: Clock
) -> None:
    running, server = service
    slow = await say(running.runtime, SENSITIVE, "u1")  # care: due in 30 min
    clock.advance(25 * 60)
    fresh = await say(running.runtime, SENSITIVE, "u2")
    clock.advance(10 * 60)  # the first breached 5 min ago; the second has 20 min left
    http = await logged_in(server, "ann")
    async with http:
        _, html = await get(http, server, "/inbox?view=waiting")
        listed = html.split('id="view-list"')[1]
        assert re.findall(r'data-conversation-id="(\d+)"', listed) == [str(slow), str(fresh)]
        breached = re.search(r'<a class="queue-row([^"]*)" data-target="breached"', listed)
        assert breached is not None and "is-breached" in breached.group(1)
        texts = re.findall(r"First reply: </span>([^<]+)</span>", listed)
        assert texts == ["breached 5 min ago", "20 min left"]
        _, page = await get(http, server, f"/inbox/c/{slow}")
        target = re.search(r'<dd id="first-response" class="([^"]+)"[^>]*>(.*?)</dd>', page, re.S)
        assert target is not None and "is-breached" in target.group(1)
        assert target.group(2).endswith("breached 5 min ago")


async def test_transfer_to_another_team_from_the_conversation_page(
    service: tuple[Service, TestServer],
) -> None:
    running, server = service
    conversation = await say(running.runtime, UPSET, "u1")  # care's (the default team)
    base = f"/inbox/c/{conversation}"
    ann = await logged_in(server, "ann")
    async with ann, running.runtime.events.subscribe() as events:
        _, html = await get(ann, server, base)
        options = re.findall(r'<option value="(\w+)">', html.split('id="transfer"')[1])
        assert options[:2] == ["billing", "press"]  # the other teams, not care
        status, _ = await post(ann, server, f"{base}/transfer", team="billing", note=" a bill ")
        assert status == 303
        assert (await events.get()).kind == "agent_action"
        _, html = await get(ann, server, f"{base}?transferred=billing")
        assert "Transferred to Billing: the conversation waits in their queue now" in html
        assert 'id="team" data-team="billing"' in html
        assert "Ann transferred this from Customer care to Billing: “a bill”" in html
        # Ann is not in billing: she may no longer move it.
        status, html = await post(ann, server, f"{base}/transfer", team="care")
        assert status == 409 and "belongs to the Billing team; only its members" in html
    bob = await logged_in(server, "bob")
    async with bob:
        for form, error in [
            ({"team": "billing"}, "already with the Billing team"),
            ({"team": "legal"}, "No team is named &#39;legal&#39;"),
            ({"team": ""}, "Choose the team to transfer this conversation to."),
        ]:
            status, html = await post(bob, server, f"{base}/transfer", **form)
            assert (status, error in html, 'role="alert"' in html) == (409, True, True), form
        assert (await post(bob, server, f"{base}/close"))[0] == 303
        status, html = await post(bob, server, f"{base}/transfer", team="care")
        assert status == 409 and f"Conversation {conversation} is closed" in html
        _, html = await get(bob, server, base)
        assert 'id="transfer"' not in html  # nothing left to transfer
    async with running.runtime.db.session() as session:
        moves = list(
            await session.scalars(
                select(ConversationEvent.detail).where(ConversationEvent.kind == "transferred")
            )
        )
    assert moves == [{"from": "care", "to": "billing", "note": "a bill"}]


async def test_an_agent_says_they_are_available_or_away(
    service: tuple[Service, TestServer],
) -> None:
    running, server = service
    bob = await logged_in(server, "bob")
    async with bob:
        _, html = await get(bob, server, "/inbox")
        assert 'data-available="true"' in html and 'id="presence-state"' in html
        status, _ = await post(
            bob, server, "/inbox/availability", available="0", next="/inbox?view=all"
        )
        assert status == 303
        assert not await running.runtime.teamwork.available("bob")
        assert await running.runtime.teamwork.available("ann")  # nobody else
        _, html = await get(bob, server, "/inbox?view=all")
        state = re.search(r'id="presence-state">.*?</span>(\w+)</span>', html, re.S)
        assert 'data-available="false"' in html and state is not None and state.group(1) == "Away"
        status, text = await post(bob, server, "/inbox/availability", available="maybe")
        assert status == 400 and "available must be 1 (available) or 0 (away)" in text
        form = {"available": "1", "csrf": "forged"}
        async with bob.post(server.make_url("/inbox/availability"), data=form) as response:
            assert response.status == 403
        assert not await running.runtime.teamwork.available("bob")
        status, _ = await post(
            bob, server, "/inbox/availability", available="1", next="//evil.example"
        )
        assert status == 303 and await running.runtime.teamwork.available("bob")


async def test_a_web_chat_visitor_shows_by_name_with_their_page_and_browser(
    service: tuple[Service, TestServer],
) -> None:
    running, server = service
    visitor = {
        "email": "kim.lee@example.com",
        "page_url": "https://shop.example/cart?step=2",
        "page_title": "Your cart",
        "browser": "Firefox 133 on Linux",
    }
    known = await say(running.runtime, UPSET, "v-3898b49a4c", **visitor)
    sneaky = await say(running.runtime, UPSET, "v-0000", page_url="javascript:alert(1)")
    http = await logged_in(server, "ann")
    async with http:
        _, html = await get(http, server, "/inbox?view=waiting")
        names = re.findall(r'<span class="row-name">([^<]+)</span>', html)
        assert names == ["kim.lee@example.com", "test v-0000"]
        _, page = await get(http, server, f"/inbox/c/{known}")
        assert '<dd id="visitor-email"><a href="mailto:kim.lee@example.com">' in page
        assert (
            '<dd id="visitor-page"><a href="https://shop.example/cart?step=2" target="_blank" '
            'rel="noopener noreferrer"'
        ) in page
        assert ">Your cart</a>" in page and "Firefox 133 on Linux" in page
        _, page = await get(http, server, f"/inbox/c/{sneaky}")
        assert 'id="visitor-page"' not in page and 'href="javascript' not in page
    case = await running.runtime.queue.case(known)
    assert case.customer["name"] == "kim.lee@example.com"  # what the Slack card shows
