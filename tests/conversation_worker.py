"""A worker process for tests/test_inbox.py's several-workers order test: a runtime (fake
encoder, recording channel) on a shared database that receives the messages given on stdin.

Usage: python -m tests.conversation_worker DATABASE_URL TMP_DIR. It prints ``ready`` once
connected, then reads one command a line:

- ``receive ID USER TEXT...``: receive message ID of USER through the inbox (in a task of its
  own, so that the next command is read at once); prints ``stored ID`` once the message is
  stored (committed), then ``done ID STATUS`` with the inbox's outcome.
- ``hold ID USER TEXT...``: the same, but after ``stored ID`` the message waits for
  ``release ID`` before the inbox decides it (as a worker that stalls between storing a
  message and taking its conversation's lock).

At the end of its input it waits for its messages and prints one JSON object:
``{"handled_elsewhere": N}``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from carebot.models import InboundMessage
from carebot.runtime import build_runtime
from carebot.store.conversations import Received
from tests.conftest import EXACT_BACKOFF, make_settings
from tests.fakes import FakeEncoder, RecordingChannel


def say(line: str) -> None:
    print(line, flush=True)


async def main(url: str, folder: Path) -> None:
    runtime = await build_runtime(
        make_settings(folder),
        encoder=FakeEncoder(),
        channels={"test": RecordingChannel("test")},
        database_url=url,
        backoff=EXACT_BACKOFF,
    )
    gates: dict[str, asyncio.Event] = {}
    store = runtime.conversations
    store_receive = store.receive

    async def receive_then_wait(inbound: InboundMessage) -> Received:
        received = await store_receive(inbound)
        say(f"stored {inbound.external_message_id}")
        gate = gates.get(inbound.external_message_id)
        if gate is not None:
            await gate.wait()
        return received

    store.receive = receive_then_wait  # type: ignore[method-assign]

    async def handle(mid: str, user: str, text: str) -> None:
        message = InboundMessage("test", user, mid, text, datetime.now(UTC))
        outcome = await runtime.inbox.receive(message)
        say(f"done {mid} {outcome.status.value}")

    tasks: list[asyncio.Task[None]] = []
    try:
        await runtime.db.ping()
        say("ready")
        while line := await asyncio.to_thread(sys.stdin.readline):
            command, mid, *rest = line.rstrip("\n").split(" ", 3)
            if command == "release":
                gates[mid].set()
                continue
            if command == "hold":
                gates[mid] = asyncio.Event()
            user, text = rest
            tasks.append(asyncio.create_task(handle(mid, user, text)))
        await asyncio.gather(*tasks)
    finally:
        await runtime.db.close()
    say(json.dumps({"handled_elsewhere": runtime.inbox.handled_elsewhere}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2])))
