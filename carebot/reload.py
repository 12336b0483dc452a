"""Live intent reload: an edited intents folder goes live in the running service, no restart.

The folder is watched (watchfiles); after a change it is read again and, when it has no error,
a new matcher is built and swapped in. Only examples never seen before are encoded (the
embedding cache holds the rest) and the classifier head starts from the previous one, so
editing one intent of a 15,000-example set is live in about a second (bench/reload.py). A
broken file is refused: its problems are logged with file and line, and the last good intents
stay live. Messages being matched during the swap are decided with the intents they were
matched against (a match carries its intent set).

With several workers, a worker whose watcher saw the change and reloaded tells the others
(an ``intents`` event, :mod:`carebot.events`), and each reloads its folder at once: every
worker answers from the new intents within the same second or two, also where a shared network
folder gives no change notices for other machines' writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

from carebot.config import Settings
from carebot.events import Event, EventHub
from carebot.nlu.embedding_cache import EmbeddingCache
from carebot.nlu.intents import ParsedFiles, Severity, read_intents
from carebot.nlu.matcher import Matcher
from carebot.triage import Triage

log = logging.getLogger(__name__)
DEBOUNCE_MS = 100  # changes within this window are read as one edit
IDLE_MS = 200  # the watcher reports idleness this often (the first report: it is watching)
INTENT_FILES = (".yaml", ".yml")


class IntentReloader:
    """Watches ``[matcher] intents_dir`` and swaps a new matcher into ``triage``."""

    def __init__(
        self,
        *,
        settings: Settings,
        triage: Triage,
        cache: EmbeddingCache,
        in_model_thread: Callable[[Callable[[], object]], Awaitable[object]],
        parsed: ParsedFiles | None = None,
        events: EventHub | None = None,
    ) -> None:
        """``parsed``: the files as the running intents were read (a reload parses only the
        files changed since). ``events``: where a reload is announced to the other workers,
        and theirs heard."""
        self._settings = settings
        self._triage = triage
        self._cache = cache
        self._in_model_thread = in_model_thread
        self._lock = asyncio.Lock()
        self._parsed = parsed if parsed is not None else ParsedFiles()
        self.directory = settings.path(settings.matcher.intents_dir)
        self.reloads = 0  # successful reloads since start (tests and benches wait on it)
        self.changed = asyncio.Condition()
        self.watching = asyncio.Event()  # set once the folder is being watched
        self._stopping = asyncio.Event()
        self._events = events

    async def run(self) -> None:
        """Reload after every change to an intent file, and when another worker reloaded,
        until :meth:`stop`."""
        if self._events is None:
            await self._watch()
            return
        async with self._events.subscribe() as events:
            peers = asyncio.create_task(self._follow(events), name="intents-from-workers")
            try:
                await self._watch()
            finally:
                peers.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await peers

    async def _follow(self, events: asyncio.Queue[Event]) -> None:
        while True:
            await self.heard(await events.get())

    async def heard(self, event: Event) -> bool:
        """Another worker reloaded (an ``intents`` event): read the folder again unless this
        worker's own watcher already did. True if a new matcher was swapped in."""
        if event.kind != "intents" or not event.remote:
            return False
        if not self._parsed.stale(self.directory):
            log.info("Another worker reloaded the intents; they are live here already")
            return False
        log.info("Another worker reloaded the intents; reading %s again", self.directory)
        return await self.reload()

    async def _watch(self) -> None:
        from watchfiles import awatch

        log.info("Watching %s for intent changes", self.directory)
        async for changes in awatch(
            self.directory,
            debounce=DEBOUNCE_MS,
            step=20,
            watch_filter=_intent_file,
            rust_timeout=IDLE_MS,
            yield_on_timeout=True,
            stop_event=self._stopping,
        ):
            if not changes:  # idle: the watcher is up
                if not self.watching.is_set():
                    self.watching.set()
                    if self._parsed.stale(self.directory):  # edited before the watcher was up
                        await self.reload()
                continue
            log.info("Intent files changed: %s", ", ".join(sorted({p for _, p in changes})))
            if await self.reload() and self._events is not None:
                self._events.publish(Event("intents", 0))  # the other workers read theirs

    def stop(self) -> None:
        """Stop watching; a reload in progress is finished first."""
        self._stopping.set()

    async def reload(self) -> bool:
        """Read the folder again; swap in a new matcher if it has no error. True if swapped."""
        async with self._lock:
            started = time.perf_counter()
            cfg = self._settings
            intents, problems = await asyncio.to_thread(
                partial(read_intents, language=cfg.languages.default, served=cfg.languages.detect),
                self.directory,
                cfg.placeholders,
                self._parsed,
            )
            errors = [p for p in problems if p.severity is Severity.ERROR]
            if errors:
                for problem in errors:
                    log.error("Intents not reloaded: %s", problem)
                log.error("The last good intents stay live; fix the file(s) and save again")
                return False
            texts, _ = intents.examples()
            current = self._triage.matcher
            # New examples are encoded in the model's own thread, between message batches.
            await self._in_model_thread(lambda: self._cache.encode(texts, current.encoder))
            matcher = await asyncio.to_thread(
                Matcher.configured,
                cfg.matcher,
                encoder=current.encoder,
                intents=intents,
                cache=self._cache,
                previous=current,
            )
            self._triage.use(matcher)
            async with self.changed:
                self.reloads += 1
                self.changed.notify_all()
            log.info(
                "Intents reloaded: %d intents, %d examples, live in %.2f s",
                len(intents),
                len(texts),
                time.perf_counter() - started,
            )
            return True


def _intent_file(_change: object, path: str) -> bool:
    return Path(path).suffix in INTENT_FILES
