"""Bad input at every door, the full pass: the fuzzer of tests/fuzz_doors.py, 10,000 cases.

    python bench/fuzz.py [--cases 10000] [--seed 19] [--database-url URL]

The service with every door open (tests/every_door.py: the webhook, Meta, X, Telegram in
webhook mode, Slack, the web chat, the inbox with an agent logged in, the console, the
insights, /metrics), on SQLite in a temporary folder, or on PostgreSQL with ``--database-url``
(an admin URL, as CAREBOT_TEST_DATABASE_URL: a fresh database is made from the migrated
template and dropped afterwards). Cases are drawn from carebot/openapi.yaml, most of them
validly signed, the rest unsigned or signed wrongly; the same ones for the same ``--seed``.

Printed, per door: the cases, signed (or open) / unsigned / mis-signed, the 5xx answers, the
crashes (an ERROR logged by carebot, aiohttp, slack_bolt or asyncio), the badly signed requests
that stored a row, the seconds spent and the answers' statuses; then the first failures, in
full. Exits 1 when any check failed. ``tests/test_fuzz.py`` is its CI-sized run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from tests.every_door import every_door  # noqa: E402
from tests.fuzz_doors import fuzz, report  # noqa: E402
from tests.migrated import PG_ENV, create_postgres, remove_templates  # noqa: E402


@asynccontextmanager
async def database(folder: Path, admin_url: str | None) -> AsyncIterator[str]:
    """SQLite in ``folder``, or a fresh migrated PostgreSQL database beside ``admin_url``'s."""
    if not admin_url:
        yield f"sqlite+aiosqlite:///{folder / 'carebot.db'}"
        return
    os.environ.setdefault(PG_ENV, admin_url)  # where tests/migrated.py keeps its template
    name = f"carebot_fuzz_{uuid.uuid4().hex[:12]}"
    await create_postgres(name)
    url = make_url(admin_url)
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        admin = await asyncpg.connect(dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--database-url", help="a PostgreSQL admin URL (default: SQLite)")
    args = parser.parse_args()
    kind = "PostgreSQL" if args.database_url else "SQLite"
    print(f"Fuzzing every door: {args.cases:,} cases, seed {args.seed}, on {kind}", flush=True)
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="carebot-fuzz-") as tmp:
            async with (
                database(Path(tmp), args.database_url) as url,
                every_door(Path(tmp), url) as doors,
            ):
                tally = await fuzz(doors, cases=args.cases, seed_value=args.seed)
    finally:
        await remove_templates()
    print(report(tally))
    print(f"{time.perf_counter() - started:.1f} s in all, the service's start included")
    for failure in tally.failures:
        print(f"FAILED {failure}")
    bad = tally.total("server_errors") + tally.total("crashes") + tally.total("bad_signature_rows")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
