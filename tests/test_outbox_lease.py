"""Outbox leases with several workers on one database: claimers never take the same row, and a
mark from a worker that lost its lease changes nothing (fencing)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest
from sqlalchemy import select, text

from carebot.clock import as_utc
from carebot.models import OutboundReply
from carebot.runtime import Runtime
from carebot.store.database import Database
from carebot.store.outbox import OutboxStore, Queued, claim_due_in
from carebot.store.tables import OutboxRow
from tests.conftest import ROOT, Clock
from tests.fakes import RecordingChannel
from tests.test_outbox import ORDER, RETURNS, TRACK, ask

ON_POSTGRESQL = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


@pytest.fixture
def send_immediately() -> bool:
    """Replies wait in the outbox: the tests claim them."""
    return False


async def row(runtime: Runtime, outbox_id: int) -> OutboxRow:
    async with runtime.db.session() as session:
        return await session.get_one(OutboxRow, outbox_id)


async def pending_replies(runtime: Runtime, customers: int, per_customer: int = 1) -> list[int]:
    questions = [ORDER, RETURNS]
    return [
        await ask(runtime, questions[n % 2], user=f"c{c}")
        for n in range(per_customer)
        for c in range(customers)
    ]


Mark = Callable[[OutboxStore, OutboundReply], Awaitable[bool]]


async def _sent(store: OutboxStore, reply: OutboundReply) -> bool:
    return await store.mark_sent([(reply, "ext-1")]) == []


async def _failed(store: OutboxStore, reply: OutboundReply) -> bool:
    return await store.mark_failed(reply, "down", delay=lambda _: 30) is not None


async def _undeliverable(store: OutboxStore, reply: OutboundReply) -> bool:
    return await store.mark_undeliverable(reply, "refused")


async def _released(store: OutboxStore, reply: OutboundReply) -> bool:
    return await store.release(reply)


MARKS = pytest.mark.parametrize(
    "mark", [_sent, _failed, _undeliverable, _released], ids=lambda m: m.__name__.strip("_")
)


def _state(found: OutboxRow) -> tuple[object, ...]:
    return (
        found.status,
        found.attempts,
        found.lease,
        found.locked_until,
        found.next_attempt_at,
        found.last_error,
        found.external_id,
    )


@MARKS
async def test_a_mark_with_a_stale_token_changes_nothing(
    runtime: Runtime, mark: Mark, caplog: pytest.LogCaptureFixture
) -> None:
    outbox_id = await ask(runtime, ORDER)
    store = runtime.outbox_store
    [claimed] = await store.claim_due()
    assert claimed.lease is not None
    before = _state(await row(runtime, outbox_id))

    with caplog.at_level(logging.WARNING, logger="carebot.store.outbox"):
        assert not await mark(store, dataclasses.replace(claimed, lease="not-the-token"))
    assert _state(await row(runtime, outbox_id)) == before
    assert f"Reply {outbox_id}: this worker's lease on it was lost" in caplog.text
    assert await mark(store, claimed)  # the holder's mark applies
    assert (await row(runtime, outbox_id)).lease is None


async def test_a_batch_of_sent_marks_skips_only_the_reply_whose_lease_was_lost(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    """Replies delivered together are marked together (one statement on PostgreSQL): each
    with its platform id, except the one another worker holds now, which stays as it was."""
    ids = await pending_replies(runtime, customers=3)
    store = runtime.outbox_store
    claimed = sorted(await store.claim_due(), key=lambda r: r.outbox_id)
    stale = dataclasses.replace(claimed[1], lease="not-the-token")
    before = _state(await row(runtime, ids[1]))

    with caplog.at_level(logging.WARNING, logger="carebot.store.outbox"):
        lost = await store.mark_sent([(claimed[0], "ext-a"), (stale, "ext-b"), (claimed[2], None)])
    assert lost == [ids[1]]
    assert f"Reply {ids[1]}: this worker's lease on it was lost" in caplog.text
    found = [await row(runtime, i) for i in ids]
    assert [(f.status, f.external_id, f.lease, f.attempts) for f in (found[0], found[2])] == [
        ("sent", "ext-a", None, 1),
        ("sent", None, None, 1),
    ]
    assert _state(found[1]) == before


async def test_a_reply_that_was_never_claimed_cannot_be_marked(runtime: Runtime) -> None:
    outbox_id = await ask(runtime, ORDER)
    unclaimed = OutboundReply(outbox_id=outbox_id, channel="test", external_user_id="u1", text="")
    with pytest.raises(ValueError, match=f"Reply {outbox_id} carries no lease token"):
        await runtime.outbox_store.mark_sent([(unclaimed, None)])


@MARKS
async def test_a_lease_taken_over_after_expiry_fences_the_first_holders_late_mark(
    runtime: Runtime, clock: Clock, mark: Mark
) -> None:
    outbox_id = await ask(runtime, ORDER)
    store = runtime.outbox_store
    [first] = await store.claim_due(lease=60)
    clock.advance(60)  # the first worker stalled past its lease
    [second] = await store.claim_due(lease=60)
    assert second.outbox_id == outbox_id and second.lease not in (None, first.lease)
    held = _state(await row(runtime, outbox_id))

    assert not await mark(store, first)  # the first worker wakes up: its mark is dropped
    assert _state(await row(runtime, outbox_id)) == held
    assert await store.mark_failed(second, "down", delay=lambda _: 5) == (1, 5)
    after = await row(runtime, outbox_id)  # the new holder's outcome stands
    assert (after.status, after.attempts, after.last_error, after.lease) == (
        "pending",
        1,
        "down",
        None,
    )
    assert as_utc(after.next_attempt_at) == clock.now + timedelta(seconds=5)


async def test_an_expired_lease_nobody_took_over_is_still_the_holders(
    runtime: Runtime, clock: Clock
) -> None:
    """Fencing is by token, not by time: a late mark applies when nobody claimed the row since
    (marking it sent spares the customer a second copy)."""
    outbox_id = await ask(runtime, ORDER)
    [claimed] = await runtime.outbox_store.claim_due(lease=60)
    clock.advance(120)
    assert await runtime.outbox_store.mark_sent([(claimed, None)]) == []
    assert (await row(runtime, outbox_id)).status == "sent"
    assert await runtime.outbox_store.claim_due() == []


async def test_a_worker_that_lost_its_lease_does_not_overwrite_the_new_holder(
    runtime: Runtime, channel: RecordingChannel, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """Through the worker: the stalled worker's send went out (the customer may get the reply
    twice: at least once), its sent-mark is dropped and logged, the new holder's failure stands."""
    outbox_id = await ask(runtime, ORDER)
    [stalled] = await runtime.outbox_store.claim_due(lease=60)
    clock.advance(60)
    [holder] = await runtime.outbox_store.claim_due(lease=60)
    assert await runtime.outbox_store.mark_failed(holder, "down", delay=lambda _: 30)
    with caplog.at_level(logging.WARNING, logger="carebot.store.outbox"):
        await runtime.outbox.dispatch(Queued(stalled, immediate=True))  # its late send
    assert channel.texts() == [TRACK]  # it went out: a retry in 30 s sends it again
    after = await row(runtime, outbox_id)
    assert (after.status, after.attempts, after.last_error) == ("pending", 1, "down")
    assert "its mark is dropped" in caplog.text


@ON_POSTGRESQL
async def test_concurrent_claimers_skip_each_others_rows_without_waiting(
    runtime: Runtime, database_url: str
) -> None:
    """Two engines (two workers): the first holds its claim's transaction open (its row locks
    held); the second claims meanwhile and gets the other rows at once (SKIP LOCKED: without
    it, it would wait on the first's locks, or take the same rows)."""
    ids = await pending_replies(runtime, customers=10)
    now = runtime.outbox_store._clock()
    first, second = Database(database_url), Database(database_url)
    try:
        async with first.transaction() as session:
            mine = await claim_due_in(session, now=now, limit=4)
            other = OutboxStore(second, clock=lambda: now)
            theirs = await asyncio.wait_for(other.claim_due(), timeout=30)  # hang guard only
        assert len(mine) == 4
        assert {r.outbox_id for r in mine}.isdisjoint(r.outbox_id for r in theirs)
        assert sorted(r.outbox_id for r in [*mine, *theirs]) == sorted(ids)
        assert await other.claim_due() == []  # all leased now
    finally:
        await first.close()
        await second.close()


@ON_POSTGRESQL
async def test_a_sent_mark_does_not_wait_for_a_busy_pool(
    runtime: Runtime, database_url: str
) -> None:
    """A worker far behind has every pooled connection busy; a reply it has just delivered is
    still marked sent at once, on the connection kept for the marks (waiting out the pool's
    timeout failed the mark, and the customer got the reply again after its lease)."""
    outbox_id = await ask(runtime, ORDER)
    [claimed] = await runtime.outbox_store.claim_due()
    db = Database(database_url, max_connections=4, pool_timeout=0.5)  # a pool of one
    try:
        async with db.engine.connect() as busy:
            await busy.execute(select(1))
            marked = OutboxStore(db, clock=runtime.outbox_store._clock)
            assert await marked.mark_sent([(claimed, "ext-9")]) == []
        found = await row(runtime, outbox_id)
        assert (found.status, found.external_id, found.lease) == ("sent", "ext-9", None)
    finally:
        await db.close()


@ON_POSTGRESQL
async def test_sent_marks_are_planned_for_their_own_rows(runtime: Runtime) -> None:
    """The marks' connection plans each mark for its ids (a plan kept from the first marks,
    made on an outbox of a few rows, scanned the whole table for every later mark)."""
    async with runtime.db.writes(one_statement=True, sent_marks=True) as connection:
        mode = (await connection.execute(text("SHOW plan_cache_mode"))).scalar()
    assert mode == "force_custom_plan"


@ON_POSTGRESQL
async def test_several_worker_processes_deliver_every_reply_exactly_once(
    runtime: Runtime, database_url: str
) -> None:
    """Three real processes claim and mark the same outbox at once, until it is empty: every
    reply is claimed by exactly one of them and marked sent once (counted, never timed)."""
    ids = await pending_replies(runtime, customers=12, per_customer=3)
    now = runtime.outbox_store._clock().isoformat()
    processes = [
        await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "tests.outbox_claimer", database_url, now),
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for _ in range(3)
    ]
    for process in processes:
        assert process.stdout is not None
        assert await asyncio.wait_for(process.stdout.readline(), timeout=60) == b"ready\n"
    for process in processes:  # every one starts claiming at once
        assert process.stdin is not None
        process.stdin.write(b"go\n")
        await process.stdin.drain()
    outputs = [await asyncio.wait_for(p.communicate(), timeout=120) for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0]
    claimed = [json.loads(out.decode().strip().splitlines()[-1]) for out, _ in outputs]

    every = [outbox_id for ids_of_one in claimed for outbox_id in ids_of_one]
    assert sorted(every) == sorted(ids)  # nothing lost, nothing twice
    async with runtime.db.session() as session:
        rows = (await session.scalars(select(OutboxRow).where(OutboxRow.id.in_(ids)))).all()
    assert {(r.status, r.attempts, r.lease) for r in rows} == {("sent", 1, None)}
