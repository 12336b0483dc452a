"""Per-message latency: raw encode vs triage vs the whole inbox, from one run.

    python bench/latency.py [--config config.toml] [--rounds 5] [--backend onnx|torch]

Prints p50/p99 in milliseconds for: encoding one message with the model alone (the floor),
triage (encode + match + emotion + rules), and the inbox (triage plus storing the message, the
decision and the reply in SQLite). The ratios to the raw encode show the pipeline's overhead;
the goals: triage p50 within 1.5x of the raw encode p50, and the inbox p50 within 2x of triage.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from measure import Sink, percentile  # noqa: E402  (bench/measure.py)

from carebot.clock import utcnow  # noqa: E402
from carebot.config import load_settings  # noqa: E402
from carebot.models import InboundMessage  # noqa: E402
from carebot.runtime import build_runtime, load_encoder  # noqa: E402
from carebot.triage import TriageContext  # noqa: E402

MESSAGES = [
    "where is my order?",
    "hi there",
    "my parcel still hasn't arrived",
    "how long does delivery take",
    "do you ship to Switzerland",
    "I want to return a jacket",
    "when will I get my refund",
    "can I pay with PayPal",
    "my card was declined",
    "I need an invoice for my company",
    "the discount code doesn't work",
    "I forgot my password",
    "what are your opening hours",
    "the shoes came damaged",
    "you sent me the wrong size",
    "can I change my delivery address",
    "cancel my order please",
    "how do I delete my account",
    "I want to talk to a person",
    "thanks, that's all",
    "is the blue sweater back in stock",
    "which size should I take",
    "can I exchange for a bigger size",
    "how much is shipping",
    "do you have gift cards",
    "I am furious, nobody answers my emails!!!",
    "what's the weather like tomorrow",
    "bye",
    "my package is missing an item",
    "how can I unsubscribe from the newsletter",
]


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "config.toml")
    parser.add_argument("--rounds", type=int, default=5, help="passes over the messages")
    parser.add_argument(
        "--backend", choices=("onnx", "torch"), help="default: [matcher] backend of the config"
    )
    args = parser.parse_args()
    settings = load_settings(args.config)
    if args.backend:
        matcher = settings.matcher.model_copy(update={"backend": args.backend})
        settings = settings.model_copy(update={"matcher": matcher})
    encoder = load_encoder(settings, export_if_missing=True)
    with tempfile.TemporaryDirectory() as tmp:
        runtime = await build_runtime(
            settings,
            encoder=encoder,
            channels={"bench": Sink()},
            database_url=f"sqlite+aiosqlite:///{tmp}/bench.db",
        )
        triage = runtime.triage
        context = TriageContext(now=utcnow())
        for text in MESSAGES:  # warm up every path once
            encoder.encode([text])
            triage.decide(text, context)
        encode, decide, inbox = [], [], []
        for round_ in range(args.rounds):
            for i, text in enumerate(MESSAGES):
                encode.append(timed(lambda t=text: encoder.encode([t])))
                decide.append(timed(lambda t=text: triage.decide(t, context)))
                message = InboundMessage(
                    "bench", f"user-{round_}-{i}", f"m-{round_}-{i}", text, utcnow()
                )
                start = time.perf_counter()
                await runtime.inbox.receive(message)
                inbox.append((time.perf_counter() - start) * 1000)
        await runtime.db.close()
    base = statistics.median(encode)
    print(
        f"{len(encode)} messages ({len(MESSAGES)} distinct x {args.rounds}), "
        f"{len(runtime.triage.matcher.intents)} intents, model {settings.matcher.model}, "
        f"backend {settings.matcher.backend}"
    )
    print(f"{'path':<44}{'p50 ms':>9}{'p99 ms':>9}{'p50 / encode':>14}")
    for name, values in [
        ("raw encode, one message (baseline)", encode),
        ("triage: encode + match + emotion + rules", decide),
        ("inbox: triage + SQLite store + outbox", inbox),
    ]:
        p50 = statistics.median(values)
        print(f"{name:<44}{p50:>9.2f}{percentile(values, 99):>9.2f}{p50 / base:>13.2f}x")
    ratio = statistics.median(decide) / base
    print(
        f"goal: triage p50 within 1.5x of raw encode -> {ratio:.2f}x "
        f"({'met' if ratio <= 1.5 else 'missed'})"
    )
    store = statistics.median(inbox) / statistics.median(decide)
    print(
        f"goal: inbox p50 within 2x of triage (the store's work per message) -> {store:.2f}x "
        f"({'met' if store <= 2.0 else 'missed'})"
    )


if __name__ == "__main__":
    asyncio.run(main())
