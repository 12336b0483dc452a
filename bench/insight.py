"""How fast the care lead's numbers come on a large store: Insight.report for the last 7 and 30
days and Insight.conversations for 7 days, on about a million messages.

    python bench/insight.py [--conversations 150000] [--days 90] [--runs 3]
                            [--postgresql postgresql+asyncpg://postgres@127.0.0.1:5432/test]

The store is written in bulk with SQLAlchemy core (not through the pipeline), seeded, with a
mix like production's: customers on web chat, WhatsApp, Telegram and Messenger (some on two),
1-8 customer turns a conversation, each decided on (answers, small talk, clarifications,
drafts, handoffs) and answered by the bot; handoffs answered and resolved by agents (some
withdrawn, some never answered); "did that answer?" and 1-5 ratings, some answered, a few too
late. SQLite by default (a fresh file in a temporary folder); ``--postgresql ADMIN_URL``
creates a fresh database on that server instead, and drops it afterwards.

Each figure is the median of ``--runs`` runs, with the part of it spent reading the store
(the queries of carebot/insight/facts.py and their rows); the rest is working the figures
out in Python.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import Table, func, select  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from carebot.config import Settings  # noqa: E402
from carebot.insight.facts import load_conversations, load_followups  # noqa: E402
from carebot.insight.metrics import Insight  # noqa: E402
from carebot.insight.report import Period  # noqa: E402
from carebot.store.database import Database  # noqa: E402
from carebot.store.tables import (  # noqa: E402
    Conversation,
    Customer,
    DecisionRow,
    Handoff,
    Identity,
    Message,
    Survey,
)

NOW = datetime(2026, 12, 14, 12, 0, tzinfo=UTC)
CHANNELS = (("webchat", 40), ("whatsapp", 25), ("telegram", 20), ("messenger", 15))
TURNS = (22, 22, 17, 13, 9, 7, 5, 5)  # weights of 1..8 customer messages a conversation
INTENTS = tuple(f"intent_{n:02d}" for n in range(60))
SMALL_TALK = ("greeting", "thanks")
REASONS = ("emotional", "asked_for_human", "sensitive_intent", "no_answer", "repeated_failure")
TEXTS = ("where is my order?", "how do I reset my password", "hi", "I want a refund please")
BATCH = 2000  # conversations written per round
TABLES: tuple[Table, ...] = tuple(
    t.__table__  # type: ignore[misc]
    for t in (Customer, Identity, Conversation, Message, DecisionRow, Handoff, Survey)
)


@dataclass
class Rows:
    """Rows to insert, per table, with the next id of each."""

    data: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    ids: dict[str, int] = field(default_factory=dict)

    def add(self, table: Table, **values: Any) -> int:
        new = self.ids.get(table.name, 0) + 1
        self.ids[table.name] = new
        self.data.setdefault(table.name, []).append({"id": new, **values})
        return new

    def take(self) -> dict[str, list[dict[str, Any]]]:
        data, self.data = self.data, {}
        return data


class Generator:
    """A seeded, production-like store: customers, conversations and all they hold."""

    def __init__(self, *, conversations: int, days: int, seed: int = 7) -> None:
        self.random = random.Random(seed)
        self.conversations = conversations
        self.days = days
        self.rows = Rows()
        self.identities: list[tuple[int, int, str]] = []  # (customer, identity, channel)

    def people(self) -> dict[str, list[dict[str, Any]]]:
        """Customers (two conversations for three of them) and their channel identities."""
        r = self.random
        for n in range(self.conversations * 2 // 3):
            created = NOW - timedelta(days=self.days + 30)
            customer = self.rows.add(TABLES[0], display_name=f"c{n}", created_at=created)
            channels = r.sample([c for c, _ in CHANNELS], 2)
            for channel in channels[: 2 if r.random() < 0.15 else 1]:
                identity = self.rows.add(
                    TABLES[1],
                    customer_id=customer,
                    channel=channel,
                    external_user_id=f"u{customer}-{channel}",
                    profile={},
                    created_at=created,
                    linked_by=None,
                )
                self.identities.append((customer, identity, channel))
        return self.rows.take()

    def batches(self) -> Iterator[dict[str, list[dict[str, Any]]]]:
        for done in range(0, self.conversations, BATCH):
            for _ in range(min(BATCH, self.conversations - done)):
                self.conversation()
            yield self.rows.take()

    def conversation(self) -> None:
        r = self.random
        customer, identity, channel = r.choice(self.identities)
        start = NOW - timedelta(seconds=r.uniform(0, self.days * 86400))
        cid = self.rows.add(
            TABLES[2],
            customer_id=customer,
            identity_id=identity,
            state="closed",
            agent=None,
            created_at=start,
            updated_at=start,
            closed_at=None,
            closed_reason="idle",
            closed_by=None,
        )
        turn = Turn(self, cid, channel, start)
        for _ in range(r.choices(range(1, 9), TURNS)[0]):
            turn.next()
        turn.surveys()


class Turn:
    """A conversation being written, one customer message (and what followed) at a time."""

    def __init__(self, gen: Generator, cid: int, channel: str, start: datetime) -> None:
        self.gen, self.r, self.rows = gen, gen.random, gen.rows
        self.cid, self.channel, self.at = cid, channel, start
        self.handoff: int | None = None  # the open handoff's id
        self.answer: int | None = None
        self.resolved: datetime | None = None

    def message(self, author: str, at: datetime, text: str) -> int:
        return self.rows.add(
            TABLES[3],
            conversation_id=self.cid,
            direction="in" if author == "customer" else "out",
            author=author,
            agent="Ann" if author == "agent" else None,
            channel=self.channel,
            external_id=f"x{self.rows.ids.get('messages', 0) + 1}"
            if author == "customer"
            else None,
            text=text,
            decision_id=None,
            created_at=at,
            handled_at=at,
        )

    def next(self) -> None:
        inbound = self.message("customer", self.at, self.r.choice(TEXTS))
        if self.handoff is not None and self.r.random() < 0.7:
            pass  # an agent has it: recorded for them, no decision
        else:
            self.decide(inbound)
        self.at += timedelta(seconds=self.r.uniform(30, 600))

    def decide(self, inbound: int) -> None:
        r = self.r
        kind = r.choices(("answer", "clarify", "draft", "handoff"), (70, 15, 4, 11))[0]
        small_talk = kind == "answer" and r.random() < 0.15
        intent = r.choice(SMALL_TALK) if small_talk else r.choice(INTENTS[: r.randint(1, 60)])
        reasons = self.reasons(kind)
        decided = self.at + timedelta(seconds=1)
        details: dict[str, Any] = {
            "top": [{"intent": intent, "score": 0.81}, {"intent": INTENTS[0], "score": 0.4}],
            "choices": [],
            "cues": [],
            "timings_ms": {"encode": 5.2, "match": 0.4, "total": 6.1},
        }
        if small_talk:
            details["small_talk"] = True
        decision = self.rows.add(
            TABLES[4],
            conversation_id=self.cid,
            inbound_message_id=inbound,
            kind=kind,
            intent=None if kind == "handoff" and r.random() < 0.5 else intent,
            score=0.8,
            margin=0.2,
            emotion=0.9 if "emotional" in reasons else 0.1,
            reasons=",".join(reasons),
            draft=None,
            details=details,
            created_at=decided,
        )
        self.message("bot", decided, "An answer of about this length, with a link or two.")
        if kind == "answer" and not small_talk:
            self.answer = decision
        if kind in ("draft", "handoff") and self.handoff is None:
            self.hand_over(decision, decided, reasons)

    def reasons(self, kind: str) -> list[str]:
        if kind == "handoff":
            return self.r.sample(REASONS, self.r.choice((1, 1, 1, 2)))
        if kind == "answer":
            return ["emotional", "confident"] if self.r.random() < 0.03 else ["confident"]
        return ["below_threshold"] if kind == "draft" else ["ambiguous"]

    def hand_over(self, decision: int, at: datetime, reasons: list[str]) -> None:
        r = self.r
        replied = at + timedelta(minutes=r.lognormvariate(3.0, 1.2))
        answered, fate = r.random() < 0.85, r.random()
        resolved = replied + timedelta(minutes=r.uniform(5, 90)) if answered else None
        if answered:
            self.message("agent", replied, "Hi, Ann here; let me check that for you.")
        self.handoff = self.rows.add(
            TABLES[5],
            conversation_id=self.cid,
            decision_id=decision,
            reason=reasons[0],
            reasons=",".join(reasons),
            draft=None,
            created_at=at,
            resolved_by="Ann" if answered and fate < 0.9 else None,
            resolved_at=resolved,
            resolution="withdrawn_by_customer" if not answered and fate < 0.3 else None,
        )
        if answered and fate < 0.9:
            self.resolved = resolved

    def surveys(self) -> None:
        """ "Did that answer?" after an answer (40%); a rating after a resolution (60%)."""
        r = self.r
        if self.answer is not None and r.random() < 0.4:
            self.survey("helpful", self.answer, None, r.choices(("yes", "no"), (3, 1))[0])
        if self.resolved is not None and r.random() < 0.6:
            self.at = max(self.at, self.resolved)
            self.survey("rating", None, "human", str(r.choices(range(1, 6), (1, 1, 2, 4, 6))[0]))

    def survey(self, kind: str, decision: int | None, resolver: str | None, answer: str) -> None:
        asked = self.at
        answered = self.r.random() < 0.35
        late = self.r.random() < 0.05
        at = asked + timedelta(hours=30 if late else self.r.uniform(0.01, 2))
        reply = self.message("customer", at, answer) if answered else None
        self.rows.add(
            TABLES[6],
            conversation_id=self.cid,
            identity_id=None,
            kind=kind,
            decision_id=decision,
            resolver=resolver,
            message_id=None,
            asked_at=asked,
            answer=answer if answered else None,
            answered_at=at if answered else None,
            answer_message_id=reply,
            comment=None,
        )


async def fill(db: Database, gen: Generator) -> float:
    """Write the generated store; returns the seconds it took."""
    started = time.perf_counter()
    await _insert(db, gen.people())
    for batch in gen.batches():
        conversations = {c["id"]: c["identity_id"] for c in batch.get("conversations", [])}
        for survey in batch.get("surveys", []):
            survey["identity_id"] = conversations[survey["conversation_id"]]
        await _insert(db, batch)
    return time.perf_counter() - started


async def _insert(db: Database, batch: dict[str, list[dict[str, Any]]]) -> None:
    async with db.engine.begin() as conn:
        for table in TABLES:
            rows = batch.get(table.name, [])
            for first in range(0, len(rows), 5000):
                await conn.execute(table.insert(), rows[first : first + 5000])


async def median_seconds(call: Callable[[], Awaitable[object]], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        await call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


async def reading(db: Database, period: Period) -> None:
    """What the report reads from the store (its queries and their rows), without the rest."""
    found = await load_conversations(db, period)
    await load_followups(db, period, found, period.since, NOW)


async def timings(db: Database, runs: int) -> dict[str, tuple[float, float]]:
    """(all, of which reading the store) per figure, in seconds: medians of ``runs``."""
    insight = Insight(db=db, settings=Settings(), clock=lambda: NOW)
    week, month = Period(NOW - timedelta(days=7), NOW), Period(NOW - timedelta(days=30), NOW)
    report = await insight.report(week)  # warm the caches once
    print(
        f"7 days: {report.conversations.count:,} conversations, involvement "
        f"{report.involvement.value:.1%}, automation {report.automation.value:.1%}, handoffs "
        f"{report.handoffs.value:.1%}, first human response p50 {report.first_response.p50}"
    )
    found = {}
    for name, period in (("report, 7 days", week), ("report, 30 days", month)):
        found[name] = (
            await median_seconds(functools.partial(insight.report, period), runs),
            await median_seconds(functools.partial(reading, db, period), runs),
        )
    found["conversations, 7 days"] = (
        await median_seconds(lambda: insight.conversations(week), runs),
        await median_seconds(lambda: load_conversations(db, week), runs),
    )
    return found


async def counts(db: Database) -> dict[str, int]:
    async with db.session() as session:
        return {
            t.name: int(await session.scalar(select(func.count()).select_from(t)) or 0)
            for t in TABLES
        }


async def analyze(db: Database) -> None:
    """Fresh planner statistics, as a store that has been running has them."""
    async with db.engine.connect() as conn:
        auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await auto.exec_driver_sql("ANALYZE" if db.is_sqlite else "VACUUM ANALYZE")


async def bench(url: str, args: argparse.Namespace, *, write: bool = True) -> None:
    db = Database(url)
    backend = db.url.get_backend_name()
    try:
        took = 0.0
        if write:
            await db.upgrade()
            took = await fill(db, Generator(conversations=args.conversations, days=args.days))
            await analyze(db)
        found = await counts(db)
        print(f"{backend}: written in {took:.0f} s: ", end="")
        print(", ".join(f"{n:,} {name}" for name, n in found.items()) + ".")
        table = await timings(db, args.runs)
        print(f"\n| {backend}, median of {args.runs} runs | seconds | of which reading |")
        print("|---|---:|---:|")
        for name, (total, read) in table.items():
            print(f"| {name} | {total:.2f} | {read:.2f} |")
    finally:
        await db.close()


async def fresh_postgresql(admin: str) -> tuple[str, Callable[[], Awaitable[None]]]:
    import asyncpg

    url = make_url(admin)
    name = f"carebot_bench_{uuid.uuid4().hex[:8]}"
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()

    async def drop() -> None:
        conn = await asyncpg.connect(dsn)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()

    return url.set(database=name).render_as_string(hide_password=False), drop


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--conversations", type=int, default=150_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--postgresql", help="an admin URL; a fresh database is made there")
    parser.add_argument("--sqlite", type=Path, help="keep the SQLite store in this file, reuse it")
    args = parser.parse_args()
    if args.sqlite:
        await bench(f"sqlite+aiosqlite:///{args.sqlite}", args, write=not args.sqlite.exists())
        return
    if args.postgresql:
        url, drop = await fresh_postgresql(args.postgresql)
        try:
            await bench(url, args)
        finally:
            await drop()
        return
    with tempfile.TemporaryDirectory() as folder:
        await bench(f"sqlite+aiosqlite:///{folder}/bench.db", args)


if __name__ == "__main__":
    asyncio.run(main())
