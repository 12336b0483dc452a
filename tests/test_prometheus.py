"""``/metrics``: counters read back from a store filled through the real store APIs, exact;
kept incrementally (a scrape reads only what is new); the headline gauges from the insight's
report; the bearer token; nothing when disabled; no ids in labels."""

from __future__ import annotations

import itertools
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import timedelta

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import insert, select, update

from carebot.config import Settings
from carebot.exceptions import ConfigError
from carebot.insight.counters import StoreCounters
from carebot.insight.prometheus import bearer_token, headline_samples, mount_metrics
from carebot.insight.report import Period
from carebot.models import Decision, DecisionKind, Reason
from carebot.runtime import Runtime
from carebot.store.conversations import Received
from carebot.store.tables import Conversation, Handoff, Survey
from tests.conftest import Clock, make_settings
from tests.insight_reports_cli import FakeInsight, make_report
from tests.service import running_service, service_settings
from tests.test_store import inbound

TOKEN_ENV = "CAREBOT_TEST_METRICS_TOKEN"
TOKEN = "s3cret-scraper-token"
_mids = itertools.count(1)
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def decision(kind: DecisionKind, reason: Reason, score: float, intent: str | None) -> Decision:
    return Decision(
        kind=kind,
        reasons=(reason,),
        intent=intent,
        score=score,
        margin=0.1,
        emotion=0.0,
        reply="An answer" if kind is DecisionKind.ANSWER else "A person will answer shortly.",
        draft="A draft" if kind is DecisionKind.DRAFT else None,
    )


async def decide(
    runtime: Runtime, user: str, text: str, made: Decision, triage_ms: float, channel: str = "test"
) -> Received:
    received = await runtime.conversations.receive(
        inbound(text, user=user, channel=channel, mid=f"mid-{next(_mids)}")
    )
    await runtime.conversations.record_decision(received, made, {"triage_ms": triage_ms})
    return received


@dataclass
class Filled:
    answered: Received  # the bot answered; later an agent took it over on their own
    handed: Received  # handed to a person, answered 300 s later


async def fill(runtime: Runtime, clock: Clock) -> Filled:
    """Three customers: one answered by the bot (and later taken over by an agent on their
    own), one handed over (first agent reply 300 s later, then another), one drafted for an
    agent on another channel and never answered; four surveys, one "yes"."""
    answer = decision(DecisionKind.ANSWER, Reason.CONFIDENT, 0.92, "order_status")
    answered = await decide(runtime, "u1", "where is my order", answer, 12.0)
    handoff = decision(DecisionKind.HANDOFF, Reason.ASKED_FOR_HUMAN, 0.31, None)
    handed = await decide(runtime, "u2", "a person please", handoff, 40.0)
    draft = decision(DecisionKind.DRAFT, Reason.SENSITIVE_INTENT, 0.6, "refund")
    await decide(runtime, "u3", "refund my card", draft, 200.0, channel="web")
    clock.advance(300)
    await runtime.handoffs.reply(handed.conversation_id, "ann", "Hi, Ann here")  # + joined notice
    clock.advance(60)
    await runtime.handoffs.reply(handed.conversation_id, "ann", "Anything else?")
    await runtime.handoffs.take_over(answered.conversation_id, "bob")  # + notice; no decision
    await runtime.handoffs.reply(answered.conversation_id, "bob", "I'll check it myself")
    # The survey store comes with the surveys (another change); the rows it writes:
    await add_surveys(runtime, answered, [("helpful", "yes"), ("helpful", "no"),
                                          ("helpful", None), ("rating", "5")])  # fmt: skip
    return Filled(answered, handed)


async def add_surveys(
    runtime: Runtime, about: Received, surveys: list[tuple[str, str | None]]
) -> list[int]:
    async with runtime.db.transaction() as session:
        conversation = await session.get_one(Conversation, about.conversation_id)
        ids = []
        for kind, answer in surveys:
            row = Survey(
                conversation_id=conversation.id,
                identity_id=conversation.identity_id,
                kind=kind,
                resolver="bot" if kind == "rating" else None,
                asked_at=runtime.clock(),
                answer=answer,
                answered_at=runtime.clock() if answer else None,
            )
            session.add(row)
            await session.flush()
            ids.append(row.id)
        return ids


COUNTS = {
    ("carebot_messages_total", ("in", "customer", "test")): 2,
    ("carebot_messages_total", ("in", "customer", "web")): 1,
    # the answer, the handoff message, two "joined" notices
    ("carebot_messages_total", ("out", "bot", "test")): 4,
    ("carebot_messages_total", ("out", "bot", "web")): 1,
    ("carebot_messages_total", ("out", "agent", "test")): 3,
}
DECISIONS = {
    ("answer", "confident"): 1,
    ("handoff", "asked_for_human"): 1,
    ("draft", "sensitive_intent"): 1,
}
HANDOFFS = {"asked_for_human": 1, "sensitive_intent": 1, "agent_initiated": 1}


def samples(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float | None:
    return found.get((name, frozenset(labels.items())))


def families(text: str) -> dict[str, str]:
    return {f.name: f.type for f in text_string_to_metric_families(text)}


def metrics_settings(tmp_path: object, **metrics: object) -> Settings:
    return make_settings(tmp_path, metrics={"enabled": True, **metrics})  # type: ignore[arg-type]


@pytest.fixture
async def scrape(runtime: Runtime, clock: Clock, tmp_path: object) -> AsyncIterator[ScrapeClient]:
    settings = metrics_settings(tmp_path, token_env=TOKEN_ENV, window_days=3)
    client = ScrapeClient(FakeInsight())  # its report is over the period asked
    app = web.Application()
    mount_metrics(app, settings, db=runtime.db, clock=clock, env={TOKEN_ENV: TOKEN},
                  insight=client.insight)  # fmt: skip
    server = TestServer(app)
    await server.start_server()
    client.url = str(server.make_url("/metrics"))
    async with aiohttp.ClientSession() as session:
        client.session = session
        yield client
    await server.close()


class ScrapeClient:
    def __init__(self, insight: FakeInsight) -> None:
        self.insight = insight
        self.url = ""
        self.session: aiohttp.ClientSession

    async def get(self, headers: Mapping[str, str] | None = None) -> tuple[int, str, str]:
        headers = {"Authorization": f"Bearer {TOKEN}"} if headers is None else headers
        async with self.session.get(self.url, headers=headers) as response:
            return response.status, response.headers["Content-Type"], await response.text()

    async def samples(self) -> Samples:
        status, _, text = await self.get()
        assert status == 200, text
        return samples(text)


async def test_counters_are_exact_for_a_store_filled_through_the_stores(
    runtime: Runtime, clock: Clock, scrape: ScrapeClient
) -> None:
    await fill(runtime, clock)
    status, content_type, text = await scrape.get()
    assert (status, content_type) == (200, "text/plain; version=0.0.4; charset=utf-8")
    found = samples(text)
    kinds = families(text)
    assert (kinds["carebot_messages"], kinds["carebot_decision_seconds"]) == (
        "counter",
        "histogram",
    )
    assert kinds["carebot_insight_automation_ratio"] == "gauge"
    for (name, (direction, author, channel)), count in COUNTS.items():
        assert value(found, name, direction=direction, author=author, channel=channel) == count
    total = sum(v for (name, _), v in found.items() if name == "carebot_messages_total")
    assert total == sum(COUNTS.values())
    for (kind, reason), count in DECISIONS.items():
        assert value(found, "carebot_decisions_total", kind=kind, reason=reason) == count
    for reason, count in HANDOFFS.items():
        assert value(found, "carebot_handoffs_total", reason=reason) == count
    assert value(found, "carebot_bot_resolutions_confirmed_total") == 1
    # decision time: 12 ms, 40 ms, 200 ms
    decision_seconds = {"0.01": 0, "0.025": 1, "0.05": 2, "0.1": 2, "0.25": 3, "+Inf": 3}
    for le, count in decision_seconds.items():
        assert value(found, "carebot_decision_seconds_bucket", le=le) == count
    assert value(found, "carebot_decision_seconds_count") == 3
    assert value(found, "carebot_decision_seconds_sum") == pytest.approx(0.252, abs=1e-12)
    # match scores 0.92, 0.31, 0.6 (a bound is inclusive: 0.6 is in le="0.6")
    for le, count in {"0.3": 0, "0.35": 1, "0.55": 1, "0.6": 2, "0.9": 2, "0.95": 3}.items():
        assert value(found, "carebot_match_score_bucket", le=le) == count
    assert value(found, "carebot_match_score_count") == 3
    # one handoff by the bot answered, after 300 s; the agent's own take-over is no sample
    assert value(found, "carebot_first_human_response_seconds_count") == 1
    assert value(found, "carebot_first_human_response_seconds_sum") == 300
    assert value(found, "carebot_first_human_response_seconds_bucket", le="120") == 0
    assert value(found, "carebot_first_human_response_seconds_bucket", le="300") == 1


async def test_a_scrape_reads_only_the_rows_since_the_last_one(
    runtime: Runtime, clock: Clock
) -> None:
    counters = StoreCounters(db=runtime.db, clock=clock, reply_hours=24)
    await fill(runtime, clock)
    first = await counters.refresh()
    # Read one by one: the rows still younger than their grace (5 min; surveys 25 h): the 5
    # messages and the handoff of the agents' turn 300 and 360 s in, the first agent reply, the
    # 3 helpful surveys. The older rows were summed by the database.
    assert counters.rows_read == 10
    clock.advance(26 * 3600)  # older than every grace
    assert await counters.refresh() == first  # all settled now: the same totals
    assert counters.rows_read == 1  # the first reply, the one source not summed by the database
    assert await counters.refresh() == first
    assert counters.rows_read == 0  # nothing new: nothing read

    answer = decision(DecisionKind.ANSWER, Reason.CONFIDENT, 0.97, "order_status")
    await decide(runtime, "u9", "where is my order", answer, 3.0)
    after = await counters.refresh()
    # the message in, the answer out, the decision (thrice: for the decisions' kinds and
    # reasons, their scores, their times)
    assert counters.rows_read == 5
    assert after.messages - first.messages == {
        ("in", "customer", "test"): 1,
        ("out", "bot", "test"): 1,
    }
    assert after.decisions - first.decisions == {("answer", "confident"): 1}
    assert after.handoffs == first.handoffs
    assert after.match_score.count == first.match_score.count + 1
    assert after.match_score.total == pytest.approx(first.match_score.total + 0.97, abs=1e-12)
    assert after.decision_seconds.counts[0] == first.decision_seconds.counts[0] + 1  # 3 ms


async def test_totals_summed_by_the_database_equal_those_added_row_by_row(
    runtime: Runtime, clock: Clock
) -> None:
    start = clock()
    await fill(runtime, clock)
    row_by_row = await StoreCounters(db=runtime.db, clock=lambda: start).refresh()  # all young
    later = start + timedelta(days=2)
    summed = await StoreCounters(db=runtime.db, clock=lambda: later).refresh()  # all settled
    assert row_by_row.messages == summed.messages
    assert (row_by_row.decisions, row_by_row.handoffs) == (summed.decisions, summed.handoffs)
    assert row_by_row.confirmed == summed.confirmed == 1
    for name in ("decision_seconds", "match_score", "first_response"):
        one, other = getattr(row_by_row, name), getattr(summed, name)
        assert one.counts == other.counts, name
        # sums of floats in another order: equal within rounding
        assert one.total == pytest.approx(other.total, rel=1e-12), name
    assert sum(row_by_row.messages.values()) == 11


async def test_a_survey_answered_after_a_scrape_counts_at_the_next(
    runtime: Runtime, clock: Clock
) -> None:
    counters = StoreCounters(db=runtime.db, clock=clock, reply_hours=24)
    filled = await fill(runtime, clock)
    [asked] = await add_surveys(runtime, filled.handed, [("helpful", None)])
    clock.advance(3600)
    assert (await counters.refresh()).confirmed == 1
    async with runtime.db.transaction() as session:
        await session.execute(
            update(Survey).where(Survey.id == asked).values(answer="yes", answered_at=clock())
        )
    clock.advance(23 * 3600)  # answered within reply_hours; the scrape after still counts it
    assert (await counters.refresh()).confirmed == 2
    clock.advance(3 * 3600)
    assert (await counters.refresh()).confirmed == 2  # settled, counted once


async def test_a_row_committed_after_a_higher_id_was_read_is_still_counted(
    runtime: Runtime, clock: Clock
) -> None:
    """On PostgreSQL ids are handed out at insert and become visible at commit, in either
    order: young rows are read again at every scrape until they are older than the grace."""
    counters = StoreCounters(db=runtime.db, clock=clock)
    filled = await fill(runtime, clock)
    for late_id in (1000, 990):  # 1000 committed first, then 990
        async with runtime.db.transaction() as session:
            await session.execute(
                insert(Handoff).values(
                    id=late_id,
                    conversation_id=filled.answered.conversation_id,
                    reason="emotional",
                    reasons="emotional",
                    created_at=clock(),
                )
            )
        totals = await counters.refresh()
    assert totals.handoffs["emotional"] == 2


async def test_the_token_is_required_when_configured(scrape: ScrapeClient) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        status, _, text = await scrape.get(headers)
        assert status == 401 and "Authorization: Bearer" in text, headers
    status, _, _ = await scrape.get()
    assert status == 200


@pytest.mark.parametrize("env", [{}, {TOKEN_ENV: ""}, {TOKEN_ENV: "  "}])
def test_a_token_variable_named_but_empty_is_a_config_error(
    env: dict[str, str], tmp_path: object
) -> None:
    settings = metrics_settings(tmp_path, token_env=TOKEN_ENV)
    with pytest.raises(ConfigError, match=rf"\[metrics\] token_env names .*{TOKEN_ENV}.*not set"):
        bearer_token(settings.metrics, env)
    with pytest.raises(ConfigError):
        mount_metrics(web.Application(), settings, db=None, clock=Clock(), env=env)  # type: ignore[arg-type]


async def test_metrics_are_off_by_default(database_url: str, tmp_path: object) -> None:
    settings = service_settings(tmp_path)  # type: ignore[arg-type]
    assert not settings.metrics.enabled
    async with (
        running_service(settings, database_url) as (_, server),
        aiohttp.ClientSession() as session,
        session.get(server.make_url("/metrics")) as response,
    ):
        assert response.status == 404


async def test_the_headline_gauges_are_the_reports_figures(
    scrape: ScrapeClient, clock: Clock
) -> None:
    found = await scrape.samples()
    assert scrape.insight.periods == [Period(clock() - timedelta(days=3), clock())]
    report = make_report(scrape.insight.periods[0])
    shown = absent = 0
    for sample in headline_samples(report):
        got = value(found, f"carebot_insight_{sample.name}", **sample.labels)
        assert got == sample.value, sample  # None: no sample at all, never 0
        shown, absent = shown + (got is not None), absent + (got is None)
    assert value(found, "carebot_insight_involvement_ratio") == 412 / 1020
    assert value(found, "carebot_insight_csat_ratio", resolver="human") == 0.75
    assert value(found, "carebot_insight_first_response_p50_seconds", hours="clock") == 252
    assert value(found, "carebot_insight_repeat_contact_ratio") is None  # 0 of 0
    assert value(found, "carebot_insight_cost_saved", currency="USD") is None  # pending
    assert value(found, "carebot_insight_cost_saved_pending") == 1
    assert value(found, "carebot_insight_handoff_reason_ratio", reason="below_threshold") == (
        150 / 1020
    )
    # absent: durable and repeat contact (0 of 0), business hours' p50/p90 (none configured),
    # human resolution time's (no samples), the cost saved (pending). Shown: 21 headline
    # figures, and the ten counts of what became of public messages (0: the report has none)
    assert (shown, absent) == (31, 7)


async def test_the_headline_report_is_computed_at_most_every_30_seconds(
    scrape: ScrapeClient, clock: Clock
) -> None:
    await scrape.samples()
    clock.advance(29)
    await scrape.samples()
    assert len(scrape.insight.periods) == 1
    clock.advance(1)
    await scrape.samples()
    assert len(scrape.insight.periods) == 2


ALLOWED_LABELS = {"direction", "author", "channel", "kind", "reason", "le", "how", "resolver",
                  "hours", "currency", "visibility", "category", "what"}  # fmt: skip


async def test_no_label_carries_an_id(runtime: Runtime, clock: Clock, scrape: ScrapeClient) -> None:
    await fill(runtime, clock)
    _, _, text = await scrape.get()
    async with runtime.db.session() as session:
        stored = await session.execute(select(Conversation.id, Conversation.customer_id))
        ids = {str(i) for row in stored for i in row}
    ids |= {"u1", "u2", "u3"}  # the customers' channel ids
    labels = {
        (name, label)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        for name, label in s.labels.items()
    }
    assert {name for name, _ in labels} <= ALLOWED_LABELS
    for name, label in labels:
        if name != "le":  # a bucket's bound
            assert label not in ids and not re.search(r"\d", label), (name, label)
