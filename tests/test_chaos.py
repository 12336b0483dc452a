"""Chaos, CI-sized: three real workers on PostgreSQL, one killed (SIGKILL) every 10 s and
started again, while 100 customers write on Telegram (webhook mode, through a round-robin
proxy) and the web chat (tabs on two workers each), and the workers' LISTEN/NOTIFY connections
are terminated once. Counts only: nothing lost, nothing decided or answered twice, nothing left
pending, replies in order, duplicates only where a fault explains them (``bench/chaos.py`` is
the full run, with the SIGSTOP and the timings; both use ``tests/chaos_harness.py``)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from carebot.store.database import Database
from tests.chaos_harness import Plan, faq_questions, matching_settings, run_chaos
from tests.fakes import FakeEncoder

ON_POSTGRESQL = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
PLAN = Plan(
    workers=3,
    telegram_customers=50,
    webchat_customers=50,
    messages=5,
    rate=20.0,  # 500 messages in 25 s
    kill_every=10.0,
    restart_after=2.0,
    terminate_every=30.0,  # once, 15 s in
    drain_timeout=150.0,  # a killed worker's claimed replies wait out the outbox lease (60 s)
)


@ON_POSTGRESQL
async def test_killed_workers_lose_nothing_and_answer_everything_once_in_order(
    tmp_path: Path, database: Database, database_url: str
) -> None:
    settings = matching_settings(cache_dir=tmp_path / "cache", fake_encoder=True)
    questions = faq_questions(settings, FakeEncoder())
    report = await run_chaos(
        PLAN, database_url=database_url, workdir=tmp_path, questions=questions, fake_encoder=True
    )
    offered = PLAN.customers * PLAN.messages
    faults = Counter(fault.kind for fault in report.faults)
    assert faults["kill"] == 2 and faults["terminate"] == 1, report.faults
    assert report.stalled == ""
    assert report.sent == report.stored == {"telegram": 250, "webchat": 250}
    assert (report.missing, report.unexpected) == ([], [])
    assert (report.decided, report.recorded, report.unhandled) == (offered, 0, 0)
    assert report.not_one_reply == []
    assert report.outbox == {"sent": offered}
    assert (report.unanswered, report.wrong, report.out_of_order) == ([], [], [])
    assert report.tab_out_of_order == []
    assert report.unexplained_duplicates == []
    # Every web chat reply reached every tab open from before it was sent until the end.
    assert report.fanout_missed == []
    assert report.exit_codes == [0, 0, 0]
