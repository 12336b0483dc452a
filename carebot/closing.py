"""Conversations that end by themselves: a periodic sweep closes idle ones.

A conversation ends after ``[conversations] idle_close_hours`` in which nobody wrote in it, when
nobody owes the customer an answer: the bot has it, or an agent has it and wrote last (see
:mod:`carebot.store.closing` for the exact rule and why several processes may sweep at once).
An agent may also close a conversation at any time (:meth:`carebot.agents.AgentDesk.close`).
The customer's next message then starts a new conversation, in the same customer history.

Closing sends the customer nothing; the inbox and the Slack card show the conversation as
closed (a ``closed`` event per conversation).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from carebot.clock import Clock
from carebot.events import Event, EventHub
from carebot.store.closing import ClosingStore
from carebot.tasks import Periodic

log = logging.getLogger(__name__)


class ConversationCloser:
    """Sweeps every ``interval`` seconds until :meth:`stop`; ``idle_hours`` 0 closes nothing."""

    def __init__(
        self,
        *,
        store: ClosingStore,
        events: EventHub,
        clock: Clock,
        idle_hours: float,
        interval: float = 60.0,
        batch: int = 100,
    ) -> None:
        self._store = store
        self._events = events
        self._clock = clock
        self._idle = timedelta(hours=idle_hours) if idle_hours > 0 else None
        self._batch = batch
        self._periodic = Periodic(
            self.sweep, interval=interval, what="Closing idle conversations", log=log
        )

    async def sweep(self) -> list[int]:
        """One pass: close every conversation idle now (stopping early after :meth:`stop`,
        between batches); returns their ids."""
        if self._idle is None:
            return []
        cutoff = self._clock() - self._idle
        closed: list[int] = []
        after = 0
        while not self._periodic.stopping and (
            ids := await self._store.idle(cutoff, after=after, limit=self._batch)
        ):
            after = ids[-1]
            for conversation_id in await self._store.close_idle(ids, cutoff):
                self._events.publish(Event("closed", conversation_id))
                closed.append(conversation_id)
        if closed:
            log.info("Closed %d idle conversation(s)", len(closed))
        return closed

    async def run(self) -> None:
        """Sweep now, then every ``interval`` seconds; a failed sweep is logged and the next
        one tries again."""
        if self._idle is None:
            log.info("Idle conversations are not closed ([conversations] idle_close_hours = 0)")
            return
        await self._periodic.run()

    def stop(self) -> None:
        self._periodic.stop()

    def resume(self) -> None:
        """Ready to run again after a stop (run by the leader: :mod:`carebot.cluster.leader`)."""
        self._periodic.resume()
