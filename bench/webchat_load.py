"""Load on the web chat: N concurrent customers over WebSocket on loopback, for a fixed time.

    python bench/webchat_load.py [--customers 50] [--seconds 30] [--think 5.0]

The service runs as ``carebot serve`` in its own process (the shipped config and intents, a
fresh SQLite file; bench/load.py); this process plays the customers. Each customer asks an FAQ
question, waits for the answer, then "types" for a random 0.5x-1.5x ``--think`` seconds before
the next one (``--think 0`` is a closed loop at full speed; bench/workers.py measures the
ceiling, the latency at 80% of it and the CPU per message, on both channels and on
PostgreSQL). Customers arrive spread over the first think period, after a short unmeasured
warm-up of the fresh service. Printed side by side: messages/s, reply latency p50/p99 and
errors, and the matcher's own cost per message measured in this run just before the load
(triage alone, no service), so the service overhead shows as a ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from load import (
    QUESTIONS,
    ROOT,
    Customer,
    LoadError,
    Service,
    WebChatCustomer,
    matcher_cost,
    service_config,
)
from measure import percentile

sys.path.insert(0, str(ROOT))


async def customer(
    make: Callable[[], Customer],
    until: float,
    think: float,
    questions: Sequence[str],
    latencies: list[float],
    errors: Counter[str],
    rng: random.Random,
) -> None:
    """One visitor: asks until ``until``, thinking between a reply and the next question."""
    # Customers arrive spread over the first think period, not all in the same millisecond.
    await asyncio.sleep(rng.uniform(0, think))
    visitor = make()
    try:
        await visitor.open()
        while time.monotonic() < until:
            started = time.perf_counter()
            reply = await visitor.ask(rng.choice(questions))
            latencies.append((reply.arrived - started) * 1000)
            if reply.handoff:
                errors["handed off instead of answered"] += 1
            if think:
                await asyncio.sleep(think * rng.uniform(0.5, 1.5))
    except LoadError as exc:
        errors[exc.kind] += 1
    finally:
        await visitor.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "config.toml")
    parser.add_argument("--customers", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument(
        "--think",
        type=float,
        default=5.0,
        help="mean seconds between a reply and the customer's next question",
    )
    args = parser.parse_args()
    # before the load, so nothing competes for the CPU
    cost = matcher_cost(args.config)
    with tempfile.TemporaryDirectory() as tmp:
        config = service_config(
            args.config,
            Path(tmp),
            database_url=f"sqlite+aiosqlite:///{tmp}/load.db",
            threads=0,  # the shipped default: every core
        )
        service = Service(config, workers=1, log=Path(tmp) / "serve.log")
        latencies: list[float] = []
        errors: Counter[str] = Counter()
        try:
            await service.start()
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
                make = lambda: WebChatCustomer(http, service.url)  # noqa: E731
                # Warm up (the model's first calls in a fresh process are slow); not measured.
                warm: Counter[str] = Counter()
                until = time.monotonic() + 3
                await customer(make, until, 0.0, cost.answered, [], warm, random.Random(1))
                rng = random.Random(7)
                started = time.monotonic()
                until = started + args.seconds
                await asyncio.gather(
                    *(
                        customer(
                            make,
                            until,
                            args.think,
                            cost.answered,
                            latencies,
                            errors,
                            random.Random(rng.random()),
                        )
                        for _ in range(args.customers)
                    )
                )
                elapsed = time.monotonic() - started
        finally:
            await service.stop()
        problems = service.problems()
    p50, p99 = statistics.median(latencies) if latencies else 0.0, percentile(latencies, 99)
    print(
        f"{args.customers} customers, {args.seconds:.0f} s, think {args.think:.1f} s, "
        f"{os.cpu_count()} CPUs; service in its own process, SQLite; "
        f"asking the {len(cost.answered)} of {len(QUESTIONS)} questions the bot answers outright"
    )
    print(f"{'':34}{'msg/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'p50 / matcher':>15}")
    print(
        f"{'service, end to end (WebSocket)':34}{len(latencies) / elapsed:>8.1f}{p50:>9.1f}"
        f"{p99:>9.1f}{sum(errors.values()):>8}{p50 / cost.p50_ms:>14.2f}x"
    )
    print(
        f"{'matcher alone, one message':34}{1000 / cost.p50_ms:>8.1f}{cost.p50_ms:>9.1f}"
        f"{'':>9}{'':>8}{1.0:>14.2f}x"
    )
    for kind, count in errors.most_common():
        print(f"  error: {kind}: {count}")
    for line in problems[:5]:
        print(f"  the service logged: {line[:160]}")
    ok = not errors and p99 < 300
    print(
        f"goal: {args.customers} customers, zero errors, p99 < 300 ms -> "
        f"{'met' if ok else 'missed'}"
    )


if __name__ == "__main__":
    asyncio.run(main())
