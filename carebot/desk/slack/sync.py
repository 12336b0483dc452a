"""Keeping each conversation's Slack thread up to date with the conversation (store -> Slack).

For a conversation handed to a human, the sync posts the card (and the full history as the
first thread reply when it is longer than the card shows), copies later messages into the
thread, says there when a reply was refused for good (with the reason: the customer never got
it), updates the card whenever what it shows changes, announces a new handoff in an existing
thread, reminds the channel when a handoff waits too long, and warns it when the customer's
channel is about to stop accepting replies (WhatsApp's 24-hour window).

With ``[[teams]]``, a handoff's card goes to its team's channel and says which team and which
routing rule; a transfer to another team opens a new card (with the history) in that team's
channel and marks the old one "Transferred to ... by ..." (its buttons gone): the old thread is
superseded and only the live one is synced. A waiting handoff of a team with a first-response
target gets one reminder before the target and one notice when it is breached (in the team's
business hours, :mod:`carebot.teams.targets`); without a target, the single ``[slack]
reminder_minutes`` reminder. When the conversation changes hands (from any desk), the thread
says who took it over from whom, once per change. An internal note written in the inbox is
posted in the live thread, once, marked as never sent to the customer (a ``note:`` reply
written in the thread is there already and is not posted back).

The store is the source of truth and the thread record says how far Slack has been told, so
the sync can stop anywhere (Slack down, 429s, a restart) and carry on later: nothing is lost.
It wakes on live events, and every ``tick`` looks for conversations Slack is behind on. While
Slack or the store fails it backs off (:mod:`carebot.retry`), briefly (at most ``BACKOFF.cap``
seconds), so the backlog drains within seconds of Slack coming back.

New handoffs come first: each flush posts the cards of conversations that have none before it
mirrors anything into existing threads, so a customer who just asked for a person is not
queued behind another thread's backlog after an outage. A thread that keeps failing while the
others get through rests on its own backoff instead of holding them up. It is one of the service's
periodic workers: :meth:`ThreadSync.stop` lets the pass in progress finish, and at shutdown
:meth:`ThreadSync.flush_due` posts what is due before the Slack client closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import socket
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeGuard

from sqlalchemy.exc import SQLAlchemyError

from carebot.clock import Clock
from carebot.config import Settings, SlackSettings
from carebot.desk.slack import card as cards
from carebot.desk.slack.api import SlackApi
from carebot.desk.slack.mrkdwn import escape, quote
from carebot.events import RESYNC, Event, EventHub
from carebot.exceptions import SlackError, StoreError
from carebot.hours import BusinessHours
from carebot.models import ConversationState
from carebot.reply_window import NO_WINDOWS, ReplyWindows
from carebot.retry import Backoff, repeat
from carebot.store.emotion_labels import EmotionLabelStore
from carebot.store.notes import MAX_NOTE
from carebot.store.queue import AgentQueue
from carebot.store.slack_threads import SlackThreadStore, Snapshot
from carebot.store.tables import Handoff, Note, SlackThread
from carebot.teams.targets import FirstResponseTargets, duration_words
from carebot.wakeup import Wakeup

log = logging.getLogger(__name__)
WAKING_EVENTS = frozenset({"customer_message", "handoff", "agent_action", "closed", "undelivered"})
BACKOFF = Backoff(base=1.0, cap=8.0)  # while Slack or the store fails: tried again soon
THREAD_BACKOFF = Backoff(base=2.0, cap=60.0)  # one thread failing while the others get through
LOCK_SECONDS = 300.0  # one pass over one conversation holds its thread at most this long
BUSY_RETRY = 1.0  # seconds before trying a thread another process was syncing
EVENTS_KEPT = timedelta(days=2)  # handled Slack event ids are remembered this long


class ThreadSync:
    def __init__(
        self,
        *,
        api: SlackApi,
        threads: SlackThreadStore,
        queue: AgentQueue,
        hours: BusinessHours,
        settings: SlackSettings,
        events: EventHub,
        clock: Clock,
        labels: EmotionLabelStore,
        tick: float = 30.0,
        windows: ReplyWindows = NO_WINDOWS,
        monotonic: Callable[[], float] | None = None,
        teams: Settings | None = None,
        mention: Callable[[str], str] = escape,
    ) -> None:
        """``monotonic`` tells the seconds a failing thread rests (the event loop's time by
        default; tests pass a fake). ``teams``: the settings whose ``[[teams]]`` give each
        handoff's channel and first-response target (None: everything in the API's channel,
        reminded after ``reminder_minutes``). ``mention``: an agent's name as a Slack mention,
        for the note of a take-over."""
        self._api = api
        self._teams = teams
        self._targets = FirstResponseTargets(teams) if teams is not None else None
        self._mention = mention
        self._labels = labels
        self._windows = windows
        self._threads = threads
        self._queue = queue
        self._hours = hours
        self._settings = settings
        self._events = events
        self._clock = clock
        self._tick = tick
        self._pending: set[int] = set()
        self._wake = Wakeup()
        self._halt = Wakeup()  # set by stop: ends a backoff
        self._stopping = False
        self._lock = asyncio.Lock()
        self._busy = False  # some conversation was being synced by another process
        self._monotonic = monotonic or (lambda: asyncio.get_running_loop().time())
        # conversation id -> (failures in a row, when it may be tried again): a thread that
        # failed while others got through
        self._resting: dict[int, tuple[int, float]] = {}
        self._holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    def mark(self, conversation_id: int) -> None:
        """Bring this conversation's thread up to date soon."""
        self._pending.add(conversation_id)
        self._wake.set()

    async def run(self) -> None:
        """Follow live events, look for what is due every tick, back off while Slack fails;
        until :meth:`stop`."""
        async with self._events.subscribe(size=10_000) as events:
            listener = asyncio.create_task(self._follow(events), name="slack-events")
            try:
                await repeat(
                    self._pass,
                    until=lambda: self._stopping,
                    what="The Slack thread sync",
                    backoff=BACKOFF,
                    log=log,
                    expected=(SlackError,),
                    sleep=self._halt.sleep,
                )
            finally:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listener

    def stop(self) -> None:
        """Take no new pass: :meth:`run` returns once the pass in progress is done."""
        self._stopping = True
        self._halt.set()
        self._wake.set()

    def resume(self) -> None:
        """Ready to run again after a stop (run by the leader: :mod:`carebot.cluster.leader`)."""
        self._stopping = False
        self._halt.clear()

    async def _pass(self) -> None:
        """Look for the conversations Slack is behind on, then keep their threads up to date
        until the next tick. Raises when the store or Slack fails (what is left stays due)."""
        self._pending.update(await self._threads.due())
        await self._threads.forget_events(self._clock() - EVENTS_KEPT)
        deadline = asyncio.get_running_loop().time() + self._tick
        while not self._stopping and (left := deadline - asyncio.get_running_loop().time()) > 0:
            self._wake.clear()  # before flushing: a mark made meanwhile wakes the next wait
            if not await self.flush():
                raise SlackError("some threads are behind; they stay pending", retryable=True)
            await self._wake.sleep(self._next_wait(left))

    def _next_wait(self, left: float) -> float:
        """Until the next tick, or sooner: a busy thread, or a resting one due again."""
        waits = [left, BUSY_RETRY] if self._busy else [left]
        if self._resting:
            due = min(until for _, until in self._resting.values())
            waits.append(max(0.0, due - self._monotonic()))
        return min(waits)

    async def flush_due(self, *, last: bool = False) -> bool:
        """Bring every conversation Slack is behind on up to date, once. False if Slack or the
        store failed (the rest waits for the next pass, or the next start). ``last``: the flush
        at shutdown, before the client closes: threads resting after a failure are tried too,
        since there is no later pass in this process to try them."""
        self._pending.update(await self._threads.due())
        if last:
            self._resting.clear()
        return await self.flush()

    async def _follow(self, events: asyncio.Queue[Event]) -> None:
        while True:
            event = await events.get()
            if event.kind in WAKING_EVENTS:
                self.mark(event.conversation_id)
            elif event.kind == RESYNC:  # events from other workers may have been missed
                try:
                    self._pending.update(await self._threads.due())
                except (StoreError, SQLAlchemyError, OSError) as exc:
                    log.warning("Cannot look for the threads Slack is behind on: %s", exc)
                self._wake.set()

    async def settled(self) -> None:
        """Return once the pass in progress, if any, is done (a card just posted is saved)."""
        async with self._lock:
            return

    async def flush(self) -> bool:
        """Sync every pending conversation, new cards first. False if Slack is unreachable or
        overloaded, or the store fails (what is left stays pending and is tried again)."""
        async with self._lock:
            busy: set[int] = set()  # being synced by another process: tried again shortly
            try:
                return await self._flush_pending(busy)
            finally:
                self._pending.update(busy)
                self._busy = bool(busy)

    async def _flush_pending(self, busy: set[int]) -> bool:
        """New cards first, then the other threads by id. A retryable failure on two
        conversations in a row with none getting through means Slack is down: stop (False).
        A thread that fails while another gets through rests on its own backoff."""
        resting: set[int] = set()  # skipped this flush: not due again yet
        failed: int | None = None  # failed, and nothing has got through since
        through = False
        try:
            while candidates := self._pending - resting:
                conversation_id = await self._next(candidates, resting)
                if conversation_id is None:
                    break
                self._pending.discard(conversation_id)  # a mark made meanwhile brings it back
                try:
                    if not await self.sync(conversation_id):
                        busy.add(conversation_id)
                except SlackError as exc:
                    if not exc.retryable:
                        # Slack refused this conversation's post: the next tick tries it
                        # again, and the others are not held up meanwhile.
                        log.error("Slack refused conversation %s: %s", conversation_id, exc)
                        continue
                    log.warning("Slack is behind on conversation %s: %s", conversation_id, exc)
                    self._pending.add(conversation_id)
                    if through:  # the others get through: this thread rests on its own
                        self._rest(conversation_id)
                        resting.add(conversation_id)
                    elif failed is None:
                        failed = conversation_id
                        resting.add(conversation_id)
                    else:
                        return False  # two in a row and nothing got through: Slack is down
                    continue
                except Exception:
                    # A bug or a database failure: logged with its traceback and tried again
                    # like a Slack failure, so the desk never silently stops.
                    log.exception("Cannot bring conversation %s to Slack", conversation_id)
                    self._pending.add(conversation_id)
                    return False
                self._resting.pop(conversation_id, None)
                if failed is not None:
                    self._rest(failed)
                    failed = None
                through = True
            return failed is None
        finally:
            self._pending.update(resting)

    async def _next(self, candidates: set[int], resting: set[int]) -> int | None:
        """The conversation to sync next: one without a card first (a new handoff), then the
        lowest id, skipping threads that rest after failing (a new card never rests)."""
        cardless = await self._threads.without_card(candidates)
        now = self._monotonic()
        for conversation_id in sorted(candidates, key=lambda c: (c not in cardless, c)):
            rest = self._resting.get(conversation_id)
            if conversation_id in cardless or rest is None or rest[1] <= now:
                return conversation_id
            resting.add(conversation_id)
        return None

    def _rest(self, conversation_id: int) -> None:
        failures = self._resting.get(conversation_id, (0, 0.0))[0] + 1
        until = self._monotonic() + THREAD_BACKOFF.delay(failures)
        self._resting[conversation_id] = (failures, until)

    async def sync(self, conversation_id: int) -> bool:
        """Bring one conversation's thread up to date; False if another process is doing it.
        Raises SlackError when Slack fails."""
        thread = await self._threads.get(conversation_id)
        snapshot = await self._threads.snapshot(conversation_id, windowed=self._windows.hours)
        if thread is None:
            if snapshot.handoff is None or snapshot.handoff.resolved_at is not None:
                return True  # never handed to a human: Slack has nothing to show
            team = self._team_name(snapshot.handoff.team)
            thread = await self._threads.claim(conversation_id, self._channel(team), team=team)
        elif self._up_to_date(thread, snapshot):
            return True
        if not await self._threads.lock(conversation_id, self._holder, LOCK_SECONDS):
            return False
        try:
            await self._bring_up_to_date(await self._reload(conversation_id))
        finally:
            await self._threads.unlock(conversation_id, self._holder)
        return True

    async def _bring_up_to_date(self, thread: SlackThread) -> None:
        data = await self._card_data(thread.conversation_id)
        if self._moved(thread, data.handoff):
            found = await self._move(data, thread)
            if found is None:
                return  # another process has the new thread: it brings it up to date
            thread = found
        same_handoff = data.handoff is not None and data.handoff.id == thread.handoff_id
        if thread.ts is None:
            thread = await self._post_card(data, thread)
        if thread.mirrored_message_id == 0:
            thread = await self._post_history(data, thread)
        elif data.handoff is not None and data.handoff.id != thread.handoff_id:
            thread = await self._announce_again(data, thread)
        thread = await self._note_owner(data, thread, same_handoff)
        thread = await self._mirror(data, thread)
        thread = await self._tell_undelivered(data, thread)
        await self._post_notes(thread)
        await self._update_card(data, thread)
        await self._remind(data, thread)
        await self._warn_of_window(thread)

    def _team_name(self, team: str | None) -> str | None:
        """The configured team a handoff's ``team`` stands for (None without ``[[teams]]``)."""
        return self._teams.team(team).name if self._teams is not None else None

    def _channel(self, team: str | None) -> str:
        """The Slack channel of ``team``'s handoffs."""
        return self._teams.slack_channel(team) if self._teams is not None else self._api.channel

    def _team_label(self, team: str | None) -> str:
        return self._teams.team(team).label if self._teams is not None else ""

    def _moved(self, thread: SlackThread, handoff: Handoff | None) -> bool:
        """The open handoff is now another team's (a transfer): its card belongs elsewhere."""
        return (
            self._teams is not None
            and handoff is not None
            and handoff.resolved_at is None
            and self._team_name(handoff.team) != self._team_name(thread.team)
        )

    async def _move(self, data: cards.CardData, thread: SlackThread) -> SlackThread | None:
        """Slack cannot move a thread: mark the old card transferred (its buttons gone), open
        a new one in the new team's channel with the history and the transfer's note. None
        when another process holds the new thread."""
        assert data.handoff is not None
        conversation_id = data.case.id
        to_team = self._team_name(data.handoff.team)
        moved = await self._threads.transfer_of(conversation_id, data.handoff.id)
        by = moved.actor if moved is not None else "carebot"
        to_label, from_label = self._team_label(to_team), self._team_label(thread.team)
        if thread.ts is not None:
            old = dataclasses.replace(
                data, team=from_label, transferred=cards.transferred(to_label, by)
            )
            text, blocks = cards.card(old)
            try:
                await self._api.update(thread.ts, text, blocks, channel=thread.channel)
            except SlackError as exc:
                if exc.error != "message_not_found":
                    raise
        await self._threads.supersede(conversation_id, self._holder, to_team or "")
        log.info("Conversation %s moved to team %s in Slack", conversation_id, to_team)
        new = await self._threads.claim(conversation_id, self._channel(to_team), team=to_team)
        if not await self._threads.lock(conversation_id, self._holder, LOCK_SECONDS):
            return None
        new = await self._post_card(data, new)
        new = await self._post_history(data, new)
        note = str((moved.detail or {}).get("note") or "") if moved is not None else ""
        assert new.ts is not None
        said = cards.transferred_here(from_label, by, note)
        await self._api.post(said, thread_ts=new.ts, channel=new.channel)
        return new

    async def _note_owner(
        self, data: cards.CardData, thread: SlackThread, same_handoff: bool
    ) -> SlackThread:
        """Say in the thread when the conversation changed hands within one handoff (from
        any desk), once per change; the previous agent is mentioned, so Slack tells them."""
        state = ConversationState(data.case.state)
        owner = data.case.agent if state.human_owned else None
        if owner == thread.owner:
            return thread
        if owner and thread.owner and same_handoff:
            assert thread.ts is not None
            note = cards.taken_over(owner, self._mention(thread.owner))
            await self._api.post(note, thread_ts=thread.ts, channel=thread.channel)
        await self._threads.save(data.case.id, owner=owner)
        return await self._reload(data.case.id)

    def _up_to_date(self, thread: SlackThread, snapshot: Snapshot) -> bool:
        """Nothing new since the last pass: no change of state, message, handoff or reminder."""
        handoff = snapshot.handoff
        return (
            thread.ts is not None
            and thread.mirrored_message_id != 0
            and thread.synced_at is not None
            and snapshot.updated_at < thread.synced_at  # equal: cannot tell, so not
            and snapshot.last_message_id <= thread.mirrored_message_id
            and (handoff.id if handoff else None) == thread.handoff_id
            and snapshot.last_failed_id <= thread.failures_told_id
            and not snapshot.unposted_notes
            and not self._reminder_due(snapshot.state, handoff, thread)
            and not self._breach_due(snapshot.state, handoff, thread)
            and not self._moved(thread, handoff)
            and not self._window_warning_due(snapshot, thread)
        )

    def _window_warning_due(self, snapshot: Snapshot, thread: SlackThread) -> bool:
        """Once per customer message, when a person has the conversation and its channel's
        reply window is about to close."""
        window = self._windows.window(snapshot.channel, snapshot.last_customer_message)
        return (
            window is not None
            and ConversationState(snapshot.state).human_owned
            and window.closing(self._clock())
            and thread.window_warned_for != snapshot.last_customer_message
        )

    def _reminder_due(self, state: str, handoff: Handoff | None, thread: SlackThread) -> bool:
        """Once per handoff nobody has acted on: before its team's first-response target, or
        (a team without one) after ``reminder_minutes``."""
        if not _unanswered(handoff, state) or thread.reminded_handoff_id == handoff.id:
            return False
        at = self._reminder_at(handoff)
        return at is not None and self._clock() >= at

    def _reminder_at(self, handoff: Handoff) -> datetime | None:
        if self._targets is not None and self._targets.target(handoff.team) is not None:
            return self._targets.reminder_at(handoff.team, handoff.created_at)
        return handoff.created_at + timedelta(minutes=self._settings.reminder_minutes)

    def _breach_due(self, state: str, handoff: Handoff | None, thread: SlackThread) -> bool:
        """Once per handoff nobody has acted on, when its team's target has passed."""
        if self._targets is None or not _unanswered(handoff, state):
            return False
        if thread.breach_noted_handoff_id == handoff.id:
            return False
        due = self._targets.due(handoff.team, handoff.created_at)
        return due is not None and self._clock() >= due

    async def _card_data(self, conversation_id: int) -> cards.CardData:
        case = await self._queue.case(conversation_id)
        latest = await self._threads.latest_handoff(conversation_id)
        handoff = latest.handoff if latest else None
        history = await self._queue.history(case.customer["id"], limit=500)
        note = None
        if handoff is not None:
            handed = handoff.created_at
            history = [m for m in history if datetime.fromisoformat(m.at) <= handed]
            if not self._hours.is_open(handed):
                note = (
                    "Handed over outside business hours: the customer was told a person "
                    f"replies from {self._hours.describe_next_open(handed)}."
                )
        emotion, top = (latest.emotion, latest.top) if latest else (0.0, [])
        labelled = await self._labels.of_decision(handoff.decision_id) if handoff else None
        team = ""
        others: tuple[tuple[str, str], ...] = ()
        if self._teams is not None and self._teams.teams:  # cards name the team with [[teams]]
            own = self._teams.team(handoff.team if handoff else None)
            team = own.label
            teams = self._teams.teams_in_effect()
            others = tuple((t.name, t.label) for t in teams if t.name != own.name)
        return cards.CardData(
            case, handoff, emotion, history, note, top, labelled, team=team, transfer_to=others
        )

    async def _post_card(self, data: cards.CardData, thread: SlackThread) -> SlackThread:
        text, blocks = cards.card(data)
        ts = await self._api.post(text, blocks, channel=thread.channel)
        handoff_id = data.handoff.id if data.handoff else None
        await self._threads.save(
            data.case.id, ts=ts, card_hash=cards.card_hash(text, blocks), handoff_id=handoff_id
        )
        log.info("Posted the Slack card of conversation %s (ts %s)", data.case.id, ts)
        return await self._reload(data.case.id)

    async def _post_history(self, data: cards.CardData, thread: SlackThread) -> SlackThread:
        """The full history as the first thread reply, when the card shows only its end."""
        assert thread.ts is not None
        if not cards.shows_all(data.history):
            for chunk in cards.full_history(data.history):
                await self._api.post(chunk, thread_ts=thread.ts, channel=thread.channel)
        # What the card and the history showed counts as mirrored, by id: a message that
        # arrives while the card is on its way (even in the same instant) is mirrored later.
        shown = [m.id for m in data.history if m.conversation_id == data.case.id]
        await self._threads.save(data.case.id, mirrored_message_id=max(shown, default=1))
        return await self._reload(data.case.id)

    async def _announce_again(self, data: cards.CardData, thread: SlackThread) -> SlackThread:
        """A new handoff in a conversation that has a thread: said in the channel too."""
        assert thread.ts is not None and data.handoff is not None
        await self._api.post(
            cards.handed_over_again(data),
            thread_ts=thread.ts,
            broadcast=True,
            channel=thread.channel,
        )
        # What the bot and the customer said between the handoffs is on the card's history;
        # the thread goes on from the customer message that handed over again (so the bot's
        # answer to it never appears without it).
        skip_to = await self._threads.before_last_customer_message(
            data.case.id, data.handoff.created_at
        )
        mirrored = max(thread.mirrored_message_id, skip_to)
        await self._threads.save(
            data.case.id, handoff_id=data.handoff.id, mirrored_message_id=mirrored
        )
        return await self._reload(data.case.id)

    async def _mirror(self, data: cards.CardData, thread: SlackThread) -> SlackThread:
        """Copy the conversation's later messages into the thread (not the agents' own Slack
        replies, which are there already); nothing after the handoff was resolved."""
        assert thread.ts is not None
        handoff = data.handoff
        resolved_at = handoff.resolved_at if handoff else None
        later = await self._threads.messages_after(data.case.id, thread.mirrored_message_id)
        for message in later:
            if resolved_at is not None and message.created_at > resolved_at:
                # Back with the bot: not mirrored, and not passed over either. The customer's
                # message may be handing over again this very moment (its handoff is stored
                # after it); the next handoff's announcement decides what the thread shows.
                break
            # a reply typed in the thread is there already; a button's hide or unhide is not
            if message.via != "slack" or message.public in ("hide", "unhide"):
                text, blocks = cards.mirror_text(message, data.case), cards.mirror_blocks(message)
                await self._api.post(text, blocks, thread_ts=thread.ts, channel=thread.channel)
            await self._threads.save(data.case.id, mirrored_message_id=message.id)
        return await self._reload(data.case.id) if later else thread

    async def _tell_undelivered(self, data: cards.CardData, thread: SlackThread) -> SlackThread:
        """Say in the thread which replies never reached the customer, and why (the platform
        refused them for good, or their channel does not run in this service); nothing after
        the handoff was resolved, like the mirror."""
        assert thread.ts is not None
        resolved_at = data.handoff.resolved_at if data.handoff else None
        later = await self._threads.undelivered_after(data.case.id, thread.failures_told_id)
        for failed in later:
            if failed.message_id > thread.mirrored_message_id:
                break  # stored after this pass mirrored: told after its mirror, next pass
            if resolved_at is None or failed.created_at <= resolved_at:
                await self._api.post(
                    cards.undelivered(failed), thread_ts=thread.ts, channel=thread.channel
                )
            await self._threads.save(data.case.id, failures_told_id=failed.outbox_id)
        return await self._reload(data.case.id) if later else thread

    async def _post_notes(self, thread: SlackThread) -> None:
        """The inbox notes the thread does not show yet, oldest first, each once: a note is
        recorded as posted right after its post, so a failure leaves the rest for later."""
        assert thread.ts is not None
        for note in await self._threads.notes_to_post(thread.conversation_id):
            ts = await self._api.post(note_text(note), thread_ts=thread.ts, channel=thread.channel)
            await self._threads.note_posted(note.id, ts)

    async def _update_card(self, data: cards.CardData, thread: SlackThread) -> None:
        assert thread.ts is not None
        text, blocks = cards.card(data)
        digest = cards.card_hash(text, blocks)
        if digest != thread.card_hash:
            try:
                await self._api.update(thread.ts, text, blocks, channel=thread.channel)
            except SlackError as exc:
                if exc.error != "message_not_found":
                    raise
                # Someone deleted the card: post it again, with the history, on the next pass.
                log.warning(
                    "The Slack card of conversation %s is gone; posting it again", data.case.id
                )
                await self._threads.save(data.case.id, ts=None, card_hash="", mirrored_message_id=0)
                self.mark(data.case.id)
                return
        await self._threads.save(data.case.id, card_hash=digest)

    async def _remind(self, data: cards.CardData, thread: SlackThread) -> None:
        """The reminder, then the breach notice, each once per handoff (a breach found first
        counts as reminded: a reminder after the breach would say less)."""
        handoff, state = data.handoff, data.case.state
        assert thread.ts is not None
        if handoff is None:
            return
        if self._targets is not None and self._breach_due(state, handoff, thread):
            target = self._targets.target(handoff.team)
            assert target is not None
            text = cards.target_breached(
                self._teams.team(handoff.team).label if self._teams else "",
                duration_words(target),
                duration_words(self._clock() - handoff.created_at),
            )
            await self._api.post(text, thread_ts=thread.ts, broadcast=True, channel=thread.channel)
            await self._threads.save(
                data.case.id, breach_noted_handoff_id=handoff.id, reminded_handoff_id=handoff.id
            )
            return
        if not self._reminder_due(state, handoff, thread):
            return
        status = (
            self._targets.status(handoff.team, handoff.created_at, None, self._clock())
            if self._targets is not None
            else None
        )
        if status is not None and self._teams is not None:
            target = self._targets.target(handoff.team) if self._targets else None
            assert target is not None
            text = cards.target_reminder(
                self._teams.team(handoff.team).label,
                duration_words(target),
                duration_words(status.left),
            )
        else:
            text = cards.reminder(self._settings.reminder_minutes)
        await self._api.post(text, thread_ts=thread.ts, broadcast=True, channel=thread.channel)
        await self._threads.save(data.case.id, reminded_handoff_id=handoff.id)

    async def _warn_of_window(self, thread: SlackThread) -> None:
        snapshot = await self._threads.snapshot(
            thread.conversation_id, windowed=self._windows.hours
        )
        if not self._window_warning_due(snapshot, thread):
            return
        window = self._windows.window(snapshot.channel, snapshot.last_customer_message)
        assert window is not None and thread.ts is not None
        text = cards.window_warning(window.describe(self._clock()))
        await self._api.post(text, thread_ts=thread.ts, broadcast=True, channel=thread.channel)
        await self._threads.save(
            thread.conversation_id, window_warned_for=snapshot.last_customer_message
        )

    async def _reload(self, conversation_id: int) -> SlackThread:
        """The conversation's live thread, as stored now."""
        thread = await self._threads.get(conversation_id)
        assert thread is not None
        return thread


def note_text(note: Note) -> str:
    """An inbox note as a thread post: for the agents, never the customer."""
    said = f":memo: *Internal note from {escape(note.agent)}* (not sent to the customer):"
    return f"{said}\n{quote(note.text, MAX_NOTE)}"


def _unanswered(handoff: Handoff | None, state: str) -> TypeGuard[Handoff]:
    """A handoff waiting for its first agent (nobody took it over or replied yet)."""
    return (
        handoff is not None
        and state == ConversationState.WAITING_FOR_AGENT
        and handoff.claimed_at is None
    )
