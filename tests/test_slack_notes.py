"""Internal notes in the Slack thread (issue 17, section 4): a note written in the inbox is posted
in the conversation's live thread, once, after the card, marked as never sent to the customer;
a ``note:`` reply written in the thread is not posted back; a note written while Slack fails is
posted once it is back, by this process or the next one.

The thread sync is driven by hand (its flushes) against the Slack stand-in, as in
tests/test_slack_stress.py; the last test goes through the real service: the inbox's note
form, the ``agent_action`` event and the running sync."""

from __future__ import annotations

from datetime import UTC, datetime

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import select, text

from carebot.desk.slack.sync import WAKING_EVENTS, note_text
from carebot.runtime import Runtime
from carebot.server import Service
from carebot.store.database import Database
from carebot.store.notes import Notes
from carebot.store.tables import Note
from tests.conftest import Clock
from tests.service import upset_customer
from tests.slack_standin import SlackStandIn
from tests.test_inbox_web import log_in, page, post
from tests.test_slack import (  # noqa: F401  (fixtures)
    CHANNEL,
    card_ts,
    reply_in_thread,
    service,
    slack,
)
from tests.test_slack_stress import (  # noqa: F401  (fixtures)
    Seconds,
    card_of,
    handed_off,
    posts,
    standin,
    thread_sync,
)
from tests.test_store import _migrate, a_conversation, rows

MEMO = ":memo: *Internal note from Ann* (not sent to the customer):"


def notes_in(found: SlackStandIn, ts: str) -> list[str]:
    """The thread posts of ``ts`` that show an internal note."""
    return [m["text"] for m in found.thread(CHANNEL, ts) if ":memo:" in m["text"]]


async def stored_notes(runtime: Runtime) -> list[tuple[str, str, str | None]]:
    async with runtime.db.session() as session:
        found = await session.scalars(select(Note).order_by(Note.id))
        return [(n.text, n.via, n.slack_ts) for n in found]


async def test_an_inbox_note_appears_once_in_the_thread_after_the_card(
    runtime: Runtime,
    standin: SlackStandIn,  # noqa: F811
    clock: Clock,
) -> None:
    notes = Notes(runtime.db, clock=clock)
    sync = thread_sync(runtime, standin, clock, Seconds())
    conversation = await handed_off(runtime, "noted-customer")
    await notes.add(conversation, "Ann", "VIP <gold> & angry", "inbox")  # before the card
    assert await sync.flush_due() is True
    ts = card_of(standin, "noted-customer")
    thread = standin.thread(CHANNEL, ts)  # in the card's thread, after its history
    assert thread and thread[-1]["text"] == f"{MEMO}\n&gt; VIP &lt;gold&gt; &amp; angry"
    clock.advance(5)
    await notes.add(conversation, "Ann", "Refund approved by Lee", "inbox")
    # No mark: the next pass finds the note by itself (what a restart finds too).
    assert conversation in await sync._threads.due()
    assert await sync.flush_due() is True
    assert await sync.flush_due() is True  # nothing more to post
    shown = notes_in(standin, ts)
    assert len(shown) == 2 and shown[1] == f"{MEMO}\n&gt; Refund approved by Lee"
    posted = [m["ts"] for m in standin.thread(CHANNEL, ts) if ":memo:" in m["text"]]
    assert [s for _, _, s in await stored_notes(runtime)] == posted


async def test_a_slack_note_is_not_posted_back_and_leaves_the_thread_up_to_date(
    runtime: Runtime,
    standin: SlackStandIn,  # noqa: F811
    clock: Clock,
) -> None:
    notes = Notes(runtime.db, clock=clock)
    sync = thread_sync(runtime, standin, clock, Seconds())
    conversation = await handed_off(runtime, "slack-noted-customer")
    assert await sync.flush_due() is True
    ts = card_of(standin, "slack-noted-customer")
    await runtime.desk.resolve(conversation, "Ann")  # not waiting for anyone: due only if behind
    clock.advance(1)  # synced after the change (at the same instant it cannot tell)
    assert await sync.flush_due() is True
    assert conversation not in await sync._threads.due()
    clock.advance(5)
    await notes.add(conversation, "Ann", "written in Slack", "slack", external_id="1700.0001")
    assert conversation not in await sync._threads.due()
    before = len(standin.calls)
    sync.mark(conversation)
    assert await sync.flush_due() is True
    assert posts(standin, since=before) == []
    assert notes_in(standin, ts) == []
    assert await stored_notes(runtime) == [("written in Slack", "slack", None)]


async def test_a_note_added_while_slack_fails_is_posted_once_it_is_back(
    runtime: Runtime,
    standin: SlackStandIn,  # noqa: F811
    clock: Clock,
) -> None:
    notes = Notes(runtime.db, clock=clock)
    sync = thread_sync(runtime, standin, clock, Seconds())
    conversation = await handed_off(runtime, "outage-customer")
    assert await sync.flush_due() is True
    ts = card_of(standin, "outage-customer")
    await runtime.desk.resolve(conversation, "Ann")  # due only for its note from now on
    assert await sync.flush_due() is True

    back = False
    standin.down("chat.postMessage", 500, until=lambda: back)
    clock.advance(5)
    await notes.add(conversation, "Ann", "Call her back tomorrow", "inbox")
    sync.mark(conversation)
    assert await sync.flush_due() is False
    assert await sync.flush_due(last=True) is False  # still down, at shutdown too
    assert posts(standin, ok=False) and notes_in(standin, ts) == []
    assert await stored_notes(runtime) == [("Call her back tomorrow", "inbox", None)]

    back = True  # Slack is back, and the service restarted: a new sync finds the note
    restarted = thread_sync(runtime, standin, clock, Seconds())
    assert await restarted.flush_due() is True
    assert await restarted.flush_due() is True
    assert notes_in(standin, ts) == [f"{MEMO}\n&gt; Call her back tomorrow"]
    assert conversation not in await restarted._threads.due()


async def test_a_note_written_in_the_inbox_reaches_the_thread_and_a_note_reply_stays(
    service: tuple[Service, TestServer],  # noqa: F811
    slack: SlackStandIn,  # noqa: F811
) -> None:
    assert "agent_action" in WAKING_EVENTS  # what the inbox publishes for a note
    running, server = service
    assert running.slack is not None
    async with (
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser,
        upset_customer(server),
    ):
        ts = await card_ts(slack)
        await reply_in_thread(server, ts, "note: she called twice already")
        await slack.wait_for("reactions.add", lambda c: c.params["name"] == "memo")
        await log_in(browser, server)
        _, _, csrf = await page(browser, server, "/inbox/c/1")
        written = {"csrf": csrf, "text": "Offer the 10% voucher"}
        assert (await post(browser, server, "/inbox/c/1/note", written)).status == 303
        [shown] = await slack.wait_for(
            "chat.postMessage", lambda c: ":memo:" in str(c.params.get("text"))
        )
        assert shown.params["thread_ts"] == ts
        assert "Offer the 10% voucher" in shown.params["text"]
        assert await running.slack.sync.flush_due() is True
        assert len(notes_in(slack, ts)) == 1  # once; the note: reply was not posted back
        assert not any("called twice" in t for t in notes_in(slack, ts))


@pytest.mark.parametrize("agent", ["Ann", "<!channel> & Bob"])
def test_the_note_post_escapes_the_agents_name(agent: str) -> None:
    note = Note(agent=agent, text="a\nb", via="inbox", created_at=datetime.now(UTC))
    said = note_text(note)
    assert "<!channel>" not in said and said.endswith("\n&gt; a\n&gt; b")
    assert said.startswith(":memo: *Internal note from ")


async def test_migration_0015_keeps_the_notes_as_not_yet_posted(database_url: str) -> None:
    at = datetime(2026, 3, 1, 9, tzinfo=UTC)
    db = Database(database_url)
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(_migrate, "0014")
            conversation = await a_conversation(conn, at)
            await conn.execute(
                text(
                    "INSERT INTO notes (conversation_id, agent, text, via, created_at) "
                    "VALUES (:c, 'Ann', 'kept', 'inbox', :at)"
                ),
                {"c": conversation, "at": at},
            )
            await conn.run_sync(_migrate, "head")
        [kept] = await rows(db, Note)
        assert (kept.text, kept.via, kept.slack_ts) == ("kept", "inbox", None)
        async with db.transaction() as session:
            found = await session.get(Note, kept.id)
            assert found is not None
            found.slack_ts = "1700.0002"
        async with db.engine.begin() as conn:
            await conn.run_sync(_migrate, "0014", down=True)
            left = (await conn.execute(text("SELECT text, via FROM notes"))).all()
        assert [tuple(row) for row in left] == [("kept", "inbox")]
    finally:
        await db.close()
