"""The service under load through the signed webhook and the web chat: one worker on SQLite,
one and two workers on PostgreSQL, side by side from one run.

    python bench/workers.py [--seconds 20] [--configs sqlite,pg1,pg2]
                            [--channels webhook,webchat] [--customers 32]

Each configuration runs ``carebot serve [--workers N]`` as a command, on the shipped config
and intents with the real model (ONNX), a fresh store (a SQLite file, or a PostgreSQL database
created for it, migrated with ``carebot db upgrade`` and dropped afterwards) and the webhook
channel on, its replies going to a receiver in this process. This process plays the
customers; each asks FAQ questions the bot answers, one at a time, 5 per customer before a new
customer takes its place. For each configuration and channel it measures, after a warm-up:

* the ceiling: replies/s in closed loops of ``--customers`` customers and of half as many,
  each asking again as soon as its reply came; the higher of the two is the ceiling, and
  about the same rate for both shows that the service, not the load, set it;
* p50/p99 reply latency at 80% of that ceiling: questions offered at a fixed rate (an open
  loop), each latency counted from the moment its question was due;
* CPU time per message: utime + stime (``/proc``) of the ``carebot serve`` process tree
  (supervisor and workers; its event loops' share apart) and of PostgreSQL's processes for
  the run's database, over the ceiling's window, divided by the replies in it; the load
  generator's own CPU beside it, not counted, and the rest of the machine's (other people's
  work, which makes a run noisy).

Printed beside them, from the same run: the matcher's own triage cost per message (this
process, one message at a time), so the ratio service / model shows; the issue's goals with
the measured figures; and a projection of N workers on M cores from the CPU time per message.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from load import (
    QUESTIONS,
    QUESTIONS_PER_CUSTOMER,
    ROOT,
    CpuMeter,
    Customer,
    MatcherCost,
    ReplyReceiver,
    Service,
    WebChatCustomer,
    WebhookCustomer,
    Window,
    carebot_command,
    closed_loop,
    matcher_cost,
    open_loop,
    service_config,
    service_env,
)

sys.path.insert(0, str(ROOT))


@dataclass(frozen=True, slots=True)
class Setup:
    name: str
    store: str  # "sqlite" or "postgresql"
    workers: int

    @property
    def label(self) -> str:
        return f"{self.workers} worker{'s' * (self.workers > 1)}, {self.store_name}"

    @property
    def store_name(self) -> str:
        return "SQLite" if self.store == "sqlite" else "PostgreSQL"


SETUPS = {
    "sqlite": Setup("sqlite", "sqlite", 1),
    "pg1": Setup("pg1", "postgresql", 1),
    "pg2": Setup("pg2", "postgresql", 2),
}
CHANNELS = ("webhook", "webchat")
LOAD_SHARE = 0.8  # the open loop offers this share of the measured ceiling
IDLE_SECONDS = 5.0  # the service's CPU with no load is measured this long after it started


@dataclass
class Measured:
    setup: Setup
    channel: str
    customers: int
    half: Window  # closed loop, half the customers
    full: Window  # closed loop, all the customers
    loaded: Window  # open loop at LOAD_SHARE x the ceiling
    offered: float  # questions/s offered in the open loop
    unexpected: int = 0  # webhook replies nobody waited for (duplicates, or after a timeout)

    @property
    def ceiling(self) -> Window:
        """The closed loop that replied more: the ceiling is the best the service did."""
        return self.full if self.full.rate >= self.half.rate else self.half

    @property
    def ceiling_customers(self) -> int:
        return self.customers if self.ceiling is self.full else half(self.customers)

    @property
    def saturated(self) -> bool:
        """Twice the customers did not get 10% more replies: the service, not the load,
        set the ceiling."""
        return self.full.rate <= 1.1 * self.half.rate

    @property
    def errors(self) -> int:
        windows = (self.half, self.full, self.loaded)
        return sum(sum(w.errors.values()) for w in windows) + self.unexpected

    @property
    def keeps_up(self) -> bool:
        """The open loop's replies kept pace with its questions (else its latency measures a
        growing queue: the offered load was above what the service did in that window)."""
        return self.loaded.rate >= 0.95 * self.offered

    @property
    def cpu_ms(self) -> tuple[float, float, float, float]:
        """Per message in the ceiling's window (ms): carebot, the part of it on the workers'
        event loops, PostgreSQL, the load generator."""
        cpu, replies = self.ceiling.cpu, max(1, self.ceiling.replies)
        assert cpu is not None
        carebot, loops, postgres, load = (
            1000 * seconds / replies for seconds in (cpu.service, cpu.loops, cpu.postgres, cpu.load)
        )
        return carebot, loops, postgres, load

    @property
    def service_ms(self) -> float:
        carebot, _, postgres, _ = self.cpu_ms
        return carebot + postgres

    @property
    def worker_limit(self) -> float:
        """The replies/s one worker can give: its event loop (one thread) on a core of its own,
        from the loop's CPU per message; a worker cannot go past it, whatever the cores."""
        return 1000 / self.cpu_ms[1]


async def create_database(admin: str, name: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(admin)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


async def drop_database(admin: str, name: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(admin)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


def half(customers: int) -> int:
    return max(1, customers // 2)


def database_url(admin: str, name: str) -> str:
    """``admin`` (a postgresql:// URL) pointed at database ``name``, for SQLAlchemy + asyncpg."""
    base = admin.rsplit("/", 1)[0]
    return f"{base.replace('postgresql://', 'postgresql+asyncpg://', 1)}/{name}"


async def measure_channel(
    setup: Setup,
    channel: str,
    service: Service,
    meter: CpuMeter,
    receiver: ReplyReceiver,
    questions: list[str],
    args: argparse.Namespace,
) -> Measured:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        make: Callable[[], Customer]
        if channel == "webchat":
            make = lambda: WebChatCustomer(http, service.url)  # noqa: E731
        else:
            make = lambda: WebhookCustomer(http, service.url, receiver)  # noqa: E731
        unexpected = receiver.unexpected
        timing = {"warmup": args.warmup, "seconds": args.seconds}
        closed = [
            await closed_loop(make, customers=n, questions=questions, meter=meter, **timing)
            for n in (half(args.customers), args.customers)
        ]
        offered = LOAD_SHARE * max(w.rate for w in closed)
        loaded = await open_loop(make, rate=offered, questions=questions, meter=meter, **timing)
    measured = Measured(setup, channel, args.customers, closed[0], closed[1], loaded, offered)
    measured.unexpected = receiver.unexpected - unexpected
    say(
        f"  {channel}: closed loop {closed[0].rate:.1f} msg/s with {half(args.customers)} "
        f"customers, {closed[1].rate:.1f} with {args.customers}; at {offered:.1f} msg/s offered "
        f"p50 {loaded.p(50):.0f} ms, p99 {loaded.p(99):.0f} ms; errors {measured.errors}"
    )
    return measured


@dataclass
class SetupRun:
    """One configuration's run: its figures per channel, the CPU it used idle (before any
    load), and what its output said that was a warning or an error (or an unclean exit)."""

    setup: Setup
    measured: list[Measured]
    idle: Window
    problems: list[str]


async def idle(meter: CpuMeter, seconds: float) -> Window:
    """The CPU the service uses with nothing to do (pollers, leases, pings)."""
    before = meter.snapshot()
    await asyncio.sleep(seconds)
    after = meter.snapshot()
    return Window(seconds=after.at - before.at, cpu=CpuMeter.used(before, after))


async def run_setup(
    setup: Setup,
    args: argparse.Namespace,
    receiver: ReplyReceiver,
    questions: list[str],
    agent_hash: str,
    folder: Path,
) -> SetupRun:
    """Start ``setup``, measure it idle and under each channel's load, stop it."""
    work = folder / setup.name
    work.mkdir()
    database = None
    if setup.store == "sqlite":
        url = f"sqlite+aiosqlite:///{work}/carebot.db"
    else:
        database = f"carebot_bench_{os.getpid()}_{setup.name}"
        await create_database(args.postgres, database)
        url = database_url(args.postgres, database)
    threads = args.threads
    config = service_config(
        args.config,
        work,
        database_url=url,
        threads=threads,
        reply_url=receiver.url,
        agent_hash=agent_hash,
    )
    service = Service(config, workers=setup.workers, log=work / "serve.log")
    results: list[Measured] = []
    quiet = Window()
    try:
        if database is not None:
            subprocess.run(
                carebot_command(config, "db", "upgrade"),
                check=True,
                env=service_env(),
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
            )
        say(f"{setup.label}, {threads} model thread(s) per worker: starting")
        await service.start()
        meter = CpuMeter(service.pid, database)
        quiet = await idle(meter, IDLE_SECONDS)
        for channel in args.channels:
            results.append(
                await measure_channel(setup, channel, service, meter, receiver, questions, args)
            )
    finally:
        await service.stop()
        if database is not None:
            await drop_database(args.postgres, database)
    return SetupRun(setup, results, quiet, service.problems())


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def mark(ok: bool) -> str:
    return "✓" if ok else "✗"


def report(
    runs: list[SetupRun],
    baseline: MatcherCost,
    asked_of: int,
    args: argparse.Namespace,
    started: float,
) -> None:
    results = [m for run in runs for m in run.measured]
    load1, load5, _ = os.getloadavg()
    print(
        f"{os.cpu_count()} CPUs, shared by the service (`carebot serve` processes), PostgreSQL "
        f"and this load generator. Windows of {args.seconds:.0f} s, each after a {args.warmup:.0f} "
        f"s warm-up; closed loops of N = {args.customers} and N/2 = {half(args.customers)} "
        f"customers; {args.threads} model thread(s) per worker; the {len(baseline.answered)} of "
        f"{asked_of} FAQ questions the bot answers outright, {QUESTIONS_PER_CUSTOMER} per "
        "customer. "
        f"Load average at the end {load1:.2f} / {load5:.2f} (1 / 5 min); whole run "
        f"{time.monotonic() - started:.0f} s."
    )
    print(
        f"Baseline, same run: the matcher's triage of one message, alone in this process on "
        f"{args.threads} thread(s): p50 {baseline.p50_ms:.2f} ms, CPU {baseline.cpu_ms:.2f} ms "
        f"per message."
    )
    print()
    print("Throughput (replies/s) and reply latency at 80% of the ceiling")
    print(
        f"{'configuration':<24}{'channel':<9}{'N/2':>7}{'N':>7}{'ceiling':>9}{'offered':>9}"
        f"{'achieved':>9}{'p50 ms':>8}{'p99 ms':>8}{'peak':>6}{'new':>9}{'errors':>7}{'others':>8}"
    )
    for m in results:
        achieved = f"{m.loaded.rate:.1f}" + (" " if m.keeps_up else "!")
        print(
            f"{m.setup.label:<24}{m.channel:<9}{m.half.rate:>7.1f}{m.full.rate:>7.1f}"
            f"{m.ceiling.rate:>8.1f}{' ' if m.saturated else '?'}{m.offered:>9.1f}"
            f"{achieved:>9}{m.loaded.p(50):>8.0f}{m.loaded.p(99):>8.0f}{m.loaded.peak:>6}"
            f"{m.ceiling.first_share:>5.0%}/{m.loaded.first_share:.0%}{m.errors:>7}"
            f"{m.ceiling.others:>4.1f}/{m.loaded.others:.1f}"
        )
    print(
        "  N/2, N: closed loops with that many customers; ceiling: the higher of the two (? : N "
        "got over 10% more than N/2, so the load may not have saturated the service: raise "
        "--customers). offered: 80% of the ceiling, in an open loop; achieved: its replies/s "
        "(! : below 95% of offered: the service fell behind, and the latency measures a queue); "
        "p50/p99 from each question's due time to its reply; peak: the most questions in "
        "flight at once in the open loop; new: the share of questions that were a new "
        "customer's first, at the ceiling / in the open loop (the open loop never waits: with "
        "every customer waiting for a reply, the next question comes from a new customer). "
        "errors: questions without a "
        "reply or answered by a handoff, and unexpected replies, over all three loops. others: "
        "cores busy with other work on the machine in the ceiling's window / the open loop's "
        "(on a quiet machine both are near 0)."
    )
    print()
    print("CPU time per message (ms, in the ceiling's window; service = carebot + PostgreSQL)")
    print(
        f"{'configuration':<24}{'channel':<9}{'carebot':>8}{'(loop)':>7}{'postgres':>9}"
        f"{'service':>8}{'/triage':>8}{'at 80%':>7}{'loadgen':>8}{'others':>8}"
    )
    for m in results:
        carebot, loops, postgres, loadgen = m.cpu_ms
        cpu, at80 = m.ceiling.cpu, m.loaded.cpu
        assert cpu is not None and at80 is not None
        at80_ms = 1000 * (at80.service + at80.postgres) / max(1, m.loaded.replies)
        at80_cell = f"{at80_ms:>7.2f}" if m.keeps_up else f"{'-':>7}"
        pg = f"{postgres:>9.2f}" if m.setup.store != "sqlite" else f"{'-':>9}"
        print(
            f"{m.setup.label:<24}{m.channel:<9}{carebot:>8.2f}{loops:>7.2f}{pg}"
            f"{m.service_ms:>8.2f}"
            f"{m.service_ms / baseline.cpu_ms:>7.1f}x{at80_cell}{loadgen:>8.2f}"
            f"{m.ceiling.others:>7.2f}c"
        )
    print(
        "  carebot: the `carebot serve` process tree (supervisor and workers); (loop): the part "
        "of it on the processes' main threads, where each worker's asyncio loop runs (the model "
        "and SQLite run on threads of their own); postgres: its server processes for the run's "
        "database and its shared background processes. "
        "/triage: service over the matcher's triage CPU per message. at 80%: the service's CPU "
        "per message in the open loop (- when it fell behind: the questions stored but not yet "
        "answered at the window's end cost CPU too, so the figure would overstate). loadgen: "
        "this process (not counted). others: cores busy with other work on the machine "
        "meanwhile (noise)."
    )
    for m in results:
        lost = m.half.errors + m.full.errors + m.loaded.errors
        if lost or m.unexpected:
            what = ", ".join(f"{kind}: {count}" for kind, count in lost.most_common())
            extra = f", unexpected replies: {m.unexpected}" if m.unexpected else ""
            print(f"  {m.setup.label}, {m.channel}: {what}{extra}")
        for window in (m.half, m.full, m.loaded):
            if window.cpu is not None and window.cpu.ended:
                print(
                    f"  {m.setup.label}, {m.channel}: {window.cpu.ended} process(es) ended during "
                    "a window; their CPU in it is not counted"
                )
    for run in runs:
        cpu = run.idle.cpu
        if cpu is not None and run.idle.seconds:
            seconds = run.idle.seconds
            pg = f", PostgreSQL {cpu.postgres / seconds:.3f}" if run.setup.store != "sqlite" else ""
            print(
                f"  {run.setup.label}, idle ({seconds:.0f} s after the start, no load): "
                f"carebot {cpu.service / seconds:.3f} cores{pg}"
            )
        if run.problems:
            print(
                f"  {run.setup.label}: the service logged {len(run.problems)} warning(s)/error(s):"
            )
            for line in run.problems[:5]:
                print(f"    {line[:160]}")
    goals(results)
    projection(results)


def find(results: list[Measured], setup: str, channel: str) -> Measured | None:
    return next((m for m in results if m.setup.name == setup and m.channel == channel), None)


def goals(results: list[Measured]) -> None:
    print()
    print("Goals (issue 19)")
    for channel in CHANNELS:
        sqlite, pg1, pg2 = (find(results, name, channel) for name in ("sqlite", "pg1", "pg2"))
        if sqlite is not None:
            ok = sqlite.ceiling.rate >= 200
            print(
                f"  {mark(ok)} {channel}: closed-loop ceiling >= 200 msg/s, one worker on SQLite: "
                f"{sqlite.ceiling.rate:.1f}"
            )
        if sqlite is not None and pg1 is not None:
            ratio = pg1.service_ms / sqlite.service_ms
            print(
                f"  {mark(ratio <= 1.3)} {channel}: CPU per message on PostgreSQL within 1.3x of "
                f"SQLite: {pg1.service_ms:.2f} / {sqlite.service_ms:.2f} ms = {ratio:.3f}x"
            )
        if pg1 is not None and pg2 is not None:
            ratio = pg2.ceiling.rate / pg1.ceiling.rate
            print(
                f"  {mark(ratio >= 1.0)} {channel}: two workers on these cores keep one worker's "
                f"ceiling (PostgreSQL): {pg2.ceiling.rate:.1f} vs {pg1.ceiling.rate:.1f} msg/s "
                f"= {ratio:.3f}x"
            )


def projection(results: list[Measured]) -> None:
    """messages/s of N workers on M cores ~ min(M / CPU-seconds per message, N x what one
    worker can give), one worker per core, PostgreSQL's CPU on the same cores."""
    rows: list[tuple[str, Measured, Measured]] = []
    for channel in CHANNELS:
        one = find(results, "pg1", channel)
        cpu_from = find(results, "pg2", channel) or one
        if one is not None and cpu_from is not None:
            rows.append((channel, one, cpu_from))
    if not rows:
        return
    print()
    print(
        "Projection on PostgreSQL: N workers on M cores give about min(M / service CPU per "
        "message, N x one worker's limit) messages/s"
    )
    for channel, one, cpu_from in rows:
        print(
            f"  {channel}: service CPU {cpu_from.service_ms:.2f} ms per message and event loop "
            f"{cpu_from.cpu_ms[1]:.2f} ms ({cpu_from.setup.label}): one worker's limit "
            f"{cpu_from.worker_limit:.0f} msg/s (measured here with one worker: "
            f"{one.ceiling.rate:.1f})"
        )
    counts = (1, 2, 4, 8)
    for channel, _one, cpu_from in rows:
        print(f"  {channel}, msg/s:  " + "".join(f"{f'{n} worker(s)':>13}" for n in counts))
        for cores in counts:
            cells = [
                min(1000 * cores / cpu_from.service_ms, workers * cpu_from.worker_limit)
                for workers in counts
            ]
            print(f"  {f'{cores} core(s)':<17}" + "".join(f"{cell:>13.0f}" for cell in cells))
    print(
        "  One worker's limit: its event loop is one thread, so a worker gives at most 1 / "
        "(loop CPU per message) however many cores there are; below it, the cores bound. "
        "Assumes PostgreSQL's work per message stays what it was here with more workers (no "
        "lock waits), on the same cores, and the load generator elsewhere."
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "config.toml")
    parser.add_argument("--seconds", type=float, default=20.0, help="each measured window")
    parser.add_argument("--warmup", type=float, default=3.0, help="before each window")
    parser.add_argument(
        "--configs",
        default="sqlite,pg1,pg2",
        help="which of sqlite (one worker), pg1 (one worker on PostgreSQL), pg2 (two workers)",
    )
    parser.add_argument("--channels", default=",".join(CHANNELS), help="webhook, webchat")
    parser.add_argument(
        "--customers", type=int, default=32, help="concurrent customers in the closed loop"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="[matcher] threads of each worker, and of the baseline (default 1: a second "
        "onnxruntime thread spins on a core that PostgreSQL and the load need)",
    )
    parser.add_argument(
        "--postgres",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="a PostgreSQL URL allowed to create and drop databases",
    )
    args = parser.parse_args()
    names = [n.strip() for n in args.configs.split(",") if n.strip()]
    args.channels = [c.strip() for c in args.channels.split(",") if c.strip()]
    for name in names:
        if name not in SETUPS:
            parser.error(f"--configs: unknown {name!r}; choose from {', '.join(SETUPS)}")
    for channel in args.channels:
        if channel not in CHANNELS:
            parser.error(f"--channels: unknown {channel!r}; choose from {', '.join(CHANNELS)}")
    started = time.monotonic()
    from carebot.desk.auth import hash_password

    say("Timing the matcher alone (the baseline)...")
    baseline = matcher_cost(args.config, threads=args.threads)
    agent_hash = hash_password("bench-agent-password")
    receiver = ReplyReceiver()
    await receiver.start()
    runs: list[SetupRun] = []
    try:
        with tempfile.TemporaryDirectory(prefix="carebot-workers-") as tmp:
            for name in names:
                runs.append(
                    await run_setup(
                        SETUPS[name], args, receiver, baseline.answered, agent_hash, Path(tmp)
                    )
                )
    finally:
        await receiver.stop()
    report(runs, baseline, len(QUESTIONS), args, started)
    if receiver.bad_signatures:
        print(f"  {receiver.bad_signatures} webhook replies had a bad signature (refused)")


if __name__ == "__main__":
    asyncio.run(main())
