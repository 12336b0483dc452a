"""The inbox: store first, stay silent while a human owns the conversation, never go mute."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import re
import sys
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest
from sqlalchemy import select

from carebot import inbox as inbox_module
from carebot.clock import as_utc
from carebot.config import Settings
from carebot.exceptions import DeliveryError
from carebot.inbox import RECOVERY_GRACE, Inbox, Status
from carebot.models import Attachment, Decision, DecisionKind, InboundKind, InboundMessage, Reason
from carebot.runtime import Runtime, build_runtime
from carebot.store.conversation_lock import ConversationBusy
from carebot.store.conversations import AlreadyHandled, decision_row
from carebot.store.tables import Base, DecisionRow, Handoff, Message, OutboxRow
from carebot.triage import TriageContext
from tests.conftest import EXACT_BACKOFF, ROOT, Clock
from tests.fakes import FakeEncoder, GatedEncoder, RecordingChannel

T = TypeVar("T", bound=Base)
_ids = itertools.count(1)
TRACK = "Track it at https://track.example."
AMBIGUOUS = "return item label"  # equally close to "returns" and "returns_label"
GRACE = RECOVERY_GRACE.total_seconds()
FAQ = "where is my order"


class BreakableEncoder(FakeEncoder):
    """The fake encoder, which raises once ``broken`` is set (after the matcher was built)."""

    broken = False

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if self.broken:
            raise RuntimeError("encoder crashed")
        return super().encode(texts)


@pytest.fixture
def encoder() -> BreakableEncoder:
    return BreakableEncoder()


def inbound(
    text: str,
    *,
    user: str = "u1",
    mid: str | None = None,
    kind: InboundKind = InboundKind.TEXT,
    attachments: tuple[Attachment, ...] = (),
) -> InboundMessage:
    return InboundMessage(
        channel="test",
        external_user_id=user,
        external_message_id=mid or f"m{next(_ids)}",
        text=text,
        sent_at=datetime(2026, 11, 18, 10, tzinfo=UTC),
        kind=kind,
        attachments=attachments,
    )


async def rows(runtime: Runtime, table: type[T], *where: Any) -> list[T]:
    async with runtime.db.session() as session:
        return list((await session.scalars(select(table).where(*where).order_by(table.id))).all())


async def state(runtime: Runtime, conversation_id: int) -> str:
    return (await runtime.conversations.conversation(conversation_id)).state


@pytest.fixture
async def peer(
    runtime: Runtime,
    settings: Settings,
    encoder: FakeEncoder,
    clock: Clock,
    channel: RecordingChannel,
) -> AsyncIterator[Runtime]:
    """Another worker on the same database, with its own engine (its own connections)."""
    url = runtime.db.url.render_as_string(hide_password=False)
    other = await build_runtime(
        settings,
        encoder=encoder,
        channels={"test": channel},
        clock=clock,
        database_url=url,
        backoff=EXACT_BACKOFF,
    )
    yield other
    await other.db.close()


async def test_an_faq_is_answered_and_its_decision_stored(
    runtime: Runtime, channel: RecordingChannel, clock: Clock
) -> None:
    outcome = await runtime.inbox.receive(inbound("where is my order"))

    assert outcome.status is Status.DECIDED
    [row] = await rows(runtime, OutboxRow)
    # Written to the outbox with the decision, then sent right away by the inbox itself.
    assert (row.id, row.text, row.external_user_id, row.status) == (
        outcome.outbox_id,
        TRACK,
        "u1",
        "sent",
    )
    assert channel.texts() == [TRACK]
    [decision] = await rows(runtime, DecisionRow)
    assert (decision.kind, decision.intent, decision.reasons) == (
        "answer",
        "order_status",
        "confident",
    )
    assert decision.score == pytest.approx(1.0)
    assert decision.inbound_message_id == outcome.received.message_id
    assert decision.details["top"][0] == {"intent": "order_status", "score": 1.0}
    assert [t["intent"] for t in decision.details["top"]][1:] == ["refunds", "account_deletion"]
    assert decision.details["choices"] == []
    timings = decision.details["timings_ms"]
    assert sorted(timings) == ["batch", "model_ms", "triage_ms", "wait_ms"]
    assert timings["batch"] == 1
    assert timings["triage_ms"] >= timings["model_ms"] >= 0
    inbound_row, reply = await rows(runtime, Message)
    assert inbound_row.handled_at is not None and as_utc(inbound_row.handled_at) == clock.now
    assert (reply.direction, reply.author, reply.decision_id) == ("out", "bot", decision.id)
    assert await runtime.outbox.deliver_due() == 1
    assert channel.texts() == [TRACK]


@pytest.mark.parametrize("slow, logged", [(0.0, True), (60.0, False)], ids=["slow", "quick"])
async def test_a_slow_store_is_logged(
    runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    slow: float,
    logged: bool,
) -> None:
    """Storing a message slower than ``SLOW_STORE`` is logged with the time it took (agents see
    the message that much later): how a worker that falls behind shows where."""
    monkeypatch.setattr(inbox_module, "SLOW_STORE", slow)
    caplog.set_level(logging.INFO, logger="carebot.inbox")
    outcome = await runtime.inbox.receive(inbound("where is my order"))
    assert outcome.status is Status.DECIDED
    said = re.findall(rf"Storing message {outcome.received.message_id} took [\d.]+ s", caplog.text)
    assert len(said) == (1 if logged else 0), caplog.text


async def test_a_redelivered_message_gets_no_second_reply(runtime: Runtime) -> None:
    first = await runtime.inbox.receive(inbound("where is my order", mid="tg-1"))
    again = await runtime.inbox.receive(inbound("where is my order", mid="tg-1"))

    assert (first.status, again.status) == (Status.DECIDED, Status.DUPLICATE)
    assert again.received.message_id == first.received.message_id
    assert len(await rows(runtime, OutboxRow)) == 1
    assert len(await rows(runtime, DecisionRow)) == 1


@pytest.mark.parametrize("decided", [False, True], ids=["stored", "stored and decided"])
async def test_a_message_handled_by_a_worker_that_died_is_announced_when_redelivered(
    runtime: Runtime, decided: bool
) -> None:
    """The first delivery was stored (and maybe decided), then its worker died before telling
    the agents' live views; the redelivery is decided if it was not, and announced either way
    (a view told twice only looks again)."""
    stored = await runtime.conversations.receive(inbound("where is my order", mid="tg-7"))
    if decided:
        await runtime.conversations.mark_handled(stored.message_id)
    async with runtime.events.subscribe() as heard:
        again = await runtime.inbox.receive(inbound("where is my order", mid="tg-7"))
        kinds = [heard.get_nowait() for _ in range(heard.qsize())]
    assert again.status is (Status.DUPLICATE if decided else Status.DECIDED)
    assert ("customer_message", stored.conversation_id) in [
        (e.kind, e.conversation_id) for e in kinds
    ]


async def test_the_bot_is_silent_while_an_agent_has_the_conversation(
    runtime: Runtime, channel: RecordingChannel
) -> None:
    """(While the customer only waits for a person, the bot still answers: test_waiting.)"""
    handoff = await runtime.inbox.receive(inbound("delete my account"))
    conversation_id = handoff.received.conversation_id
    assert handoff.decision is not None and handoff.decision.kind is DecisionKind.HANDOFF
    await runtime.desk.take_over(conversation_id, "ann")

    later = [await runtime.inbox.receive(inbound(t)) for t in ("where is my order", "hello?")]
    assert [o.status for o in later] == [Status.RECORDED, Status.RECORDED]
    assert [(o.decision, o.outbox_id) for o in later] == [(None, None), (None, None)]
    recorded = await rows(runtime, Message, Message.id.in_([o.received.message_id for o in later]))
    assert [(m.text, m.handled_at is not None) for m in recorded] == [
        ("where is my order", True),
        ("hello?", True),
    ]
    # "passing you to a person", and "ann has joined" once taken over: nothing from the bot
    joined = ["ann from our team has joined the conversation."]
    queued = await rows(runtime, OutboxRow)
    assert [row.text for row in queued] == [runtime.settings.messages.handoff, *joined]
    assert len(await rows(runtime, DecisionRow)) == 1

    await runtime.desk.resolve(conversation_id, "ann")
    answered = await runtime.inbox.receive(inbound("where is my order"))
    assert answered.status is Status.DECIDED and answered.outbox_id is not None
    assert await runtime.outbox.deliver_due() == 3 + len(joined)
    resolved = runtime.settings.messages.resolved.format(agent="ann")
    assert channel.texts() == [runtime.settings.messages.handoff, *joined, resolved, TRACK]


async def test_a_takeover_during_triage_silences_the_bot(runtime: Runtime) -> None:
    received = await runtime.conversations.receive(inbound("where is my order"))
    await runtime.handoffs.take_over(received.conversation_id, "ann")
    decision = Decision(
        kind=DecisionKind.ANSWER,
        reasons=(Reason.CONFIDENT,),
        intent="order_status",
        score=1.0,
        margin=0.5,
        emotion=0.0,
        reply=TRACK,
    )

    result = await runtime.conversations.record_decision(received, decision, {"triage_ms": 1.0})
    assert result is None
    [joined] = await rows(runtime, OutboxRow)  # the customer is told ann joined; no bot answer
    assert joined.text == "ann from our team has joined the conversation."
    [kept] = await rows(runtime, DecisionRow)
    assert (kept.kind, kept.intent, kept.inbound_message_id) == (
        "answer",
        "order_status",
        received.message_id,
    )
    assert await state(runtime, received.conversation_id) == "with_agent"


async def test_a_triage_failure_sends_the_fallback_and_hands_off(
    runtime: Runtime, encoder: BreakableEncoder, channel: RecordingChannel
) -> None:
    encoder.broken = True
    outcome = await runtime.inbox.receive(inbound("where is my order"))

    assert outcome.decision is not None
    assert (outcome.decision.kind, outcome.decision.reasons) == (
        DecisionKind.HANDOFF,
        (Reason.BOT_ERROR,),
    )
    [decision] = await rows(runtime, DecisionRow)
    assert (decision.kind, decision.reasons, decision.intent) == ("handoff", "bot_error", None)
    [handoff] = await rows(runtime, Handoff)
    assert (handoff.reason, handoff.decision_id) == ("bot_error", decision.id)
    assert await state(runtime, outcome.received.conversation_id) == "waiting_for_agent"
    assert await runtime.outbox.deliver_due() == 1
    assert channel.texts() == [runtime.settings.messages.fallback]


async def test_recover_decides_messages_left_undecided_once(
    runtime: Runtime, channel: RecordingChannel, clock: Clock
) -> None:
    question = "where is my order"
    stored = [await runtime.conversations.receive(inbound(question, user=u)) for u in "ab"]
    clock.advance(GRACE + 1)

    assert await runtime.inbox.recover() == 2
    assert await runtime.inbox.recover() == 0
    decisions = await rows(runtime, DecisionRow)
    assert [d.inbound_message_id for d in decisions] == [s.message_id for s in stored]
    assert [(r.external_user_id, r.text) for r in await rows(runtime, OutboxRow)] == [
        ("a", TRACK),
        ("b", TRACK),
    ]


class OneHeldElsewhere:
    """Conversation locks where another worker has held one conversation past the database's
    lock timeout (it stopped, say)."""

    def __init__(self, locks: Any, held: int) -> None:
        self._locks, self._held = locks, held

    def hold(self, conversation_id: int) -> Any:
        if conversation_id == self._held:
            raise ConversationBusy(conversation_id)
        return self._locks.hold(conversation_id)


async def test_recover_leaves_a_conversation_another_worker_holds_for_the_next_pass(
    runtime: Runtime, clock: Clock
) -> None:
    """A worker starting while another holds a conversation too long (a SIGSTOP in
    bench/chaos.py) used to fail its start on the lock timeout."""
    held, free = [
        await runtime.conversations.receive(inbound("where is my order", user=u)) for u in "ab"
    ]
    clock.advance(GRACE + 1)
    locks = runtime.inbox._locks
    runtime.inbox._locks = OneHeldElsewhere(locks, held.conversation_id)
    assert await runtime.inbox.recover() == 1
    assert not await runtime.conversations.is_handled(held.message_id)
    assert await runtime.conversations.is_handled(free.message_id)
    runtime.inbox._locks = locks  # released: the next pass decides it
    assert await runtime.inbox.recover() == 1
    assert await runtime.conversations.is_handled(held.message_id)


async def test_recover_leaves_a_message_younger_than_the_grace_to_its_worker(
    runtime: Runtime, clock: Clock
) -> None:
    """Another worker may be deciding a message it stored moments ago: recovery waits."""
    received = await runtime.conversations.receive(inbound("where is my order"))
    clock.advance(GRACE)

    assert await runtime.inbox.recover() == 0
    assert not await runtime.conversations.is_handled(received.message_id)
    clock.advance(1)
    assert await runtime.inbox.recover() == 1
    [decision] = await rows(runtime, DecisionRow)
    assert decision.inbound_message_id == received.message_id


@pytest.mark.parametrize("when", ["after_listing", "while_deciding"])
async def test_recover_leaves_a_message_a_peer_handled_meanwhile(
    runtime: Runtime, peer: Runtime, clock: Clock, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    """A peer decides the message after recovery listed it, or, not waiting for the
    conversation's lock (a worker of an older version), while recovery runs the model: its
    answer stands, recovery sends nothing and raises nothing."""
    message = inbound("where is my order")
    received = await runtime.conversations.receive(message)
    clock.advance(GRACE + 1)
    owner: object = runtime.conversations if when == "after_listing" else runtime.matches
    name = "unhandled" if when == "after_listing" else "match"
    original = getattr(owner, name)

    async def then_the_peer_decides(*args: Any, **kwargs: Any) -> Any:
        result = await original(*args, **kwargs)
        if when == "after_listing":
            assert (await peer.inbox.receive(message)).status is Status.DECIDED
        else:
            decision = peer.triage.decide(FAQ, TriageContext(now=clock.now))
            assert await peer.conversations.record_decision(received, decision, {}) is not None
        return result

    monkeypatch.setattr(owner, name, then_the_peer_decides)

    assert await runtime.inbox.recover() == 0
    assert (runtime.inbox.handled_elsewhere, peer.inbox.handled_elsewhere) == (1, 0)
    assert len(await rows(runtime, DecisionRow)) == 1
    assert [r.text for r in await rows(runtime, OutboxRow)] == [TRACK]


async def test_workers_recovering_at_once_answer_each_message_once(
    runtime: Runtime, peer: Runtime, clock: Clock
) -> None:
    stored = [await runtime.conversations.receive(inbound(FAQ, user=f"u{n}")) for n in range(6)]
    clock.advance(GRACE + 1)

    counts = await asyncio.gather(runtime.inbox.recover(), peer.inbox.recover())

    assert sum(counts) == len(stored)  # a message both listed is handled by one of them
    decisions = await rows(runtime, DecisionRow)
    assert sorted(d.inbound_message_id for d in decisions) == [r.message_id for r in stored]
    assert len(await rows(runtime, OutboxRow)) == len(stored)


async def test_a_decision_a_peer_stored_is_not_stored_again(runtime: Runtime, clock: Clock) -> None:
    """A decision stored for a message not marked handled (the unique decision per message
    catches it): the second decision is refused as the peer's, not raised as a crash."""
    received = await runtime.conversations.receive(inbound(FAQ))
    decision = runtime.triage.decide(FAQ, TriageContext(now=clock.now))
    async with runtime.db.transaction() as session:
        session.add(decision_row(received, decision, {}, clock.now))

    with pytest.raises(AlreadyHandled, match=f"Message {received.message_id} was already handled"):
        await runtime.conversations.record_decision(received, decision, {})
    assert await rows(runtime, OutboxRow) == []
    clock.advance(GRACE + 1)
    assert await runtime.inbox.recover() == 0  # no exception out of start
    assert runtime.inbox.handled_elsewhere == 1


@pytest.mark.parametrize("second", ["notice", "decision", "recorded"])
async def test_a_message_noticed_once_gets_nothing_more(
    runtime: Runtime, peer: Runtime, clock: Clock, second: str
) -> None:
    received = await runtime.conversations.receive(inbound("/start", kind=InboundKind.START))
    assert await runtime.conversations.record_notice(received, "Welcome!") is not None
    store = peer.conversations
    decision = runtime.triage.decide(FAQ, TriageContext(now=clock.now))
    again = {
        "notice": lambda: store.record_notice(received, "Welcome!"),
        "decision": lambda: store.record_decision(received, decision, {}),
        "recorded": lambda: store.mark_handled(received.message_id),
    }[second]

    with pytest.raises(AlreadyHandled):
        await again()
    assert [r.text for r in await rows(runtime, OutboxRow)] == ["Welcome!"]
    assert await rows(runtime, DecisionRow) == []


async def test_two_workers_noticing_one_message_at_once_send_one_notice(
    runtime: Runtime, peer: Runtime
) -> None:
    received = await runtime.conversations.receive(inbound("/start", kind=InboundKind.START))

    results = await asyncio.gather(
        runtime.conversations.record_notice(received, "Welcome!"),
        peer.conversations.record_notice(received, "Welcome!"),
        return_exceptions=True,
    )

    assert sorted(type(r).__name__ for r in results) == ["AlreadyHandled", "Queued"]
    assert [r.text for r in await rows(runtime, OutboxRow)] == ["Welcome!"]


RECOVER_PROCESS = """
import asyncio, json, sys
from datetime import datetime
from pathlib import Path
from carebot.runtime import build_runtime
from tests.conftest import EXACT_BACKOFF, make_settings
from tests.fakes import FakeEncoder, GatedEncoder, RecordingChannel

async def main():
    now = datetime.fromisoformat(sys.argv[2])
    runtime = await build_runtime(
        make_settings(Path(sys.argv[3])), encoder=FakeEncoder(),
        channels={"test": RecordingChannel("test")}, clock=lambda: now,
        database_url=sys.argv[1], backoff=EXACT_BACKOFF,
    )
    await runtime.db.ping()
    print("ready", flush=True)
    sys.stdin.readline()  # all start at once
    handled = await runtime.inbox.recover()
    print(json.dumps(handled))
    await runtime.db.close()

asyncio.run(main())
"""


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_workers_in_several_processes_recover_each_message_once(
    runtime: Runtime, clock: Clock, tmp_path: Path
) -> None:
    """Three real processes start at once on one PostgreSQL, each recovering what a stopped
    worker left: every message is decided and answered once, and no process fails."""
    stored = [await runtime.conversations.receive(inbound(FAQ, user=f"u{n}")) for n in range(30)]
    clock.advance(GRACE + 1)
    url = runtime.db.url.render_as_string(hide_password=False)
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", RECOVER_PROCESS, url, clock.now.isoformat(), str(tmp_path),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=ROOT,
        )
        for _ in range(3)
    ]  # fmt: skip
    for process in processes:
        assert process.stdout is not None
        assert await process.stdout.readline() == b"ready\n"
    outputs = [out for out, _ in await asyncio.gather(*(p.communicate(b"go\n") for p in processes))]

    assert [p.returncode for p in processes] == [0, 0, 0]
    handled = [json.loads(out) for out in outputs]
    assert sum(handled) == len(stored)
    decisions = await rows(runtime, DecisionRow)
    assert sorted(d.inbound_message_id for d in decisions) == [r.message_id for r in stored]
    replies = await rows(runtime, OutboxRow)
    assert sorted(r.external_user_id for r in replies) == sorted(f"u{n}" for n in range(30))


REFUND = "Refunds take 5 days."
PHOTO = Attachment("photo", "https://files.example/1", "receipt.jpg")


@pytest.mark.parametrize(
    ("first", "answer"),
    [
        (inbound(FAQ), TRACK),
        (inbound("/start", kind=InboundKind.START), "welcome"),
        (inbound("", attachments=(PHOTO,)), "media_only"),
    ],
    ids=["faq", "start", "files"],
)
async def test_the_worker_with_the_lock_decides_the_conversations_earlier_message_first(
    runtime: Runtime,
    peer: Runtime,
    channel: RecordingChannel,
    monkeypatch: pytest.MonkeyPatch,
    first: InboundMessage,
    answer: str,
) -> None:
    """A worker stored message 1 and has not reached the conversation's lock when a peer
    stores message 2 and takes it: the peer decides message 1 first, rebuilt from the store
    as the adapter gave it (a greeting, files without text), then its own; the first worker
    then finds message 1 handled."""
    second = inbound("when is my refund coming")
    store_receive = runtime.conversations.receive

    async def then_the_peer_receives(message: InboundMessage) -> Any:
        received = await store_receive(message)
        assert (await peer.inbox.receive(second)).status is Status.DECIDED
        return received

    monkeypatch.setattr(runtime.conversations, "receive", then_the_peer_receives)

    assert (await runtime.inbox.receive(first)).status is Status.DUPLICATE
    assert (runtime.inbox.handled_elsewhere, peer.inbox.handled_elsewhere) == (1, 0)
    texts = {"welcome": runtime.settings.messages.welcome}
    texts["media_only"] = runtime.settings.messages.media_only
    assert channel.texts() == [texts.get(answer, answer), REFUND]
    received = await rows(runtime, Message, Message.direction == "in")
    assert [m.handled_at is not None for m in received] == [True, True]


async def test_an_earlier_message_that_fails_does_not_hold_the_later_one_back(
    runtime: Runtime, channel: RecordingChannel, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An earlier unhandled message whose deciding fails is left to recovery; the message
    at hand is still answered."""
    await runtime.conversations.receive(inbound(FAQ))  # stored, never decided
    record_decision = runtime.conversations.record_decision
    calls = itertools.count()

    async def fail_once(*args: Any, **kwargs: Any) -> Any:
        if next(calls) == 0:
            raise OSError("connection reset")
        return await record_decision(*args, **kwargs)

    monkeypatch.setattr(runtime.conversations, "record_decision", fail_once)

    assert (await runtime.inbox.receive(inbound("when is my refund coming"))).status is (
        Status.DECIDED
    )
    assert channel.texts() == [REFUND]
    clock.advance(GRACE + 1)
    [(_, left)] = await runtime.conversations.unhandled(stored_before=clock.now)
    assert left.text == FAQ
    assert await runtime.inbox.recover() == 1
    assert channel.texts() == [REFUND, TRACK]


QUESTIONS = [FAQ, "when is my refund coming", "track my order status", "refund money back"]


class Worker:
    """A tests/conversation_worker.py process and the lines it printed so far."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            self.lines.append(line.decode().rstrip("\n"))
            self._changed.set()
        self._changed.set()

    async def wait_for(self, line: str) -> str:
        """The first line printed that is ``line`` or starts with it and a space."""
        while not (found := [seen for seen in self.lines if f"{seen} ".startswith(f"{line} ")]):
            if self._reader.done():
                raise AssertionError(f"the worker ended without printing {line!r}: {self.lines}")
            self._changed.clear()
            await self._changed.wait()
        return found[0]

    def tell(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(f"{line}\n".encode())

    async def finish(self) -> dict[str, int]:
        assert self.process.stdin is not None
        self.process.stdin.close()
        assert await self.process.wait() == 0
        await self._reader
        return dict(json.loads(self.lines[-1]))


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_workers_in_several_processes_decide_one_conversation_in_order(
    runtime: Runtime, tmp_path: Path
) -> None:
    """Three real processes receive one customer's messages in turn (each message stored
    before the next is sent, so the stored order is known), deciding while the others store.
    In each round the first message's worker stalls between storing it and deciding it, until
    the others decided the rest: whoever takes the conversation's lock first decides it first.
    Every message is decided once, and the decisions and replies follow the stored order."""
    url = runtime.db.url.render_as_string(hide_password=False)
    workers = [
        Worker(
            await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tests.conversation_worker", url, str(tmp_path),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=ROOT,
            )
        )
        for _ in range(3)
    ]  # fmt: skip
    for worker in workers:
        await worker.wait_for("ready")
    rounds, per_round = 8, 6
    for r in range(rounds):
        mids = [f"r{r}m{k}" for k in range(per_round)]
        held = workers[r % 3]
        for k, mid in enumerate(mids):
            worker = workers[(r + k) % 3]
            command = "hold" if k == 0 else "receive"
            worker.tell(f"{command} {mid} customer {QUESTIONS[(r + k) % len(QUESTIONS)]}")
            await worker.wait_for(f"stored {mid}")
        for k, mid in enumerate(mids[1:], start=1):
            await workers[(r + k) % 3].wait_for(f"done {mid}")
        held.tell(f"release {mids[0]}")
        assert await held.wait_for(f"done {mids[0]}") == f"done {mids[0]} duplicate"
    counts = [await worker.finish() for worker in workers]

    total = rounds * per_round
    statuses = [line.split()[2] for w in workers for line in w.lines if line.startswith("done")]
    # A worker that takes the lock before an earlier message's worker decides that one too.
    duplicates = statuses.count("duplicate")
    assert statuses.count("decided") + duplicates == total and duplicates >= rounds
    assert sum(c["handled_elsewhere"] for c in counts) == duplicates
    received = await rows(runtime, Message, Message.direction == "in")
    assert len(received) == total and len({m.conversation_id for m in received}) == 1
    decided = [d.inbound_message_id for d in await rows(runtime, DecisionRow)]
    assert decided == [m.id for m in received]  # once each, in the stored order
    async with runtime.db.session() as session:
        replied = (
            await session.scalars(
                select(DecisionRow.inbound_message_id)
                .join(Message, Message.decision_id == DecisionRow.id)
                .join(OutboxRow, OutboxRow.message_id == Message.id)
                .order_by(OutboxRow.id)
            )
        ).all()
    assert list(replied) == [m.id for m in received]


@pytest.mark.parametrize(
    ("pick", "intent", "answer"),
    [
        ("1", "returns", "Returns are free within 30 days."),
        ("2", "returns_label", "Print the label from your account."),
        ("Return label", "returns_label", "Print the label from your account."),
    ],
)
async def test_a_clarification_is_answered_by_the_choice(
    runtime: Runtime, channel: RecordingChannel, pick: str, intent: str, answer: str
) -> None:
    asked = await runtime.inbox.receive(inbound(AMBIGUOUS))
    assert asked.decision is not None and asked.decision.kind is DecisionKind.CLARIFY
    [clarify] = await rows(runtime, DecisionRow)
    assert clarify.details["choices"] == [
        {"id": "returns", "label": "Returns"},
        {"id": "returns_label", "label": "Return label"},
    ]

    picked = await runtime.inbox.receive(inbound(pick))
    assert picked.decision is not None
    assert (picked.decision.kind, picked.decision.intent) == (DecisionKind.ANSWER, intent)
    [_, chosen] = await rows(runtime, DecisionRow)
    assert (chosen.kind, chosen.intent, chosen.reasons) == ("answer", intent, "clarified")
    assert await runtime.outbox.deliver_due() == 2
    question, reply = channel.sent
    assert question.text == 'Did you mean "Returns" or "Return label"?'
    assert [c.id for c in question.choices] == ["returns", "returns_label"]
    assert (reply.text, reply.choices) == (answer, ())


async def test_two_non_answers_in_a_row_hand_off(runtime: Runtime) -> None:
    await runtime.inbox.receive(inbound(AMBIGUOUS))
    second = await runtime.inbox.receive(inbound("hmm"))

    assert second.decision is not None
    assert second.decision.kind is DecisionKind.HANDOFF
    assert second.decision.reason is Reason.REPEATED_FAILURE
    [_, decision] = await rows(runtime, DecisionRow)
    assert decision.reasons == "repeated_failure,below_threshold"
    [handoff] = await rows(runtime, Handoff)
    assert (handoff.reason, handoff.decision_id) == ("repeated_failure", decision.id)
    assert await state(runtime, second.received.conversation_id) == "waiting_for_agent"


async def test_a_reply_waits_behind_an_earlier_one_that_failed(
    runtime: Runtime, channel: RecordingChannel, clock: Clock
) -> None:
    """Replies go out right away, except behind an undelivered one: order comes first."""
    channel.failures.append(DeliveryError("platform down"))
    await runtime.inbox.receive(inbound("where is my order"))
    await runtime.inbox.receive(inbound("hello"))
    assert channel.texts() == []
    replies = await rows(runtime, OutboxRow)
    assert [(r.status, r.attempts, r.locked_until) for r in replies] == [
        ("pending", 1, None),
        ("pending", 0, None),
    ]
    clock.advance(1)
    assert await runtime.outbox.deliver_due() == 2  # the head first, then the one behind it
    assert channel.texts() == [TRACK, "Hello! How can I help?"]


async def test_a_message_stored_but_not_handled_is_answered_when_sent_again(
    runtime: Runtime, channel: RecordingChannel
) -> None:
    """The first attempt stored the message and then failed: the resend gets the answer."""
    message = inbound("where is my order", mid="resent")
    await runtime.conversations.receive(message)  # stored, then (say) the database went away
    outcome = await runtime.inbox.receive(message)
    assert outcome.status is Status.DECIDED and channel.texts() == [TRACK]
    again = await runtime.inbox.receive(message)
    assert again.status is Status.DUPLICATE and channel.texts() == [TRACK]


async def test_a_message_slow_to_decide_is_taken_and_decided_in_the_background(
    settings: Settings,
    database_url: str,
    migrated_before_the_test: bool,
    clock: Clock,
    channel: RecordingChannel,
) -> None:
    """A channel waits for a stored message's deciding only ``answer_within`` seconds: the
    platform is answered (no redelivery of a message that is stored), the deciding goes on,
    and the stop waits for it."""
    encoder = GatedEncoder()
    runtime = await build_runtime(
        settings,
        encoder=encoder,
        channels={"test": channel},
        clock=clock,
        database_url=database_url,
        answer_within=0.1,
    )
    try:
        encoder.hold(FAQ)
        await runtime.deliver(inbound(FAQ))  # returns: stored, still being decided
        assert await asyncio.to_thread(encoder.holding.wait, 10)
        stored = await rows(runtime, Message)
        assert [(m.direction, m.handled_at) for m in stored] == [("in", None)]
        assert channel.sent == []
        encoder.gate.set()
        await runtime.inbox.drain(timeout=10)
        assert channel.texts() == [TRACK]
    finally:
        encoder.gate.set()
        await runtime.db.close()


@pytest.mark.parametrize(
    ("failure", "level", "traceback"),
    [
        (ConversationBusy(7), logging.WARNING, False),  # foreseen: a stopped worker holds it
        (RuntimeError("the store broke"), logging.ERROR, True),
    ],
    ids=["held_elsewhere", "unforeseen"],
)
async def test_a_deciding_that_fails_in_the_background_is_logged_as_what_it_is(
    caplog: pytest.LogCaptureFixture, failure: Exception, level: int, traceback: bool
) -> None:
    """A conversation another worker holds past the lock timeout (a SIGSTOP in the chaos
    bench) is foreseen and decided later: a warning that says so, not an error with a
    traceback (chaos runs logged four of those per run)."""

    async def decide() -> Any:
        raise failure

    task = asyncio.create_task(decide())
    with contextlib.suppress(type(failure)):
        await task
    with caplog.at_level(logging.WARNING, logger="carebot.inbox"):
        Inbox._finished_in_background(task)
    (record,) = caplog.records
    assert record.levelno == level and (record.exc_info is not None) == traceback
    assert str(failure) in record.getMessage() or traceback
