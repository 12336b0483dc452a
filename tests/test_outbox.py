"""The outbox: replies delivered once, retried with backoff, in order, leased, kept on restart."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Collection
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from carebot.clock import as_utc
from carebot.config import Settings
from carebot.events import Event
from carebot.exceptions import ChannelNotRunning, DeliveryError
from carebot.inbox import RECOVERY_GRACE
from carebot.models import InboundMessage, OutboundReply
from carebot.outbox import OutboxWorker
from carebot.retry import Backoff
from carebot.runtime import Runtime, build_runtime
from carebot.store.outbox import Queued
from carebot.store.tables import Message, OutboxRow
from tests.conftest import Clock
from tests.fakes import FakeEncoder, RecordingChannel

ORDER, RETURNS, REFUNDS = "where is my order", "how do I return an item", "when is my refund coming"
TRACK = "Track it at https://track.example."
FREE = "Returns are free within 30 days."
FIVE_DAYS = "Refunds take 5 days."
_ids = itertools.count(1)


@pytest.fixture
def send_immediately() -> bool:
    """Every reply goes through the worker here, to test the worker."""
    return False


async def ask(runtime: Runtime, text: str, *, user: str = "u1", channel: str = "test") -> int:
    """A customer question the bot answers; returns the outbox id of the answer."""
    outcome = await runtime.inbox.receive(
        InboundMessage(
            channel=channel,
            external_user_id=user,
            external_message_id=f"m{next(_ids)}",
            text=text,
            sent_at=datetime(2026, 11, 18, 10, tzinfo=UTC),
        )
    )
    assert outcome.outbox_id is not None
    return outcome.outbox_id


async def row(runtime: Runtime, outbox_id: int) -> OutboxRow:
    async with runtime.db.session() as session:
        found = await session.scalar(select(OutboxRow).where(OutboxRow.id == outbox_id))
    assert found is not None
    return found


async def test_a_reply_is_delivered_once_and_marked_sent(
    runtime: Runtime, channel: RecordingChannel, clock: Clock
) -> None:
    outbox_id = await ask(runtime, ORDER)
    clock.advance(2)

    assert await runtime.outbox.deliver_due() == 1
    assert await runtime.outbox.deliver_due() == 0
    assert [(r.outbox_id, r.external_user_id, r.text) for r in channel.sent] == [
        (outbox_id, "u1", TRACK)
    ]
    sent = await row(runtime, outbox_id)
    assert (sent.status, sent.attempts, sent.last_error) == ("sent", 1, None)
    assert sent.locked_until is None
    assert sent.sent_at is not None and as_utc(sent.sent_at) == clock.now
    assert await runtime.outbox_store.pending() == 0
    assert await runtime.outbox_store.next_due() is None


@pytest.mark.parametrize(
    ("error", "recorded"),
    [(DeliveryError("down"), "down"), (RuntimeError("boom"), "RuntimeError('boom')")],
    ids=["delivery_error", "unexpected_error"],
)
async def test_a_failed_send_is_retried_after_the_backoff(
    runtime: Runtime, channel: RecordingChannel, clock: Clock, error: Exception, recorded: str
) -> None:
    channel.failures.append(error)  # type: ignore[arg-type]
    outbox_id = await ask(runtime, ORDER)

    assert await runtime.outbox.deliver_due() == 0
    failed = await row(runtime, outbox_id)
    assert (failed.status, failed.attempts, failed.last_error) == ("pending", 1, recorded)
    assert as_utc(failed.next_attempt_at) == clock.now + timedelta(seconds=1)
    clock.advance(0.5)
    assert await runtime.outbox.deliver_due() == 0

    clock.advance(0.5)
    assert await runtime.outbox.deliver_due() == 1
    assert await runtime.outbox.deliver_due() == 0
    assert channel.texts() == [TRACK]
    sent = await row(runtime, outbox_id)
    assert (sent.status, sent.attempts, sent.last_error) == ("sent", 2, None)


async def test_the_platform_retry_after_wins_over_the_backoff(
    runtime: Runtime, channel: RecordingChannel, clock: Clock
) -> None:
    channel.failures.append(DeliveryError("429", retry_after=30))
    outbox_id = await ask(runtime, ORDER)

    assert await runtime.outbox.deliver_due() == 0
    assert await runtime.outbox_store.next_due() == clock.now + timedelta(seconds=30)
    clock.advance(29)
    assert await runtime.outbox.deliver_due() == 0
    assert channel.sent == []
    clock.advance(1)
    assert await runtime.outbox.deliver_due() == 1
    assert (await row(runtime, outbox_id)).attempts == 2


async def test_the_workers_wait_is_jittered(
    runtime: Runtime, channel: RecordingChannel, clock: Clock
) -> None:
    """Workers that fail together do not come back together: the wait is shortened by a
    random share (here fixed at 0.5 of the jitter: 1 s * (1 - 0.5 * 0.5))."""
    worker = OutboxWorker(
        store=runtime.outbox_store,
        channels={"test": channel},
        clock=clock,
        backoff=Backoff(base=1.0, cap=300.0, rng=lambda: 0.5),
    )
    channel.failures.append(DeliveryError("down"))
    outbox_id = await ask(runtime, ORDER)

    assert await worker.deliver_due() == 0
    failed = await row(runtime, outbox_id)
    assert as_utc(failed.next_attempt_at) == clock.now + timedelta(seconds=0.75)


# A channel that nothing of this service runs, and why its replies are refused (Routes).
NOWHERE = [
    ("gone", "channel gone is not enabled in config.toml"),
    ("telegram", "channel telegram is not enabled in config.toml"),
    (
        "terminal",
        "the terminal channel is not running in this service: it was a `carebot chat` conversation",
    ),
]


@pytest.mark.parametrize(("name", "reason"), NOWHERE)
async def test_a_reply_on_a_channel_nothing_runs_fails_for_good_with_the_reason(
    runtime: Runtime, channel: RecordingChannel, clock: Clock, name: str, reason: str
) -> None:
    refused = await ask(runtime, ORDER, channel=name)
    answered = await ask(runtime, REFUNDS, user="u2")  # on the test channel, running here

    async with runtime.events.subscribe() as events:
        assert await runtime.outbox.deliver_due() == 1
        announced = [events.get_nowait() for _ in range(events.qsize())]
    failed = await row(runtime, refused)
    assert (failed.status, failed.attempts, failed.delivery_error) == ("failed", 1, reason)
    assert Event("undelivered", failed.conversation_id) in announced  # shown live, Slack told
    assert (await row(runtime, answered)).status == "sent"
    assert channel.texts() == [FIVE_DAYS]
    case = await runtime.queue.case(failed.conversation_id)
    assert case.messages[-1].delivery == f"not delivered: {reason}"  # what agents read
    clock.advance(3600)
    assert await runtime.outbox.deliver_due() == 0  # never retried
    assert (await row(runtime, refused)).attempts == 1
    assert await runtime.outbox_store.pending() == 0


@pytest.mark.parametrize(("name", "reason"), NOWHERE)
async def test_an_agents_reply_to_a_channel_nothing_runs_is_refused_up_front(
    runtime: Runtime, name: str, reason: str
) -> None:
    received = await runtime.conversations.receive(
        InboundMessage(name, "u1", "m1", "hello?", datetime(2026, 11, 18, 10, tzinfo=UTC))
    )
    said = f"{reason[0].upper()}{reason[1:]}, so no reply can reach it."

    with pytest.raises(ChannelNotRunning) as refused:
        await runtime.desk.reply(received.conversation_id, "ann", "How can I help?")

    assert str(refused.value) == said
    async with runtime.db.session() as session:
        assert await session.scalar(select(func.count()).select_from(OutboxRow)) == 0
        kinds = (await session.scalars(select(Message.direction))).all()
    assert list(kinds) == ["in"]  # nothing queued, nothing recorded as sent
    assert (await runtime.conversations.conversation(received.conversation_id)).state == "bot"


async def test_an_agents_reply_to_a_channel_another_process_runs_is_queued(
    runtime: Runtime,
) -> None:
    received = await runtime.conversations.receive(
        InboundMessage("webchat", "u1", "m1", "hello?", datetime(2026, 11, 18, 10, tzinfo=UTC))
    )
    outbox_id = await runtime.desk.reply(received.conversation_id, "ann", "How can I help?")
    assert (await row(runtime, outbox_id)).status == "pending"


@pytest.mark.parametrize("send_immediately", [False, True], ids=["worker", "writer"])
async def test_a_reply_on_a_channel_another_process_runs_is_left_to_it(
    runtime: Runtime,
    clock: Clock,
    settings: Settings,
    encoder: FakeEncoder,
    database_url: str,
    send_immediately: bool,
) -> None:
    """The web chat is enabled in the settings but does not run in this runtime (as in
    `carebot chat --store` beside the service, or a worker without it): this process neither
    claims nor fails its reply, and does not spin on it; the process that runs it sends it."""
    left = await ask(runtime, ORDER, channel="webchat")

    assert await runtime.outbox.deliver_due() == 0
    kept = await row(runtime, left)
    assert (kept.status, kept.attempts, kept.locked_until) == ("pending", 0, None)
    assert await runtime.outbox_store.next_due(skip={"webchat"}) is None  # nothing to wait for
    webchat = RecordingChannel("webchat")
    other = await build_runtime(
        settings,
        encoder=encoder,
        channels={"webchat": webchat},
        clock=clock,
        database_url=database_url,
    )
    try:
        assert await other.outbox.deliver_due() == 1  # at once: no lease, no backoff to wait
    finally:
        await other.db.close()
    assert webchat.texts() == [TRACK]
    assert (await row(runtime, left)).status == "sent"


async def test_replies_keep_their_order_within_a_conversation(
    runtime: Runtime, channel: RecordingChannel, clock: Clock
) -> None:
    await ask(runtime, ORDER, user="a")
    await ask(runtime, RETURNS, user="a")
    await ask(runtime, REFUNDS, user="b")
    channel.failures.append(DeliveryError("down"))  # the first reply claimed: a's first

    assert await runtime.outbox.deliver_due() == 1
    assert [(r.external_user_id, r.text) for r in channel.sent] == [("b", FIVE_DAYS)]
    assert await runtime.outbox_store.pending() == 2

    clock.advance(1)
    assert await runtime.outbox.deliver_due() == 2
    assert [(r.external_user_id, r.text) for r in channel.sent[1:]] == [("a", TRACK), ("a", FREE)]


async def test_blocked_replies_do_not_starve_other_conversations(runtime: Runtime) -> None:
    """Replies stuck behind a failing one must not hide other conversations' replies."""
    blocked = [await ask(runtime, ORDER, user="a") for _ in range(10)]
    [head] = await runtime.outbox_store.claim_due(limit=1)
    assert head.outbox_id == blocked[0]
    await runtime.outbox_store.mark_failed(head, "down", delay=lambda _: 600)
    other = await ask(runtime, REFUNDS, user="b")

    claimed = await runtime.outbox_store.claim_due(limit=1)
    assert [(r.outbox_id, r.external_user_id, r.text) for r in claimed] == [(other, "b", FIVE_DAYS)]


async def test_a_claimed_reply_is_leased_until_the_lease_expires(
    runtime: Runtime, clock: Clock
) -> None:
    outbox_id = await ask(runtime, ORDER)
    store = runtime.outbox_store

    assert [r.outbox_id for r in await store.claim_due(lease=60)] == [outbox_id]
    assert await store.claim_due(lease=60) == []
    leased = await row(runtime, outbox_id)
    assert leased.locked_until is not None
    assert as_utc(leased.locked_until) == clock.now + timedelta(seconds=60)
    clock.advance(59)
    assert await store.claim_due(lease=60) == []
    clock.advance(1)
    assert [r.outbox_id for r in await store.claim_due(lease=60)] == [outbox_id]


async def test_one_reply_is_claimed_only_when_nothing_is_in_its_way(
    runtime: Runtime, clock: Clock
) -> None:
    """What an agent's request claims to send right after its earlier reply (the notice that
    the agent joined, then the agent's reply)."""
    first, second = await ask(runtime, ORDER), await ask(runtime, RETURNS)
    store = runtime.outbox_store

    assert await store.claim(second) is None  # the first is still pending
    [head] = await store.claim_due(limit=1)
    assert head.outbox_id == first
    assert await store.claim(first) is None  # leased to the worker
    assert await store.mark_sent([(head, None)]) == []
    claimed = await store.claim(second, lease=30)
    assert claimed is not None and (claimed.outbox_id, claimed.text) == (second, FREE)
    leased = await row(runtime, second)
    assert leased.locked_until is not None
    assert as_utc(leased.locked_until) == clock.now + timedelta(seconds=30)
    assert await store.claim(second) is None  # once
    assert await store.claim_due() == []


async def test_a_reply_leased_by_a_worker_that_died_is_sent_after_the_lease(
    runtime: Runtime, channel: RecordingChannel, clock: Clock
) -> None:
    outbox_id = await ask(runtime, ORDER)
    assert len(await runtime.outbox_store.claim_due(lease=60)) == 1  # then the worker died

    clock.advance(60)
    assert await runtime.outbox.deliver_due() == 1
    assert channel.texts() == [TRACK]
    assert (await row(runtime, outbox_id)).status == "sent"


async def test_stop_flushes_due_replies_between_stopping_and_closing_the_channel(
    runtime: Runtime, channel: RecordingChannel
) -> None:
    """The fake refuses to send once closed, as every channel does (test_channel_contract):
    the reply gets out only because the flush comes after stop and before close."""
    await ask(runtime, ORDER)
    assert channel.sent == []

    await runtime.stop()
    assert channel.texts() == [TRACK]
    assert channel.lifecycle == ["stop", "close"]
    assert channel.closed


async def test_a_new_runtime_delivers_what_the_last_one_left(
    runtime: Runtime,
    channel: RecordingChannel,
    clock: Clock,
    settings: Settings,
    encoder: FakeEncoder,
    database_url: str,
) -> None:
    channel.failures.append(DeliveryError("down"))
    left = await ask(runtime, ORDER)
    assert await runtime.outbox.deliver_due() == 0
    await runtime.conversations.receive(  # stored, never decided: the process "stopped"
        InboundMessage("test", "u2", "late", REFUNDS, datetime(2026, 11, 18, 10, tzinfo=UTC))
    )
    await runtime.stop()
    assert channel.sent == []

    # Restarted after the recovery grace: a younger undecided message may be a peer's in hand.
    clock.advance(RECOVERY_GRACE.total_seconds() + 1)
    fresh = RecordingChannel("test")
    again = await build_runtime(
        settings,
        encoder=encoder,
        channels={"test": fresh},
        clock=clock,
        database_url=database_url,
    )
    await again.start()
    await again.stop()

    assert sorted((r.external_user_id, r.text) for r in fresh.sent) == [
        ("u1", TRACK),
        ("u2", FIVE_DAYS),
    ]
    assert (await row(runtime, left)).status == "sent"
    assert await runtime.outbox_store.pending() == 0


class GatedStore:
    """An outbox store stand-in whose sent-marks wait for a gate."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.marked: list[list[int]] = []

    async def mark_sent(self, sent: list[tuple[OutboundReply, str | None]]) -> list[int]:
        await self.gate.wait()
        self.marked.append([reply.outbox_id for reply, _ in sent])
        return []


async def test_a_cancelled_sender_does_not_stall_the_others(clock: Clock) -> None:
    store = GatedStore()
    channel = RecordingChannel("test")
    worker = OutboxWorker(store=store, channels={"test": channel}, clock=clock)  # type: ignore[arg-type]
    replies = [
        OutboundReply(outbox_id=i, channel="test", external_user_id="u", text=f"r{i}")
        for i in (1, 2, 3)
    ]
    senders = [asyncio.create_task(worker.dispatch(Queued(r, immediate=True))) for r in replies]
    while len(channel.sent) < 3:
        await asyncio.sleep(0)
    senders[0].cancel()  # e.g. the customer's connection closed while its mark was written
    store.gate.set()
    await asyncio.wait_for(asyncio.gather(*senders[1:]), timeout=5)
    assert sorted(i for batch in store.marked for i in batch) == [1, 2, 3]


class GatedChannel(RecordingChannel):
    """A platform whose send API answers only when the test lets it."""

    def __init__(self) -> None:
        super().__init__("test")
        self.gate = asyncio.Event()

    async def send(self, reply: OutboundReply) -> str | None:
        await self.gate.wait()
        return await super().send(reply)


async def test_a_slow_platform_does_not_hold_up_the_request(clock: Clock) -> None:
    """A webhook call (or a customer's request) waits for its reply's send only briefly; the
    send finishes in the background and is marked sent once."""
    store = GatedStore()
    store.gate.set()
    channel = GatedChannel()
    worker = OutboxWorker(
        store=store,  # type: ignore[arg-type]
        channels={"test": channel},
        clock=clock,
        immediate_wait=0.01,
    )
    reply = OutboundReply(outbox_id=1, channel="test", external_user_id="u", text="hi")
    await asyncio.wait_for(worker.dispatch(Queued(reply, immediate=True)), timeout=5)
    assert channel.sent == []  # the request went on; the platform has not answered yet
    channel.gate.set()
    await worker.drain()
    assert channel.texts() == ["hi"] and store.marked == [[1]]


class FlakyStore:
    """An outbox store stand-in whose first look at the queue fails, like a dropped connection."""

    def __init__(self) -> None:
        self.looks = 0

    async def claim_due(
        self, *, limit: int = 50, lease: float = 60.0, skip: Collection[str] = ()
    ) -> list[OutboundReply]:
        return []

    async def next_due(self, *, skip: Collection[str] = ()) -> None:
        self.looks += 1
        if self.looks == 1:
            raise ConnectionError("connection reset")


async def test_the_worker_survives_a_failing_pass(clock: Clock) -> None:
    store = FlakyStore()
    worker = OutboxWorker(store=store, channels={}, clock=clock)  # type: ignore[arg-type]
    task = asyncio.create_task(worker.run())

    async def looked(times: int) -> None:
        while store.looks < times and not task.done():
            await asyncio.sleep(0)

    await asyncio.wait_for(looked(1), timeout=5)
    worker.wake()  # skip the backoff
    await asyncio.wait_for(looked(2), timeout=5)
    assert not task.done() and worker.running
    worker.stop()
    await asyncio.wait_for(task, timeout=5)
    assert not worker.running


async def test_the_reply_before_another_is_the_conversations_previous_row(
    runtime: Runtime,
) -> None:
    first = await ask(runtime, ORDER, user="ann")
    other = await ask(runtime, ORDER, user="bob")  # another conversation's row in between
    second = await ask(runtime, RETURNS, user="ann")
    conversation = (await row(runtime, second)).conversation_id
    store = runtime.outbox_store
    assert await store.reply_before(conversation, second) == first
    assert await store.reply_before(conversation, first) is None
    assert await store.reply_before((await row(runtime, other)).conversation_id, other) is None


async def test_the_latest_replies_of_several_users_come_from_one_query(runtime: Runtime) -> None:
    await ask(runtime, ORDER, user="ann")
    latest_ann = await ask(runtime, RETURNS, user="ann")
    latest_bob = await ask(runtime, ORDER, user="bob")
    await ask(runtime, ORDER, user="cid")  # not asked about
    store = runtime.outbox_store
    found = await store.latest_replies("test", ["ann", "bob", "dan"])  # dan: no reply, left out
    assert found == {"ann": latest_ann, "bob": latest_bob}
    assert await store.latest_replies("webchat", ["ann"]) == {}  # another channel's ann
    assert await store.latest_replies("test", []) == {}
