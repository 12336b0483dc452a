"""``carebot chat``: talk to the bot as a customer, in a terminal or from a script.

It runs the real pipeline (the configured model and intents) through the terminal channel.
The conversation goes to a throwaway SQLite database, deleted at exit, so trying the bot never
fills the live inbox; ``--store`` uses the configured ``[store]`` instead. With ``--explain``
each bot turn is followed by the decision line. It starts and stops like the service
(:mod:`carebot.lifecycle`): at the end of the input, or on SIGTERM or Ctrl-C, reading stops,
in-flight work finishes, the outbox is flushed, then the channel and the database close.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TextIO

from carebot.adapters.terminal import TerminalChannel
from carebot.config import Settings
from carebot.inbox import Status
from carebot.models import ChannelEvent, InboundMessage
from carebot.nlu.encoder import Encoder
from carebot.runtime import build_runtime, load_encoder


async def run_chat(
    settings: Settings,
    *,
    explain: bool = False,
    user: str | None = None,
    store: bool = False,
    stdin: TextIO = sys.stdin,
    stdout: TextIO = sys.stdout,
    encoder: Encoder | None = None,
) -> None:
    """Chat until the end of the input, in a throwaway database unless ``store`` (the
    configured one); ``encoder`` replaces the configured model (tests)."""
    with contextlib.ExitStack() as stack:
        database_url = None  # the configured one
        if not store:
            scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="carebot-chat-")))
            database_url = f"sqlite+aiosqlite:///{scratch / 'chat.db'}"
        await _chat(settings, explain, user, database_url, stdin, stdout, encoder)


async def _chat(
    settings: Settings,
    explain: bool,
    user: str | None,
    database_url: str | None,
    stdin: TextIO,
    stdout: TextIO,
    encoder: Encoder | None,
) -> None:
    channel = TerminalChannel(user=user, stdin=stdin, stdout=stdout)
    if channel.interactive:
        print("Loading the model and intents...", file=sys.stderr, flush=True)
    encoder = encoder or load_encoder(settings, export_if_missing=True)
    runtime = await build_runtime(
        settings, encoder=encoder, channels={channel.name: channel}, database_url=database_url
    )
    if channel.interactive:
        kept = "kept in [store]" if database_url is None else "not kept (--store keeps it)"
        print(
            f"Chatting as {channel.user}; the conversation is {kept}. "
            "Type your message; Ctrl-D to leave.",
            file=sys.stderr,
            flush=True,
        )

    async def deliver(event: ChannelEvent) -> None:
        if not isinstance(event, InboundMessage):
            await runtime.deliver(event)
            return
        outcome = await runtime.inbox.receive(event)
        await runtime.outbox.deliver_due()
        if not explain:
            return
        if outcome.decision is not None:
            channel.write(outcome.decision.explain())
        elif outcome.status is Status.RECORDED:
            channel.write(
                f"decision: - state={outcome.received.state.value} "
                "(a human owns this conversation: message recorded, bot silent)"
            )

    try:
        await runtime.start(deliver=deliver)
        async with _stopping_on_signals(channel):
            await channel.finished()
    finally:
        await runtime.stop()


@contextlib.asynccontextmanager
async def _stopping_on_signals(channel: TerminalChannel) -> AsyncIterator[None]:
    """SIGTERM and SIGINT stop reading, as the end of the input does."""
    loop = asyncio.get_running_loop()
    stopping: set[asyncio.Task[None]] = set()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stopping.add(loop.create_task(channel.stop())))
    try:
        yield
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await asyncio.gather(*stopping)
