"""Every insight figure on the golden store (tests/insight_fixture.py), exactly: counts, totals,
the conversations behind them, and durations to the second; on SQLite and PostgreSQL. The
fixture's docstring tells each scripted conversation's story; the comments here say why each
figure is what it is."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from carebot.exceptions import ConfigError
from carebot.insight.facts import ConversationFacts, HandoffFact
from carebot.insight.metrics import Insight
from carebot.insight.outcomes import Rules
from carebot.insight.report import ConversationRow, Period, Report, Share, Spread
from carebot.insight.teams import TeamFigures
from carebot.models import Reason
from carebot.store.database import Database
from carebot.store.labels import ConversationLabels
from tests.conftest import Clock, make_settings
from tests.insight_fixture import (
    HEADLINE,
    NOW,
    PERIOD,
    SECTIONS,
    TEAM_FIGURES,
    WEEK_ONE,
    WITHIN_TARGET,
    Golden,
    Person,
    Script,
    answer,
    at,
    build_golden_store,
    handoff,
    team_settings,
)

# The population of PERIOD, by start (before_window, survey_only and at_until are not in it).
POPULATION = (
    "at_since",
    "helpful_no",
    "kim_first",
    "two_handoffs",
    "small_talk_only",
    "agent_took",
    "weekend",
    "kim_again",
    "lea_web",
    "rated_after_close",
    "late_rating",
    "resolved_silently",
    "request_at_23h",
    "request_at_25h",
    "lea_telegram",
    "answer_25h_ago",
    "answer_23h_ago",
    "spans_end",
)
M, H = timedelta(minutes=1), timedelta(hours=1)


@pytest.fixture
async def golden(database: Database, clock: Clock) -> Golden:
    return await build_golden_store(database, clock)


def insight_for(database: Database, clock: Clock, tmp_path: Path, **sections: object) -> Insight:
    settings = make_settings(tmp_path, **{**SECTIONS, **sections})  # type: ignore[arg-type]
    return Insight(db=database, settings=settings, clock=clock)


@pytest.fixture
async def report(golden: Golden, database: Database, clock: Clock, tmp_path: Path) -> Report:
    return await insight_for(database, clock, tmp_path).report(PERIOD)


def ids(golden: Golden, *names: str) -> tuple[int, ...]:
    return tuple(golden[name] for name in names)


def share(golden: Golden, total: int, *names: str) -> Share:
    return Share(len(names), total, ids(golden, *names))


async def test_the_population_is_the_conversations_started_in_the_window(
    golden: Golden, report: Report, database: Database, clock: Clock, tmp_path: Path
) -> None:
    # A conversation started before `since` is out even though it continued inside; one
    # started at `since` is in, one at `until` is out; a survey reply's own conversation is no
    # contact. Lea's two conversations are one customer's (linked by phone number).
    assert report.conversations == share(golden, 18, *POPULATION)
    assert golden.customers["lea_web"] == golden.customers["lea_telegram"]
    rows = await insight_for(database, clock, tmp_path).conversations(PERIOD)
    assert [row.id for row in rows] == list(ids(golden, *POPULATION))
    assert report.generated_at == NOW and report.period == PERIOD


async def test_the_headline_counts(report: Report) -> None:
    found = {}
    for key in HEADLINE:
        figure = report.lookup(key)
        assert isinstance(figure, Share), key
        found[key] = (figure.count, figure.total)
    assert found == HEADLINE


async def test_the_conversations_behind_each_rate(golden: Golden, report: Report) -> None:
    assert report.involvement == share(
        golden,
        18,
        *("at_since", "helpful_no", "kim_first", "agent_took", "kim_again", "lea_web"),
        *("rated_after_close", "late_rating", "request_at_23h", "request_at_25h"),
        *("answer_25h_ago", "answer_23h_ago", "spans_end"),
    )
    assert report.confirmed == share(golden, 18, "at_since", "lea_web")
    # Not assumed: a handoff (helpful_no, agent_took, spans_end), a request 23 hours after the
    # answer, an answer 23 hours old; the late rating reply is a survey reply, not a request.
    assumed = ("kim_first", "kim_again", "rated_after_close", "late_rating", "request_at_25h")
    assert report.assumed == share(golden, 18, *assumed, "answer_25h_ago")
    bot = ("at_since", "kim_first", "kim_again", "lea_web", "rated_after_close", "late_rating")
    assert report.automation == share(golden, 18, *bot, "request_at_25h", "answer_25h_ago")
    assert report.resolution_rate == Share(8, 13, report.automation.ids)
    assert report.handoffs == share(
        golden,
        18,
        *("helpful_no", "two_handoffs", "agent_took", "weekend", "resolved_silently"),
        *("lea_telegram", "spans_end"),
    )
    assert report.not_helpful == share(golden, 3, "helpful_no")


async def test_automation_is_involvement_times_resolution_rate(report: Report) -> None:
    involvement = Fraction(report.involvement.count, report.involvement.total)
    rate = Fraction(report.resolution_rate.count, report.resolution_rate.total)
    assert Fraction(report.automation.count, report.automation.total) == involvement * rate
    assert report.automation.value == pytest.approx(
        report.involvement.value * report.resolution_rate.value  # type: ignore[operator]
    )


@pytest.mark.parametrize(
    ("name", "resolved_at"),
    [
        ("request_at_23h", None),  # a request at A + 23 h: not resolved
        ("request_at_25h", at(12, 10, 10)),  # a request at A + 25 h: still resolved, at A
        ("answer_23h_ago", None),  # A = now - 23 h: not yet
        ("answer_25h_ago", at(12, 13, 11)),  # A = now - 25 h: resolved, at A
    ],
)
async def test_assumed_resolution_at_its_edges(
    golden: Golden,
    report: Report,
    database: Database,
    clock: Clock,
    tmp_path: Path,
    name: str,
    resolved_at: object,
) -> None:
    rows = await insight_for(database, clock, tmp_path).conversations(PERIOD)
    [row] = [row for row in rows if row.id == golden[name]]
    assert (row.resolver, row.resolved_at) == (
        ("bot", resolved_at) if resolved_at else (None, None)
    )
    assert (golden[name] in report.assumed.ids) is (resolved_at is not None)


@pytest.mark.parametrize(
    ("offset", "resolved"),
    [(-timedelta(seconds=1), False), (timedelta(), True)],
    ids=["a second before A + N", "at A + N"],
)
async def test_an_answer_is_assumed_resolved_once_n_hours_have_passed(
    golden: Golden,
    database: Database,
    clock: Clock,
    tmp_path: Path,
    offset: timedelta,
    resolved: bool,
) -> None:
    clock.now = at(12, 13, 13) + 24 * H + offset  # answer_23h_ago's answer + N hours
    report = await insight_for(database, clock, tmp_path).report(PERIOD)
    assert (golden["answer_23h_ago"] in report.assumed.ids) is resolved
    assert report.automation.count == 8 + resolved


async def test_durable_resolutions_and_the_cost_they_saved(
    golden: Golden, report: Report, database: Database, clock: Clock, tmp_path: Path
) -> None:
    # Old enough (resolved by Dec 7 12:00): at_since, kim_first, kim_again, lea_web. Kim asked
    # again within 7 days (her greeting is small talk, her question a request); Lea too, on
    # Telegram. Dan's rating reply after his "yes" is a survey reply, not a request.
    assert report.durable == share(golden, 4, "at_since", "kim_again")
    assert report.cost_saved.pending and report.cost_saved.amount is None
    assert (report.cost_saved.resolutions, report.cost_saved.currency) == (2, "EUR")
    assert any("pending until 2026-12-20" in note for note in report.notes)
    assert any("4 of 8 bot resolutions are younger than 7 days" in n for n in report.notes)

    first = await insight_for(database, clock, tmp_path).report(WEEK_ONE)
    assert first.durable == share(golden, 3, "at_since", "kim_again")
    assert (first.cost_saved.amount, first.cost_saved.pending) == (70.0, False)
    assert first.cost_saved.cost_per_contact == 35.0


@pytest.mark.parametrize(
    ("offset", "durable", "repeat"),
    [(7 * 24 * H - H, 0, 1), (7 * 24 * H + H, 1, 0)],
    ids=["back after 7 days - 1 h", "back after 7 days + 1 h"],
)
async def test_durability_and_repeat_contact_end_after_7_days(
    database: Database,
    clock: Clock,
    tmp_path: Path,
    offset: timedelta,
    durable: int,
    repeat: int,
) -> None:
    script, zoe = Script(database, clock), Person("webchat", "zoe")
    answered = at(11, 2, 10)
    first = await script.says(zoe, answered, "where is my order", answer("order_status"))
    await script.close_idle(first.conversation_id, answered + 48 * H)
    again = await script.says(zoe, answered + offset, "where is it now", answer("order_status"))
    clock.now = answered + 30 * 24 * H
    period = Period(answered - H, answered + H)
    report = await insight_for(database, clock, tmp_path).report(period)
    assert report.automation.ids == (first.conversation_id,)
    assert report.durable == Share(durable, 1, (first.conversation_id,) * durable)
    assert report.repeat_contact == Share(repeat, 1, (again.conversation_id,) * repeat)


async def test_handoffs_by_main_and_by_any_reason(golden: Golden, report: Report) -> None:
    # Two handoffs in one conversation count once; the main reason is the first handoff's.
    assert report.handoff_main_reason == {
        "asked_for_human": share(golden, 18, "helpful_no", "weekend"),
        "sensitive_intent": share(golden, 18, "two_handoffs", "resolved_silently"),
        "agent_initiated": share(golden, 18, "agent_took"),
        "below_threshold": share(golden, 18, "lea_telegram"),
        "emotional": share(golden, 18, "spans_end"),
    }
    assert report.handoff_any_reason == {
        "agent_initiated": share(golden, 18, "agent_took", "resolved_silently"),
        "asked_for_human": share(golden, 18, "helpful_no", "weekend"),
        "emotional": share(golden, 18, "two_handoffs", "spans_end"),
        "sensitive_intent": share(golden, 18, "two_handoffs", "resolved_silently"),
        "below_threshold": share(golden, 18, "lea_telegram"),
        "no_answer": share(golden, 18, "two_handoffs"),
    }
    assert list(report.handoff_main_reason)[:2] == ["asked_for_human", "sensitive_intent"]


async def test_first_human_response_in_clock_time_and_business_hours(
    golden: Golden, report: Report
) -> None:
    # Samples: helpful_no 30 min; two_handoffs 10 min and 14 h 45 (15 business minutes: the
    # second came at 18:30 Berlin, answered at 09:15); weekend 63 h 30 (30 business minutes,
    # Friday 17:50-18:00 and Monday 09:00-09:20); lea_telegram 20 min; spans_end 1 h. No
    # sample: an agent's own handoff, and resolved_silently (answered only after resolved).
    sampled = ids(golden, "helpful_no", "two_handoffs", "weekend", "lea_telegram", "spans_end")
    assert report.first_response == Spread(6, 30 * M, 63 * H + 30 * M, sampled)
    assert report.first_response_business == Spread(6, 20 * M, H, sampled)


async def test_no_business_hours_means_no_business_figure(
    golden: Golden, database: Database, clock: Clock, tmp_path: Path
) -> None:
    closed = {day: "" for day in ("monday", "tuesday", "wednesday", "thursday", "friday")}
    hours = {**SECTIONS["business_hours"], **closed}
    report = await insight_for(database, clock, tmp_path, business_hours=hours).report(PERIOD)
    assert report.first_response_business is None
    assert report.first_response.p50 == 30 * M


async def test_time_to_resolution_for_the_bot_and_for_people(
    golden: Golden, report: Report
) -> None:
    # Bot: 0 (late_rating, request_at_25h, answer_25h_ago), 1 min (rated_after_close: the
    # answer after a clarification), 2 min (kim_again), 3 min (lea_web's "yes"), 5 min
    # (at_since's "yes"), 10 min (kim_first: after a greeting).
    assert report.resolution_time_bot == Spread(
        8,
        M,
        10 * M,
        ids(golden, "at_since", "kim_first", "kim_again", "lea_web", "rated_after_close")
        + ids(golden, "late_rating", "request_at_25h", "answer_25h_ago"),
    )
    # People: 20 min, 30 min, 1 h, 1 h, 13 h, 16 h 30 (two_handoffs: its last resolution).
    assert report.resolution_time_human == Spread(
        6,
        H,
        16 * H + 30 * M,
        ids(golden, "helpful_no", "two_handoffs", "agent_took", "resolved_silently")
        + ids(golden, "lea_telegram", "spans_end"),
    )


async def test_csat_and_response_rate_by_resolver(golden: Golden, report: Report) -> None:
    # Bot: 5 and 4 count; the 1 came 24.5 hours after the question (not answered), and the
    # 3 rated a conversation before the window. People: 2 and 5; one never answered.
    assert report.csat_bot == share(golden, 2, "at_since", "rated_after_close")
    assert report.rating_response_bot == share(golden, 3, "at_since", "rated_after_close")
    assert report.csat_human == share(golden, 2, "spans_end")
    assert report.rating_response_human == share(golden, 3, "helpful_no", "spans_end")


async def test_repeat_contact_on_any_channel(golden: Golden, report: Report) -> None:
    # 12 customers had a resolved conversation; Kim came back on web chat, Lea on Telegram.
    # Ivy's rating reply opened a conversation, but a survey-only one is no contact.
    assert report.repeat_contact == share(golden, 12, "kim_again", "lea_telegram")


async def test_emotional_share_overall_by_intent_and_by_week(
    golden: Golden, report: Report
) -> None:
    # 27 customer messages were decided on (survey replies and Carl's message to the agent
    # were not); two were flagged emotional.
    assert report.emotional == share(golden, 27, "two_handoffs", "spans_end")
    by_intent = {row.intent: row.emotional for row in report.top_intents}
    assert by_intent["damaged_item"] == share(golden, 1, "two_handoffs")
    assert by_intent["refund"] == share(golden, 3, "spans_end")
    assert by_intent["opening_hours"] == Share(0, 2)  # the clarification and the answer
    assert [week.emotional for week in report.weeks] == [
        share(golden, 13, "two_handoffs"),
        share(golden, 14, "spans_end"),
    ]


async def test_top_intents(golden: Golden, report: Report) -> None:
    def row(intent: str, names: tuple[str, ...], bot: int, handed: int) -> tuple[object, ...]:
        return (intent, share(golden, 18, *names), bot, handed)

    found = [
        (r.intent, r.conversations, r.automation.count, r.handoffs.count)
        for r in report.top_intents
    ]
    assert found == [
        row("contact", ("answer_25h_ago", "answer_23h_ago"), 1, 0),
        row("order_status", ("kim_first", "kim_again"), 2, 0),
        row("refund", ("lea_web", "spans_end"), 1, 1),
        row("shipping_cost", ("request_at_23h", "request_at_25h"), 1, 0),
        row("billing_dispute", ("two_handoffs",), 0, 1),  # a handoff for a sensitive intent
        row("cancel_subscription", ("resolved_silently",), 0, 1),
        row("change_address", ("helpful_no",), 0, 1),
        row("damaged_item", ("two_handoffs",), 0, 1),  # a handoff for an intent with no answer
        row("opening_hours", ("rated_after_close",), 1, 0),
        row("password_reset", ("at_since",), 1, 0),
        row("refund_delay", ("lea_telegram",), 0, 1),  # a draft
        row("returns", ("late_rating",), 1, 0),
        row("shipping_countries", ("agent_took",), 0, 1),
    ]
    contact = report.top_intents[0]
    assert contact.automation == Share(1, 2, ids(golden, "answer_25h_ago"))
    assert report.lookup("intent.refund.handoffs") == Share(1, 2, ids(golden, "spans_end"))


async def test_weeks_start_on_monday_in_the_business_time_zone(
    golden: Golden, report: Report
) -> None:
    first, second = report.weeks
    # at_since starts on Sunday 23:00 UTC and lea_web on Sunday 23:30 UTC: Monday in Berlin.
    week_one = ("at_since", "helpful_no", "kim_first", "two_handoffs", "small_talk_only")
    week_one += ("agent_took", "weekend", "kim_again")
    assert (first.start, first.conversations) == (date(2026, 11, 30), share(golden, 8, *week_one))
    assert first.automation == share(golden, 8, "at_since", "kim_first", "kim_again")
    assert first.handoffs == share(golden, 8, "helpful_no", "two_handoffs", "agent_took", "weekend")
    assert first.handoff_reasons == {
        "asked_for_human": share(golden, 8, "helpful_no", "weekend"),
        "agent_initiated": share(golden, 8, "agent_took"),
        "sensitive_intent": share(golden, 8, "two_handoffs"),
    }
    assert first.first_response == Spread(
        4, 30 * M, 63 * H + 30 * M, ids(golden, "helpful_no", "two_handoffs", "weekend")
    )
    assert second.start == date(2026, 12, 7)
    assert second.conversations.ids == ids(golden, *POPULATION[8:])
    assert second.automation.count == 5 and second.handoffs.count == 3
    assert second.first_response == Spread(2, 20 * M, H, ids(golden, "lea_telegram", "spans_end"))


async def test_one_row_per_conversation(
    golden: Golden, database: Database, clock: Clock, tmp_path: Path
) -> None:
    rows = {r.id: r for r in await insight_for(database, clock, tmp_path).conversations(PERIOD)}
    fay = golden.customers["two_handoffs"]
    assert rows[golden["two_handoffs"]] == ConversationRow(
        id=golden["two_handoffs"],
        customer_id=fay,
        channel="telegram",
        started=at(12, 2, 16, 30),
        resolver="human",
        first_handoff_reason="sensitive_intent",
        resolved_at=at(12, 3, 9),
        first_human_response=10 * M,
        csat=None,  # asked, never answered
        intents=("billing_dispute", "damaged_item"),
    )
    at_since = rows[golden["at_since"]]
    assert (at_since.resolver, at_since.resolved_at, at_since.csat) == (
        "bot",
        at(11, 29, 23, 5),
        5,
    )
    weekend = rows[golden["weekend"]]
    assert (weekend.resolver, weekend.first_human_response) == (None, 63 * H + 30 * M)
    assert rows[golden["late_rating"]].csat is None  # answered too late
    assert rows[golden["small_talk_only"]].intents == ()


async def test_one_channel(
    golden: Golden, database: Database, clock: Clock, tmp_path: Path
) -> None:
    telegram = Period(PERIOD.since, PERIOD.until, "telegram")
    report = await insight_for(database, clock, tmp_path).report(telegram)
    names = ("two_handoffs", "late_rating", "lea_telegram", "spans_end")
    assert report.conversations == share(golden, 4, *names)
    assert report.involvement == share(golden, 4, "late_rating", "spans_end")
    assert report.automation == share(golden, 4, "late_rating")
    # Lea's web chat conversation is not on Telegram; what she did on Telegram still counts.
    assert report.durable == Share(0, 0) and report.durable.value is None
    assert report.repeat_contact == Share(0, 4)


async def test_one_channel_still_follows_its_customers_on_every_channel(
    golden: Golden, database: Database, clock: Clock, tmp_path: Path
) -> None:
    webchat = Period(PERIOD.since, PERIOD.until, "webchat")
    report = await insight_for(database, clock, tmp_path).report(webchat)
    assert report.conversations.count == 14
    # Lea's Telegram conversation is not in the web chat figures, yet it is her request within
    # 7 days of her web chat resolution, and her repeat contact.
    assert report.durable == share(golden, 4, "at_since", "kim_again")
    assert report.repeat_contact == share(golden, 9, "kim_again", "lea_telegram")


async def test_an_empty_period_has_no_figures_rather_than_zeros(
    golden: Golden, database: Database, clock: Clock, tmp_path: Path
) -> None:
    empty = Period(at(10, 1, 0), at(10, 8, 0))
    report = await insight_for(database, clock, tmp_path).report(empty)
    assert report.conversations == Share(0, 0) and report.automation.value is None
    assert report.first_response == Spread(0, None, None)
    assert report.cost_saved.amount == 0.0 and not report.cost_saved.pending
    assert [w.start for w in report.weeks] == [date(2026, 9, 28), date(2026, 10, 5)]
    assert report.top_intents == () and report.handoff_main_reason == {}


async def test_how_the_bot_read_a_message_is_no_reason_to_hand_over(
    database: Database, clock: Clock, tmp_path: Path
) -> None:
    # "asked_for_human,confident": the talk-to-a-person intent was recognised with confidence;
    # the conversation counts under asked_for_human, not under "confident".
    script = Script(database, clock)
    when = PERIOD.since + timedelta(hours=10)
    decision = handoff(Reason.ASKED_FOR_HUMAN, Reason.CONFIDENT, intent="talk_to_human")
    received = await script.says(Person("webchat", "v1"), when, "a person please", decision)
    clock.now = when + timedelta(hours=1)
    report = await insight_for(database, clock, tmp_path).report(PERIOD)
    only = Share(1, 1, (received.conversation_id,))
    assert report.handoff_any_reason == {"asked_for_human": only}
    assert report.handoff_main_reason == {"asked_for_human": only}


# --- by team (issue 17): the human figures of each team, and the share answered in target ---


@pytest.fixture
async def team_report(golden: Golden, database: Database, clock: Clock, tmp_path: Path) -> Report:
    settings = team_settings(tmp_path)
    return await Insight(db=database, settings=settings, clock=clock).report(PERIOD)


def _figure(found: Share | Spread | None) -> object:
    """A figure as TEAM_FIGURES writes it."""
    if isinstance(found, Share):
        return (found.count, found.total)
    if isinstance(found, Spread):
        seconds = [None if d is None else int(d.total_seconds()) for d in (found.p50, found.p90)]
        return (found.samples, *seconds)
    return found


async def test_every_human_figure_by_team(golden: Golden, team_report: Report) -> None:
    # care has the handoffs without a team (helpful_no, agent_took, resolved_silently) and
    # spans_end; billing two_handoffs' first, weekend and lea_telegram; escalation
    # two_handoffs' second (resolved last, so two_handoffs' resolution is escalation's).
    assert [(t.team, t.label) for t in team_report.teams] == [
        ("care", "Care team"),
        ("billing", "Billing"),
        ("escalation", "Escalation"),
    ]
    for row in team_report.teams:
        found = {
            part: _figure(team_report.lookup(f"team.{row.team}.{part}"))
            for part in TEAM_FIGURES[row.team]
        }
        assert found == TEAM_FIGURES[row.team], row.team
    care, billing, escalation = team_report.teams
    assert care.handoffs.ids == ids(
        golden, "helpful_no", "agent_took", "resolved_silently", "spans_end"
    )
    assert billing.first_response.ids == ids(golden, "two_handoffs", "weekend", "lea_telegram")
    assert escalation.resolution_time_human.ids == ids(golden, "two_handoffs")
    assert care.csat_human.ids == ids(golden, "spans_end")


async def test_answered_within_target(golden: Golden, team_report: Report) -> None:
    # Met: helpful_no (at its due time, 10:35) and two_handoffs' first (billing, 10 of 15
    # minutes). Missed: weekend (billing: due Friday 18:05 Berlin in billing's own hours),
    # lea_telegram (20 of 15 minutes), spans_end (60 of 30). Not judged: escalation has no
    # target, resolved_silently ended unanswered at its due time, agent_took was an agent's.
    assert team_report.within_target == share(golden, 5, "helpful_no", "two_handoffs")
    assert _figure(team_report.within_target) == WITHIN_TARGET
    billing = team_report.teams[1]
    assert billing.within_target == share(golden, 3, "two_handoffs")
    assert team_report.teams[2].within_target is None
    assert team_report.lookup("team.escalation.within_target") is None
    assert team_report.lookup("team.nobody.handoffs") is None


async def test_without_teams_nothing_has_a_target(report: Report) -> None:
    assert report.within_target == Share(0, 0) and report.within_target.value is None
    (default,) = report.teams
    assert default.handoffs.count == report.handoffs.count
    assert default.first_response == report.first_response
    assert default.within_target is None


async def test_one_team(golden: Golden, database: Database, clock: Clock, tmp_path: Path) -> None:
    insight = Insight(db=database, settings=team_settings(tmp_path), clock=clock)
    report = await insight.report(Period(PERIOD.since, PERIOD.until, team="billing"))
    names = ("two_handoffs", "weekend", "lea_telegram")
    assert report.conversations == share(golden, 3, *names)
    assert report.handoffs == share(golden, 3, *names)
    assert [t.team for t in report.teams] == ["billing"]
    assert report.within_target == share(golden, 3, "two_handoffs")
    # Only billing's handoffs: two_handoffs' escalation handoff is not, so its resolution is
    # billing's first one (16:50, 20 minutes after it started).
    assert report.first_response.samples == 3
    assert report.resolution_time_human == Spread(
        2, 20 * M, H, ids(golden, "two_handoffs", "lea_telegram")
    )


async def test_one_label(golden: Golden, database: Database, clock: Clock, tmp_path: Path) -> None:
    """Only the conversations agents labelled so (as typed: any case) are counted."""
    labels = ConversationLabels(database, clock=clock)
    for name in ("two_handoffs", "weekend"):
        await labels.add(golden[name], "Damaged", "ann")
    await labels.add(golden["lea_telegram"], "other", "ann")
    insight = insight_for(database, clock, tmp_path)
    report = await insight.report(Period(PERIOD.since, PERIOD.until, label="damaged"))
    assert report.conversations == share(golden, 2, "two_handoffs", "weekend")
    assert report.handoffs == share(golden, 2, "two_handoffs", "weekend")
    nothing = await insight.report(Period(PERIOD.since, PERIOD.until, label="nobody-used-it"))
    assert nothing.conversations.total == 0


async def test_an_unknown_team_is_refused(
    golden: Golden, database: Database, clock: Clock, tmp_path: Path
) -> None:
    insight = Insight(db=database, settings=team_settings(tmp_path), clock=clock)
    with pytest.raises(ConfigError, match="no team 'legal': the teams are care, billing"):
        await insight.report(Period(PERIOD.since, PERIOD.until, team="legal"))


T0 = at(12, 2, 9)  # Wednesday 10:00 in Berlin: care is open (30-minute target)


@pytest.mark.parametrize(
    ("reply", "resolved", "now", "team", "verdict"),
    [
        (T0 + 10 * M, None, T0 + H, "care", (1, 1)),  # answered in time
        (T0 + 30 * M, None, T0 + H, "care", (1, 1)),  # at the due time: met
        (T0 + 31 * M, None, T0 + H, "care", (0, 1)),  # late
        (None, None, T0 + 31 * M, "care", (0, 1)),  # unanswered, past due: missed
        (None, None, T0 + 29 * M, "care", (0, 0)),  # unanswered, not yet due: no verdict
        (None, T0 + 20 * M, T0 + H, "care", (0, 0)),  # ended unanswered before it was due
        (None, T0 + 40 * M, T0 + H, "care", (0, 1)),  # still open at the due time: missed
        (T0 + 50 * M, T0 + H, T0 + 2 * H, "care", (0, 1)),  # answered late, then resolved
        (T0 + 10 * M, None, T0 + H, "escalation", (0, 0)),  # no target: not counted
        (T0 + 10 * M, None, T0 + H, None, (1, 1)),  # no team: the default team's target
    ],
)
def test_within_target_verdicts(
    tmp_path: Path,
    reply: datetime | None,
    resolved: datetime | None,
    now: datetime,
    team: str | None,
    verdict: tuple[int, int],
) -> None:
    handoff = HandoffFact(
        T0, "asked_for_human", ("asked_for_human",), True, None, resolved, None, team
    )
    if resolved is not None:
        handoff = replace(handoff, resolved_by="Ann")
    facts = ConversationFacts(
        1, 1, "webchat", T0, (), (handoff,), () if reply is None else (reply,), ()
    )
    rules = Rules(assume_resolved=24 * H, rating_window=24 * H, zone=ZoneInfo("Europe/Berlin"))
    outcome = rules.outcome(facts, now)
    assert _figure(TeamFigures(team_settings(tmp_path)).within_target([outcome], now)) == verdict
