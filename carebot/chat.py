"""``carebot chat``: talk to the bot as a customer, in a terminal or from a script.

It runs the real pipeline (the configured model, store and intents) through the terminal
channel. With ``--explain`` each bot turn is followed by the decision line.
"""

from __future__ import annotations

import sys
from typing import TextIO

from carebot.adapters.terminal import TerminalChannel
from carebot.config import Settings
from carebot.inbox import Status
from carebot.models import InboundMessage
from carebot.runtime import build_runtime, load_encoder


async def run_chat(
    settings: Settings,
    *,
    explain: bool = False,
    user: str | None = None,
    stdin: TextIO = sys.stdin,
    stdout: TextIO = sys.stdout,
) -> None:
    channel = TerminalChannel(user=user, stdin=stdin, stdout=stdout)
    if channel.interactive:
        print("Loading the model and intents...", file=sys.stderr, flush=True)
    runtime = await build_runtime(
        settings, encoder=load_encoder(settings), channels={channel.name: channel}
    )
    if channel.interactive:
        print(
            f"Chatting as {channel.user}. Type your message; Ctrl-D to leave.",
            file=sys.stderr,
            flush=True,
        )

    async def deliver(inbound: InboundMessage) -> None:
        outcome = await runtime.inbox.receive(inbound)
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
        await channel.start(deliver)
    finally:
        await runtime.stop()
