"""Load on the web chat: N concurrent customers over WebSocket on loopback, for a fixed time.

    python bench/webchat_load.py [--customers 50] [--seconds 30] [--think 5.0]

The service runs in its own process (``carebot serve`` code, the shipped config and intents, a
fresh SQLite file); this process plays the customers. Each customer asks an FAQ question,
waits for the answer, then "types" for a random 0.5x-1.5x ``--think`` seconds before the next
one (``--think 0`` is a closed loop at full speed, to find the ceiling). Customers arrive
spread over the first think period, after a short unmeasured warm-up of the fresh service.
Printed side by side: messages/s, reply latency p50/p99 and errors, and the matcher's own cost
per message measured in this run just before the load (triage alone, no service), so the
service overhead shows as a ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import socket
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from measure import percentile  # noqa: E402  (bench/measure.py)

from carebot.clock import utcnow  # noqa: E402
from carebot.config import Settings, load_settings  # noqa: E402
from carebot.models import DecisionKind  # noqa: E402
from carebot.triage import TriageContext  # noqa: E402

QUESTIONS = [
    "where is my order?",
    "do you take Apple Pay",
    "what's your phone number",
    "how much is shipping",
    "I forgot my password",
    "what is your return policy",
    "can I pay with PayPal",
    "do you ship to Austria",
    "how long does delivery take",
    "my discount code doesn't work",
    "do you sell gift cards",
    "how do I cancel my order",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_service(settings: Settings, port: int) -> None:
    from carebot.server import serve

    with open(os.devnull, "w") as quiet:
        asyncio.run(serve(settings, host="127.0.0.1", port=port, out=quiet))


async def wait_ready(base: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            try:
                async with http.get(f"{base}/readyz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise SystemExit("the service did not become ready")


async def customer(
    base: str,
    until: float,
    think: float,
    questions: list[str],
    results: dict[str, list[float]],
    rng: random.Random,
) -> None:
    # Customers arrive spread over the first think period, not all in the same millisecond.
    await asyncio.sleep(rng.uniform(0, think))
    async with aiohttp.ClientSession() as http:
        try:
            ws = await http.ws_connect(f"{base}/chat/ws")
        except aiohttp.ClientError:
            results["errors"].append(1)
            return
        await ws.send_json({"type": "hello", "token": None})
        await ws.receive_json(timeout=10)
        while time.monotonic() < until:
            started = time.perf_counter()
            await ws.send_json(
                {"type": "message", "id": str(uuid.uuid4()), "text": rng.choice(questions)}
            )
            try:
                while True:
                    frame = await ws.receive_json(timeout=10)
                    if frame["type"] == "error":
                        results["errors"].append(1)
                        break
                    if frame["type"] == "message" and frame["author"] == "bot":
                        results["latency"].append((time.perf_counter() - started) * 1000)
                        break
            except (TimeoutError, aiohttp.ClientError, TypeError):
                results["errors"].append(1)
                return
            if think:
                await asyncio.sleep(think * rng.uniform(0.5, 1.5))
        await ws.close()


def matcher_cost(settings: Settings) -> tuple[float, list[str]]:
    """Triage alone, one message at a time (p50 ms); and the questions it answers outright."""
    from carebot.runtime import build_triage, load_encoder

    triage = build_triage(settings, load_encoder(settings))
    context = TriageContext(now=utcnow())
    answered = [q for q in QUESTIONS if triage.decide(q, context).kind is DecisionKind.ANSWER]
    times = []
    for _ in range(5):
        for question in QUESTIONS:
            start = time.perf_counter()
            triage.decide(question, context)
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), answered


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
    shipped = load_settings(args.config)
    cost, answered = matcher_cost(shipped)  # before the load, so nothing competes for the CPU
    with tempfile.TemporaryDirectory() as tmp:
        settings = shipped.model_copy(
            update={
                "store": shipped.store.model_copy(
                    update={"url": f"sqlite+aiosqlite:///{tmp}/load.db", "url_env": "UNSET_BENCH"}
                ),
                "webchat": shipped.webchat.model_copy(update={"messages_per_minute": 10**6}),
                "server": shipped.server.model_copy(update={"secret_file": f"{tmp}/secret"}),
                "matcher": shipped.matcher.model_copy(
                    update={
                        "intents_dir": str(shipped.path(shipped.matcher.intents_dir)),
                        "cache_dir": str(shipped.path(shipped.matcher.cache_dir)),
                    }
                ),
            }
        )
        port = free_port()
        server = multiprocessing.get_context("spawn").Process(
            target=run_service, args=(settings, port), daemon=True
        )
        server.start()
        base = f"http://127.0.0.1:{port}"
        try:
            await wait_ready(base)
            # Warm up (the model's first calls in a fresh process are slow); not measured.
            warm: dict[str, list[float]] = {"latency": [], "errors": []}
            await customer(base, time.monotonic() + 3, 0.0, answered, warm, random.Random(1))
            results: dict[str, list[float]] = {"latency": [], "errors": []}
            rng = random.Random(7)
            started = time.monotonic()
            until = started + args.seconds
            await asyncio.gather(
                *(
                    customer(
                        base, until, args.think, answered, results, random.Random(rng.random())
                    )
                    for _ in range(args.customers)
                )
            )
            elapsed = time.monotonic() - started
        finally:
            server.terminate()
            server.join(timeout=30)
    latency = results["latency"]
    p50, p99 = statistics.median(latency) if latency else 0.0, percentile(latency, 99)
    print(
        f"{args.customers} customers, {args.seconds:.0f} s, think {args.think:.1f} s, "
        f"{os.cpu_count()} CPUs; service in its own process, SQLite; "
        f"asking the {len(answered)} of {len(QUESTIONS)} questions the bot answers outright"
    )
    print(f"{'':34}{'msg/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'p50 / matcher':>15}")
    print(
        f"{'service, end to end (WebSocket)':34}{len(latency) / elapsed:>8.1f}{p50:>9.1f}"
        f"{p99:>9.1f}{len(results['errors']):>8}{p50 / cost:>14.2f}x"
    )
    print(
        f"{'matcher alone, one message':34}{1000 / cost:>8.1f}{cost:>9.1f}{'':>9}{'':>8}"
        f"{1.0:>14.2f}x"
    )
    ok = not results["errors"] and p99 < 300
    print(
        f"goal: {args.customers} customers, zero errors, p99 < 300 ms -> "
        f"{'met' if ok else 'missed'}"
    )


if __name__ == "__main__":
    asyncio.run(main())
