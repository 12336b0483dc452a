"""``carebot chat``: talk to the bot as a customer, in a terminal or from a script.

It runs the real pipeline (the configured model, store and intents) through the terminal
channel. With ``--explain`` each bot turn is followed by the decision line. It starts and stops
like the service (:mod:`carebot.lifecycle`): at the end of the input, or on SIGTERM or Ctrl-C,
reading stops, in-flight work finishes, the outbox is flushed, then the channel and the
database close.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator
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
    stdin: TextIO = sys.stdin,
    stdout: TextIO = sys.stdout,
    encoder: Encoder | None = None,
) -> None:
    """Chat until the end of the input; ``encoder`` replaces the configured model (tests)."""
    channel = TerminalChannel(user=user, stdin=stdin, stdout=stdout)
    if channel.interactive:
        print("Loading the model and intents...", file=sys.stderr, flush=True)
    runtime = await build_runtime(
        settings, encoder=encoder or load_encoder(settings), channels={channel.name: channel}
    )
    if channel.interactive:
        print(
            f"Chatting as {channel.user}. Type your message; Ctrl-D to leave.",
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
