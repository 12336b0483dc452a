"""The terminal channel: a customer typing in a terminal (``carebot chat``), or a script piping
lines in. One line in is one message; replies are printed as ``bot> ...``."""

from __future__ import annotations

import asyncio
import sys
import uuid
from typing import TextIO

from carebot.channel import Deliver
from carebot.clock import utcnow
from carebot.exceptions import DeliveryError
from carebot.models import InboundMessage, OutboundReply


class TerminalChannel:
    name = "terminal"

    def __init__(
        self, *, user: str | None = None, stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout
    ) -> None:
        self.user = user or f"visitor-{uuid.uuid4().hex[:8]}"
        self._session = uuid.uuid4().hex[:12]
        self._stdin = stdin
        self._stdout = stdout
        self._stopped = False

    @property
    def interactive(self) -> bool:
        return self._stdin.isatty()

    async def start(self, deliver: Deliver) -> None:
        """Read lines until end of input; each non-empty line becomes an InboundMessage."""
        number = 0
        while not self._stopped:
            if self.interactive:
                self._stdout.write("you> ")
                self._stdout.flush()
            line = await asyncio.to_thread(self._stdin.readline)
            if not line:
                break
            text = line.strip()
            if not text:
                continue
            number += 1
            await deliver(
                InboundMessage(
                    channel=self.name,
                    external_user_id=self.user,
                    external_message_id=f"{self._session}-{number}",
                    text=text,
                    sent_at=utcnow(),
                    profile={"name": self.user},
                )
            )

    async def stop(self) -> None:
        self._stopped = True

    async def send(self, reply: OutboundReply) -> None:
        if reply.external_user_id != self.user:
            raise DeliveryError(f"the terminal session of {reply.external_user_id} has ended")
        self.write(f"bot> {reply.text}")
        for number, choice in enumerate(reply.choices, start=1):
            self.write(f"     {number}) {choice.label}")

    def write(self, line: str) -> None:
        self._stdout.write(line + "\n")
        self._stdout.flush()
