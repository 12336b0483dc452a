"""The ops console at ``/console`` through the real service (fake encoder, a copy of the test
intents, the live reload on; SQLite: the store's queries under the pages run on PostgreSQL too in
test_publishing, test_proposals and test_intent_history): who may open it, the CSRF token on every
form, the editor's errors next to the fields, publishing (written, kept as a revision, live),
rename, delete, rollback, a stale save, the "try it" JSON, and the proposals from an agent's reply
and from an unanswered topic. The same story in Chromium: tests/test_console_browser.py."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from carebot.desk.auth import hash_password
from carebot.runtime import Runtime
from carebot.server import Service
from carebot.store.intent_history import Action, RevisionStore
from carebot.store.proposals import Draft, ProposalKind, ProposalStore, Source, Status
from carebot.store.tables import Message
from tests.conftest import Clock
from tests.service import AGENT_PASSWORD, Visitor, running_service, service_settings

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
INPUT = re.compile(r"<input\b[^>]*>")
TEXTAREA = re.compile(r'<textarea\b[^>]*\bname="([^"]+)"[^>]*>(.*?)</textarea>', re.DOTALL)
ATTR = re.compile(r'\b(name|value|type)="([^"]*)"')
_HASH = hash_password(AGENT_PASSWORD)
AGENTS = [
    {"name": "ann", "display_name": "Ann", "password_hash": _HASH},  # an agent only
    {"name": "olga", "display_name": "Olga", "password_hash": _HASH, "roles": ["agent", "ops"]},
    {"name": "leo", "display_name": "Leo", "password_hash": _HASH, "roles": ["agent", "lead"]},
]
NOT_OPS = "The console is for ops staff"
GIFT_QUESTION = "do you sell gift vouchers"
GIFT_REPLY = "Yes, gift vouchers are sold in every shop."


# --- the service and its agents ------------------------------------------------------------


@pytest.fixture
async def service(
    tmp_path: Path, sqlite_url: str, clock: Clock, intents_dir: Path
) -> AsyncIterator[tuple[Service, TestServer]]:
    settings = service_settings(
        tmp_path,
        matcher={"intents_dir": str(intents_dir), "reload": True},
        inbox={"agents": AGENTS},
    )
    async with running_service(settings, sqlite_url, clock) as running:
        reloader = running[0].runtime.reloader
        assert reloader is not None, "the live reload is on in these tests"
        async with asyncio.timeout(10):
            await reloader.watching.wait()
        yield running


@pytest.fixture
def server(service: tuple[Service, TestServer]) -> TestServer:
    return service[1]


@pytest.fixture
def runtime(service: tuple[Service, TestServer]) -> Runtime:
    return service[0].runtime


class Agent:
    """An agent's browser: keeps cookies, follows no redirect."""

    def __init__(self, http: aiohttp.ClientSession, server: TestServer) -> None:
        self.http, self.server, self.csrf = http, server, ""

    async def get(self, path: str) -> tuple[int, str]:
        async with self.http.get(self.server.make_url(path), allow_redirects=False) as response:
            html = await response.text()
        match = CSRF.search(html)
        if match:
            self.csrf = match.group(1)
        return response.status, html

    async def post(
        self, path: str, data: dict[str, str], *, csrf: bool = True
    ) -> tuple[int, str, str]:
        """(status, body, Location) of a form post, with the session's CSRF token."""
        form = {**data, **({"csrf": self.csrf} if csrf else {})}
        url = self.server.make_url(path)
        async with self.http.post(url, data=form, allow_redirects=False) as response:
            return response.status, await response.text(), response.headers.get("Location", "")

    async def form(self, path: str) -> dict[str, str]:
        """The editor's form on ``path`` as a browser would post it."""
        status, html = await self.get(path)
        assert status == 200, html
        return form_of(html)


def form_of(html: str) -> dict[str, str]:
    """The fields of the intent form in ``html`` (a checkbox only when checked)."""
    start = html.index('<form class="intent-form"')
    part = html[start : html.index("</form>", start)]
    fields: dict[str, str] = {}
    for tag in INPUT.findall(part):
        attrs = dict(ATTR.findall(tag))
        if "name" not in attrs:
            continue
        if attrs.get("type") == "checkbox":
            if " checked" in tag:
                fields[attrs["name"]] = "on"
            continue
        fields[attrs["name"]] = unescape(attrs.get("value", ""))
    for name, text in TEXTAREA.findall(part):
        fields[name] = unescape(text)
    fields.pop("csrf", None)
    return fields


class Logins:
    """The agents' browsers, each logged in when first asked for: olga (ops), ann (agent
    only), leo (lead)."""

    def __init__(self, server: TestServer) -> None:
        self.server = server
        self.agents: dict[str, Agent] = {}

    async def of(self, name: str) -> Agent:
        if name not in self.agents:
            http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
            agent = self.agents[name] = Agent(http, self.server)
            await agent.get("/inbox/login")
            status, _, location = await agent.post(
                "/inbox/login", {"name": name, "password": AGENT_PASSWORD, "next": "/inbox"}
            )
            assert (status, location) == (303, "/inbox")
            await agent.get("/inbox")  # the session's CSRF token
        return self.agents[name]


@pytest.fixture
async def logins(server: TestServer) -> AsyncIterator[Logins]:
    found = Logins(server)
    yield found
    for agent in found.agents.values():
        await agent.http.close()


async def reloaded(runtime: Runtime, count: int) -> None:
    """Wait until the live reload has swapped ``count`` edited intent sets in."""
    reloader = runtime.reloader
    assert reloader is not None
    async with asyncio.timeout(10), reloader.changed:
        await reloader.changed.wait_for(lambda: reloader.reloads >= count)


def revisions(runtime: Runtime) -> RevisionStore:
    return RevisionStore(runtime.db, clock=runtime.clock)


def errors_of(html: str, field: str) -> list[str]:
    found = re.findall(rf'<p class="field-note field-error" data-field="{field}">(.*?)</p>', html)
    return [unescape(m) for m in found]


@pytest.fixture
def shop(intents_dir: Path) -> Path:
    return intents_dir / "shop.yaml"


# --- who may open it ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/console", "/console/intents/order_status", "/console/intents/new", "/console/history"],
)
async def test_without_a_login_the_console_asks_for_one_and_comes_back(
    server: TestServer, path: str
) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.get(server.make_url(path), allow_redirects=False) as response,
    ):
        assert response.status == 303
        assert unquote(response.headers["Location"]) == f"/inbox/login?next={path}"
        answer = await http.post(server.make_url("/console/intents"), data={"id": "x"})
        assert answer.status == 401 and "Log in again" in await answer.text()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/console"),
        ("get", "/console/intents/order_status"),
        ("get", "/console/history"),
        ("get", "/console/proposals/1"),
        ("post", "/console/intents"),
        ("post", "/console/try"),
        ("post", "/console/history/1/rollback"),
        ("post", "/console/proposals/1/reject"),
    ],
)
async def test_an_agent_without_the_ops_role_is_told_why(
    logins: Logins, shop: Path, method: str, path: str
) -> None:
    ann, before = await logins.of("ann"), shop.read_bytes()
    if method == "get":
        status, html = await ann.get(path)
    else:
        status, html, _ = await ann.post(path, {"text": "hello", "id": "x", "examples": "a"})
    assert status == 403
    assert NOT_OPS in html
    text = unescape(html)
    assert "signed in as ann, who does not have the ops role" in text
    assert 'add "ops" to your roles' in text
    assert shop.read_bytes() == before
    _, inbox = await ann.get("/inbox")
    assert 'href="/console"' not in inbox  # no link to a page ann may not open
    _, inbox = await (await logins.of("olga")).get("/inbox")
    assert 'href="/console"' in inbox


@pytest.mark.parametrize(
    "path",
    [
        "/console/intents",
        "/console/try",
        "/console/history/1/rollback",
        "/console/proposals/1/reject",
        "/console/propose/reply",
        "/console/propose/topic",
    ],
)
@pytest.mark.parametrize("token", [None, "forged"])
async def test_every_post_needs_the_csrf_token(
    logins: Logins, runtime: Runtime, shop: Path, path: str, token: str | None
) -> None:
    olga, before = await logins.of("olga"), shop.read_bytes()
    form = await olga.form("/console/intents/order_status")
    form.update(examples="where is my parcel", action="publish", text="hello", message_id="1")
    if token is not None:
        form["csrf"] = token
    status, body, _ = await olga.post(path, form, csrf=False)
    assert (status, body) == (403, "Missing or wrong CSRF token: reload the page.")
    assert shop.read_bytes() == before
    assert await revisions(runtime).recent() == []
    assert await ProposalStore(runtime.db, clock=runtime.clock).waiting() == []


# --- the editor ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field", "message", "before", "after"),
    [
        (
            {"id": "Order Status"},
            "id",
            "An id is lower-case letters, digits and _ (e.g. order_status), not empty",
            'id="f-id"',
            'id="f-title"',
        ),
        (
            {"examples": "  \n\n"},
            "examples",
            "Give at least one example, one per line",
            'id="f-examples"',
            'id="f-answer"',
        ),
        (
            {"answer_threshold": "high"},
            "thresholds",
            "answer_threshold is a number from 0 to 1 (or empty), not 'high'",
            'id="f-handoff"',
            'class="form-actions"',
        ),
        (
            {"draft_threshold": "1.5"},
            "thresholds",
            "draft_threshold is a number from 0 to 1 (or empty), not '1.5'",
            'id="f-handoff"',
            'class="form-actions"',
        ),
        (
            {"answer": "Track it at {parcel_url}."},
            "answer",
            "order_status: answer uses {parcel_url}, which is not defined under [placeholders] "
            "in config.toml",
            'id="f-answer"',
            'id="f-tags"',
        ),
    ],
)
@pytest.mark.parametrize(("action", "status"), [("check", 200), ("publish", 422)])
async def test_a_form_error_shows_next_to_its_field_and_nothing_is_written(
    logins: Logins,
    runtime: Runtime,
    shop: Path,
    changes: dict[str, str],
    field: str,
    message: str,
    before: str,
    after: str,
    action: str,
    status: int,
) -> None:
    olga, original = await logins.of("olga"), shop.read_bytes()
    form = await olga.form("/console/intents/order_status")
    code, html, _ = await olga.post("/console/intents", {**form, **changes, "action": action})
    assert code == status
    assert any(message in m for m in errors_of(html, field)), errors_of(html, field)
    where = html.index(f'data-field="{field}"')
    assert html.index(before) < where < html.index(after)  # next to the field it concerns
    assert 'id="checked-ok"' not in html and 'id="preview"' not in html
    for name, value in changes.items():  # what was typed is kept
        if name != "examples":
            assert f'value="{value}"' in html or f">{value}</textarea>" in html
    assert shop.read_bytes() == original
    assert await revisions(runtime).recent() == []


async def test_check_and_preview_writes_nothing_and_shows_the_change(
    logins: Logins, runtime: Runtime, shop: Path
) -> None:
    # Two customers' messages stored: one answered as order_status, one not answered at all.
    for text in ("where is my order", "parcel whereabouts"):
        await ask(runtime, text)
    olga, original = await logins.of("olga"), shop.read_bytes()
    form = await olga.form("/console/intents/order_status")
    form["examples"] += "\nparcel whereabouts"
    status, html, _ = await olga.post("/console/intents", {**form, "action": "check"})
    assert status == 200 and 'id="checked-ok"' in html
    # The form holds an edit now: the try-it box compares it with the live intents.
    assert form_of(html)["examples"].endswith("\nparcel whereabouts") and 'data-edited="1"' in html
    assert "data-edited" not in (await olga.get("/console/intents/order_status"))[1]
    counts = re.findall(r'<li data-group="(\w+)"><strong>(\d+)</strong>', html)
    assert ("newly_answered", "1") in counts, counts
    preview = html[html.index('id="preview"') :]
    assert "parcel whereabouts" in preview and "where is my order" not in preview
    assert "1 of the last 2 customer messages" in preview
    assert shop.read_bytes() == original and await revisions(runtime).recent() == []


async def ask(runtime: Runtime, text: str) -> None:
    """A customer's message on the web chat, decided and stored."""
    from carebot.models import InboundMessage

    message = InboundMessage("webchat", f"c-{text}", f"m-{text}", text, runtime.clock())
    await runtime.inbox.receive(message)


# --- publishing, renaming, deleting, rolling back ------------------------------------------


async def test_publishing_writes_the_file_keeps_a_revision_and_goes_live(
    service: tuple[Service, TestServer], logins: Logins, runtime: Runtime, shop: Path
) -> None:
    olga, original = await logins.of("olga"), shop.read_text()
    form = await olga.form("/console/intents/order_status")
    assert form["examples"] == "where is my order\ntrack my order status\norder tracking number"
    form["examples"] += "\nparcel whereabouts please"
    status, _, location = await olga.post("/console/intents", {**form, "action": "publish"})
    assert status == 303
    assert unquote(location) == (
        "/console?notice=Published: edited order_status (revision 1); live in a moment."
    )
    text = shop.read_text()
    assert "      - parcel whereabouts please\n" in text
    assert text.replace("      - parcel whereabouts please\n", "") == original  # the rest kept
    [revision] = await revisions(runtime).recent()
    assert (revision.author, revision.action, revision.intent_id) == (
        "olga",
        Action.EDIT,
        "order_status",
    )
    assert (revision.before, revision.after) == (original, text)
    await reloaded(runtime, 1)
    assert "parcel whereabouts please" in runtime.triage.matcher.intents["order_status"].examples
    async with aiohttp.ClientSession() as http:  # a customer gets the answer now
        customer = Visitor(await http.ws_connect(service[1].make_url("/chat/ws")))
        await customer.hello()
        await customer.say("parcel whereabouts please")
        reply = await customer.next_of("message")
        assert (reply["author"], reply["text"]) == ("bot", "Track it at https://track.example.")
    _, home = await olga.get(location)
    assert 'id="console-notice"' in home and "#1</a> edited order_status" in home
    _, history = await olga.get("/console/history/1")
    assert '<span class="diff-add">+      - parcel whereabouts please</span>' in history


async def test_a_renamed_intent_keeps_past_decisions_readable(
    logins: Logins, runtime: Runtime, shop: Path
) -> None:
    await ask(runtime, "where is my order")  # a decision naming order_status
    olga = await logins.of("olga")
    form = await olga.form("/console/intents/order_status")
    status, html, _ = await olga.post("/console/intents", {**form, "id": "parcel_status"})
    assert status == 200
    assert "Renaming: past decisions keep naming order_status and show its new name." in html
    status, _, location = await olga.post(
        "/console/intents", {**form, "id": "parcel_status", "action": "publish"}
    )
    assert status == 303 and "renamed order_status to parcel_status" in unquote(location)
    assert "- id: parcel_status\n" in shop.read_text()
    assert "order_status" not in shop.read_text()
    await reloaded(runtime, 1)
    current = {i.id for i in runtime.triage.matcher.intents.intents}
    assert "parcel_status" in current and "order_status" not in current
    fates = await revisions(runtime).fates(current)
    assert fates["order_status"].describe("order_status") == "order_status (now parcel_status)"
    _, history = await olga.get("/console/history?intent=order_status")
    assert "renamed order_status to parcel_status" in history  # found under its old name


async def test_deleting_asks_to_confirm_first(logins: Logins, runtime: Runtime, shop: Path) -> None:
    olga, original = await logins.of("olga"), shop.read_bytes()
    form = await olga.form("/console/intents/returns_label")
    status, html, _ = await olga.post("/console/intents", {**form, "action": "check_delete"})
    assert status == 200
    assert 'id="confirm-delete"' in html and "Delete returns_label for real" in html
    assert "If returns_label is deleted" in html and 'id="publish"' not in html
    assert shop.read_bytes() == original  # only asked
    status, _, location = await olga.post("/console/intents", {**form, "action": "delete"})
    assert status == 303 and "deleted returns_label" in unquote(location)
    assert "returns_label" not in shop.read_text()
    [revision] = await revisions(runtime).recent()
    assert (revision.action, revision.intent_id, revision.previous_id) == (
        Action.DELETE,
        None,
        "returns_label",
    )
    await reloaded(runtime, 1)
    current = {i.id for i in runtime.triage.matcher.intents.intents}
    assert "returns_label" not in current
    fates = await revisions(runtime).fates(current)
    assert fates["returns_label"].describe("returns_label") == "returns_label (deleted)"
    status, html = await olga.get("/console/intents/returns_label")
    assert status == 404 and "There is no intent" in unescape(html)


async def test_a_rollback_puts_the_file_back_and_a_second_one_is_refused(
    logins: Logins, runtime: Runtime, shop: Path
) -> None:
    olga, original = await logins.of("olga"), shop.read_text()
    form = await olga.form("/console/intents/refunds")
    form["answer"] = "Refunds take 3 days."
    assert (await olga.post("/console/intents", {**form, "action": "publish"}))[0] == 303
    await reloaded(runtime, 1)
    assert runtime.triage.matcher.intents["refunds"].answer == "Refunds take 3 days."

    status, html = await olga.get("/console/history/1")
    assert status == 200 and 'id="rollback"' in html
    status, _, location = await olga.post("/console/history/1/rollback", {})
    assert status == 303
    assert unquote(location) == (
        "/console?notice=Done: rollback of revision 1 (edited refunds), kept as revision 2; "
        "live in a moment."
    )
    assert shop.read_text() == original
    await reloaded(runtime, 2)
    assert runtime.triage.matcher.intents["refunds"].answer == "Refunds take 5 days."
    [back, first] = await revisions(runtime).recent()
    assert (first.id, first.action) == (1, Action.EDIT)
    assert (back.id, back.action, back.author, back.after) == (
        2,
        Action.ROLLBACK,
        "olga",
        original,
    )

    status, _, location = await olga.post("/console/history/1/rollback", {})
    assert status == 303 and location.startswith("/console/history/1?error=")
    assert "Revision 1 was already rolled back by olga (revision 2)" in unquote(location)
    _, html = await olga.get(location)
    assert 'id="rollback-error"' in html and 'id="rollback"' not in html
    assert "Rolled back by olga" in html
    assert shop.read_text() == original and len(await revisions(runtime).recent()) == 2


@pytest.mark.parametrize("action", ["check", "publish"])
async def test_a_save_on_a_file_changed_since_it_was_opened_is_refused_with_the_diff(
    logins: Logins, runtime: Runtime, shop: Path, action: str
) -> None:
    olga = await logins.of("olga")
    mine = await olga.form("/console/intents/order_status")
    theirs = await olga.form("/console/intents/refunds")  # a colleague, same file
    theirs["answer"] = "Refunds take 3 days."
    assert (await olga.post("/console/intents", {**theirs, "action": "publish"}))[0] == 303
    after_theirs = shop.read_bytes()

    mine["examples"] += "\nparcel whereabouts please"
    status, html, _ = await olga.post("/console/intents", {**mine, "action": action})
    assert status == 409
    assert 'id="stale-box"' in html and "Someone else changed shop.yaml" in html
    diff = html[html.index('<pre class="diff">') : html.index("</pre>")]
    assert '<span class="diff-del">-    answer: Refunds take 5 days.</span>' in diff
    assert '<span class="diff-add">+    answer: Refunds take 3 days.</span>' in diff
    assert "shop.yaml was changed by someone else since you opened it" in errors_of(html, "file")[0]
    assert shop.read_bytes() == after_theirs  # nothing overwritten
    assert len(await revisions(runtime).recent()) == 1


# --- try it --------------------------------------------------------------------------------


async def try_it(olga: Agent, **data: str) -> tuple[int, dict[str, Any]]:
    url = olga.server.make_url("/console/try")
    headers = {"X-CSRF-Token": olga.csrf}
    async with olga.http.post(url, data=data, headers=headers) as response:
        return response.status, await response.json()


async def test_try_decides_a_message_by_the_live_and_the_edited_intents(
    logins: Logins, shop: Path
) -> None:
    olga, original = await logins.of("olga"), shop.read_bytes()
    new = await olga.form("/console/intents/new")
    assert new["file"] == "shop.yaml"
    gifts = {
        **new,
        "id": "gift_cards",
        "examples": "gift card balance\nbuy a gift card",
        "answer": "Gift cards are sold in the shop.",
    }
    status, tried = await try_it(olga, text="gift card balance", with_edit="1", **gifts)
    assert status == 200
    assert tried["text"] == "gift card balance" and tried["edited_error"] is None
    live, edited = tried["live"], tried["edited"]
    assert live["kind"] != "answer" and live["intent"] != "gift_cards"
    assert (edited["kind"], edited["intent"], edited["reply"]) == (
        "answer",
        "gift_cards",
        "Gift cards are sold in the shop.",
    )
    assert edited["score"] == pytest.approx(1.0, abs=1e-4)
    assert set(edited) == {
        "kind",
        "intent",
        "score",
        "margin",
        "emotion",
        "reasons",
        "reply",
        "explain",
    }
    assert "gift_cards" in edited["explain"]

    status, tried = await try_it(olga, text="where is my order", with_edit="0")
    assert status == 200 and tried["edited"] is None
    assert (tried["live"]["kind"], tried["live"]["intent"]) == ("answer", "order_status")

    status, tried = await try_it(olga, text="gift card", with_edit="1", **{**gifts, "examples": ""})
    assert status == 200 and tried["edited"] is None
    assert "Give at least one example" in tried["edited_error"]

    status, tried = await try_it(olga, text="   ", with_edit="0")
    assert (status, tried) == (400, {"error": "Type a customer message to try."})
    assert shop.read_bytes() == original


# --- proposals -----------------------------------------------------------------------------


async def handed_off_reply(server: TestServer, agent: Agent) -> tuple[int, int]:
    """A web chat customer asks what no intent covers, asks for a person, and ``agent`` replies:
    (conversation id, the reply's message id)."""
    async with aiohttp.ClientSession() as http:
        customer = Visitor(await http.ws_connect(server.make_url("/chat/ws")))
        await customer.hello()
        await customer.say(GIFT_QUESTION)
        await customer.next_of("message")
        await customer.say("staff member please")
        await customer.next_of("message")
        _, queue = await agent.get("/inbox")
        found = re.search(r'data-conversation-id="(\d+)"', queue)
        assert found, queue
        conversation = int(found.group(1))
        await agent.get(f"/inbox/c/{conversation}")
        status, _, _ = await agent.post(f"/inbox/c/{conversation}/reply", {"text": GIFT_REPLY})
        assert status == 303
        await customer.next_of("message")  # Ann joined
        assert (await customer.next_of("message"))["text"] == GIFT_REPLY
    return conversation, await reply_id(agent, conversation)


async def reply_id(agent: Agent, conversation: int) -> int:
    """The message id the newest "Add to FAQ" button on the conversation page posts."""
    _, html = await agent.get(f"/inbox/c/{conversation}")
    ids = re.findall(r'name="message_id" value="(\d+)"', html)
    assert ids, "no Add to FAQ button on the conversation page"
    return int(ids[-1])


async def test_any_agent_proposes_from_a_reply_and_ops_see_it_waiting(
    server: TestServer, logins: Logins, runtime: Runtime
) -> None:
    ann, olga = await logins.of("ann"), await logins.of("olga")
    conversation, message = await handed_off_reply(server, ann)
    async with runtime.db.session() as session:
        author = await session.scalar(select(Message.author).where(Message.id == message))
    assert author == "agent"  # the button is on the agent's reply
    status, _, location = await ann.post("/console/propose/reply", {"message_id": str(message)})
    assert status == 303
    assert location == f"/inbox/c/{conversation}?proposed=1#m{message}"
    _, html = await ann.get(location.split("#")[0])
    assert "Proposal 1 is in the ops queue" in html
    assert "review it now" not in html  # ann is not ops
    [proposal] = await ProposalStore(runtime.db, clock=runtime.clock).waiting()
    assert (proposal.author, proposal.intent_id, proposal.examples, proposal.answer) == (
        "ann",
        "sell_gift_vouchers",
        (GIFT_QUESTION,),
        GIFT_REPLY,
    )
    _, home = await olga.get("/console")
    row = home[home.index('<tr data-proposal="1">') :]
    row = row[: row.index("</tr>")]
    assert "New intent <code>sell_gift_vouchers</code>" in row
    assert "ann · an agent&#39;s reply" in row or "ann · an agent's reply" in row
    status, html = await olga.get("/console/proposals/1")
    assert status == 200 and 'id="proposal-box"' in html
    form = form_of(html)
    assert (form["id"], form["examples"], form["answer"], form["proposal"]) == (
        "sell_gift_vouchers",
        GIFT_QUESTION,
        GIFT_REPLY,
        "1",
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [("x", "message_id must be a message number, not 'x'"), ("999", "No message 999")],
)
async def test_a_proposal_from_what_is_not_a_reply_is_refused(
    logins: Logins, runtime: Runtime, value: str, message: str
) -> None:
    status, body, _ = await (await logins.of("ann")).post(
        "/console/propose/reply", {"message_id": value}
    )
    assert status == 400 and message in body
    assert await ProposalStore(runtime.db, clock=runtime.clock).waiting() == []


async def test_ops_reject_a_proposal_once(
    server: TestServer, logins: Logins, runtime: Runtime, shop: Path
) -> None:
    ann, olga, original = await logins.of("ann"), await logins.of("olga"), shop.read_bytes()
    _, message = await handed_off_reply(server, ann)
    await ann.post("/console/propose/reply", {"message_id": str(message)})
    await olga.get("/console")
    status, _, location = await olga.post("/console/proposals/1/reject", {"note": "too rare"})
    assert (status, unquote(location)) == (303, "/console?notice=Proposal 1 rejected.")
    store = ProposalStore(runtime.db, clock=runtime.clock)
    assert await store.waiting() == []
    proposal = await store.get(1)
    assert (proposal.status, proposal.decided_by, proposal.note) == (
        Status.REJECTED,
        "olga",
        "too rare",
    )
    _, home = await olga.get("/console")
    assert "rejected by olga" in home and "No proposals waiting" in home
    status, html, _ = await olga.post("/console/proposals/1/reject", {})
    assert status == 409 and "Not rejected" in html
    assert shop.read_bytes() == original


async def unanswered_topic(runtime: Runtime) -> None:
    """Three customers ask alike about what no intent covers."""
    for text in ("gift wrapping service", "gift wrapping possible", "do you offer gift wrapping"):
        await ask(runtime, text)


@pytest.mark.parametrize(("name", "lands"), [("leo", "/insights?notice="), ("olga", "/console/")])
async def test_a_lead_or_ops_propose_an_intent_from_an_unanswered_topic(
    logins: Logins, runtime: Runtime, name: str, lands: str
) -> None:
    await unanswered_topic(runtime)
    leo, person = await logins.of("leo"), await logins.of(name)
    status, html = await leo.get("/insights")
    assert status == 200
    start = html.index('<form class="topic-propose"')
    form = html[start : html.index("</form>", start)]
    fields = {k: unescape(v) for k, v in re.findall(r'name="(\w+)" value="([^"]*)"', form)}
    fields.pop("csrf")
    assert fields["topic"]
    await person.get("/inbox")
    status, _, location = await person.post(
        "/console/propose/topic", {**fields, "name": "gift wrapping"}
    )
    assert status == 303 and location.startswith(lands), location
    [proposal] = await ProposalStore(runtime.db, clock=runtime.clock).waiting()
    assert proposal.author == name and proposal.intent_id == "gift_wrapping"
    assert sorted(proposal.examples) == [
        "do you offer gift wrapping",
        "gift wrapping possible",
        "gift wrapping service",
    ]
    if name == "leo":
        assert "is waiting for ops staff" in unquote(location)
    else:
        assert location == f"/console/proposals/{proposal.id}"

    status, html, _ = await (await logins.of("ann")).post("/console/propose/topic", fields)
    assert status == 403 and NOT_OPS in html  # an agent without lead or ops
    status, html, _ = await person.post("/console/propose/topic", {**fields, "topic": "gone"})
    assert status == 404 and "This topic is gone" in html


@pytest.mark.parametrize("as_new", [False, True], ids=["as proposed", "as a new intent"])
async def test_examples_proposed_for_an_intent_open_in_it_or_start_a_new_one(
    logins: Logins, runtime: Runtime, as_new: bool
) -> None:
    """The matcher's guess of the intent can be wrong: ops may make a new intent of them."""
    store = ProposalStore(runtime.db, clock=runtime.clock)
    proposal = await store.add(
        Draft(
            kind=ProposalKind.ADD_EXAMPLES,
            intent_id="order_status",
            examples=("can you wrap my parcel as a gift",),
            source=Source.AGENT,
            author="ann",
        )
    )
    olga = await logins.of("olga")
    form = await olga.form(f"/console/proposals/{proposal.id}" + ("?as=new" if as_new else ""))
    examples = form["examples"].splitlines()
    assert examples[-1] == "can you wrap my parcel as a gift"
    assert form["proposal"] == str(proposal.id)
    if as_new:
        assert (form["id"], form["original_id"], examples) == ("", "", examples[-1:])
    else:
        assert (form["id"], form["original_id"]) == ("order_status", "order_status")
        assert len(examples) > 1
