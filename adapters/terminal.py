"""The terminal channel: a customer typing in a terminal (``carebot chat``), or a script piping
lines in. One line in is one message; replies are printed as ``bot> ...``, an agent's as
``Ann> ...`` (their display name: a person's reply is never shown as the bot's).

Lines are read by a daemon thread (a blocked read never holds the process up at exit) and
handed to ``deliver`` one at a time. :meth:`TerminalChannel.finished` returns at the end of the
input, or once the channel has stopped.
"""

from __future__ import annotations

import asyncio
import sys
import threading
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
        self._reader: asyncio.Task[None] | None = None
        self._stopping = False
        self._delivering = False  # a line is being answered right now
        self._closed = False
        self._done = asyncio.Event()

    @property
    def interactive(self) -> bool:
        return self._stdin.isatty()

    async def start(self, deliver: Deliver) -> None:
        """Begin reading lines; each non-empty line becomes an InboundMessage."""
        lines: asyncio.Queue[str] = asyncio.Queue()
        loop = asyncio.get_running_loop()

        def read() -> None:  # in a daemon thread: the empty string is the end of the input
            while line := self._stdin.readline():
                loop.call_soon_threadsafe(lines.put_nowait, line)
            loop.call_soon_threadsafe(lines.put_nowait, "")

        threading.Thread(target=read, name="terminal-input", daemon=True).start()
        self._reader = asyncio.create_task(self._read(lines, deliver), name="terminal")

    async def _read(self, lines: asyncio.Queue[str], deliver: Deliver) -> None:
        number = 0
        try:
            while not self._stopping:
                if self.interactive:
                    self._stdout.write("you> ")
                    self._stdout.flush()
                line = await lines.get()
                if not line:
                    return
                text = line.strip()
                if not text:
                    continue
                number += 1
                self._delivering = True
                try:
                    await deliver(self._message(text, number))
                finally:
                    self._delivering = False
        finally:
            self._done.set()

    def _message(self, text: str, number: int) -> InboundMessage:
        return InboundMessage(
            channel=self.name,
            external_user_id=self.user,
            external_message_id=f"{self._session}-{number}",
            text=text,
            sent_at=utcnow(),
            profile={"name": self.user},
        )

    async def finished(self) -> None:
        """Return at the end of the input (or once stopped); raises what failed the reading."""
        await self._done.wait()
        if self._reader is not None and self._reader.done() and not self._reader.cancelled():
            self._reader.result()

    async def stop(self) -> None:
        """Read no more lines; the one being answered is finished first."""
        self._stopping = True
        reader = self._reader
        if reader is not None and not reader.done():
            if not self._delivering:
                reader.cancel()  # waiting for a line: nothing in hand
            await asyncio.wait([reader])
        self._done.set()

    async def close(self) -> None:
        await self.stop()
        self._closed = True

    async def send(self, reply: OutboundReply) -> None:
        if self._closed:
            raise DeliveryError("the terminal channel is closed")
        if reply.external_user_id != self.user:  # an earlier `carebot chat --store` session
            raise DeliveryError(
                f"the terminal session of {reply.external_user_id} has ended", permanent=True
            )
        author = reply.agent if reply.author == "agent" and reply.agent else "bot"
        self.write(f"{author}> {reply.text}")
        labels = [choice.label for choice in reply.choices]
        if labels and labels == [str(n) for n in range(1, len(labels) + 1)]:
            self.write("     " + "  ".join(f"[{label}]" for label in labels))  # a scale
            return
        for number, label in enumerate(labels, start=1):
            self.write(f"     {number}) {label}")

    def write(self, line: str) -> None:
        self._stdout.write(line + "\n")
        self._stdout.flush()
