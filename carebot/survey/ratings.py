"""The rating request after an assumed bot resolution: a bot answer followed by
``[insight] assume_resolved_hours`` without a new request from the customer, in a conversation
never handed over (README, "Insight"). A periodic sweep asks each such conversation once, while
the channel's reply window is open (WhatsApp, Messenger and Instagram accept nothing 24 hours
after the customer's last message: with the default 24 hours there, no request goes out).

Resolutions by an agent and confirmed ones ("yes") are asked for their rating at once, by the
handoff store and the inbox (:mod:`carebot.survey`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from carebot.clock import Clock
from carebot.reply_window import ReplyWindows
from carebot.store.outbox import Queued
from carebot.store.surveys import QuestionIn, QuietAnswers
from carebot.tasks import Periodic

log = logging.getLogger(__name__)


class RatingRequests:
    """Sweeps every ``interval`` seconds until :meth:`stop`. Answers older than ``quiet`` +
    ``lookback`` (the service was down meanwhile) are left alone: too late to ask."""

    def __init__(
        self,
        *,
        store: QuietAnswers,
        question: QuestionIn,
        windows: ReplyWindows,
        clock: Clock,
        quiet_hours: float,
        lookback_hours: float,
        on_outbox: Callable[[Queued], Awaitable[None]] | None = None,
        interval: float = 60.0,
    ) -> None:
        self._store = store
        self._question = question
        self._windows = windows
        self._clock = clock
        self._quiet = timedelta(hours=quiet_hours)
        self._lookback = timedelta(hours=lookback_hours)
        self._on_outbox = on_outbox
        self._looked_until: datetime | None = None  # answers up to here were looked at
        self._periodic = Periodic(
            self.sweep,
            interval=interval,
            what="Asking bot-resolved conversations for a rating",
            log=log,
        )

    async def sweep(self) -> list[int]:
        """One pass: ask every conversation whose rating request is due; returns their ids."""
        if self._question(None) is None:
            return []
        asked = []
        until = self._clock() - self._quiet
        # Each answer is looked at once: by the time it is due, what followed it is known.
        after = until - self._lookback
        if self._looked_until is not None:
            after = max(after, self._looked_until)
        for conversation_id in await self._store.due(after=after, until=until):
            if self._periodic.stopping:
                break
            queued = await self._store.request(
                conversation_id, self._question, windows=self._reachable
            )
            if queued is None:
                continue
            asked.append(conversation_id)
            if self._on_outbox is not None:
                await self._on_outbox(queued)
        if not self._periodic.stopping:
            self._looked_until = until
        if asked:
            log.info("Asked %d bot-resolved conversation(s) for a rating", len(asked))
        return asked

    def _reachable(self, channel: str, last_customer_message: datetime | None) -> bool:
        window = self._windows.window(channel, last_customer_message)
        return window is None or window.is_open(self._clock())

    async def run(self) -> None:
        """Sweep now, then every ``interval`` seconds; a failed sweep is logged and the next
        one tries again."""
        if self._question(None) is None:
            log.info("No rating requests are sent ([survey] rating = false)")
            return
        await self._periodic.run()

    def stop(self) -> None:
        self._periodic.stop()

    def resume(self) -> None:
        """Ready to run again after a stop (run by the leader: :mod:`carebot.cluster.leader`)."""
        self._periodic.resume()
