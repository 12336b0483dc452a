"""Matching throughput: one message per model call vs micro-batched, same messages, same results.

    python bench/throughput.py [--config config.toml] [--concurrency 64] [--messages 512]
                               [--rounds 3]

``--concurrency`` customers send their messages at the same time through the inbox's
:class:`carebot.nlu.batching.MatchQueue`; "one by one" is the same queue with ``max_batch=1``. Both
runs match the same messages, and the script checks they give the same intents and scores
(within 1e-5: padding a batch changes the float sums by ~3e-7).
Prints messages per second (median of the rounds) and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from latency import MESSAGES  # noqa: E402  (bench/latency.py)

from carebot.config import load_settings  # noqa: E402
from carebot.nlu.batching import Batched, MatchQueue  # noqa: E402
from carebot.nlu.matcher import Matcher  # noqa: E402
from carebot.runtime import build_triage, load_encoder  # noqa: E402


async def run(
    matcher: Matcher, texts: list[str], concurrency: int, max_batch: int
) -> tuple[float, list[Batched]]:
    """Messages per second with ``concurrency`` senders, and every message's match."""
    queue = MatchQueue(lambda: matcher, max_batch=max_batch)
    results: list[Batched | None] = [None] * len(texts)

    async def sender(first: int) -> None:
        for index in range(first, len(texts), concurrency):
            results[index] = await queue.match(texts[index])

    started = time.perf_counter()
    await asyncio.gather(*(sender(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - started
    queue.close()
    done = [r for r in results if r is not None]
    assert len(done) == len(texts)
    return len(texts) / elapsed, done


def same_results(a: list[Batched], b: list[Batched]) -> bool:
    return all(
        _intent(x) == _intent(y) and abs(x.match.score - y.match.score) < 1e-5
        for x, y in zip(a, b, strict=True)
    )


def _intent(result: Batched) -> str | None:
    return result.match.best.intent if result.match.best else None


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "config.toml"))
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--messages", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-batch", type=int, default=64)
    args = parser.parse_args()
    settings = load_settings(args.config)
    matcher = build_triage(settings, load_encoder(settings)).matcher
    # Distinct texts (a suffix per copy), so no cache can help either side.
    texts = [f"{MESSAGES[i % len(MESSAGES)]} #{i}" for i in range(args.messages)]
    await run(matcher, texts[:64], args.concurrency, 32)  # warm up the model
    single, batched = [], []
    for _ in range(args.rounds):
        rate_one, one = await run(matcher, texts, args.concurrency, 1)
        rate_many, many = await run(matcher, texts, args.concurrency, args.max_batch)
        if not same_results(one, many):
            raise SystemExit("micro-batched matches differ from one-by-one matches")
        single.append(rate_one)
        batched.append(rate_many)
    sizes = [r.batch for r in many]
    one_by_one, micro = statistics.median(single), statistics.median(batched)
    print(
        f"{args.messages} messages, {args.concurrency} concurrent senders, "
        f"median of {args.rounds} rounds; results identical: yes"
    )
    print(f"{'mode':<26}{'messages/s':>12}{'ratio':>8}{'mean batch':>12}")
    print(f"{'one by one (max_batch=1)':<26}{one_by_one:>12.1f}{1.0:>8.2f}{1.0:>12.1f}")
    print(
        f"{f'micro-batched (max {args.max_batch})':<26}{micro:>12.1f}{micro / one_by_one:>8.2f}"
        f"{statistics.mean(sizes):>12.1f}"
    )


if __name__ == "__main__":
    asyncio.run(main())
