"""Micro-batching: messages that arrive together share one encoder call.

One thread runs the model (torch already spreads a call over the cores; calls from several
threads would only compete for them). While it works, newly arrived messages queue; the next
call takes all of them at once, up to ``max_batch``. Nothing waits on purpose: a lone message
is encoded at once, so batching costs no latency when the service is quiet, and under load a
batch of 16 costs little more than one message.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from carebot.matcher import Match, Matcher

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Batched:
    match: Match
    wait_ms: float  # queued before its batch started
    model_ms: float  # the batch's encode + match time
    batch: int  # messages in the batch


class MatchQueue:
    def __init__(self, matcher: Callable[[], Matcher], *, max_batch: int = 32) -> None:
        self._matcher = matcher  # asked for each batch: a live reload takes effect at once
        self._max_batch = max_batch
        self._pending: list[tuple[str, float, asyncio.Future[Batched]]] = []
        self._worker: asyncio.Task[None] | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")

    async def match(self, text: str) -> Batched:
        future: asyncio.Future[Batched] = asyncio.get_running_loop().create_future()
        self._pending.append((text, time.perf_counter(), future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain(), name="match-queue")
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            batch, self._pending = (
                self._pending[: self._max_batch],
                self._pending[self._max_batch :],
            )
            started = time.perf_counter()
            try:
                matches = await loop.run_in_executor(
                    self._thread, self._matcher().match_many, [text for text, _, _ in batch]
                )
            except Exception as exc:
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            model_ms = (time.perf_counter() - started) * 1000
            for (_, queued, future), match in zip(batch, matches, strict=True):
                if not future.done():
                    future.set_result(
                        Batched(match, (started - queued) * 1000, model_ms, len(batch))
                    )

    async def in_model_thread(self, work: Callable[[], T]) -> T:
        """Run ``work`` in the model's thread, between batches (the model is not shared
        across threads: its tokenizer is not thread-safe)."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, work)

    def close(self) -> None:
        self._thread.shutdown(wait=False, cancel_futures=True)
