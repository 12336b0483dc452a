"""Chaos on three workers: kill -9, a SIGSTOP past the outbox lease, listeners terminated.

    python bench/chaos.py [--rate R] [--customers 1000] [--messages 10] [--fake-encoder]

Three ``carebot serve`` processes on PostgreSQL (each ``[server] workers = 3``, one model
thread), the Telegram stand-in in webhook mode behind a round-robin proxy, web chat customers
with a tab on two workers each, and an agent's live inbox view on every worker: the harness is
``tests/chaos_harness.py`` (``tests/test_chaos.py`` is its CI-sized run). PostgreSQL is
``--database-url`` or ``CAREBOT_TEST_DATABASE_URL`` (an admin URL: every phase gets a fresh
database of its own, dropped afterwards). The model is the shipped config's (ONNX), or the
tests' fake encoder with ``--fake-encoder``.

Phases, in one run:

1. the ceiling: a closed loop of web chat customers on the three workers (skipped with
   ``--rate``); the offered rate is half of it;
2. one worker, no faults, at the offered rate for ``--calm-seconds``;
3. three workers, no faults, the same;
4. chaos: ``--customers`` (half on Telegram, half on the web chat) x ``--messages`` at the
   offered rate; a random worker killed (SIGKILL) every 10 s and started again 2 s later, one
   worker stopped (SIGSTOP) for 70 s (past the outbox's 60 s lease), the workers' LISTEN/NOTIFY
   connections ended with pg_terminate_backend every 60 s.

Printed: the latencies side by side, then the checks of the chaos phase: inbound stored =
sent; each inbound decided once with one reply; nothing pending in the outbox; duplicate
deliveries at the Telegram stand-in, each listed with the fault that explains it; per-chat
order; web chat replies reaching the tabs open on any worker; the live inbox view on one
worker seeing messages taken by another.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from measure import percentile  # noqa: E402  (bench/measure.py)

from carebot.config import load_settings  # noqa: E402
from carebot.runtime import load_encoder  # noqa: E402
from tests.chaos_harness import (  # noqa: E402
    SHIPPED_CONFIG,
    Plan,
    Question,
    Report,
    faq_questions,
    fresh_database,
    matching_settings,
    run_chaos,
)

P99_GOAL = 1000.0  # ms: web chat replies on every open tab, inbox views on other workers
CALM_RATIO_GOAL = 1.5  # p99 of three workers without faults, over one worker's


def load() -> str:
    one, five, _fifteen = os.getloadavg()
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} CPUs"


def ms(values: list[float]) -> str:
    if not values:
        return f"{'-':>9}{'-':>9}{'-':>9}{0:>7}"
    return (
        f"{percentile(values, 50):>9.0f}{percentile(values, 99):>9.0f}{max(values):>9.0f}"
        f"{len(values):>7}"
    )


def throughput(report: Report) -> float:
    """Messages answered per second, from the first message to the last first reply."""
    if not report.replied_at:
        return 0.0
    return len(report.replied_at) / max(1e-9, max(report.replied_at) - report.started)


class Bench:
    def __init__(self, args: argparse.Namespace, questions: list[Question]) -> None:
        self.args, self.questions = args, questions
        self.cache = ROOT / ".carebot" / "bench-cache" / "chaos"

    async def phase(self, name: str, plan: Plan) -> Report:
        print(f"\n[{time.strftime('%H:%M:%S')}] {name} ({load()})", flush=True)
        async with fresh_database(self.args.database_url) as url:
            with tempfile.TemporaryDirectory(prefix="carebot-chaos-") as workdir:
                report = await run_chaos(
                    plan,
                    database_url=url,
                    workdir=Path(workdir),
                    questions=self.questions,
                    fake_encoder=self.args.fake_encoder,
                    cache_dir=self.cache,
                    say=lambda text: print(f"  {text}", flush=True),
                )
                if self.args.keep_logs:
                    keep = self.args.keep_logs / name.split(":")[0].replace(" ", "-")
                    keep.mkdir(parents=True, exist_ok=True)
                    for log in Path(workdir).glob("worker*.log"):
                        (keep / log.name).write_text(log.read_text())
        print(f"  done: {describe(report)}", flush=True)
        return report


def describe(report: Report) -> str:
    faults = Counter(f.kind for f in report.faults)
    return (
        f"{sum(report.sent.values())} sent, {throughput(report):.1f} answered/s, "
        f"{faults['kill']} kills, {faults['stop']} stops, {faults['terminate']} terminations"
        + (f"; STALLED {report.stalled}" if report.stalled else "")
    )


def calm_plan(args: argparse.Namespace, workers: int, rate: float) -> Plan:
    customers = max(2, round(rate * args.calm_seconds / args.messages))
    return Plan(
        workers=workers,
        telegram_customers=customers // 2,
        webchat_customers=customers - customers // 2,
        messages=args.messages,
        rate=rate,
        kill_every=None,
        stop_at=None,
        terminate_every=None,
        drain_timeout=120,
    )


def print_checks(report: Report) -> bool:
    """The chaos phase's checks, one line each; whether all held."""
    ok = True

    def check(what: str, held: bool, figure: str, details: list[str] | None = None) -> None:
        nonlocal ok
        ok = ok and held
        print(f"  {'ok  ' if held else 'FAIL'} {what:<58}{figure}")
        for line in (details or [])[:20]:
            print(f"         {line}")
        if details and len(details) > 20:
            print(f"         ... and {len(details) - 20} more")

    sent, stored = sum(report.sent.values()), sum(report.stored.values())
    check(
        "inbound stored = sent",
        not report.missing and not report.unexpected and stored == sent,
        f"{stored} = {sent} ({dict(report.stored)})",
        [f"lost: {m}" for m in report.missing] + [f"unexpected: {u}" for u in report.unexpected],
    )
    check(
        "every inbound decided or recorded exactly once",
        report.unhandled == 0 and report.decided + report.recorded == stored,
        f"{report.decided} decided, {report.recorded} recorded, {report.unhandled} unhandled",
    )
    check(
        "one reply per inbound message",
        not report.not_one_reply,
        f"{len(report.not_one_reply)} with 0 or 2+",
        report.not_one_reply,
    )
    check(
        "0 pending outbox rows",
        report.outbox.get("pending", 0) == 0 and report.outbox.get("failed", 0) == 0,
        f"{dict(report.outbox)}",
    )
    dups = [
        f"chat {d.chat}, {d.question!r}: "
        + ", ".join(f"+{at - report.started:.1f} s by worker {w}" for at, w in d.sends)
        + (
            f"; worker {d.fault.slot} {d.fault.kind}ed at +{d.fault.at - report.started:.1f} s"
            if d.fault
            else f"; NO fault explains it (near: {d.near})"
        )
        for d in report.duplicates
    ]
    check(
        "duplicate deliveries at the stand-in: only sends in flight at a fault",
        not report.unexplained_duplicates,
        f"{len(report.duplicates)} ({len(report.unexplained_duplicates)} unexplained)",
        dups,
    )
    check(
        "per-chat delivery order = inbound order",
        not report.out_of_order and not report.tab_out_of_order,
        f"{len(report.out_of_order)} chats out of order; "
        f"{len(report.tab_out_of_order)} web chat tabs",
        report.out_of_order + report.tab_out_of_order,
    )
    check(
        "every message answered, with its own answer",
        not report.unanswered and not report.wrong,
        f"{len(report.unanswered)} unanswered, {len(report.wrong)} wrong",
        report.unanswered + report.wrong,
    )
    fanout = report.fanout
    check(
        "web chat replies reach every open tab, any worker (p99 < 1 s)",
        percentile(fanout, 99) < P99_GOAL and not report.fanout_missed,
        f"p50 {percentile(fanout, 50):.0f} p99 {percentile(fanout, 99):.0f} ms, "
        f"{len(fanout)} pushes, {len(report.fanout_missed)} missed, "
        f"{report.fanout_excluded} on the stopped worker left out",
        report.fanout_missed + _slowest(report.fanout_slow),
    )
    live = report.live
    check(
        "inbox live view on worker A sees worker B's messages (p99 < 1 s)",
        percentile(live, 99) < P99_GOAL and not report.live_missed,
        f"p50 {percentile(live, 50):.0f} p99 {percentile(live, 99):.0f} ms, "
        f"{len(live)} events ({report.live_resync} by a resync), "
        f"{len(report.live_missed)} missed",
        report.live_missed + _slowest(report.live_slow),
    )
    check(
        "workers stopped cleanly at the end",
        all(code == 0 for code in report.exit_codes),
        f"exit codes {report.exit_codes}",
    )
    return ok


def _slowest(slow: list[tuple[float, str]], shown: int = 12) -> list[str]:
    """The slowest of the cases over 1 s, with the faults near them."""
    ranked = sorted(slow, reverse=True)
    lines = [f"{ms / 1000:.1f} s: {what}" for ms, what in ranked[:shown]]
    if len(ranked) > shown:
        lines.append(f"... and {len(ranked) - shown} more over 1 s")
    return lines


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("CAREBOT_TEST_DATABASE_URL"))
    parser.add_argument(
        "--rate", type=float, help="the measured ceiling, messages/s (default: measure it)"
    )
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=10)
    parser.add_argument("--calm-seconds", type=float, default=60.0)
    parser.add_argument("--stop-seconds", type=float, default=70.0)
    parser.add_argument("--fake-encoder", action="store_true")
    parser.add_argument("--keep-logs", type=Path, help="copy the workers' logs here")
    args = parser.parse_args()
    if not args.database_url:
        parser.error("give --database-url or set CAREBOT_TEST_DATABASE_URL (an admin URL)")

    started = time.monotonic()
    print(f"chaos bench, {time.strftime('%Y-%m-%d %H:%M')}; {load()}", flush=True)
    settings = matching_settings(
        cache_dir=ROOT / ".carebot" / "bench-cache" / "chaos", fake_encoder=args.fake_encoder
    )
    if args.fake_encoder:
        from tests.fakes import FakeEncoder

        encoder = FakeEncoder()
        model = "the tests' fake encoder"
    else:
        encoder = load_encoder(settings, export_if_missing=True)
        shipped = load_settings(SHIPPED_CONFIG).matcher
        model = f"{shipped.model} ({shipped.backend}), 1 thread per worker"
    questions = faq_questions(settings, encoder)
    print(f"model: {model}; {len(questions)} FAQ questions answered outright", flush=True)
    bench = Bench(args, questions)

    if args.rate is None:
        probe = Plan(
            telegram_customers=0,
            webchat_customers=60,
            messages=args.messages,
            closed_loop=True,
            kill_every=None,
            terminate_every=None,
            drain_timeout=120,
        )
        ceiling = throughput(await bench.phase("ceiling: closed loop, 3 workers", probe))
        source = "measured now: a closed loop of 60 web chat customers on 3 workers"
    else:
        ceiling, source = args.rate, "given with --rate"
    rate = ceiling / 2
    print(f"\nceiling {ceiling:.1f} messages/s ({source}); offered: {rate:.1f} messages/s")

    one = await bench.phase("one worker, no faults", calm_plan(args, 1, rate))
    calm = await bench.phase("three workers, no faults", calm_plan(args, 3, rate))
    chaos_plan = Plan(
        telegram_customers=args.customers // 2,
        webchat_customers=args.customers - args.customers // 2,
        messages=args.messages,
        rate=rate,
        kill_every=10.0,
        restart_after=2.0,
        stop_at=30.0,
        stop_seconds=args.stop_seconds,
        terminate_every=60.0,
        drain_timeout=300.0,
    )
    chaos = await bench.phase("chaos: three workers, faults", chaos_plan)

    print(f"\n== results ({load()}; {time.monotonic() - started:.0f} s in all)")
    print(f"offered {rate:.1f} messages/s = half of the ceiling {ceiling:.1f} ({source})")
    faults = Counter(f.kind for f in chaos.faults)
    terminated = [f.detail for f in chaos.faults if f.kind == "terminate"]
    print(
        f"faults: {faults['kill']} x kill -9 (restarted after 2 s), {faults['stop']} x SIGSTOP "
        f"for {args.stop_seconds:.0f} s, {faults['terminate']} x pg_terminate_backend of the "
        f"listeners ({', '.join(terminated)})"
    )
    print("\nreply latency, ms (customer's message -> its reply at the customer)")
    print(f"{'':44}{'p50':>9}{'p99':>9}{'max':>9}{'n':>7}")
    rows = [
        ("one worker, no faults", one.latency),
        ("three workers, no faults", calm.latency),
        ("three workers, chaos: all", chaos.latency),
        ("three workers, chaos: no fault in the span", chaos.calm_latency),
    ]
    for name, latency in rows:
        for channel in ("telegram", "webchat"):
            print(f"{name + ', ' + channel:44}{ms(latency.get(channel, []))}")
    one_p99 = percentile([v for vs in one.latency.values() for v in vs], 99)
    calm_p99 = percentile([v for vs in calm.latency.values() for v in vs], 99)
    ratio = calm_p99 / one_p99 if one_p99 else float("inf")
    for name, report in (("one worker", one), ("three workers", calm)):
        slowest = sorted(report.timeline, reverse=True)[:10]
        print(
            f"slowest without faults, {name} (ms at seconds into the load): "
            + ", ".join(f"{ms:.0f} at {at:.1f} s ({channel})" for ms, at, channel in slowest)
        )
    print(
        f"p99 without faults, three workers / one: {calm_p99:.0f} / {one_p99:.0f} ms = "
        f"{ratio:.2f}x (goal <= {CALM_RATIO_GOAL}x): "
        + ("met" if ratio <= CALM_RATIO_GOAL else "missed")
    )
    print(
        f"drain after the last fault: {chaos.quiet_at - chaos.load_ended:.0f} s; webhook attempts "
        f"{chaos.webhook_attempts} (failed: {dict(chaos.webhook_failures)}); proxy answers "
        f"{dict(chaos.proxy)} ({chaos.proxy_skipped} refused connections passed to the next "
        f"worker); web chat sends {chaos.webchat_attempts} for "
        f"{chaos.sent['webchat']} messages"
    )
    print(f"workers said: {dict(chaos.worker_lines)}")
    print("\nchecks (chaos phase):")
    held = print_checks(chaos) and ratio <= CALM_RATIO_GOAL
    return 0 if held else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
