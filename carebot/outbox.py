"""Delivering the outbox: claim due replies, hand them to their channel, retry failures.

A platform outage delays replies and never drops them: a failed send is retried with
exponential backoff and jitter (:mod:`carebot.retry`), or after the platform's ``retry_after``.
At shutdown the worker finishes its pass (:meth:`OutboxWorker.stop`), sends still going on in
the background are awaited (:meth:`OutboxWorker.drain`) and what is due is delivered
(:meth:`OutboxWorker.deliver_due`) before the channels close; rows still pending then (a
platform that was down) are delivered after the next start.

A reply whose channel does not run in this process follows the rule of :class:`Routes`: left
to the process that runs it when the channel is enabled in config.toml, else refused for good
with the reason (never retried forever).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence

from carebot.channel import Channel
from carebot.clock import Clock
from carebot.events import Event, EventHub
from carebot.exceptions import ChannelNotRunning, DeliveryError
from carebot.models import OutboundReply
from carebot.retry import Backoff, repeat
from carebot.store.outbox import IMMEDIATE_LEASE, OutboxStore, Queued
from carebot.tasks import Background
from carebot.wakeup import Wakeup

log = logging.getLogger(__name__)
SEND_TIMEOUT = IMMEDIATE_LEASE / 2
IMMEDIATE_WAIT = 2.0  # seconds a request waits for its reply's send before it goes on alone
# A failed send waits up to 1 s, 2 s, 4 s... 5 min (at least half of it: jitter).
OUTBOX_BACKOFF = Backoff(base=1.0, cap=300.0)


Deliver = Callable[[Channel, OutboundReply], Awaitable[str | None]]


async def _plain_send(channel: Channel, reply: OutboundReply) -> str | None:
    return await channel.send(reply)


TERMINAL = "terminal"  # the channel of `carebot chat`: it runs in that command only


class Routes:
    """Which channels this process delivers replies on, and what becomes of the others.

    A reply's channel is, for this process, one of:

    - **running here**: the reply is delivered here.
    - **enabled in config.toml but not running here**: another process of the service runs it
      (several workers share a database; or this is a ``carebot chat --store`` beside
      ``carebot serve``). This process leaves the reply to them: it neither claims nor fails
      it, and an agent's reply to such a conversation is queued as usual.
    - **neither** (the channel is not enabled in config.toml, or it is ``terminal``, which runs
      only inside the ``carebot chat`` that started the conversation): nothing of this service
      will deliver it. An agent's reply is refused up front with the reason, and nothing is
      queued (:meth:`check`); a reply already queued is failed for good with the reason, which
      the inbox shows beside the message and the Slack thread is told.

    ``channels`` is the runtime's live mapping: channels added before the start count.
    """

    def __init__(
        self,
        channels: Mapping[str, Channel],
        *,
        enabled: Collection[str] = (),
        config_file: str = "config.toml",
    ) -> None:
        self._channels = channels
        self._enabled = frozenset(enabled)
        self._config_file = config_file

    def channel(self, name: str) -> Channel | None:
        """The channel when it runs in this process."""
        return self._channels.get(name)

    def elsewhere(self) -> frozenset[str]:
        """Channels enabled in config.toml that this process does not run: their replies are
        left to the processes that run them."""
        return frozenset(name for name in self._enabled if name not in self._channels)

    def refusal(self, name: str) -> str | None:
        """Why no process of this service delivers on ``name``; None when one does."""
        if name in self._channels or name in self._enabled:
            return None
        if name == TERMINAL:
            return (
                "the terminal channel is not running in this service: it was a `carebot chat` "
                "conversation"
            )
        return f"channel {name} is not enabled in {self._config_file}"

    def check(self, name: str) -> None:
        """Raise :class:`ChannelNotRunning` with the reason when nothing delivers on ``name``."""
        reason = self.refusal(name)
        if reason is not None:
            raise ChannelNotRunning(f"{reason[0].upper()}{reason[1:]}, so no reply can reach it.")


class OutboxWorker:
    def __init__(
        self,
        *,
        store: OutboxStore,
        channels: Mapping[str, Channel] | Routes,
        clock: Clock,
        backoff: Backoff = OUTBOX_BACKOFF,
        batch: int = 50,
        events: EventHub | None = None,
        immediate_wait: float = IMMEDIATE_WAIT,
        deliver: Deliver | None = None,
    ) -> None:
        """``channels``: the channels running here, or :class:`Routes` that also know which
        run elsewhere (a bare mapping means no channel runs in another process).
        ``deliver``: how a reply reaches its channel (default ``channel.send``; the service
        passes :meth:`carebot.public.delivery.PublicDelivery.send` for public actions and
        billed APIs)."""
        self._store = store
        self._events = events or EventHub()
        self.routes = channels if isinstance(channels, Routes) else Routes(channels)
        self._clock = clock
        self._backoff = backoff
        self._batch = batch
        self._wake = Wakeup()
        self._stopping = False
        self.running = False
        self._sent_right_away = 0
        self._acks: list[tuple[OutboundReply, str | None, asyncio.Future[bool]]] = []
        self._acking = False
        self._ack_writer: asyncio.Task[None] | None = None
        self._immediate_wait = immediate_wait
        self._background = Background()  # sends that took longer than immediate_wait
        self._deliver = deliver or _plain_send

    def wake(self) -> None:
        """Something new is in the outbox: deliver it now rather than at the next poll."""
        self._wake.set()

    async def dispatch(self, queued: Queued) -> None:
        """Deliver a reply just written: at once when it is leased to us, else in turn.

        The caller (a customer's request, a platform's webhook call) waits for the send at most
        ``immediate_wait`` seconds: a slow platform finishes it in the background, so webhook
        acknowledgements never hang on the platform's send API."""
        if not queued.immediate:
            self.wake()
            return
        await self._send_now(queued.reply)

    async def dispatch_in_order(self, sent: Sequence[Queued]) -> None:
        """Deliver the replies one action just wrote (e.g. "Ann has joined", then Ann's reply),
        in order: the first at once when it is leased to us; each later one at once too when the
        one before it was delivered and nothing else of the conversation is pending (it is
        claimed then). Otherwise the worker delivers what is left, in turn."""
        delivered = False
        for queued in sent:
            if queued.immediate:
                delivered = await self._send_now(queued.reply)
                continue
            claimed = await self._store.claim(queued.reply.outbox_id) if delivered else None
            if claimed is None:
                self.wake()
                return
            delivered = await self._send_now(claimed)

    async def _send_now(self, reply: OutboundReply) -> bool:
        """Send a reply leased to us, waiting ``immediate_wait`` seconds at most; whether it
        was delivered within them."""
        done, delivered = await self._background.within(
            self._send(reply), self._immediate_wait, finished=self._finished_in_background
        )
        if not done:
            log.info("Reply %s is slow to send; it goes on in the background", reply.outbox_id)
            return False
        self._sent_right_away += bool(delivered)
        return bool(delivered)

    def _finished_in_background(self, task: asyncio.Task[bool]) -> None:
        if not task.cancelled() and task.exception() is None and task.result():
            self._sent_right_away += 1

    async def drain(self, timeout: float = SEND_TIMEOUT) -> None:
        """Wait for sends still going on in the background (at stop)."""
        await self._background.drain(timeout)

    async def deliver_due(self) -> int:
        """One pass: send every reply that is due now. Returns how many replies were delivered
        since the previous pass, counting those :meth:`dispatch` sent right away."""
        sent, self._sent_right_away = self._sent_right_away, 0
        while replies := await self._store.claim_due(
            limit=self._batch, skip=self.routes.elsewhere()
        ):
            results = await asyncio.gather(*(self._send(r) for r in replies))
            sent += sum(results)
            if not any(results):
                break
        return sent

    async def _send(self, reply: OutboundReply) -> bool:
        channel = self.routes.channel(reply.channel)
        if channel is None:
            await self._not_here(reply)
            return False
        try:
            # Well within the lease, so nobody else starts sending the same reply meanwhile.
            async with asyncio.timeout(SEND_TIMEOUT):
                external_id = await self._deliver(channel, reply)
        except TimeoutError:
            if await self._store.mark_failed(reply, "send timed out", delay=self._backoff.delay):
                log.warning(
                    "Reply %s on %s timed out; it will be retried", reply.outbox_id, reply.channel
                )
            return False
        except DeliveryError as exc:
            if exc.permanent:
                if not await self._store.mark_undeliverable(reply, str(exc)):
                    return False  # another worker holds it now: its outcome stands
                self._announce(reply, "undelivered")
                log.error(
                    "Reply %s on %s was refused for good: %s", reply.outbox_id, reply.channel, exc
                )
                return False
            hint = exc.retry_after
            retry = await self._store.mark_failed(
                reply,
                str(exc),
                delay=lambda n: hint if hint is not None else self._backoff.delay(n),
            )
            if retry is None:
                return False  # another worker holds it now: its outcome stands
            attempts, wait = retry
            log.warning(
                "Reply %s on %s failed (attempt %d), retrying in %.1fs: %s",
                reply.outbox_id,
                reply.channel,
                attempts,
                wait,
                exc,
            )
            return False
        except Exception as exc:
            log.exception(
                "Reply %s on %s failed unexpectedly; it will be retried",
                reply.outbox_id,
                reply.channel,
            )
            await self._store.mark_failed(reply, repr(exc), delay=self._backoff.delay)
            return False
        try:
            # False: this worker stalled past its lease and another claimed the reply since;
            # the store logged it, the other worker's outcome stands (the customer may get the
            # reply twice: delivery is at least once, see carebot/store/outbox.py).
            await self._mark_sent(reply, external_id)
        except Exception:
            # Delivered, but not recorded: it may be sent once more after its lease (at least
            # once beats never); the customer's request does not fail for it.
            log.exception("Reply %s was sent but could not be marked sent", reply.outbox_id)
        self._announce(reply)
        return True

    async def _not_here(self, reply: OutboundReply) -> None:
        """The reply's channel does not run in this process (see :class:`Routes`)."""
        reason = self.routes.refusal(reply.channel)
        if reason is None:  # another process runs it: let it have the reply now
            if not await self._store.release(reply):
                return
            log.info(
                "Reply %s is left to the process that runs channel %s",
                reply.outbox_id,
                reply.channel,
            )
            return
        if not await self._store.mark_undeliverable(reply, reason):
            return
        self._announce(reply, "undelivered")
        log.warning("Reply %s was not delivered: %s", reply.outbox_id, reason)

    def _announce(self, reply: OutboundReply, kind: str = "delivery") -> None:
        """A reply was delivered (``delivery``) or refused for good (``undelivered``): live
        views show it, and the Slack thread is told of a refusal."""
        if reply.conversation_id is not None:
            self._events.publish(Event(kind, reply.conversation_id))

    async def _mark_sent(self, reply: OutboundReply, external_id: str | None) -> bool:
        """Group commit: replies delivered while a mark is being written share the next one.
        Whether the reply still held its lease (False: the mark changed nothing)."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._acks.append((reply, external_id, future))
        if not self._acking:
            self._acking = True
            self._ack_writer = asyncio.create_task(self._write_acks())
        return await future

    async def _write_acks(self) -> None:
        try:
            while self._acks:
                batch, self._acks = self._acks, []
                try:
                    lost = set(
                        await self._store.mark_sent(
                            [(r, external_id) for r, external_id, _ in batch]
                        )
                    )
                except Exception as exc:
                    for _, _, future in batch:
                        if not future.done():  # its sender may have been cancelled meanwhile
                            future.set_exception(exc)
                else:
                    for reply, _, future in batch:
                        if not future.done():
                            future.set_result(reply.outbox_id not in lost)
        finally:
            self._acking = False

    async def run(self) -> None:
        """Deliver until :meth:`stop`; sleeps until woken or the next retry is due."""
        self.running = True
        try:
            await self._loop()
        finally:
            self.running = False

    async def _loop(self) -> None:
        # A database hiccup must not end delivery for good: log, back off, go on; a wake-up
        # call (new work, or stop) ends the backoff early.
        await repeat(
            self._pass,
            until=lambda: self._stopping,
            what="An outbox pass",
            backoff=self._backoff,
            log=log,
            sleep=self._wake.sleep,
        )

    async def _pass(self) -> None:
        """Deliver what is due, then sleep until woken or the next retry is due."""
        self._wake.clear()
        await self.deliver_due()
        due = await self._store.next_due(skip=self.routes.elsewhere())
        timeout = 5.0 if due is None else max(0.05, (due - self._clock()).total_seconds())
        await self._wake.sleep(min(timeout, 5.0))

    def stop(self) -> None:
        """Take no new pass: :meth:`run` returns once the pass in progress is done."""
        self._stopping = True
        self._wake.set()
