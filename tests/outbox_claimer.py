"""A worker process for tests/test_outbox_lease.py: claims and marks outbox rows of a shared
database until none is left, and prints the ids it claimed (one JSON list on its last line).

Usage: python -m tests.outbox_claimer DATABASE_URL NOW_ISO. It prints ``ready`` once connected
and starts claiming when a line arrives on stdin, so the test starts every process at once.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import datetime

from carebot.store.database import Database
from carebot.store.outbox import OutboxStore


async def main(url: str, now: datetime) -> None:
    db = Database(url)
    store = OutboxStore(db, clock=lambda: now)
    claimed: list[int] = []
    try:
        await store.pending()  # connected
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        while replies := await store.claim_due(limit=2):
            lost = await store.mark_sent([(reply, None) for reply in replies])
            if lost:
                raise SystemExit(f"lease lost on {lost}: no other worker may claim a leased row")
            claimed.extend(reply.outbox_id for reply in replies)
    finally:
        await db.close()
    print(json.dumps(claimed), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], datetime.fromisoformat(sys.argv[2])))
